"""Per-class logit offsets chosen on the held-out validation slices after training, and the network that adds them.

Why: a network trained on a few dozen slices calls its classes with a bias it learned from them (on the
COVID-SemiSeg slices a fifth of the ground-glass pixels went to consolidation). Adding a constant to each class's
logit moves the argmax's decision between classes without touching the weights; the constants are chosen on the
validation slices the network never trained on, so the test slices stay unseen. The objective is the study's
score: the mean over the findings ("infection" and each class) of the per-image Dice by the Inf-Net protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

OFFSET_STEPS = tuple(float(v) for v in np.arange(-1.5, 1.5001, 0.25))  # candidate offsets per class (logit units)
ROUNDS = 3  # passes of coordinate ascent over the finding classes


class WithClassOffsets(nn.Module):
    """``network`` with a constant added to each class's logit; exported to ONNX as one more addition."""

    def __init__(self, network: nn.Module, offsets: Sequence[float]) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("offsets", torch.tensor([float(v) for v in offsets], dtype=torch.float32))
        self.out_channels = int(getattr(network, "out_channels", len(self.offsets)))
        self.size_multiple = int(getattr(network, "size_multiple", 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.network(images)
        return logits + self.offsets.to(logits.dtype).view(1, -1, *([1] * (logits.ndim - 2)))


def with_offsets(network: nn.Module, offsets: Sequence[float] | None) -> nn.Module:
    """``network`` itself when there are no offsets or all are 0, else wrapped in :class:`WithClassOffsets`."""
    if offsets is None or not any(offsets):
        return network
    return WithClassOffsets(network, offsets)


@dataclass(frozen=True)
class OffsetChoice:
    """The chosen offsets (background's is 0) and the validation score without and with them."""

    offsets: list[float]
    score_before: float
    score_after: float

    def to_dict(self) -> dict:
        return {"offsets": self.offsets, "validationScoreBefore": round(self.score_before, 6),
                "validationScoreAfter": round(self.score_after, 6),
                "score": "mean over infection and each class of the per-image Dice (Inf-Net protocol)"}


def log_probabilities(network: nn.Module, images: np.ndarray, batch_size: int = 8,
                      device: torch.device | str = "cpu") -> np.ndarray:
    """log-softmax (n, C, H, W) of ``network`` on network-ready (n, 1, H, W) images, in eval mode."""
    network.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
            out.append(torch.log_softmax(network(batch).float(), dim=1).cpu().numpy())
    return np.concatenate(out)


def validation_score(log_probs: np.ndarray, masks: np.ndarray, class_names: Sequence[str],
                     offsets: Sequence[float]) -> float:
    """The objective: mean over findings of the Inf-Net-protocol per-image Dice of the offset argmax."""
    from radassist.lung.infection.evaluate import score_columns  # here: it draws figures, the pipeline need not load it

    shifted = log_probs + np.asarray(offsets, dtype=np.float32).reshape(1, -1, 1, 1)
    labels = list(shifted.argmax(axis=1).astype(np.uint8))
    columns = score_columns(list(masks), labels, class_names)
    return float(np.mean([column.infnet_label_map["dice"] for column in columns]))


def choose_class_offsets(log_probs: np.ndarray, masks: np.ndarray, class_names: Sequence[str],
                         steps: Sequence[float] = OFFSET_STEPS, rounds: int = ROUNDS) -> OffsetChoice:
    """Coordinate ascent over the finding classes' offsets (background stays 0), each from ``steps``; a change is
    kept only if it raises the score, so the result is never worse on these slices than no offsets."""
    offsets = [0.0] * log_probs.shape[1]
    before = best = validation_score(log_probs, masks, class_names, offsets)
    for _ in range(rounds):
        improved = False
        for c in range(1, len(offsets)):
            for step in sorted(steps, key=abs):  # smaller offsets first: a tie keeps the smaller one
                trial = offsets[:c] + [step] + offsets[c + 1:]
                score = validation_score(log_probs, masks, class_names, trial)
                if score > best + 1e-9:
                    best, offsets, improved = score, trial, True
        if not improved:
            break
    return OffsetChoice(offsets, before, best)


__all__ = ["OFFSET_STEPS", "OffsetChoice", "WithClassOffsets", "choose_class_offsets", "log_probabilities",
           "validation_score", "with_offsets"]
