"""Slice-wise inference of a liver network over a whole CT, back to a label array on the CT's grid.

Plain 2-D networks go through :func:`radassist.runtime.slicewise.predict_slices` with the window as its prepare
hook. A 2.5-D network needs each slice's neighbours, which a per-batch hook cannot see, so it runs the same steps
(axial reorientation, pad-and-resize fitting, backend, unfitting) with the neighbour stack built from the whole
volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from radassist.liver.datasets import PAD_HU
from radassist.liver.preprocess import LiverPreprocessing, context_indices, window_to_unit
from radassist.runtime.backends import InferenceBackend
from radassist.runtime.progress import Progress
from radassist.runtime.slicewise import (AxialReorientation, SliceInference, class_argmax, fit_slices, plan_fit,
                                         predict_slices, unfit_slices)
from radassist.volume import Volume


@dataclass(frozen=True)
class InferenceSettings:
    """Network input size (None: each slice at its own size, padded to ``size_multiple``) and batch size."""

    input_size: tuple[int, int] | None
    size_multiple: int
    batch_size: int = 8


def predict_labels(volume: Volume, backend: InferenceBackend, preprocessing: LiverPreprocessing,
                   settings: InferenceSettings, progress: Progress | None = None) -> np.ndarray:
    """Argmax labels (z, y, x) uint8 of the network over every axial slice of ``volume``, on its grid."""
    progress = progress or Progress()
    if preprocessing.context_slices == 0:
        slice_settings = SliceInference(input_size=settings.input_size, size_multiple=settings.size_multiple,
                                        batch_size=settings.batch_size, pad_value=PAD_HU)
        prediction = predict_slices(volume, backend, lambda raw: window_to_unit(raw, preprocessing.window),
                                    slice_settings, progress)
        return prediction.labels
    reorientation = AxialReorientation.of(volume.geometry)
    canonical = reorientation.to_canonical(volume.array)
    count, height, width = canonical.shape
    fit = plan_fit((height, width), settings.input_size, settings.size_multiple)
    pad = float(window_to_unit(np.array([PAD_HU]), preprocessing.window)[0])
    labels = np.zeros((count, height, width), dtype=np.uint8)
    progress.update(0.0, f"{count} slices, {preprocessing.channels} per input, network input {fit.size}")
    for start in range(0, count, settings.batch_size):
        stop = min(start + settings.batch_size, count)
        stack = canonical[context_indices(count, start, stop, preprocessing.context_slices)]
        fitted = fit_slices(window_to_unit(stack, preprocessing.window), fit, pad).numpy()
        logits = next(iter(backend(fitted).values()))
        back = unfit_slices(torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)), fit)
        labels[start:stop] = class_argmax(back).numpy()
        progress.update(stop / count, f"slice {stop}/{count}")
    return np.ascontiguousarray(reorientation.from_canonical(labels))
