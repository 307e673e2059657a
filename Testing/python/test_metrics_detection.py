"""Detection metrics against hand-computed cases: 3-D box IoU in mm, greedy matching at IoU 0.5, precision /
recall / F1 at a probability threshold, VOC all-point AP, and the <7, 7-15, >15 mm size bands."""

from __future__ import annotations

import numpy as np
import pytest

from radassist.metrics.detection import (SIZE_BANDS, average_precision, box_iou, box_iou_matrix,
                                         evaluate_detections, precision_recall_curve, size_band)
from radassist.results.detections import Detection


def box(x: float, y: float, z: float, side: float, probability: float = 1.0, diameter: float | None = None,
        size: tuple[float, float, float] | None = None) -> Detection:
    return Detection(center=(x, y, z), size=size or (side, side, side), probability=probability,
                     diameter_mm=side if diameter is None else diameter)


def test_box_iou_by_hand():
    assert box_iou(box(0, 0, 0, 2), box(1, 0, 0, 2)) == pytest.approx(4 / 12)  # 1x2x2 overlap of two 8 mm^3 cubes
    assert box_iou(box(0, 0, 0, 10), box(0, 0, 0, 8)) == pytest.approx(512 / 1000)  # nested cubes
    assert box_iou(box(0, 0, 0, 2), box(2, 0, 0, 2)) == 0.0  # touching faces
    assert box_iou(box(0, 0, 0, 4), box(5, 5, 5, 4)) == 0.0
    assert box_iou(box(0, 0, 0, 0, diameter=1), box(0, 0, 0, 0, diameter=1)) == 0.0  # empty boxes never match
    # anisotropic boxes in mm: 4x2x2 and 2x2x6 sharing their centre overlap in 2x2x2
    a = Detection(center=(0, 0, 0), size=(4, 2, 2), probability=1.0)
    b = Detection(center=(0, 0, 0), size=(2, 2, 6), probability=1.0)
    assert box_iou(a, b) == pytest.approx(8 / (16 + 24 - 8))
    matrix = box_iou_matrix(np.array([[-1, -1, -1], [10, 10, 10]]), np.array([[1, 1, 1], [12, 12, 12]]),
                            np.array([[0, -1, -1]]), np.array([[2, 1, 1]]))
    assert matrix.shape == (2, 1) and matrix[:, 0] == pytest.approx([4 / 12, 0.0])


def test_size_bands_include_7_and_15_in_the_middle_band():
    assert [size_band(d) for d in (3.0, 6.99, 7.0, 11.0, 15.0, 15.01, 40.0)] == \
        ["<7 mm", "<7 mm", "7-15 mm", "7-15 mm", "7-15 mm", ">15 mm", ">15 mm"]
    assert [name for name, _, _ in SIZE_BANDS] == ["<7 mm", "7-15 mm", ">15 mm"]


def test_average_precision_against_a_hand_computed_precision_recall_curve():
    # ranked: TP .9, FP .8, TP .7, FP .6, TP .5 with 4 reference nodules
    # P/R points: (1, .25) (.5, .25) (2/3, .5) (.5, .5) (.6, .75)
    # monotone envelope at recall .25: 1, at .5: 2/3, at .75: .6 -> AP = .25 (1 + 2/3 + .6)
    scores = np.array([0.6, 0.9, 0.5, 0.8, 0.7])
    hits = np.array([False, True, True, False, True])
    precision, recall, thresholds = precision_recall_curve(scores, hits, 4)
    assert thresholds == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])
    assert precision == pytest.approx([1, 0.5, 2 / 3, 0.5, 0.6])
    assert recall == pytest.approx([0.25, 0.25, 0.5, 0.5, 0.75])
    assert average_precision(scores, hits, 4) == pytest.approx(0.25 * (1 + 2 / 3 + 0.6))
    assert average_precision(np.array([]), np.array([], dtype=bool), 3) == 0.0
    assert average_precision(scores, hits, 0) is None


def test_average_precision_treats_tied_scores_as_one_step():
    for hits in ([True, False], [False, True]):
        assert average_precision(np.array([0.5, 0.5]), np.array(hits), 1) == pytest.approx(0.5)


# Scan S1: R1 5 mm at x=0, R2 10 mm at x=50, R3 20 mm at x=100; scan S2: R4 12 mm at 0, excluded finding at x=300.
REFERENCES = {"S1": [box(0, 0, 0, 5), box(50, 0, 0, 10), box(100, 0, 0, 20)], "S2": [box(0, 0, 0, 12)]}
EXCLUDED = {"S2": [Detection(center=(300, 0, 0), size=(0, 0, 0), probability=1.0, diameter_mm=-1.0)]}
PREDICTIONS = {
    "S1": [box(0.5, 0, 0, 5, 0.8),  # on R1 too, but R1 already taken by the 0.9 box: FP (predicted 5 mm: <7)
           box(0, 0, 0, 5, 0.9),  # R1, IoU 1: TP (<7)
           box(51, 0, 0, 10, 0.7),  # R2, IoU 900/1100: TP (7-15)
           box(100, 0, 0, 12, 0.6),  # R3, IoU 1728/8000 < 0.5: FP, predicted 12 mm: 7-15 band
           box(100, 0, 0, 18, 0.3)],  # R3, IoU 5832/8000: TP (>15), below the 0.5 probability threshold
    "S2": [box(0, 0, 1, 12, 0.95),  # R4, IoU 1584/1872: TP (7-15)
           box(200, 0, 0, 3, 0.4),  # nothing there: FP (<7), below the threshold
           box(303, 0, 0, 4, 0.85)],  # within 5 mm of the excluded finding: ignored
    "S9": [box(0, 0, 0, 5, 0.9)],  # not an evaluated scan
}


def test_detection_table_by_hand():
    table = evaluate_detections(["S1", "S2"], REFERENCES, PREDICTIONS, EXCLUDED)
    assert table.ignored_predictions == 1 and table.predictions_outside_scans == 1
    overall = table.row("all")
    # at probability >= 0.5: TP .95 .9 .7, FP .8 .6 -> P 3/5, R 3/4, F1 2/3
    assert (overall.references, overall.true_positives, overall.false_positives, overall.false_negatives) == \
        (4, 3, 2, 1)
    assert overall.precision == pytest.approx(0.6) and overall.recall == pytest.approx(0.75)
    assert overall.f1 == pytest.approx(2 / 3)
    # ranking .95 T, .9 T, .8 F, .7 T, .6 F, .4 F, .3 T: recall steps at .25, .5, .75, 1 with envelope
    # precisions 1, 1, .75, 4/7
    assert overall.average_precision == pytest.approx(0.25 * (1 + 1 + 0.75 + 4 / 7))

    small = table.row("<7 mm")  # R1; predictions .9 T, .8 F, .4 F
    assert (small.references, small.true_positives, small.false_positives, small.false_negatives) == (1, 1, 1, 0)
    assert small.precision == pytest.approx(0.5) and small.recall == 1.0 and small.f1 == pytest.approx(2 / 3)
    assert small.average_precision == pytest.approx(1.0)

    middle = table.row("7-15 mm")  # R2, R4; predictions .95 T, .7 T, .6 F (the 12 mm box on R3)
    assert (middle.references, middle.true_positives, middle.false_positives) == (2, 2, 1)
    assert middle.precision == pytest.approx(2 / 3) and middle.recall == 1.0 and middle.f1 == pytest.approx(0.8)
    assert middle.average_precision == pytest.approx(1.0)

    large = table.row(">15 mm")  # R3, found only by the .3 box: no prediction above the threshold
    assert (large.references, large.predictions, large.true_positives, large.false_negatives) == (1, 0, 0, 1)
    assert large.precision is None and large.recall == 0.0 and large.f1 == 0.0
    assert large.average_precision == pytest.approx(1.0)

    bands = [table.row(name) for name, _, _ in SIZE_BANDS]
    assert sum(r.false_positives for r in bands) == overall.false_positives
    assert sum(r.true_positives for r in bands) == overall.true_positives
    assert sum(r.references for r in bands) == overall.references
    document = table.to_dict()
    assert document["false_positive_band"] == "predicted size" and set(document["rows"]) == \
        {"all", "<7 mm", "7-15 mm", ">15 mm"}


def test_lower_threshold_and_stricter_iou_change_the_table_as_expected():
    lower = evaluate_detections(["S1", "S2"], REFERENCES, PREDICTIONS, EXCLUDED, score_threshold=0.0).row()
    assert (lower.true_positives, lower.false_positives, lower.false_negatives) == (4, 3, 0)
    # at IoU 0.85 only the exact R1 box (IoU 1) still matches; 1584/1872 = 0.846 and 900/1100 = 0.818 fail
    strict = evaluate_detections(["S1", "S2"], REFERENCES, PREDICTIONS, EXCLUDED, iou_threshold=0.85).row()
    assert (strict.true_positives, strict.false_positives) == (1, 4)
    with pytest.raises(ValueError, match="IoU"):
        evaluate_detections(["S1"], REFERENCES, PREDICTIONS, iou_threshold=0.0)


def test_the_more_probable_prediction_takes_the_reference_and_the_best_overlap_is_chosen():
    references = {"A": [box(0, 0, 0, 10), box(6, 0, 0, 10)]}
    # one box overlapping both (IoU 0.538 with each); a more probable box exactly on the second reference
    predictions = {"A": [box(3, 0, 0, 10, 0.5), box(6, 0, 0, 10, 0.9)]}
    table = evaluate_detections(["A"], references, predictions)
    assert (table.row().true_positives, table.row().false_positives) == (2, 0)
    # without the exact box, the overlapping one takes only one reference; the other is missed
    table = evaluate_detections(["A"], references, {"A": [box(3, 0, 0, 10, 0.5)]})
    assert (table.row().true_positives, table.row().false_negatives) == (1, 1)


def test_empty_inputs_give_undefined_not_crashing_numbers():
    table = evaluate_detections(["A", "B"], {"A": [box(0, 0, 0, 8)]}, {})
    overall = table.row()
    assert overall.precision is None and overall.recall == 0.0 and overall.f1 == 0.0
    assert overall.average_precision == 0.0
    empty_band = table.row(">15 mm")
    assert empty_band.references == 0 and empty_band.recall is None and empty_band.f1 is None
    assert empty_band.average_precision is None
