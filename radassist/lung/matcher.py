"""Hungarian matching of DETR predictions to ground-truth boxes (Carion et al., DETR, ECCV 2020, Sec. 3.1).

Each ground-truth box is assigned exactly one query, the assignment of least total cost, so the detector learns
to predict each nodule once and needs no non-maximum suppression. The cost mixes a focal-style class cost (as in
Deformable DETR), the L1 distance of normalised (cx, cy, w, h) boxes and the negative generalised IoU. The
optimal assignment is scipy's ``linear_sum_assignment`` (Jonker-Volgenant), a well-kept and exact solver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.data.box_utils import box_giou
from monai.losses.focal_loss import sigmoid_focal_loss
from scipy.optimize import linear_sum_assignment
from torch import nn

from radassist.lung.losses import box_cxcywh_to_xyxy, focal_alpha

Target = Mapping[str, torch.Tensor]
"""One image's ground truth: ``labels`` (N,) int64 class indices, ``boxes`` (N, 4) normalised cx, cy, w, h."""


@dataclass(frozen=True)
class MatchCosts:
    """Weights of the three matching costs (Deformable DETR: class 2, L1 5, GIoU 2) and the focal parameters."""

    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


def focal_class_cost(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25,
                     gamma: float = 2.0) -> torch.Tensor:
    """(Q, C) logits, (N,) labels -> (Q, N): focal loss of calling query q class labels[n] minus that of not.

    Low when the query is confident in that class; it is the change in focal loss that the match would cause.
    """
    positive = sigmoid_focal_loss(logits, torch.ones_like(logits), gamma, focal_alpha(alpha))
    negative = sigmoid_focal_loss(logits, torch.zeros_like(logits), gamma, focal_alpha(alpha))
    return positive[:, labels] - negative[:, labels]


def match_cost_matrix(logits: torch.Tensor, boxes: torch.Tensor, target: Target,
                      costs: MatchCosts = MatchCosts()) -> torch.Tensor:
    """The (queries, targets) cost of one image: weighted class, L1 and (negative) GIoU costs."""
    class_cost = focal_class_cost(logits, target["labels"], costs.focal_alpha, costs.focal_gamma)
    l1_cost = torch.cdist(boxes, target["boxes"].to(boxes.dtype), p=1)
    giou_cost = -box_giou(box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(target["boxes"].to(boxes.dtype)))
    return costs.cost_class * class_cost + costs.cost_bbox * l1_cost + costs.cost_giou * giou_cost


def optimal_assignment(cost: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns of the least-cost one-to-one assignment (each column gets a row when rows >= columns)."""
    matrix = cost.detach().cpu().double().numpy() if isinstance(cost, torch.Tensor) else np.asarray(cost, float)
    if not np.isfinite(matrix).all():
        raise ValueError("the matching cost has NaN or infinite entries (are the predicted boxes finite?)")
    rows, columns = linear_sum_assignment(matrix)
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(columns, dtype=torch.int64)


class HungarianMatcher(nn.Module):
    """Assigns queries to targets per image; ``forward`` returns one (query indices, target indices) pair per image.
    The arguments are the fields of :class:`MatchCosts`."""

    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0) -> None:
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("at least one matching cost must be non-zero")
        self.costs = MatchCosts(cost_class, cost_bbox, cost_giou, focal_alpha, focal_gamma)

    @torch.no_grad()
    def forward(self, outputs: Mapping[str, torch.Tensor],
                targets: Sequence[Target]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        if len(targets) != logits.shape[0]:
            raise ValueError(f"{len(targets)} targets for a batch of {logits.shape[0]} images")
        return [optimal_assignment(match_cost_matrix(logits[index].float(), boxes[index].float(), target, self.costs))
                for index, target in enumerate(targets)]  # an image without targets gets two empty index tensors
