"""BestWeights keeps a copy of the best validated epoch's weights and puts them back at the end of training."""

from __future__ import annotations

import math

import torch

from radassist.runtime.best_weights import BestWeights


def _set(network: torch.nn.Linear, value: float) -> None:
    with torch.no_grad():
        network.weight.fill_(value)
        network.bias.fill_(value)


def test_the_highest_score_wins_and_its_weights_come_back():
    network = torch.nn.Linear(2, 1)
    best = BestWeights()
    kept = []
    for epoch, score in enumerate([0.3, 0.7, 0.7, 0.5, math.nan, None], 1):
        _set(network, float(epoch))
        kept.append(best.offer(epoch, score, network))
    assert kept == [True, True, False, False, False, False]  # a tie keeps the earlier epoch; NaN and None never win
    assert (best.epoch, best.score) == (2, 0.7)
    assert network.weight.flatten().tolist() == [6.0, 6.0]
    assert best.restore(network) and network.weight.flatten().tolist() == [2.0, 2.0] and network.bias.item() == 2.0


def test_the_copy_does_not_follow_later_training():
    network = torch.nn.Linear(2, 1)
    _set(network, 1.0)
    best = BestWeights()
    best.offer(1, 0.5, network)
    _set(network, 9.0)  # in place, as an optimiser step does
    assert best.state["weight"].flatten().tolist() == [1.0, 1.0]


def test_a_loss_wants_the_lowest_score():
    network = torch.nn.Linear(2, 1)
    best = BestWeights(higher_is_better=False)
    for epoch, loss in enumerate([0.9, 0.4, 0.6], 1):
        _set(network, float(epoch))
        best.offer(epoch, loss, network)
    assert (best.epoch, best.score) == (2, 0.4)


def test_without_a_score_nothing_is_kept_and_the_last_weights_stay():
    network = torch.nn.Linear(2, 1)
    _set(network, 3.0)
    best = BestWeights()
    assert not best.offer(1, None, network) and not best.offer(2, math.nan, network)
    assert best.epoch is None and not best.restore(network)
    assert network.weight.flatten().tolist() == [3.0, 3.0]
