"""GMIC's training loss: image-level labels only (Shen et al. 2021).

    loss = BCE(y_global) + BCE(y_local) + BCE(y_fusion) + beta * L1(saliency maps)

The three branches are trained together; the L1 term keeps the saliency maps sparse, so that they point at the
few regions that justify the label (which is what makes the patch retrieval and the maps worth showing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from radassist.mammo.model import GmicOutput


@dataclass(frozen=True)
class GmicLossConfig:
    """Weights of the loss terms. beta is a hyper-parameter the paper tuned for its models; our default 1e-5
    (with the L1 summed over the map's pixels) keeps the term small next to the BCEs at the 46 x 30 map size."""

    beta: float = 1e-5  # saliency L1 weight
    global_weight: float = 1.0
    local_weight: float = 1.0
    fusion_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("beta", "global_weight", "local_weight", "fusion_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")


@dataclass
class GmicLossTerms:
    """The total (to backpropagate) and each term (detached floats are what a training log shows)."""

    total: torch.Tensor
    global_bce: torch.Tensor
    local_bce: torch.Tensor
    fusion_bce: torch.Tensor
    saliency_l1: torch.Tensor


def _bce(probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE on probabilities (GMIC's outputs are sigmoids), clamped away from 0 and 1 so a saturated output gives
    a large finite loss rather than inf."""
    eps = torch.finfo(probabilities.dtype).eps
    return F.binary_cross_entropy(probabilities.clamp(eps, 1 - eps), labels.to(probabilities.dtype))


def saliency_l1(saliency_maps: torch.Tensor) -> torch.Tensor:
    """L1 norm of the saliency maps: summed over classes and pixels, averaged over the batch."""
    return saliency_maps.abs().flatten(1).sum(1).mean()


def gmic_loss(output: GmicOutput, labels: torch.Tensor, config: GmicLossConfig | None = None) -> GmicLossTerms:
    """The GMIC loss of one batch. ``labels``: (N, C) 0/1 per class (benign, malignant), image level."""
    config = config or GmicLossConfig()
    if labels.shape != output.y_fusion.shape:
        raise ValueError(f"labels of shape {tuple(labels.shape)} for predictions {tuple(output.y_fusion.shape)}")
    global_bce = _bce(output.y_global, labels)
    local_bce = _bce(output.y_local, labels)
    fusion_bce = _bce(output.y_fusion, labels)
    l1 = saliency_l1(output.saliency_maps)
    total = (config.global_weight * global_bce + config.local_weight * local_bce
             + config.fusion_weight * fusion_bce + config.beta * l1)
    return GmicLossTerms(total, global_bce, local_bce, fusion_bce, l1)
