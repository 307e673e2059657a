"""Cross-entropy plus soft Dice: the seed recipe's loss for the liver networks.

Cross-entropy gives every pixel a gradient from the first step; the Dice term weighs each class by its own size, so
the small tumour class is not drowned by background and liver (the reason the two are combined for LiTS).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, include_background: bool = False,
                   smooth: float = 1e-5) -> torch.Tensor:
    """1 - mean soft Dice over classes, from (N, C, H, W) logits and (N, H, W) integer labels.

    Sums run over the whole batch, so a class absent from one slice does not count as a perfect or a failed
    slice of its own; a class absent from the whole batch and predicted nowhere scores 1 (no penalty).
    """
    classes = logits.shape[1]
    probabilities = torch.softmax(logits, dim=1)
    one_hot = F.one_hot(target.long(), classes).permute(0, 3, 1, 2).to(probabilities.dtype)
    first = 0 if include_background else 1
    probabilities, one_hot = probabilities[:, first:], one_hot[:, first:]
    dims = (0, 2, 3)
    intersection = (probabilities * one_hot).sum(dims)
    total = probabilities.sum(dims) + one_hot.sum(dims)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return 1.0 - dice.mean()


class CrossEntropyDiceLoss(nn.Module):
    """``ce_weight * CE + dice_weight * (1 - soft Dice)`` on logits and integer labels.

    Args:
        ce_weight: weight of the cross-entropy term.
        dice_weight: weight of the soft Dice term.
        include_background: count class 0 in the Dice mean (off: liver and tumour only).
        class_weights: optional per-class weights of the cross-entropy.
    """

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0, include_background: bool = False,
                 class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight == 0:
            raise ValueError(f"loss weights must be non-negative and not both 0, got {ce_weight}, {dice_weight}")
        self.ce_weight, self.dice_weight = float(ce_weight), float(dice_weight)
        self.include_background = include_background
        self.register_buffer("class_weights", class_weights if class_weights is not None else torch.empty(0))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weights = self.class_weights if self.class_weights.numel() else None
        loss = logits.new_zeros(())
        if self.ce_weight:
            loss = loss + self.ce_weight * F.cross_entropy(logits, target.long(), weight=weights)
        if self.dice_weight:
            loss = loss + self.dice_weight * soft_dice_loss(logits, target, self.include_background)
        return loss
