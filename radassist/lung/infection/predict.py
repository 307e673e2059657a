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


def predict_prepared(networks: Sequence[Any], slices: Sequence[np.ndarray], image_size: tuple[int, int] | None,
                     batch_size: int = 8, device: Any = "cpu", progress: Progress | None = None,
                     mirror: bool = False) -> SlicePredictions:
    """Labels and probabilities for (y, x) network-ready slices (0..1), each at its own size.

    Several ``networks`` (an ensemble of seeds) and ``mirror`` (each slice also run flipped left-right, the
    test-time augmentation of nnU-Net) average their softmax probabilities; one network without mirroring gives
    exactly its own argmax and softmax.
    """
    progress = progress or Progress()
    if image_size is None:
        raise ValueError("slice prediction needs the network's input size")
    if not networks:
        raise ValueError("slice prediction needs at least one network")
    views = [_fitted(slices, image_size)] + ([_fitted([s[:, ::-1] for s in slices], image_size)] if mirror else [])
    predictions = SlicePredictions()
    for network in networks:
        network.eval()
    with torch.inference_mode():
        for start in range(0, len(slices), batch_size):
            stop = min(start + batch_size, len(slices))
            total = [0.0] * (stop - start)
            for network in networks:
                for flipped, images in enumerate(views):
                    logits = network(torch.from_numpy(images[start:stop]).to(torch.device(str(device)))).float().cpu()
                    for offset in range(stop - start):
                        plan = plan_fit(np.shape(slices[start + offset]), image_size)
                        probability = torch.softmax(unfit_slices(logits[offset:offset + 1], plan)[0], dim=0)
                        total[offset] = total[offset] + (torch.flip(probability, dims=[-1]) if flipped
                                                         else probability)
            for summed in total:
                probability = summed / (len(networks) * len(views))
                predictions.labels.append(probability.argmax(dim=0).numpy().astype(np.uint8))
                predictions.probabilities.append(np.round(probability.numpy() * 255).astype(np.uint8))
            progress.update(stop / len(slices), "predicting")
    return predictions


def _fitted(slices: Sequence[np.ndarray], image_size: tuple[int, int]) -> np.ndarray:
    """The slices fitted to the network's input size, as one (n, 1, H, W) array."""
    images = [np.ascontiguousarray(image, dtype=np.float32) for image in slices]
    return fit_dataset(SliceDataset(images, [np.zeros(image.shape, np.uint8) for image in images]), image_size)[0]
