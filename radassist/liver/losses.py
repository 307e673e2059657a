"""Cross-entropy plus soft Dice, MONAI's ``DiceCELoss``: the seed recipe's loss for the liver networks.

Cross-entropy gives every pixel a gradient from the first step; the Dice term weighs each class by its own size, so
the small tumour class is not drowned by background and liver (the reason the two are combined for LiTS).
"""

from __future__ import annotations

import torch
from monai.losses import DiceCELoss


class CrossEntropyDiceLoss(DiceCELoss):
    """``ce_weight * CE + dice_weight * (1 - soft Dice)`` on (N, C, H, W) logits and (N, H, W) integer labels.

    The Dice sums run over the whole batch (MONAI's ``batch=True``), so a class absent from one slice does not
    count as a perfect or a failed slice of its own; a class absent from the whole batch and predicted nowhere
    scores 1 (no penalty, smoothing 1e-5 on both sides).

    Args:
        ce_weight: weight of the cross-entropy term.
        dice_weight: weight of the soft Dice term.
        include_background: count class 0 in the Dice mean (off: liver and tumour only).
        class_weights: optional per-class weights of the cross-entropy alone (lung infection's median-frequency
            balancing); MONAI's own ``weight`` would weight the Dice classes as well.
    """

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0, include_background: bool = False,
                 class_weights: torch.Tensor | None = None) -> None:
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight == 0:
            raise ValueError(f"loss weights must be non-negative and not both 0, got {ce_weight}, {dice_weight}")
        super().__init__(include_background=include_background, to_onehot_y=True, softmax=True, batch=True,
                         lambda_ce=float(ce_weight), lambda_dice=float(dice_weight))
        if class_weights is not None:
            self.cross_entropy = torch.nn.CrossEntropyLoss(weight=torch.as_tensor(class_weights, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(logits, target.long().unsqueeze(1))
