"""The joint loss of Estienne et al. (2020): image similarity outside the tumours + alpha x gradient regulariser +
beta x segmentation cross-entropy of both images.

Inside a tumour there is no anatomy that corresponds between the two scans, so the squared difference between the
warped moving image and the fixed image is averaged only over voxels that are tumour in neither image. The two
masks come from the network's own segmentations (argmax, the moving one warped onto the fixed grid) and carry no
gradient: the registration cannot shrink its loss by growing the tumour.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from radassist.brain.model import JointOutput
from radassist.brain.spatial import warp


@dataclass(frozen=True)
class JointLossConfig:
    """Weights of the loss terms (defaults: the paper and its code)."""

    alpha: float = 1e-10                  # |gradients - identity gradients|_1 (authors' code; configurable)
    beta: float = 1.0                     # cross-entropy of both segmentations (paper)
    tumour_masked_similarity: bool = True  # MSE only outside the tumour of both images (paper)

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"loss weights must be non-negative, got alpha={self.alpha}, beta={self.beta}")


@dataclass
class JointLossTerms:
    """The total and each term (scalars), so training can log them separately."""

    total: torch.Tensor
    similarity: torch.Tensor
    regularisation: torch.Tensor
    segmentation: torch.Tensor


def predicted_tumour(logits: torch.Tensor) -> torch.Tensor:
    """(N, 1, z, y, x) float mask of voxels whose most likely class is not background; no gradient."""
    with torch.no_grad():
        return (logits.argmax(dim=1, keepdim=True) > 0).to(logits.dtype)


def similarity_mask(output: JointOutput) -> torch.Tensor:
    """(N, 1, z, y, x) float mask, 1 where neither the fixed nor the warped moving tumour is; no gradient."""
    with torch.no_grad():
        fixed_tumour = predicted_tumour(output.segmentation_fixed)
        moving_tumour = warp(predicted_tumour(output.segmentation_moving), output.grid.detach()) > 0.5
        return ((fixed_tumour < 0.5) & ~moving_tumour).to(output.grid.dtype)


def masked_mse(warped: torch.Tensor, fixed: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared difference over the voxels (and every channel) where ``mask`` is 1."""
    squared = (warped - fixed) ** 2
    if mask is None:
        return squared.mean()
    weights = mask.expand_as(squared)
    return (squared * weights).sum() / weights.sum().clamp(min=1.0)


def gradient_regularisation(gradients: torch.Tensor) -> torch.Tensor:
    """Mean |g - 1|: how far the spatial gradients are from the identity's."""
    return (gradients - 1.0).abs().mean()


def joint_loss(output: JointOutput, moving: torch.Tensor, fixed: torch.Tensor, config: JointLossConfig,
               moving_labels: torch.Tensor | None = None,
               fixed_labels: torch.Tensor | None = None) -> JointLossTerms:
    """The paper's loss for one batch. Labels are (N, z, y, x) int64 class indices; without them the
    segmentation term is 0 (registration-only pairs)."""
    warped = warp(moving, output.grid)
    mask = similarity_mask(output) if config.tumour_masked_similarity else None
    similarity = masked_mse(warped, fixed, mask)
    regularisation = gradient_regularisation(output.gradients)
    segmentation = warped.new_zeros(())
    for logits, labels in ((output.segmentation_moving, moving_labels), (output.segmentation_fixed, fixed_labels)):
        if labels is not None:
            segmentation = segmentation + F.cross_entropy(logits, labels.long())
    total = similarity + config.alpha * regularisation + config.beta * segmentation
    return JointLossTerms(total, similarity.detach(), regularisation.detach(), segmentation.detach())
