"""Run a 2-D network over every axial slice of a volume, in batches, and put its answer back on the volume's grid.

Slices are first turned to axial, as a DICOM axial CT is displayed (:class:`AxialReorientation`), so the network
sees them the way it was trained whatever order the file stored them in. Fitting slices to the network
(:func:`plan_fit`, :func:`fit_slices`) and back (:func:`unfit_slices`) are reusable on their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from radassist.runtime.backends import InferenceBackend, TorchBackend
from radassist.runtime.memory import reuse_freed_memory
from radassist.runtime.orientation import AxialReorientation
from radassist.runtime.progress import Progress
from radassist.volume import Geometry, Volume

Prepare = Callable[[np.ndarray], np.ndarray]
"""Raw slices (n, y, x) float32 -> network input (n, channels, y, x) float32 (or (n, y, x) for one channel)."""


# ------------------------------------------------------------------------------------------------ resizing


@dataclass(frozen=True)
class SliceFit:
    """How slices of one size were fitted to the network: padding (before resizing) and the resized size."""

    original: tuple[int, int]        # (height, width) of the slices
    padding: tuple[int, int, int, int]  # (top, bottom, left, right) rows/columns added
    size: tuple[int, int]            # (height, width) the network sees

    @property
    def padded(self) -> tuple[int, int]:
        top, bottom, left, right = self.padding
        return self.original[0] + top + bottom, self.original[1] + left + right

    @property
    def resized(self) -> bool:
        return self.padded != self.size


def plan_fit(shape: tuple[int, int], input_size: tuple[int, int] | None, size_multiple: int = 1,
             keep_aspect: bool = True) -> SliceFit:
    """Padding and size that take (height, width) slices to ``input_size`` (or, when None, up to a multiple of
    ``size_multiple`` without resizing). ``keep_aspect`` pads to the input's aspect ratio before resizing."""
    height, width = int(shape[0]), int(shape[1])
    if input_size is None:
        step = max(int(size_multiple), 1)
        padded_h, padded_w = height + (-height) % step, width + (-width) % step
        size = (padded_h, padded_w)
    else:
        size = (int(input_size[0]), int(input_size[1]))
        if size[0] < 1 or size[1] < 1:
            raise ValueError(f"input_size must be positive, got {input_size}")
        # keep_aspect: the smallest padded size with the target's aspect ratio that holds the slice
        scale = max(height / size[0], width / size[1])
        padded_h, padded_w = (max(height, math.ceil(size[0] * scale - 1e-9)),
                              max(width, math.ceil(size[1] * scale - 1e-9))) if keep_aspect else (height, width)
    extra_h, extra_w = padded_h - height, padded_w - width
    return SliceFit((height, width), (extra_h // 2, extra_h - extra_h // 2, extra_w // 2, extra_w - extra_w // 2), size)


def resize_slices(batch: np.ndarray | torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize (n, c, h, w) images to ``size``: "bilinear" (antialiased when shrinking) or "nearest" (labels)."""
    tensor = torch.as_tensor(batch)
    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    if mode == "nearest":
        return F.interpolate(tensor.float(), size=tuple(size), mode="nearest-exact").to(tensor.dtype)
    if mode != "bilinear":
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    shrinking = size[0] < tensor.shape[-2] or size[1] < tensor.shape[-1]
    return F.interpolate(tensor.float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=shrinking)


def fit_slices(batch: np.ndarray, fit: SliceFit, pad_value: float, mode: str = "bilinear") -> torch.Tensor:
    """(n, c, h, w) slices padded with ``pad_value`` and resized as ``fit`` says."""
    top, bottom, left, right = fit.padding
    tensor = torch.as_tensor(np.ascontiguousarray(batch))
    if any(fit.padding):
        tensor = F.pad(tensor, (left, right, top, bottom), value=float(pad_value))
    return resize_slices(tensor, fit.size, mode)


def class_argmax(logits: torch.Tensor) -> torch.Tensor:
    """The class index (uint8) of the largest score along dim 1 of (N, C, ...) scores, the first on ties, as
    ``argmax(dim=1)`` gives it; C <= 256.

    One comparison pass per class: on the CPU ``argmax`` over the channel dimension of an (N, C, H, W) tensor
    strides across memory and took 0.3 s for 8 slices of 3 x 512 x 512 scores, this takes 0.02 s. (A NaN score
    never wins here, where ``argmax`` would pick it: a network's scores are finite.)
    """
    classes = int(logits.shape[1])
    if classes > 256:
        raise ValueError(f"class_argmax gives uint8 indices: at most 256 classes, got {classes}")
    best = logits[:, 0].clone()
    index = torch.zeros(best.shape, dtype=torch.uint8, device=logits.device)
    for channel in range(1, classes):
        scores = logits[:, channel]
        index.masked_fill_(scores > best, channel)
        torch.maximum(best, scores, out=best)
    return index


def unfit_slices(outputs: np.ndarray | torch.Tensor, fit: SliceFit) -> torch.Tensor:
    """Undo :func:`fit_slices` on (n, c, H, W) network outputs (logits): resize back bilinearly, crop the padding."""
    tensor = resize_slices(outputs, fit.padded, "bilinear") if fit.resized else torch.as_tensor(outputs)
    top, _, left, _ = fit.padding
    return tensor[..., top:top + fit.original[0], left:left + fit.original[1]]


# ------------------------------------------------------------------------------------------------ inference


@dataclass(frozen=True)
class SliceInference:
    """How to run a 2-D network over a volume.

    Args:
        input_size: (height, width) the network takes; slices are padded to its aspect and resized. None runs
            each slice at its own size, padded to a multiple of ``size_multiple``.
        size_multiple: the network's size step (``2 ** poolings``) when ``input_size`` is None.
        batch_size: slices per network call.
        output: name of the backend output holding the logits (None: the first output).
        keep_aspect: pad slices to the input's aspect ratio before resizing (False stretches them).
        pad_value: raw value (e.g. -1024 HU) used for padding; None takes the volume's minimum.
        reorient: present slices as axial LPS (see :class:`AxialReorientation`); False uses the array as stored.
    """

    input_size: tuple[int, int] | None = None
    size_multiple: int = 1
    batch_size: int = 8
    output: str | None = None
    keep_aspect: bool = True
    pad_value: float | None = None
    reorient: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass
class SlicePrediction:
    """Labels (z, y, x) on the input grid and, when asked for, class probabilities (classes, z, y, x)."""

    labels: np.ndarray
    probabilities: np.ndarray | None
    geometry: Geometry
    backend: str


def as_backend(model: torch.nn.Module | InferenceBackend, device: Any = "cpu") -> InferenceBackend:
    """A backend for ``model``: an :class:`InferenceBackend` as it is, a torch module wrapped in TorchBackend."""
    if isinstance(model, InferenceBackend):
        return model
    if isinstance(model, torch.nn.Module):
        return TorchBackend(model, device)
    raise TypeError(f"expected a torch module or an InferenceBackend, got {type(model).__name__}")


@reuse_freed_memory()  # every batch allocates the same large activations again: keep them between batches
def predict_slices(volume: Volume, model: torch.nn.Module | InferenceBackend, prepare: Prepare,
                   settings: SliceInference = SliceInference(), progress: Progress | None = None,
                   keep_probabilities: bool = False, device: Any = "cpu") -> SlicePrediction:
    """Segment every axial slice of ``volume`` with a 2-D network; labels are the argmax class on the input grid.

    ``prepare`` turns raw slices into network input; ``progress`` gets one report per batch (and its cancel
    stops the run between batches). ``keep_probabilities`` also returns softmax probabilities (float32: mind
    the memory, classes x voxels x 4 bytes).
    """
    progress = progress or Progress()
    backend = as_backend(model, device)
    reorientation = AxialReorientation.of(volume.geometry) if settings.reorient else AxialReorientation()
    canonical = reorientation.to_canonical(volume.array)
    count, height, width = canonical.shape
    fit = plan_fit((height, width), settings.input_size, settings.size_multiple, settings.keep_aspect)
    pad_value = float(volume.array.min()) if settings.pad_value is None else float(settings.pad_value)
    pad_input = _prepared_pad_value(prepare, pad_value)

    labels = np.zeros((count, height, width), dtype=np.uint8)
    probabilities: np.ndarray | None = None
    progress.update(0.0, f"{count} slices, network input {fit.size[0]}x{fit.size[1]}")
    for start in range(0, count, settings.batch_size):
        stop = min(start + settings.batch_size, count)
        raw = np.asarray(canonical[start:stop], dtype=np.float32)
        network_input = np.asarray(prepare(raw), dtype=np.float32)
        if network_input.ndim == 3:
            network_input = network_input[:, np.newaxis]
        fitted = fit_slices(network_input, fit, pad_input).numpy()
        outputs = backend(fitted)
        logits = _logits_of(outputs, settings.output)
        if logits.ndim != 4 or logits.shape[0] != stop - start or tuple(logits.shape[-2:]) != fit.size:
            raise ValueError(f"the network gave {logits.shape} for input {fitted.shape}; expected "
                             f"({stop - start}, classes, {fit.size[0]}, {fit.size[1]})")
        back = unfit_slices(torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)), fit)
        labels[start:stop] = class_argmax(back).numpy()
        if keep_probabilities:
            if probabilities is None:
                probabilities = np.zeros((back.shape[1], count, height, width), dtype=np.float32)
            probabilities[:, start:stop] = torch.softmax(back, dim=1).numpy().transpose(1, 0, 2, 3)
        progress.update(stop / count, f"slice {stop}/{count}")
    labels = np.ascontiguousarray(reorientation.from_canonical(labels))
    if probabilities is not None:
        probabilities = np.ascontiguousarray(reorientation.from_canonical(probabilities))
    return SlicePrediction(labels, probabilities, volume.geometry, backend.describe())


def _logits_of(outputs: dict[str, np.ndarray], name: str | None) -> np.ndarray:
    """The named output, or the only one (a torch module's single output has no name of its own)."""
    if name is not None and name in outputs:
        return outputs[name]
    if name is None or len(outputs) == 1:
        return next(iter(outputs.values()))
    raise ValueError(f"the network has no output {name!r}; it gives {sorted(outputs)}")


def _prepared_pad_value(prepare: Prepare, raw_pad: float) -> float:
    """The network-input value of a padding pixel: ``prepare`` applied to the raw pad value (first channel)."""
    value = np.asarray(prepare(np.full((1, 1, 1), raw_pad, dtype=np.float32)), dtype=np.float32)
    return float(value.reshape(-1)[0])
