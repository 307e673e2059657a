"""Run an infection network on single 2-D slices of any size (already prepared as network input): each slice is
fitted to the network's input size, and labels and class probabilities come back at the slice's own size.

What ``radassist evaluate lung-infection`` runs on a data set's slices and what :func:`radassist.lung.infection.
pipeline.segment_picture` runs on one picture, so both see exactly the same processing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from radassist.lung.infection.dataset import SliceDataset, fit_dataset
from radassist.runtime.progress import Progress
from radassist.runtime.slicewise import plan_fit, unfit_slices


@dataclass
class SlicePredictions:
    """A network's answer for each slice, at the slice's own size: argmax labels and class probabilities as 8-bit
    maps (0..255, what a saved probability PNG holds)."""

    labels: list[np.ndarray] = field(default_factory=list)  # (y, x) uint8
    probabilities: list[np.ndarray] = field(default_factory=list)  # (classes, y, x) uint8


def predict_prepared(network: Any, slices: Sequence[np.ndarray], image_size: tuple[int, int] | None,
                     batch_size: int = 8, device: Any = "cpu", progress: Progress | None = None) -> SlicePredictions:
    """Labels and probabilities of ``network`` for (y, x) network-ready slices (0..1), each at its own size."""
    progress = progress or Progress()
    if image_size is None:
        raise ValueError("slice prediction needs the network's input size")
    dataset = SliceDataset()
    for index, image in enumerate(slices):
        dataset.add(image, np.zeros(np.shape(image), np.uint8), str(index))
    images, _ = fit_dataset(dataset, image_size)
    predictions = SlicePredictions()
    network.eval()
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            logits = network(torch.from_numpy(images[start:start + batch_size]).to(torch.device(str(device))))
            for offset, slice_logits in enumerate(logits.float().cpu()):
                original = dataset.images[start + offset].shape
                back = unfit_slices(slice_logits[np.newaxis], plan_fit(original, image_size))[0]
                predictions.labels.append(back.argmax(dim=0).numpy().astype(np.uint8))
                probability = torch.softmax(back, dim=0).numpy()
                predictions.probabilities.append(np.round(probability * 255).astype(np.uint8))
            progress.update(min(start + batch_size, len(images)) / len(images), "predicting")
    return predictions
