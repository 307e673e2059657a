"""Fine-tuning LiteMedSAM on an annotator's own boxes and masks: the prompt encoder and mask decoder learn, the
image encoder stays frozen (its embeddings are computed once, as the inference cache does).

Loss as MedSAM's training (Ma et al., Nature Communications 2024): the unweighted sum of Dice loss and binary
cross-entropy on the mask logits, here in the 256-pixel frame; LiteMedSAM's authors add a mean squared error
between the predicted and the actual IoU, which keeps the IoU head honest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

from radassist.interactive.model import LiteMedSam


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 100
    learning_rate: float = 1e-4  # MedSAM fine-tuning (AdamW)
    weight_decay: float = 0.01
    batch_size: int = 4
    iou_loss_weight: float = 1.0
    seed: int = 0


@dataclass
class FinetuneHistory:
    losses: list[float] = field(default_factory=list)


def box_loss(model: LiteMedSam, embeddings: torch.Tensor, boxes: torch.Tensor, masks: torch.Tensor,
             iou_weight: float = 1.0) -> torch.Tensor:
    """Dice + BCE on the logits (B, 1, S, S) against ``masks`` (B, 1, S, S), plus the IoU head's MSE."""
    logits, iou = model.decode(embeddings, boxes)
    loss = DiceCELoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0)(logits, masks)  # soft Dice per mask + BCE
    with torch.no_grad():
        predicted = logits > 0
        inter = (predicted & (masks > 0.5)).flatten(1).sum(1).float()
        union = (predicted | (masks > 0.5)).flatten(1).sum(1).float().clamp_min(1)
    return loss + iou_weight * F.mse_loss(iou[:, 0], inter / union)


def finetune_decoder(model: LiteMedSam, images: np.ndarray, boxes: np.ndarray, masks: np.ndarray,
                     config: FinetuneConfig = FinetuneConfig()) -> FinetuneHistory:
    """Train ``model``'s prompt encoder and mask decoder on (n, 3, S, S) network inputs, (n, 4) boxes in the
    S-pixel frame and (n, S, S) binary masks in that frame; the encoder is frozen."""
    generator = torch.Generator().manual_seed(config.seed)
    model.image_encoder.eval().requires_grad_(False)
    with torch.no_grad():
        embeddings = model.encode(torch.as_tensor(images, dtype=torch.float32))
    trainable = [p for p in list(model.prompt_encoder.parameters()) + list(model.mask_decoder.parameters())
                 if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    box_tensor = torch.as_tensor(boxes, dtype=torch.float32)
    mask_tensor = torch.as_tensor(masks, dtype=torch.float32)[:, None]
    history = FinetuneHistory()
    model.prompt_encoder.train()
    model.mask_decoder.train()
    for _ in range(config.steps):
        batch = torch.randint(0, len(images), (min(config.batch_size, len(images)),), generator=generator)
        loss = box_loss(model, embeddings[batch], box_tensor[batch], mask_tensor[batch], config.iou_loss_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.losses.append(float(loss.detach()))
    model.eval()
    return history
