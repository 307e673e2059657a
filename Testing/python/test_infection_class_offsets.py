"""Class offsets chosen on the validation slices: they undo a network's known bias between classes, training keeps
them in the checkpoint, and every run of the loaded model (torch and ONNX) adds them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from benchmarks.cases_infection import comparison_data
from radassist.errors import InputError
from radassist.lung.infection.class_offsets import (OffsetChoice, WithClassOffsets, choose_class_offsets,
                                                    log_probabilities, validation_score, with_offsets)
from radassist.lung.infection.dataset import SliceDataset
from radassist.lung.infection.pipeline import InfectionModel
from radassist.lung.infection.train import InfectionTrainConfig, train_infection
from radassist.runtime.onnx_backend import assert_onnx_parity

NAMES = ["background", "ground glass", "consolidation"]


def _blob_slices(count: int = 6, size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Slices whose grey level says the class (0 background, 0.5 ground glass, 1 consolidation), with noise."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, size, size), np.uint8)
    for index in range(count):
        for label in (1, 2):
            seeds = np.zeros((size, size), bool)
            seeds[tuple(rng.integers(6, size - 6, 2))] = True
            blob = ndimage.binary_dilation(seeds, iterations=int(rng.integers(3, 7)))
            masks[index][blob & (masks[index] == 0)] = label
    images = masks.astype(np.float32) / 2 + rng.normal(0, 0.05, masks.shape).astype(np.float32)
    return images[:, None], masks


def _biased_network() -> nn.Module:
    """A 1x1 convolution that reads the class from the grey level, but calls consolidation 1.5 logits too weakly:
    at grey 1 it says ground glass (3) over consolidation (2.5)."""
    network = nn.Conv2d(1, 3, 1)
    with torch.no_grad():
        network.weight.copy_(torch.tensor([0.0, 4.0, 8.0]).view(3, 1, 1, 1))
        network.bias.copy_(torch.tensor([0.0, -1.0, -5.5]))
    return network


def test_offsets_chosen_on_validation_slices_undo_a_known_bias(tmp_path):
    images, masks = _blob_slices()
    network = _biased_network()
    log_probs = log_probabilities(network, images)
    choice = choose_class_offsets(log_probs, masks, NAMES)
    background, ground_glass, consolidation = choice.offsets
    assert background == 0.0
    # consolidation must gain more than 0.5 on ground glass to win at grey 1, and less than 2.5 to leave it grey 0.5
    assert 0.5 < consolidation - ground_glass < 2.5
    assert choice.score_before < 0.75 < 0.95 < choice.score_after
    assert validation_score(log_probs, masks, NAMES, choice.offsets) == pytest.approx(choice.score_after)

    corrected = with_offsets(network, choice.offsets)
    assert isinstance(corrected, WithClassOffsets) and corrected.out_channels == 3
    labels = corrected(torch.from_numpy(images)).argmax(1).numpy()
    assert np.mean(labels == masks) > 0.99
    assert with_offsets(network, [0.0, 0.0, 0.0]) is network and with_offsets(network, None) is network
    assert_onnx_parity(corrected, torch.from_numpy(images[:2]), tmp_path)


def test_a_network_without_bias_keeps_zero_offsets():
    images, masks = _blob_slices(seed=1)
    network = _biased_network()
    with torch.no_grad():
        network.bias[2] = -4.0  # consolidation now wins at grey 1 by a logit
    choice = choose_class_offsets(log_probabilities(network, images), masks, NAMES)
    assert choice.score_before > 0.95
    assert choice.offsets == [0.0, 0.0, 0.0] or choice.score_after > choice.score_before  # a change must pay


def test_training_keeps_the_offsets_and_the_loaded_model_adds_them(tmp_path):
    images, masks = comparison_data()
    dataset = SliceDataset()
    for index in range(12):
        dataset.add(images[index, 0], masks[index], f"slice{index}")
    config = InfectionTrainConfig(architecture="segnet", model={"channels": (4, 8), "convs_per_stage": (1, 1)},
                                  epochs=3, learning_rate=1e-2, batch_size=4, image_size=(32, 32),
                                  validation_fraction=0.25, tune_class_offsets=True)
    torch.manual_seed(0)
    trained = train_infection(dataset, config)
    choice = trained.class_offsets
    assert choice is not None and len(choice.offsets) == 4 and choice.offsets[0] == 0.0
    assert choice.score_after >= choice.score_before
    assert trained.metadata()["classOffsets"]["offsets"] == choice.offsets

    trained.class_offsets = OffsetChoice([0.0, 0.5, -0.25, 1.0], choice.score_before, choice.score_after)
    folder = trained.save(tmp_path / "checkpoint")
    loaded = InfectionModel.from_checkpoint(folder)
    assert isinstance(loaded.network, WithClassOffsets)
    x = torch.from_numpy(np.ascontiguousarray(images[:2], dtype=np.float32))
    with torch.no_grad():
        expected = trained.model.eval()(x) + torch.tensor([0.0, 0.5, -0.25, 1.0]).view(1, 4, 1, 1)
        assert torch.allclose(loaded.network.eval()(x), expected, atol=1e-5)

    with pytest.raises(InputError, match="validation"):
        InfectionTrainConfig(validation_fraction=0.0, tune_class_offsets=True)
