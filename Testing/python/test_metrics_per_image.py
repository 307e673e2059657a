"""Per-image Dice, sensitivity and specificity, and the Inf-Net evaluation protocol, on masks worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radassist.metrics.per_image import (INFNET_THRESHOLDS, binary_image_scores, infnet_mean,
                                         infnet_threshold_scores)

# 3x4: truth has 4 pixels, prediction 6, they share 3
TRUTH = np.array([[0, 0, 1, 1],
                  [0, 1, 1, 0],
                  [0, 0, 0, 0]], bool)
PRED = np.array([[0, 1, 1, 1],
                 [0, 1, 0, 1],
                 [0, 1, 0, 0]], bool)


def test_standard_scores_by_hand():
    scores = binary_image_scores(TRUTH, PRED)
    assert (scores.true_positives, scores.reference_pixels, scores.predicted_pixels) == (3, 4, 6)
    assert scores.dice == pytest.approx(2 * 3 / (4 + 6))
    assert scores.sensitivity == pytest.approx(3 / 4)
    assert scores.specificity == pytest.approx((8 - 3) / 8)  # 8 negatives, 3 false positives


def test_an_empty_reference_has_no_dice_or_sensitivity_but_a_specificity():
    empty = np.zeros_like(TRUTH)
    scores = binary_image_scores(empty, PRED)
    assert scores.empty_reference and math.isnan(scores.dice) and math.isnan(scores.sensitivity)
    assert scores.specificity == pytest.approx(6 / 12)
    assert binary_image_scores(empty, empty).specificity == 1.0


def test_infnet_protocol_on_a_hard_mask():
    """A 0/255 mask: every threshold above 0 cuts the mask itself, threshold 0 takes every pixel."""
    result = infnet_threshold_scores(PRED.astype(np.uint8) * 255, TRUTH)
    assert result.dice.shape == (256,) and INFNET_THRESHOLDS[0] == 1.0 and INFNET_THRESHOLDS[-1] == 0.0
    np.testing.assert_allclose(result.dice[:255], 2 * 3 / (4 + 6))
    assert result.dice[255] == pytest.approx(2 * 4 / (4 + 12))
    assert result.specificity[255] == 0.0  # everything positive: no true negative
    mean = infnet_mean([result])
    assert mean["dice"] == pytest.approx((255 * 0.6 + 0.5) / 256)


def test_infnet_protocol_counts_an_image_without_true_positive_as_zero_in_all_three():
    """Even an empty reference predicted empty, or a prediction with a perfect specificity."""
    empty = np.zeros_like(TRUTH)
    for truth, prediction in ((empty, empty), (empty, PRED), (TRUTH, ~TRUTH & PRED)):
        result = infnet_threshold_scores(prediction.astype(np.uint8) * 255, truth)
        np.testing.assert_array_equal(result.dice[:255], 0.0)
        np.testing.assert_array_equal(result.specificity[:255], 0.0)


def test_infnet_protocol_agrees_with_a_direct_loop_over_thresholds():
    rng = np.random.default_rng(3)
    score = rng.integers(20, 200, size=(17, 23)).astype(np.uint8)  # min-max normalisation stretches 20..199
    truth = rng.random((17, 23)) > 0.7
    result = infnet_threshold_scores(score, truth)
    normalised = (score - float(score.min())) / float(score.max() - score.min())
    for index in (0, 40, 128, 200, 255):
        positive = normalised >= INFNET_THRESHOLDS[index]
        tp = int((positive & truth).sum())
        expected = 2 * tp / (truth.sum() + positive.sum()) if tp else 0.0
        assert result.dice[index] == pytest.approx(expected)
        fp = int((positive & ~truth).sum())
        tn = int((~positive & ~truth).sum())
        assert result.specificity[index] == pytest.approx(tn / (tn + fp) if tp else 0.0)


def test_the_data_set_mean_is_over_thresholds_of_the_mean_over_images():
    a = infnet_threshold_scores(PRED.astype(np.uint8) * 255, TRUTH)
    b = infnet_threshold_scores(TRUTH.astype(np.uint8) * 255, TRUTH)
    assert infnet_mean([a, b])["dice"] == pytest.approx(float(np.mean((a.dice + b.dice) / 2)))
    assert math.isnan(infnet_mean([])["dice"])
