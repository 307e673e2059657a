"""Median-frequency class weights and the weighted cross-entropy, checked on masks small enough to do by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from radassist.liver.losses import CrossEntropyDiceLoss
from radassist.lung.infection.losses import (PresentClassDiceLoss, WeightedCrossEntropyLoss, class_frequencies,
                                             median_frequency_weights)


def test_frequencies_count_only_images_where_the_class_appears():
    masks = np.array([[[0, 0], [0, 1]],    # image A: three 0, one 1
                      [[0, 0], [2, 2]]])   # image B: two 0, two 2
    stats = class_frequencies(masks, 4)
    np.testing.assert_array_equal(stats.class_pixels, [5, 1, 2, 0])
    np.testing.assert_array_equal(stats.image_pixels, [8, 4, 4, 0])
    freq = stats.frequencies
    np.testing.assert_allclose(freq[:3], [5 / 8, 1 / 4, 2 / 4])
    assert math.isnan(freq[3])


def test_median_frequency_weights_by_hand():
    masks = [np.array([[0, 0], [0, 1]]), np.array([[0, 0], [2, 2]])]
    weights = median_frequency_weights(masks, 4)
    # freq = 0.625, 0.25, 0.5 -> median 0.5 -> weights 0.8, 2, 1; class 3 never appears -> 0
    np.testing.assert_allclose(weights, [0.8, 2.0, 1.0, 0.0], rtol=1e-6)
    assert weights.dtype == np.float32


def test_rare_class_gets_the_largest_weight_and_the_median_class_one():
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[:5] = 1          # 50 px
    mask[5:7, :] = 2      # 20 px
    mask[9, 0] = 3        # 1 px (rare)
    weights = median_frequency_weights(mask[np.newaxis], 4)
    assert np.argmax(weights) == 3
    freq = np.array([29, 50, 20, 1]) / 100
    np.testing.assert_allclose(weights, np.median(freq) / freq, rtol=1e-6)


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(ValueError, match="outside 0..2"):
        median_frequency_weights(np.array([[[0, 3]]]), 3)
    with pytest.raises(ValueError, match="no class appears"):
        median_frequency_weights(np.zeros((0, 2, 2), dtype=np.uint8), 3)


def test_weighted_cross_entropy_by_hand():
    # two pixels, two classes; logits chosen so the probabilities are easy: p = softmax
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # (N=1, C=2, H=1, W=2)
    target = torch.tensor([[[0, 1]]])  # (N=1, H=1, W=2)
    p0 = math.exp(2) / (math.exp(2) + 1)  # pixel 0, true class 0
    p1 = math.exp(1) / (math.exp(1) + 1)  # pixel 1, true class 1
    weights = [0.5, 3.0]
    expected = (0.5 * -math.log(p0) + 3.0 * -math.log(p1)) / (0.5 + 3.0)
    loss = WeightedCrossEntropyLoss(weights)(logits, target)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    plain = WeightedCrossEntropyLoss(None)(logits, target)
    assert float(plain) == pytest.approx((-math.log(p0) - math.log(p1)) / 2, rel=1e-6)


def test_weighting_moves_the_gradient_towards_the_rare_class():
    torch.manual_seed(0)
    logits = torch.zeros((1, 2, 4, 4), requires_grad=True)
    target = torch.zeros((1, 4, 4), dtype=torch.long)
    target[0, 0, 0] = 1  # one rare pixel
    weights = median_frequency_weights(target.numpy(), 2)
    WeightedCrossEntropyLoss(weights)(logits, target).backward()
    weighted_pull = -float(logits.grad[0, 1, 0, 0])
    logits.grad = None
    WeightedCrossEntropyLoss(None)(logits, target).backward()
    plain_pull = -float(logits.grad[0, 1, 0, 0])
    assert weighted_pull > 5 * plain_pull > 0


def test_weight_count_must_match_the_logits():
    with pytest.raises(ValueError, match="3 classes"):
        WeightedCrossEntropyLoss([1.0, 1.0])(torch.zeros((1, 3, 2, 2)), torch.zeros((1, 2, 2), dtype=torch.long))
    with pytest.raises(ValueError, match="non-negative"):
        WeightedCrossEntropyLoss([1.0, -1.0])


def _logits_for(labels: torch.Tensor, classes: int = 3, confidence: float = 30.0) -> torch.Tensor:
    """Logits that put (almost) all probability on ``labels``."""
    return torch.nn.functional.one_hot(labels, classes).permute(0, 3, 1, 2).float() * confidence


def test_per_slice_dice_counts_a_small_lesion_as_much_as_a_large_one():
    # slice 0: a 2x2 lesion of class 1, missed; slice 1: a 10x10 lesion of class 1, found exactly
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[0, 2:4, 2:4] = 1
    target[1, 3:13, 3:13] = 1
    predicted = target.clone()
    predicted[0] = 0
    logits = _logits_for(predicted)
    loss = PresentClassDiceLoss(smooth=0.0)
    dice_term = float(loss(logits, target) - loss.cross_entropy(logits, target))
    assert dice_term == pytest.approx(0.5, abs=1e-4)  # mean of 1 - 0 and 1 - 1: each slice weighs the same
    batch_wide = CrossEntropyDiceLoss()  # one Dice over the batch barely notices the missed lesion
    assert float(batch_wide(logits, target) - batch_wide.cross_entropy(logits, target.long())) < 0.05


def test_per_slice_dice_leaves_a_class_absent_from_the_reference_to_the_cross_entropy():
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, 4:10, 4:10] = 1  # class 2 absent from this slice
    clean = _logits_for(target)
    with_false_class_2 = clean.clone()
    with_false_class_2[0, 2, 12:16, 12:16] = 60.0  # class 2 predicted where the reference has background
    loss = PresentClassDiceLoss()
    dice_clean = float(loss(clean, target) - loss.cross_entropy(clean, target))
    dice_false = float(loss(with_false_class_2, target) - loss.cross_entropy(with_false_class_2, target))
    assert dice_clean == pytest.approx(0.0, abs=1e-4) and dice_false == pytest.approx(0.0, abs=1e-4)
    assert float(loss(with_false_class_2, target)) > float(loss(clean, target)) + 0.5  # the CE sees it


def test_per_slice_dice_of_a_batch_without_findings_is_the_cross_entropy():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    logits = torch.randn(2, 3, 8, 8)
    loss = PresentClassDiceLoss()
    assert float(loss(logits, target)) == pytest.approx(float(loss.cross_entropy(logits, target)), rel=1e-6)


def test_per_slice_dice_gradient_moves_towards_the_missed_lesion():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:4, 2:4] = 2
    logits = torch.zeros(1, 3, 8, 8, requires_grad=True)
    PresentClassDiceLoss()(logits, target).backward()
    assert float(logits.grad[0, 2, 2:4, 2:4].max()) < 0  # raising class 2 there lowers the loss
