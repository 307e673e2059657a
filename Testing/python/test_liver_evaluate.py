"""The LiTS evaluation: per-case and global Dice, lesion detection, and its JSON and PNG."""

from __future__ import annotations

import json
import math

import numpy as np
from PIL import Image

from radassist.liver.evaluate import LitsEvaluation, LitsEvaluationConfig, evaluate_case, match_lesions
from radassist.liver.evaluate import write_evaluation


def _case() -> np.ndarray:
    labels = np.zeros((12, 40, 40), dtype=np.uint8)
    labels[1:11, 5:35, 5:35] = 1
    labels[3:6, 8:14, 8:14] = 2  # lesion A
    labels[7:9, 25:28, 25:28] = 2  # lesion B
    return labels


def test_lesions_detected_by_iou():
    reference = _case() == 2
    prediction = np.zeros_like(reference)
    prediction[3:6, 8:14, 9:14] = True  # most of A (IoU 5/6)
    prediction[1, 30, 30] = True  # a false positive
    counts = match_lesions(reference, prediction, 0.5)
    assert (counts.reference, counts.predicted, counts.detected, counts.correct) == (2, 2, 1, 1)
    assert counts.precision == 0.5 and counts.recall == 0.5
    assert match_lesions(reference, prediction, 0.9).detected == 0


def test_case_and_global_scores(tmp_path):
    reference = _case()
    perfect = evaluate_case("a", reference, reference, (2.0, 1.0, 1.0))
    no_tumour = reference.copy()
    no_tumour[no_tumour == 2] = 1
    missed = evaluate_case("b", reference, no_tumour, (2.0, 1.0, 1.0))
    assert perfect.liver.dice == 1.0 and missed.liver.dice == 1.0  # liver = labels 1 and 2 together
    assert missed.tumour.dice == 0.0 and missed.lesions.detected == 0
    evaluation = LitsEvaluation([perfect, missed], LitsEvaluationConfig())
    summary = evaluation.summary()
    assert summary["tumour"]["dice_per_case"] == 0.5
    tumour_voxels = int((reference == 2).sum())
    assert math.isclose(summary["tumour"]["dice_global"], 2 * tumour_voxels / (3 * tumour_voxels))
    assert summary["lesion_detection"]["recall"] == 0.5 and summary["lesion_detection"]["precision"] == 1.0
    write_evaluation(evaluation, tmp_path / "evaluation.json", tmp_path / "evaluation.png")
    document = json.loads((tmp_path / "evaluation.json").read_text())
    assert document["cases"][1]["tumour"]["assd_mm"] is None and document["lits_anchors"]["liver_dice_per_case_best"]
    with Image.open(tmp_path / "evaluation.png") as image:
        assert image.format == "PNG" and image.size[0] >= 600
