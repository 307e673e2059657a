"""LiteMedSAM's preprocessing, as its authors prepared training and test data (MedSAM LiteMedSAM branch,
pre_CT_MR.py and CVPR24_LiteMedSAM_infer.py):

1. intensities to 0..255 per modality: CT clipped to a window (level 40, width 400 HU by default); MR and other
   images clipped to the 0.5 and 99.5 percentiles of their non-zero voxels, zero staying zero;
2. per slice: the grey slice repeated to three channels, resized so its long side is 256 (area averaging when
   shrinking, bilinear when growing), min-max normalised to [0, 1], padded with zeros at the bottom and right
   to 256 x 256;
3. a box given in slice pixels is scaled by the same factor into that 256-pixel frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from radassist.runtime.slicewise import resize_slices

NETWORK_SIZE = 256  # LiteMedSAM's input side (published)
CT_LEVEL, CT_WIDTH = 40.0, 400.0  # pre_CT_MR.py defaults (abdominal soft-tissue window)
PERCENTILES = (0.5, 99.5)  # pre_CT_MR.py, for MR


@dataclass(frozen=True)
class IntensityWindow:
    """How raw voxel values become 0..255: ``kind`` "fixed" (``low``..``high``) or "percentile" (of the
    non-zero voxels, ``low``/``high`` are the percentiles)."""

    kind: str
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "percentile"):
            raise ValueError(f"window kind must be 'fixed' or 'percentile', got {self.kind!r}")
        if not self.high > self.low:
            raise ValueError(f"window high ({self.high}) must be above low ({self.low})")

    @property
    def key(self) -> str:
        """A stable text naming this window (part of the embedding cache key)."""
        return f"{self.kind}:{self.low:g}:{self.high:g}"

    @classmethod
    def ct(cls, level: float = CT_LEVEL, width: float = CT_WIDTH) -> "IntensityWindow":
        return cls("fixed", level - width / 2, level + width / 2)

    @classmethod
    def percentiles(cls, low: float = PERCENTILES[0], high: float = PERCENTILES[1]) -> "IntensityWindow":
        return cls("percentile", low, high)


WINDOW_PRESETS: dict[str, IntensityWindow] = {
    "ct": IntensityWindow.ct(),                      # the paper's CT window (soft tissue, abdomen)
    "ct-lung": IntensityWindow.ct(-600.0, 1500.0),   # a lung window, for boxes around lungs and lung lesions
    "ct-bone": IntensityWindow.ct(400.0, 1800.0),
    "percentile": IntensityWindow.percentiles(),      # the paper's MR rule; also for mammograms and photos
}


def default_window(modality: str | None) -> IntensityWindow:
    """The paper's window for a modality: CT -> level 40 / width 400; anything else -> 0.5-99.5 percentiles."""
    return WINDOW_PRESETS["ct"] if (modality or "").upper() == "CT" else WINDOW_PRESETS["percentile"]


def parse_window(text: str) -> IntensityWindow:
    """A preset name (ct, ct-lung, ct-bone, percentile) or ``LOW,HIGH`` raw values; ValueError otherwise."""
    if text in WINDOW_PRESETS:
        return WINDOW_PRESETS[text]
    parts = text.split(",")
    if len(parts) == 2:
        try:
            return IntensityWindow("fixed", float(parts[0]), float(parts[1]))
        except ValueError as error:
            raise ValueError(f"window {text!r}: {error}") from None
    raise ValueError(f"window {text!r} is neither a preset ({', '.join(WINDOW_PRESETS)}) nor LOW,HIGH")


def window_to_uint8(array: np.ndarray, window: IntensityWindow) -> np.ndarray:
    """Raw voxels -> uint8 0..255 as the authors' preprocessing did (same shape)."""
    values = np.asarray(array, dtype=np.float32)
    if window.kind == "fixed":
        low, high = window.low, window.high
    else:
        nonzero = values[values != 0]
        if nonzero.size == 0:
            return np.zeros(values.shape, dtype=np.uint8)
        low, high = (float(v) for v in np.percentile(nonzero, [window.low, window.high]))
    clipped = np.clip(values, low, high)
    span = float(clipped.max() - clipped.min())
    scaled = (clipped - clipped.min()) / span * 255.0 if span > 0 else np.zeros_like(clipped)
    if window.kind == "percentile":
        scaled[values == 0] = 0
    return scaled.astype(np.uint8)


def resized_shape(height: int, width: int, size: int = NETWORK_SIZE) -> tuple[int, int]:
    """(height, width) after resizing the long side to ``size``, rounded as the authors' code rounds."""
    scale = size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def box_scale(height: int, width: int, size: int = NETWORK_SIZE) -> float:
    """Factor from slice pixels to the network's frame."""
    return size / max(height, width)


def prepare_slices(slices: np.ndarray, size: int = NETWORK_SIZE) -> np.ndarray:
    """(n, h, w) uint8 slices -> (n, 3, size, size) float32 network input (resize, min-max per slice, pad)."""
    slices = np.asarray(slices)
    count, height, width = slices.shape
    new_h, new_w = resized_shape(height, width, size)
    tensor = torch.from_numpy(np.ascontiguousarray(slices, dtype=np.float32))[:, None]
    resized = resize_slices(tensor, (new_h, new_w), "bilinear")[:, 0]
    low = resized.amin(dim=(1, 2), keepdim=True)
    span = (resized.amax(dim=(1, 2), keepdim=True) - low).clamp_min(1e-8)
    normalised = (resized - low) / span
    out = np.zeros((count, 3, size, size), dtype=np.float32)
    out[:, :, :new_h, :new_w] = normalised.numpy()[:, None]
    return out
