"""The small multi-layer perceptron that transformer heads use (DETR's box head, SAM's hypernetworks and IoU head)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class HeadMlp(nn.Module):
    """``depth`` linear layers with ReLU between them; parameters under ``layers.<i>``, as both papers' weights."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, depth: int) -> None:
        super().__init__()
        sizes = [in_dim] + [hidden] * (depth - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)
