"""Each infection network learns a tiny phantom set with a rare class, and the balanced loss helps the rare class.

The set: 28 lung slices of 64x64 from two infection phantoms (benchmarks.cases_infection.comparison_data), where
consolidation covers about 0.2 % of the pixels. Training runs on one CPU thread with fixed seeds; Dice is measured
on the training slices (the test proves the networks can learn the task, not that they generalise).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.cases_infection import comparison_data
from radassist.lung.infection.dataset import SliceDataset
from radassist.lung.infection.losses import median_frequency_weights
from radassist.lung.infection.pipeline import InfectionModel
from radassist.lung.infection.train import (InfectionTrainConfig, build_network, fit_network, predict_labels,
                                            train_infection)
from radassist.metrics.segmentation import SegmentationScores

CLASSES = ["background", "ground glass", "consolidation", "effusion"]
RARE = 2
UNET = {"channels": (8, 16, 32, 64)}
SEGNET = {"channels": (16, 32, 64), "convs_per_stage": (2, 2, 2)}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread is fastest and the run is reproducible
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    images, masks = comparison_data()
    assert np.bincount(masks.ravel(), minlength=4)[RARE] / masks.size < 0.005  # the rare class
    return images, masks


def _train(architecture: str, overrides: dict, data, balanced: bool, schedule,
           dice_per_image: bool = False) -> tuple[list, list[float]]:
    images, masks = data
    weights = median_frequency_weights(masks, 4) if balanced else None
    torch.manual_seed(0)
    _, _, model = build_network(architecture, overrides, 4, seed=0)
    history = []
    for phase, (epochs, rate) in enumerate(schedule):  # a step schedule: fast, then fine
        history += fit_network(model, images, masks, weights, epochs, rate, batch_size=8, seed=phase,
                               dice_loss=dice_per_image, dice_per_image=dice_per_image)
    scores = SegmentationScores.from_labels(masks, predict_labels(model, images), CLASSES)
    return history, scores.dice


UNET_SCHEDULE = ((40, 5e-3), (15, 1e-3))
SEGNET_SCHEDULE = ((30, 5e-3), (30, 1e-3))


def _unet_on_one_thread(data, balanced: bool):
    """Module fixtures run outside the per-test one-thread fixture, so they set it themselves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train("unet", UNET, data, balanced, UNET_SCHEDULE)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def balanced_unet(data):
    return _unet_on_one_thread(data, True)


@pytest.fixture(scope="module")
def plain_unet(data):
    """The same network, data and budget with plain cross-entropy (the control)."""
    return _unet_on_one_thread(data, False)


def test_unet_learns_every_class_including_the_rare_one(balanced_unet):
    history, dice = balanced_unet
    assert history[-1].train_loss < 0.3 * history[0].train_loss
    assert min(dice) > 0.8, dice


def test_unet_with_plain_ce_and_a_dice_per_slice_learns_the_rare_class_too(data, plain_unet):
    history, dice = _train("unet", UNET, data, False, UNET_SCHEDULE, dice_per_image=True)
    assert history[-1].train_loss < 0.3 * history[0].train_loss
    assert min(dice) > 0.8, dice
    assert dice[RARE] > plain_unet[1][RARE] + 0.2, (dice, plain_unet[1])  # the Dice term, not the CE, finds it


def test_segnet_learns_every_class_including_the_rare_one(data):
    history, dice = _train("segnet", SEGNET, data, True, SEGNET_SCHEDULE)
    assert history[-1].train_loss < 0.3 * history[0].train_loss
    assert min(dice) > 0.8, dice


def test_balanced_loss_beats_plain_cross_entropy_on_the_rare_class(balanced_unet, plain_unet):
    _, balanced = balanced_unet
    _, plain = plain_unet
    assert balanced[RARE] > plain[RARE] + 0.2, (balanced, plain)


def test_train_infection_splits_records_and_round_trips_through_a_checkpoint(data, tmp_path):
    images, masks = data
    dataset = SliceDataset()
    for index in range(12):
        dataset.add(images[index, 0], masks[index], f"slice{index}")
    config = InfectionTrainConfig(architecture="segnet", model={"channels": (4, 8), "convs_per_stage": (1, 1)},
                                  epochs=3, learning_rate=1e-2, batch_size=4, image_size=(32, 32))
    trained = train_infection(dataset, config)
    assert len(trained.train_names) == 10 and len(trained.validation_names) == 2  # round(12 * 0.16) held out
    assert not set(trained.train_names) & set(trained.validation_names)
    assert len(trained.history) == 3 and trained.history[0].validation_loss is not None
    assert trained.class_weights[RARE] > trained.class_weights[0]
    # the network kept is the epoch with the best validation mean Dice, and it scores that Dice again
    dice = [r.validation_mean_dice for r in trained.history]
    kept = [r.epoch for r in trained.history if r.kept]
    assert kept == [1 + int(np.argmax(dice))] and trained.metadata()["best_epoch"] == kept[0]
    assert trained.validation.mean_dice() == pytest.approx(dice[kept[0] - 1])
    folder = trained.save(tmp_path / "checkpoint")
    loaded = InfectionModel.from_checkpoint(folder)
    assert loaded.input.image_size == (32, 32) and [s.name for s in loaded.segments][0] == "ground-glass opacity"
    batch = torch.from_numpy(np.ascontiguousarray(images[:3, :, ::2, ::2]))
    with torch.inference_mode():
        torch.testing.assert_close(loaded.network(batch), trained.model.eval()(batch))


def test_gradient_accumulation_equals_the_larger_batch(data):
    """Two micro-batches of 4 per optimiser step train exactly as one batch of 8 (plain loss, no batch norm)."""
    images, masks = data[0][:16, :, ::2, ::2], data[1][:16, ::2, ::2]

    def weights(batch_size: int, accumulation: int) -> np.ndarray:
        _, _, model = build_network("unet", {"channels": (4, 8), "batch_norm": False}, 4, seed=0)
        history = fit_network(model, images, masks, None, 2, 1e-2, batch_size, seed=0,
                              accumulation_steps=accumulation)
        assert len(history) == 2
        return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])

    accumulated, large, small = weights(4, 2), weights(8, 1), weights(4, 1)
    np.testing.assert_allclose(accumulated, large, rtol=1e-4, atol=1e-6)
    assert not np.allclose(small, large, rtol=1e-4, atol=1e-6)  # without accumulation the steps differ


def test_a_time_limit_stops_before_an_epoch_that_would_overrun(data):
    images, masks = data[0][:8, :, ::2, ::2], data[1][:8, ::2, ::2]
    _, _, model = build_network("unet", {"channels": (4, 8)}, 4, seed=0)
    history = fit_network(model, images, masks, None, 5, 1e-2, 4, seed=0, time_limit=1e-6,
                          validation=(images[:2], masks[:2]))
    assert len(history) == 1 and history[0].kept and history[0].seconds > 0
    assert len(fit_network(model, images, masks, None, 3, 1e-2, 4, seed=0, time_limit=3600.0)) == 3
