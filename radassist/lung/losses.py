"""Lung-DETR's training loss: sigmoid focal loss on classes, L1 and generalised IoU on matched boxes.

Own implementation of the Deformable DETR set criterion (Zhu et al., ICLR 2021; Carion et al., ECCV 2020): each
decoder layer's predictions are Hungarian-matched to the ground truth; matched queries learn the nodule class and
its box, every other query learns "nothing here". Lung-DETR (arXiv:2409.05200) relies on the focal loss (Lin et
al., ICCV 2017) because most slabs hold no nodule at all: a slab without targets contributes only the focal
"background" term, and every term is divided by the number of ground-truth boxes in the batch (at least 1).
We wrote this rather than import a library: the well-kept implementations (torchvision.ops, DETR's repository)
are either not installable here (torchvision) or not packages at all, and the loss is a few dozen lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# --- boxes -------------------------------------------------------------------------------------------------------


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) centre x, centre y, width, height -> (..., 4) x0, y0, x1, y1."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) x0, y0, x1, y1 -> (..., 4) centre x, centre y, width, height."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of (..., 4) x0, y0, x1, y1 boxes (0 for inverted ones)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU and union of (N, 4) and (M, 4) xyxy boxes: two (N, M) tensors."""
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - intersection
    return intersection / union.clamp(min=1e-12), union


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise generalised IoU (Rezatofighi et al., CVPR 2019) of xyxy boxes: IoU - (hull - union) / hull, (N, M)."""
    iou, union = box_iou(boxes1, boxes2)
    top_left = torch.minimum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.maximum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    hull = (bottom_right - top_left).clamp(min=0).prod(-1)
    return iou - (hull - union) / hull.clamp(min=1e-12)


def paired_generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of box i of ``boxes1`` with box i of ``boxes2`` (both (N, 4) xyxy): (N,)."""
    top_left = torch.maximum(boxes1[:, :2], boxes2[:, :2])
    bottom_right = torch.minimum(boxes1[:, 2:], boxes2[:, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = box_area(boxes1) + box_area(boxes2) - intersection
    hull = (torch.maximum(boxes1[:, 2:], boxes2[:, 2:]) - torch.minimum(boxes1[:, :2], boxes2[:, :2])).clamp(min=0)
    hull_area = hull.prod(-1)
    return intersection / union.clamp(min=1e-12) - (hull_area - union) / hull_area.clamp(min=1e-12)


# --- classification --------------------------------------------------------------------------------------------


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: str = "none") -> torch.Tensor:
    """Focal loss FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t) on independent sigmoid outputs (Lin et al. 2017).

    ``targets`` are 0/1 of the logits' shape. ``alpha`` weighs positives (1 - alpha the negatives; a negative
    value disables the weighting); ``gamma`` damps easy examples. ``reduction``: "none", "sum" or "mean".
    """
    probability = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probability * targets + (1 - probability) * (1 - targets)
    loss = cross_entropy * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")


# --- the set criterion -----------------------------------------------------------------------------------------

Outputs = Mapping[str, Any]
Target = Mapping[str, torch.Tensor]


class DetrLoss(nn.Module):
    """Matcher + focal + L1 + GIoU on the final and (with ``aux_loss``) every earlier decoder layer.

    ``forward(outputs, targets)`` takes the model's output dict and one target per image (``labels`` (N,) int64,
    ``boxes`` (N, 4) normalised cx, cy, w, h; N may be 0) and returns a dict: ``loss_ce``, ``loss_bbox``,
    ``loss_giou`` for the last layer, the same with suffix ``_0``, ``_1``... for earlier layers, and ``loss``,
    the weighted total to back-propagate.

    Args:
        config: a :class:`~radassist.lung.model.LungDetrConfig` (or anything with its loss fields):
            num_classes, focal_alpha, focal_gamma, cost_class/bbox/giou, class/bbox/giou_loss_weight, aux_loss.
    """

    def __init__(self, config: Any) -> None:
        super().__init__()
        from radassist.lung.matcher import HungarianMatcher  # here, not at the top: the matcher uses our box helpers

        self.num_classes = config.num_classes
        self.focal_alpha = config.focal_alpha
        self.focal_gamma = config.focal_gamma
        self.aux_loss = config.aux_loss
        self.matcher = HungarianMatcher(config.cost_class, config.cost_bbox, config.cost_giou, config.focal_alpha,
                                        config.focal_gamma)
        self.weights = {"loss_ce": config.class_loss_weight, "loss_bbox": config.bbox_loss_weight,
                        "loss_giou": config.giou_loss_weight}

    def layer_losses(self, outputs: Outputs, targets: Sequence[Target], num_boxes: float) -> dict[str, torch.Tensor]:
        """The three losses of one decoder layer's predictions, divided by ``num_boxes``."""
        logits, boxes = outputs["pred_logits"], outputs["pred_boxes"]
        matches = self.matcher(outputs, targets)
        batch_index = torch.cat([torch.full_like(query, image) for image, (query, _) in enumerate(matches)])
        query_index = torch.cat([query for query, _ in matches])
        batch_index, query_index = batch_index.to(logits.device), query_index.to(logits.device)
        matched_labels = torch.cat([target["labels"][column] for target, (_, column) in zip(targets, matches)])
        matched_targets = torch.cat([target["boxes"][column] for target, (_, column) in zip(targets, matches)])
        matched_labels = matched_labels.to(logits.device)
        matched_targets = matched_targets.to(device=boxes.device, dtype=boxes.dtype)

        one_hot = torch.zeros_like(logits)
        one_hot[batch_index, query_index, matched_labels] = 1.0
        loss_ce = sigmoid_focal_loss(logits, one_hot, self.focal_alpha, self.focal_gamma, "sum") / num_boxes

        matched_boxes = boxes[batch_index, query_index]
        loss_bbox = F.l1_loss(matched_boxes, matched_targets, reduction="sum") / num_boxes
        giou = paired_generalized_box_iou(box_cxcywh_to_xyxy(matched_boxes), box_cxcywh_to_xyxy(matched_targets))
        loss_giou = (1 - giou).sum() / num_boxes
        return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}

    def forward(self, outputs: Outputs, targets: Sequence[Target]) -> dict[str, torch.Tensor]:
        self._check(outputs, targets)
        num_boxes = float(max(sum(len(target["labels"]) for target in targets), 1))
        losses = self.layer_losses(outputs, targets, num_boxes)
        total = sum(self.weights[name] * value for name, value in losses.items())
        if self.aux_loss:
            for layer, auxiliary in enumerate(outputs.get("aux_outputs", [])):
                for name, value in self.layer_losses(auxiliary, targets, num_boxes).items():
                    losses[f"{name}_{layer}"] = value
                    total = total + self.weights[name] * value
        losses["loss"] = total
        return losses

    def _check(self, outputs: Outputs, targets: Sequence[Target]) -> None:
        batch = outputs["pred_logits"].shape[0]
        if len(targets) != batch:
            raise ValueError(f"{len(targets)} targets for a batch of {batch} images")
        for index, target in enumerate(targets):
            labels, boxes = target["labels"], target["boxes"]
            if boxes.ndim != 2 or boxes.shape[-1] != 4 or len(boxes) != len(labels):
                raise ValueError(f"target {index}: boxes must be (N, 4) with one label each, got boxes "
                                 f"{tuple(boxes.shape)} and labels {tuple(labels.shape)}")
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(f"target {index}: labels must be in [0, {self.num_classes}), got "
                                 f"{labels.tolist()}")
