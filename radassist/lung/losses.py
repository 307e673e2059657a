"""Lung-DETR's training loss: sigmoid focal loss on classes, L1 and generalised IoU on matched boxes.

Own implementation of the Deformable DETR set criterion (Zhu et al., ICLR 2021; Carion et al., ECCV 2020): each
decoder layer's predictions are Hungarian-matched to the ground truth; matched queries learn the nodule class and
its box, every other query learns "nothing here". Lung-DETR (arXiv:2409.05200) relies on the focal loss (Lin et
al., ICCV 2017) because most slabs hold no nodule at all: a slab without targets contributes only the focal
"background" term, and every term is divided by the number of ground-truth boxes in the batch (at least 1).
The parts are MONAI's: ``sigmoid_focal_loss`` and, from ``monai.data.box_utils``, the box conversions and the
generalised IoU (computed in float32, whatever the network's precision). The set criterion itself is ours: no
installable package has DETR's (torchvision is not available on every platform RadAssist supports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.data.box_utils import box_pair_giou, convert_box_mode
from monai.losses.focal_loss import sigmoid_focal_loss
from torch import nn


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) centre x, centre y, width, height -> (N, 4) x0, y0, x1, y1 (MONAI's "ccwh" to "xyxy")."""
    return convert_box_mode(boxes, src_mode="ccwh", dst_mode="xyxy")


def focal_alpha(alpha: float) -> float | None:
    """MONAI's focal ``alpha`` for ours: a negative value disables the class weighting (None for MONAI)."""
    return alpha if alpha >= 0 else None


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
        batch_index = batch_index.to(logits.device)
        query_index = torch.cat([query for query, _ in matches]).to(logits.device)
        matched_labels = torch.cat([target["labels"][column] for target, (_, column) in zip(targets, matches)])
        matched_labels = matched_labels.to(logits.device)
        matched_targets = torch.cat([target["boxes"][column] for target, (_, column) in zip(targets, matches)])
        matched_targets = matched_targets.to(device=boxes.device, dtype=boxes.dtype)

        one_hot = torch.zeros_like(logits)
        one_hot[batch_index, query_index, matched_labels] = 1.0
        loss_ce = sigmoid_focal_loss(logits, one_hot, self.focal_gamma, focal_alpha(self.focal_alpha)).sum() / num_boxes

        matched_boxes = boxes[batch_index, query_index]
        loss_bbox = F.l1_loss(matched_boxes, matched_targets, reduction="sum") / num_boxes
        giou = box_pair_giou(box_cxcywh_to_xyxy(matched_boxes), box_cxcywh_to_xyxy(matched_targets))
        loss_giou = (1 - giou).sum() / num_boxes
        return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}

    def forward(self, outputs: Outputs, targets: Sequence[Target]) -> dict[str, torch.Tensor]:
        self._check(targets)
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

    def _check(self, targets: Sequence[Target]) -> None:
        """Each target's boxes and labels (the matcher checks that there is one target per image)."""
        for index, target in enumerate(targets):
            labels, boxes = target["labels"], target["boxes"]
            if boxes.ndim != 2 or boxes.shape[-1] != 4 or len(boxes) != len(labels):
                raise ValueError(f"target {index}: boxes must be (N, 4) with one label each, got boxes "
                                 f"{tuple(boxes.shape)} and labels {tuple(labels.shape)}")
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(f"target {index}: labels must be in [0, {self.num_classes}), got "
                                 f"{labels.tolist()}")
