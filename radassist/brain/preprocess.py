"""Pure functions that turn brain MRI volumes into the network's input and back: sequence names, brain masks,
z-scores inside the brain, BraTS label values, resampling onto one grid, and boxes sized for the network."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from radassist.extent import nonzero_extent, span_to_multiple
from radassist.io.sitk_bridge import reference_image, sitk_to_volume, volume_to_sitk
from radassist.volume import Geometry, Volume

MODALITIES = ("flair", "t1", "t1ce", "t2")
"""Sequence names RadAssist uses, in the order channels are stacked when nothing else says otherwise."""

_MODALITY_PATTERNS = (  # first match wins: T1ce before T1, FLAIR before T2 ("t2flair")
    ("flair", re.compile(r"flair", re.I)),
    ("t1ce", re.compile(r"(^|[^a-z0-9])t1[-_ ]?(ce|c|gd|post|contrast)([^a-z]|$)", re.I)),
    ("t1", re.compile(r"(^|[^a-z0-9])t1([^a-z0-9]|w|$)", re.I)),
    ("t2", re.compile(r"(^|[^a-z0-9])t2([^a-z0-9]|w|$)", re.I)),
)


def modality_of(name: str) -> str | None:
    """The sequence a file name stands for ('BraTS20_001_t1ce.nii.gz' -> 't1ce', 'Flair_x.nii.gz' -> 'flair')."""
    stem = name.split(".")[0]
    return next((modality for modality, pattern in _MODALITY_PATTERNS if pattern.search(stem)), None)


def ordered_modalities(names: Sequence[str]) -> list[str]:
    """``names`` in RadAssist's channel order (known sequences first, others after, alphabetically)."""
    known = [m for m in MODALITIES if m in names]
    return known + sorted(n for n in names if n not in MODALITIES)


def brats_to_classes(labels: np.ndarray, convention: str = "auto") -> np.ndarray:
    """BraTS label values -> the network's classes (0, 1, 2, 3) under a label convention
    (:mod:`radassist.brain.labels`); ValueError on values the convention does not use."""
    from radassist.brain.labels import brats_classes

    return brats_classes(labels, convention)


def border_values(array: np.ndarray) -> np.ndarray:
    """The voxels on the six faces of a 3-D array: what lies outside the anatomy in a skull-stripped image."""
    array = np.asarray(array)
    faces = [array[0], array[-1], array[:, 0], array[:, -1], array[:, :, 0], array[:, :, -1]]
    return np.concatenate([np.ravel(face) for face in faces])


def background_value(array: np.ndarray) -> float:
    """The value a skull-stripped image shows outside the brain: the most common value on its border when it covers
    at least half of it (0 for most files, about -3.6 for BraTS images z-scored in the brain), else the border's
    1st percentile (an image that was not skull-stripped: noise, no constant background)."""
    border = border_values(array)
    values, counts = np.unique(border, return_counts=True)
    if counts.max() * 2 >= border.size:
        return float(values[np.argmax(counts)])
    return float(np.percentile(border, 1))


def brain_mask_from(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Skull-stripped sequences hold one constant value outside the brain (their border's): the brain is where any
    sequence differs from it. Never "non-zero": z-scored images have a non-zero background."""
    mask = np.zeros(np.shape(arrays[0]), dtype=bool)
    for array in arrays:
        array = np.asarray(array)
        mask |= array != np.asarray(background_value(array), dtype=array.dtype)
    return mask


def zscore_in_brain(array: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """(x - mean) / std with both taken inside the brain; 0 outside it (the paper's per-sequence normalisation)."""
    array = np.asarray(array, dtype=np.float32)
    values = array[brain]
    if values.size == 0:
        raise ValueError("the brain mask is empty")
    std = float(values.std())
    normalised = (array - float(values.mean())) / (std if std > 0 else 1.0)
    return np.where(brain, normalised, 0.0).astype(np.float32)


def resample_onto(volume: Volume, geometry: Geometry, interpolator: int = sitk.sitkLinear,
                  default: float = 0.0) -> Volume:
    """``volume`` on ``geometry`` with the identity transform in world space (no copy when already there)."""
    if volume.geometry.same_grid(geometry):
        return volume
    reference = reference_image(geometry)
    image = volume_to_sitk(volume)
    if interpolator != sitk.sitkNearestNeighbor:
        image = sitk.Cast(image, sitk.sitkFloat32)
    resampled = sitk.Resample(image, reference, sitk.Transform(), interpolator, float(default))
    return sitk_to_volume(resampled, volume.source)


def resampled_geometry(geometry: Geometry, spacing: Sequence[float]) -> Geometry:
    """A grid over the same extent as ``geometry`` with voxels of ``spacing`` (x, y, z mm), same origin and axes."""
    spacing = tuple(float(s) for s in spacing)
    shape = tuple(max(1, int(round(n * old / new)))
                  for n, old, new in zip(geometry.shape, geometry.spacing_zyx, spacing[::-1]))
    return Geometry(shape=shape, spacing=spacing, origin=geometry.origin, direction=geometry.direction)


@dataclass(frozen=True)
class Box:
    """A (z, y, x) box that may reach outside its array (the outside reads as 0): ``start`` and ``size``."""

    start: tuple[int, int, int]
    size: tuple[int, int, int]

    def extract(self, array: np.ndarray) -> np.ndarray:
        """The box's content of the last three axes of ``array`` (zero-padded where the box leaves it)."""
        shape = array.shape[-3:]
        pads, slices = [], []
        for start, size, n in zip(self.start, self.size, shape):
            pads.append((max(0, -start), max(0, start + size - n)))
            slices.append(slice(max(0, start), min(n, start + size)))
        inner = array[(..., *slices)]
        return np.pad(inner, [(0, 0)] * (array.ndim - 3) + pads)

    def insert(self, patch: np.ndarray, shape: tuple[int, int, int], fill: float = 0.0) -> np.ndarray:
        """A ``(..., *shape)`` array holding ``patch`` where the box lies inside it and ``fill`` elsewhere."""
        out = np.full((*patch.shape[:-3], *shape), fill, dtype=patch.dtype)
        target, source = [], []
        for start, size, n in zip(self.start, self.size, shape):
            lo, hi = max(0, start), min(n, start + size)
            target.append(slice(lo, hi))
            source.append(slice(lo - start, hi - start))
        out[(..., *target)] = patch[(..., *source)]
        return out


def network_box(mask: np.ndarray, multiple: int, margin: int = 4) -> Box:
    """The box around ``mask`` (grown by ``margin`` voxels) with every size rounded up to ``multiple``."""
    extent = nonzero_extent(mask)
    if extent is None:
        raise ValueError("the brain mask is empty")
    spans = [span_to_multiple(max(0, first - margin), min(n, stop + margin), multiple)
             for (first, stop), n in zip(extent, mask.shape)]
    return Box(tuple(first for first, _ in spans), tuple(last - first for first, last in spans))


def centred_box(shape: tuple[int, int, int], size: Sequence[int], jitter: np.random.Generator | None = None,
                mask: np.ndarray | None = None) -> Box:
    """A box of ``size`` centred on ``mask``'s bounding box (or the array), moved at random when ``jitter``."""
    if mask is not None and mask.any():
        centre = [(int(idx.min()) + int(idx.max())) / 2 for idx in np.nonzero(mask)]
    else:
        centre = [(n - 1) / 2 for n in shape]
    starts = []
    for c, s, n in zip(centre, size, shape):
        start = int(round(c - (s - 1) / 2))
        if jitter is not None and n > s:
            slack = (n - s) // 4
            start += int(jitter.integers(-slack, slack + 1))
        starts.append(start)
    return Box(tuple(starts), tuple(int(s) for s in size))
