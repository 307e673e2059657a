"""LiTS evaluation: per-case and global Dice, VOE, RVD, ASSD and MSD for liver and tumour, and lesion-wise
detection precision and recall; written as JSON and a PNG.

* "liver" is the whole organ (labels 1 and 2 together), "tumour" is label 2, as LiTS scores them;
* Dice per case is the mean over cases; global Dice pools the voxels of all cases (2 sum|A n B| / sum(|A|+|B|));
  a case where a structure is absent from both reference and prediction has no score for it (left out of means);
* a reference lesion (26-connected component) is detected when a predicted lesion overlaps it with
  IoU above ``detection_iou``; a predicted lesion is correct when it detects one. Precision and recall pool all
  lesions of all cases.

The reference numbers to compare with (Bilic et al., Medical Image Analysis 2023): best liver Dice per case 0.963,
best tumour Dice 0.674-0.739 over the three LiTS rounds, best lesion-wise recall 0.458-0.554.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from radassist.io.atomic import atomic_path
from radassist.liver.model import TUMOUR_LABEL
from radassist.metrics.curves import pyplot, rendered
from radassist.metrics.segmentation import nan_mean
from radassist.metrics.surface import LitsScores, lits_scores
from radassist.results.csv_json import plain_json

FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
LITS_ANCHORS = {"liver_dice_per_case_best": 0.963, "tumour_dice_best": [0.674, 0.702, 0.739],
                "lesion_recall_best": [0.458, 0.515, 0.554]}


@dataclass(frozen=True)
class LitsEvaluationConfig:
    detection_iou: float = 0.5  # ours; 0 counts any overlap as a detection

    def __post_init__(self) -> None:
        if not 0.0 <= self.detection_iou < 1.0:
            raise ValueError(f"detection_iou must be in [0, 1), got {self.detection_iou}")


@dataclass
class LesionCounts:
    reference: int = 0
    predicted: int = 0
    detected: int = 0  # reference lesions found
    correct: int = 0  # predicted lesions that found one

    def __add__(self, other: "LesionCounts") -> "LesionCounts":
        return LesionCounts(self.reference + other.reference, self.predicted + other.predicted,
                            self.detected + other.detected, self.correct + other.correct)

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else math.nan

    @property
    def recall(self) -> float:
        return self.detected / self.reference if self.reference else math.nan


@dataclass
class CaseEvaluation:
    case: str
    liver: LitsScores
    tumour: LitsScores
    lesions: LesionCounts


@dataclass
class LitsEvaluation:
    cases: list[CaseEvaluation]
    config: LitsEvaluationConfig = field(default_factory=LitsEvaluationConfig)

    def _global_dice(self, structure: str) -> float:
        scores = [getattr(c, structure) for c in self.cases]
        total = sum(s.reference_voxels + s.predicted_voxels for s in scores)
        return 2.0 * sum(s.intersection_voxels for s in scores) / total if total else math.nan

    @property
    def lesions(self) -> LesionCounts:
        return sum((case.lesions for case in self.cases), LesionCounts())

    def summary(self) -> dict[str, Any]:
        result: dict[str, Any] = {"cases": len(self.cases)}
        for structure in ("liver", "tumour"):
            scores = [getattr(c, structure) for c in self.cases]
            result[structure] = {"dice_per_case": nan_mean([s.dice for s in scores]),
                                 "dice_global": self._global_dice(structure),
                                 **{name: nan_mean([getattr(s, name) for s in scores])
                                    for name in ("voe", "rvd", "assd_mm", "msd_mm")},
                                 "cases_scored": int(sum(not math.isnan(s.dice) for s in scores))}
        lesions = self.lesions
        result["lesion_detection"] = {"reference": lesions.reference, "predicted": lesions.predicted,
                                      "detected": lesions.detected, "precision": lesions.precision,
                                      "recall": lesions.recall, "iou_above": self.config.detection_iou}
        return result

    def to_dict(self) -> dict[str, Any]:
        return plain_json({"summary": self.summary(), "lits_anchors": LITS_ANCHORS,
                           "cases": [{"case": c.case, "liver": c.liver.to_dict(), "tumour": c.tumour.to_dict(),
                                      "lesions": vars(c.lesions)} for c in self.cases]})


def match_lesions(reference: np.ndarray, prediction: np.ndarray, iou_above: float = 0.5) -> LesionCounts:
    """Count reference lesions detected and predicted lesions that are correct (IoU above ``iou_above``)."""
    ref_labels, ref_count = ndimage.label(reference, structure=FULL_CONNECTIVITY)
    pred_labels, pred_count = ndimage.label(prediction, structure=FULL_CONNECTIVITY)
    counts = LesionCounts(ref_count, pred_count)
    if not ref_count or not pred_count:
        return counts
    both = (ref_labels > 0) & (pred_labels > 0)
    pairs = np.bincount(ref_labels[both].astype(np.int64) * (pred_count + 1) + pred_labels[both],
                        minlength=(ref_count + 1) * (pred_count + 1)).reshape(ref_count + 1, pred_count + 1)
    ref_sizes = np.bincount(ref_labels.ravel(), minlength=ref_count + 1)
    pred_sizes = np.bincount(pred_labels.ravel(), minlength=pred_count + 1)
    union = ref_sizes[:, None] + pred_sizes[None, :] - pairs
    iou = np.where(pairs > 0, pairs / np.maximum(union, 1), 0.0)[1:, 1:]
    hits = iou > iou_above
    counts.detected = int(hits.any(axis=1).sum())
    counts.correct = int(hits.any(axis=0).sum())
    return counts


def evaluate_case(name: str, reference: np.ndarray, prediction: np.ndarray, spacing_zyx: Sequence[float],
                  config: LitsEvaluationConfig = LitsEvaluationConfig()) -> CaseEvaluation:
    """Score one case from LiTS label arrays (0/1/2) on the same grid."""
    reference, prediction = np.asarray(reference), np.asarray(prediction)
    if reference.shape != prediction.shape:
        raise ValueError(f"{name}: reference {reference.shape} and prediction {prediction.shape} differ in shape")
    ref_tumour, pred_tumour = reference == TUMOUR_LABEL, prediction == TUMOUR_LABEL
    return CaseEvaluation(name, lits_scores(reference > 0, prediction > 0, spacing_zyx),
                          lits_scores(ref_tumour, pred_tumour, spacing_zyx),
                          match_lesions(ref_tumour, pred_tumour, config.detection_iou))


# ------------------------------------------------------------------------------------------------ output


def draw_evaluation(evaluation: LitsEvaluation) -> Image.Image:
    """Per-case Dice bars (liver, tumour) on a 0-1 axis, with the LiTS best per-case liver Dice as a line and
    the summary numbers underneath."""
    summary = evaluation.summary()
    lines = [f"liver: Dice/case {summary['liver']['dice_per_case']:.3f}  global {summary['liver']['dice_global']:.3f}"
             f"  (LiTS best 0.963, blue line)",
             f"tumour: Dice/case {summary['tumour']['dice_per_case']:.3f}  global "
             f"{summary['tumour']['dice_global']:.3f}  (LiTS best 0.674-0.739)",
             f"lesions: precision {summary['lesion_detection']['precision']:.3f}  recall "
             f"{summary['lesion_detection']['recall']:.3f}  ({summary['lesion_detection']['reference']} reference)"]
    figure, axes = pyplot().subplots(figsize=(max(6.4, 1.5 + 0.35 * len(evaluation.cases)), 5.2), dpi=100)
    positions = np.arange(len(evaluation.cases))
    for offset, (structure, colour) in enumerate((("liver", "#dd8265"), ("tumour", "#e63c3c"))):
        dice = [getattr(case, structure).dice for case in evaluation.cases]
        axes.bar(positions + 0.4 * offset - 0.2, np.nan_to_num(dice), width=0.4, color=colour, label=structure)
    axes.axhline(LITS_ANCHORS["liver_dice_per_case_best"], color="#3c78c8", linewidth=1, label="LiTS best liver")
    axes.set_xticks(positions, [case.case for case in evaluation.cases], rotation=90, fontsize=7)
    axes.set(ylim=(0, 1), yticks=np.linspace(0, 1, 11), ylabel="Dice", title="LiTS evaluation: Dice per case")
    axes.grid(True, axis="y", color="0.9")
    axes.legend(loc="lower right", fontsize=8)
    figure.text(0.01, 0.01, "\n".join(line.replace("nan", "n/a") for line in lines), fontsize=8, va="bottom")
    figure.subplots_adjust(bottom=0.22)
    return rendered(figure)


def write_evaluation(evaluation: LitsEvaluation, json_path: str | Path, png_path: str | Path) -> None:
    """Both files, or (on any error) neither."""
    text = json.dumps(evaluation.to_dict(), indent=2, allow_nan=False) + "\n"
    picture = draw_evaluation(evaluation)
    with contextlib.ExitStack() as stack:
        temp_json = stack.enter_context(atomic_path(Path(json_path)))
        temp_png = stack.enter_context(atomic_path(Path(png_path)))
        temp_json.write_text(text, encoding="utf-8")
        picture.save(temp_png, format="PNG")
