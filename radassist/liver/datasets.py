"""Read the LiTS layout: ``volume-N.nii`` CTs with ``segmentation-N.nii`` label maps (0 background, 1 liver,
2 tumour), ``.nii`` or ``.nii.gz``, in one folder or in sub-folders (the released "Training Batch 1/2").

:func:`find_lits_cases` only lists the pairs; :func:`read_lits_case` reads one and checks it (same grid, labels
0..2), so a training run can stream through the data set one volume at a time. :func:`training_slices` turns
cases into the 2-D (or 2.5-D) network inputs exactly as inference prepares them (same reorientation, window,
padding and resizing, see :mod:`radassist.runtime.slicewise`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radassist.errors import InputError
from radassist.io.images import read_volume
from radassist.liver.model import CLASS_COUNT
from radassist.liver.preprocess import LiverPreprocessing, stack_context, window_to_unit
from radassist.reorient import array_on_grid_of
from radassist.runtime.progress import Progress
from radassist.runtime.slicewise import AxialReorientation, fit_slices, plan_fit
from radassist.volume import Volume

_VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")
_SEGMENTATION = re.compile(r"^(?:test-)?segmentation-(\d+)\.nii(\.gz)?$")
PAD_HU = -1024.0  # what the slices are padded with before resizing: air


@dataclass(frozen=True)
class LitsCase:
    """One case of the layout: its number and files (``segmentation`` None for unlabelled test volumes)."""

    number: int
    volume: Path
    segmentation: Path | None

    @property
    def name(self) -> str:
        return f"volume-{self.number}"


@dataclass
class LitsVolume:
    """A read case: the CT and its labels (z, y, x) uint8 on the CT's grid."""

    case: LitsCase
    image: Volume
    labels: np.ndarray | None


def find_lits_cases(folder: str | Path, require_labels: bool = True) -> list[LitsCase]:
    """Every ``volume-N`` under ``folder`` with its ``segmentation-N``, sorted by N."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a folder; give the LiTS folder with volume-N.nii and segmentation-N.nii")
    volumes: dict[int, Path] = {}
    segmentations: dict[int, Path] = {}
    for path in sorted(folder.rglob("*.nii*")):
        for pattern, found in ((_VOLUME, volumes), (_SEGMENTATION, segmentations)):
            match = pattern.match(path.name)
            if match:
                number = int(match.group(1))
                if number in found:
                    raise InputError(path, f"case {number} appears twice (also {found[number]})")
                found[number] = path
    if not volumes:
        raise InputError(folder, "holds no volume-N.nii files (the LiTS layout: volume-N.nii + segmentation-N.nii)")
    missing = sorted(set(volumes) - set(segmentations))
    if require_labels and missing:
        raise InputError(folder, f"volume(s) without segmentation-N.nii: {', '.join(f'volume-{n}' for n in missing)}")
    return [LitsCase(n, volumes[n], segmentations.get(n)) for n in sorted(volumes)]


def read_lits_case(case: LitsCase) -> LitsVolume:
    """Read a case; its label map is put in the CT's axis order when it is stored in another (same voxels); InputError
    naming both grids when it is not on the CT's grid, or when it holds labels other than 0, 1, 2."""
    image = read_volume(case.volume)
    if case.segmentation is None:
        return LitsVolume(case, image, None)
    segmentation = read_volume(case.segmentation)
    # a label map stored in another axis order or direction holds the same voxels: put in the CT's order exactly
    labels = np.rint(array_on_grid_of(segmentation, image.geometry, f"label map of {case.volume.name}"))
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= CLASS_COUNT:
        raise InputError(case.segmentation, f"holds labels {sorted(np.unique(labels).tolist())}; LiTS labels are "
                                            f"0 background, 1 liver, 2 tumour")
    return LitsVolume(case, image, labels.astype(np.uint8))


@dataclass
class SliceSet:
    """Network-ready training slices: images (n, channels, h, w) float32, masks (n, h, w) int64, and the case
    each slice came from (for splitting by patient)."""

    images: np.ndarray
    masks: np.ndarray
    cases: np.ndarray

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def subset(self, keep: np.ndarray) -> "SliceSet":
        return SliceSet(self.images[keep], self.masks[keep], self.cases[keep])


def volume_slices(image: Volume, labels: np.ndarray, preprocessing: LiverPreprocessing,
                  size: tuple[int, int], keep_empty_fraction: float = 1.0,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One volume's axial slices as the network sees them at inference: (n, channels, h, w) and (n, h, w).

    Slices without liver are kept with probability ``keep_empty_fraction`` (LiTS volumes are mostly non-liver).
    """
    reorientation = AxialReorientation.of(image.geometry)
    canonical = reorientation.to_canonical(image.array).astype(np.float32)
    mask = reorientation.to_canonical(labels)
    has_liver = mask.reshape(mask.shape[0], -1).any(axis=1)
    rng = rng or np.random.default_rng(0)
    keep = has_liver | (rng.uniform(size=has_liver.shape) < keep_empty_fraction)
    chosen = np.flatnonzero(keep)
    if chosen.size == 0:
        return (np.zeros((0, preprocessing.channels, *size), np.float32), np.zeros((0, *size), np.int64))
    stacks = stack_context(canonical, preprocessing.context_slices)
    windowed = window_to_unit(stacks[chosen], preprocessing.window)
    fit = plan_fit(canonical.shape[1:], size)
    pad = float(window_to_unit(np.array([PAD_HU]), preprocessing.window)[0])
    images = fit_slices(windowed, fit, pad).numpy()
    masks = fit_slices(mask[chosen][:, None].astype(np.float32), fit, 0.0, mode="nearest").numpy()[:, 0]
    return images.astype(np.float32), np.rint(masks).astype(np.int64)


def training_slices(volumes: Iterable[LitsVolume], preprocessing: LiverPreprocessing, size: tuple[int, int],
                    keep_empty_fraction: float = 1.0, seed: int = 0, progress: Progress | None = None,
                    count: int | None = None) -> SliceSet:
    """Slices of every labelled volume, with the case number of each."""
    progress = progress or Progress()
    rng = np.random.default_rng(seed)
    images, masks, cases = [], [], []
    for index, item in enumerate(volumes):
        if item.labels is None:
            raise InputError(item.case.volume, "has no segmentation to train on")
        progress.update(index / count if count else 0.0, f"reading {item.case.name}")
        slice_images, slice_masks = volume_slices(item.image, item.labels, preprocessing, size,
                                                  keep_empty_fraction, rng)
        images.append(slice_images)
        masks.append(slice_masks)
        cases.append(np.full(len(slice_masks), item.case.number))
    if not images or sum(len(m) for m in masks) == 0:
        raise InputError(None, "no training slices: the data set has no labelled slices")
    progress.update(1.0, "slices ready")
    return SliceSet(np.concatenate(images), np.concatenate(masks), np.concatenate(cases))
