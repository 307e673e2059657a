"""Keep the weights of a training run's best validated epoch, so a later epoch that overfits or oscillates does not
replace a better one. Shared by the liver, lung-infection and brain trainers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class BestWeights:
    """A copy of the weights of the best-scoring epoch so far.

    ``higher_is_better`` False suits a loss. A missing or NaN score never wins, so a run whose validation never
    gave a score keeps nothing and :meth:`restore` leaves the last weights in place. Under DDP every process sees
    the same all-reduced scores and therefore keeps the same epoch.
    """

    higher_is_better: bool = True
    epoch: int | None = None
    score: float = math.nan
    state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def offer(self, epoch: int, score: float | None, network: nn.Module) -> bool:
        """Copy ``network``'s weights when ``score`` beats the best so far (ties keep the earlier epoch); True
        when it did."""
        if score is None or math.isnan(score):
            return False
        if self.epoch is not None and not (score > self.score if self.higher_is_better else score < self.score):
            return False
        self.epoch, self.score = epoch, float(score)
        self.state = {name: value.detach().clone() for name, value in network.state_dict().items()}
        return True

    def restore(self, network: nn.Module) -> bool:
        """Load the kept weights into ``network``; False (and nothing changed) when none were kept."""
        if self.state is None:
            return False
        network.load_state_dict(self.state)
        return True
