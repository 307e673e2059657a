"""Median-frequency class balancing (Eigen and Fergus, ICCV 2015) and the weighted cross-entropy that uses it.

Infected regions are rare next to normal lung, so plain cross-entropy is dominated by background pixels. The
infection study (Saood and Hatem 2021) weights each class c by ``median(freq) / freq_c``, where ``freq_c`` is the
pixel count of class c divided by the total pixel count of the images in which c appears. A class that is
frequent gets a weight below 1, a rare one above 1; the median class gets exactly 1.

Also here: the cross-entropy plus a Dice per slice and class present (ours), the loss of the best runs on real
slices (benchmarks/INFECTION_REAL.md); the batch-wide CE + Dice is the liver recipe's (radassist.liver.losses).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn


@dataclass(frozen=True)
class ClassFrequencies:
    """Per class: its pixels, and the pixels of the images where it appears (both summed over a data set)."""

    class_pixels: np.ndarray
    image_pixels: np.ndarray

    @property
    def present(self) -> np.ndarray:
        """Which classes appear in at least one image."""
        return self.image_pixels > 0

    @property
    def frequencies(self) -> np.ndarray:
        """freq_c = class pixels / pixels of the images containing the class; NaN for an absent class."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.present, self.class_pixels / np.maximum(self.image_pixels, 1), np.nan)


def class_frequencies(masks: Iterable[np.ndarray] | np.ndarray, num_classes: int) -> ClassFrequencies:
    """Count pixels per class over ``masks`` (a (n, y, x) array, or any iterable of label images).

    Labels outside 0..num_classes-1 raise ValueError (the mask does not fit the model).
    """
    class_pixels = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)
    for index, mask in enumerate(masks):
        mask = np.asarray(mask)
        if mask.size == 0:
            continue
        low, high = int(mask.min()), int(mask.max())
        if low < 0 or high >= num_classes:
            raise ValueError(f"mask {index} holds labels {low}..{high}, outside 0..{num_classes - 1}")
        counts = np.bincount(mask.ravel().astype(np.int64), minlength=num_classes)
        class_pixels += counts
        image_pixels += np.where(counts > 0, mask.size, 0)
    return ClassFrequencies(class_pixels, image_pixels)


def median_frequency_weights(masks: Iterable[np.ndarray] | np.ndarray, num_classes: int) -> np.ndarray:
    """weight_c = median(freq) / freq_c over the training masks (float32, one per class).

    The median is taken over the classes that appear; a class that never appears gets weight 0 (it has no pixels
    to weight, and a guess would hide the problem: training reports such classes).
    """
    return weights_from_frequencies(class_frequencies(masks, num_classes))


def weights_from_frequencies(frequencies: ClassFrequencies) -> np.ndarray:
    freq = frequencies.frequencies
    present = frequencies.present
    if not present.any():
        raise ValueError("no class appears in the masks: cannot balance an empty training set")
    median = float(np.median(freq[present]))
    weights = np.zeros(freq.shape, dtype=np.float64)
    weights[present] = median / freq[present]
    return weights.astype(np.float32)


class WeightedCrossEntropyLoss(nn.Module):
    """Cross-entropy with a weight per class, from logits (N, C, H, W) and labels (N, H, W).

    The result is the weighted mean ``sum_i w[y_i] * -log p_i(y_i) / sum_i w[y_i]`` (PyTorch's convention for
    class weights), so the loss stays on the scale of plain cross-entropy whatever the weights' magnitude.
    ``weights=None`` is plain, unweighted cross-entropy.

    Args:
        weights: one weight per class (e.g. :func:`median_frequency_weights`), or None.
        ignore_index: label value that contributes nothing (e.g. unlabelled pixels); None for none.
    """

    def __init__(self, weights: Sequence[float] | np.ndarray | torch.Tensor | None = None,
                 ignore_index: int | None = None) -> None:
        super().__init__()
        tensor = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float32))
        if tensor is not None and (tensor.ndim != 1 or bool((tensor < 0).any())):
            raise ValueError(f"class weights must be one non-negative value per class, got {tensor}")
        self.register_buffer("weights", tensor)
        self.ignore_index = -100 if ignore_index is None else int(ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.weights is not None and logits.shape[1] != self.weights.numel():
            raise ValueError(f"logits have {logits.shape[1]} classes, the loss {self.weights.numel()} weights")
        return F.cross_entropy(logits, target.long(), weight=self.weights, ignore_index=self.ignore_index)


class PresentClassDiceLoss(nn.Module):
    """Cross-entropy plus ``1 - soft Dice`` taken per image and per finding class, over the pairs whose reference
    holds that class.

    Why: the published evaluation of these slices (Inf-Net protocol) averages a Dice per image, and an image
    without a class in its reference scores the same whatever is predicted. A batch-wide Dice lets large lesions
    outweigh small ones; this term gives every (image, class) that can score the same weight, and leaves the
    false positives of images without the class to the cross-entropy.
    """

    def __init__(self, class_weights: torch.Tensor | None = None, smooth: float = 1.0) -> None:
        super().__init__()
        self.cross_entropy = WeightedCrossEntropyLoss(class_weights)
        self.dice = DiceLoss(include_background=False, to_onehot_y=True, softmax=True, batch=False, reduction="none",
                             smooth_nr=float(smooth), smooth_dr=float(smooth))  # one value per (image, finding class)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        per_pair = self.dice(logits, target.unsqueeze(1)).flatten(1)
        present = F.one_hot(target.flatten(1), logits.shape[1])[:, :, 1:].any(dim=1)
        dice_loss = per_pair[present].mean() if bool(present.any()) else logits.new_zeros(())
        return self.cross_entropy(logits, target) + dice_loss
