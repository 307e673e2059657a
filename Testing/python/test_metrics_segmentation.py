"""Dice, IoU, pixel accuracy and the confusion matrix on label maps worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radassist.metrics.segmentation import (SegmentationScores, confusion_matrix, dice, dice_from_confusion,
                                            iou_from_confusion, nan_mean, pixel_accuracy_from_confusion)

# 3x4 truth and prediction; classes 0, 1, 2 (class 3 absent from both)
TRUTH = np.array([[0, 0, 1, 1],
                  [0, 1, 1, 2],
                  [0, 0, 2, 2]])
PRED = np.array([[0, 1, 1, 1],
                 [0, 1, 0, 2],
                 [0, 0, 2, 0]])


def test_confusion_matrix_counts_truth_rows_and_prediction_columns():
    matrix = confusion_matrix(TRUTH, PRED, 4)
    expected = np.array([[4, 1, 0, 0],   # five true 0: four kept, one called 1
                         [1, 3, 0, 0],   # four true 1: three kept, one called 0
                         [1, 0, 2, 0],   # three true 2: two kept, one called 0
                         [0, 0, 0, 0]])
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == TRUTH.size


def test_dice_iou_and_accuracy_by_hand():
    matrix = confusion_matrix(TRUTH, PRED, 4)
    d = dice_from_confusion(matrix)
    # class 1: TP 3, FP 1, FN 1 -> Dice 6/8, IoU 3/5; class 2: TP 2, FP 0, FN 1 -> 4/5, 2/3; class 0: TP 4, FP 2, FN 1
    np.testing.assert_allclose(d[:3], [8 / 11, 6 / 8, 4 / 5])
    np.testing.assert_allclose(iou_from_confusion(matrix)[:3], [4 / 7, 3 / 5, 2 / 3])
    assert math.isnan(d[3])  # absent from both: no score, not 0 or 1
    assert pixel_accuracy_from_confusion(matrix) == pytest.approx(9 / 12)


def test_binary_dice_agrees_with_the_matrix_and_is_nan_for_two_empty_masks():
    assert dice(TRUTH == 1, PRED == 1) == pytest.approx(6 / 8)
    assert math.isnan(dice(np.zeros((2, 2)), np.zeros((2, 2))))
    assert dice(np.ones((2, 2)), np.zeros((2, 2))) == 0.0


def test_scores_report_means_over_defined_foreground_classes_and_add_up():
    scores = SegmentationScores.from_labels(TRUTH, PRED, ["bg", "a", "b", "c"])
    assert scores.mean_dice() == pytest.approx((6 / 8 + 4 / 5) / 2)  # class c (NaN) left out, background too
    assert scores.mean_dice(include_background=True) == pytest.approx((8 / 11 + 6 / 8 + 4 / 5) / 3)
    twice = scores + scores
    np.testing.assert_array_equal(twice.confusion, 2 * scores.confusion)
    assert twice.dice[:3] == pytest.approx(scores.dice[:3])
    document = scores.to_dict()
    assert document["classes"][3]["dice"] is None
    assert document["classes"][1]["true_voxels"] == 4 and document["classes"][1]["predicted_voxels"] == 4
    assert document["confusion_matrix"]["counts"][2] == [1, 0, 2, 0]


def test_binary_scores_merge_every_finding_class():
    binary = SegmentationScores.from_labels(TRUTH, PRED, ["bg", "a", "b", "c"]).binary()
    # findings: truth has 7 pixels, prediction 6, overlap 5 -> Dice 10/13
    np.testing.assert_array_equal(binary.confusion, [[4, 1], [2, 5]])
    assert binary.dice[1] == pytest.approx(10 / 13)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(TRUTH, PRED[:, :3], 4)
    with pytest.raises(ValueError, match="outside 0..1"):
        confusion_matrix(TRUTH, PRED, 2)
    assert math.isnan(nan_mean([math.nan]))
