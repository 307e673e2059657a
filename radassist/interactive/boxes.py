"""Box prompts: where the annotator's box is, in the patient (LPS mm) and on the slices the model sees.

A box comes as two LPS corners (``--box x0,y0,z0,x1,y1,z1``), as a Slicer ROI (``.mrk.json``: centre and size,
axis-aligned) or, for a 2-D image, as four pixel numbers (column, row of two corners). It is turned once into a
:class:`VoxelBox` on the canonical axial slices of :class:`~radassist.runtime.slicewise.AxialReorientation`
(rows anterior -> posterior, columns right -> left, slices inferior -> superior): the voxels whose centres lie in
the box, clipped to the image. A box thinner than one voxel (an ROI drawn on a 2-D image) takes the voxel
nearest to its middle along that axis.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radassist.errors import InputError
from radassist.extent import nonzero_extent
from radassist.runtime.orientation import AxialReorientation
from radassist.volume import Geometry

DEFAULT_NAME = "Segment"


@dataclass(frozen=True)
class BoxPrompt:
    """One object to segment: the box's two opposite corners in LPS mm, and the segment's name."""

    lower_lps: tuple[float, float, float]
    upper_lps: tuple[float, float, float]
    name: str = DEFAULT_NAME

    def __post_init__(self) -> None:
        lower = np.minimum(self.lower_lps, self.upper_lps)
        upper = np.maximum(self.lower_lps, self.upper_lps)
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            raise ValueError("box corners must be finite numbers")
        object.__setattr__(self, "lower_lps", tuple(float(v) for v in lower))
        object.__setattr__(self, "upper_lps", tuple(float(v) for v in upper))

    @property
    def center_lps(self) -> tuple[float, float, float]:
        return tuple((a + b) / 2 for a, b in zip(self.lower_lps, self.upper_lps))

    @property
    def size_mm(self) -> tuple[float, float, float]:
        return tuple(b - a for a, b in zip(self.lower_lps, self.upper_lps))

    def moved(self, offset_mm: Sequence[float]) -> "BoxPrompt":
        """The same box shifted by ``offset_mm`` (x, y, z) LPS."""
        shift = np.asarray(offset_mm, dtype=float)
        return BoxPrompt(tuple(np.add(self.lower_lps, shift)), tuple(np.add(self.upper_lps, shift)), self.name)

    @classmethod
    def from_center_size(cls, center: Sequence[float], size: Sequence[float], name: str = DEFAULT_NAME) -> "BoxPrompt":
        half = np.abs(np.asarray(size, dtype=float)) / 2
        center = np.asarray(center, dtype=float)
        return cls(tuple(center - half), tuple(center + half), name)


@dataclass(frozen=True)
class VoxelBox:
    """Inclusive index ranges of a box on the canonical slices: slices ``z0..z1``, rows ``y0..y1``, columns
    ``x0..x1``."""

    z0: int
    z1: int
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> range:
        return range(self.z0, self.z1 + 1)

    @property
    def middle_slice(self) -> int:
        return (self.z0 + self.z1) // 2

    def pixel_box(self) -> np.ndarray:
        """The in-plane box as x0, y0, x1, y1 (columns, rows) pixel indices, MedSAM's box convention."""
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)


def parse_box_numbers(text: str) -> list[float]:
    """``"x0,y0,z0,x1,y1,z1"`` or ``"x0,y0,x1,y1"`` -> numbers; ValueError names what is wrong."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"box {text!r} must be numbers separated by commas") from None
    if len(values) not in (4, 6) or not all(math.isfinite(v) for v in values):
        raise ValueError(f"box {text!r} must be 6 numbers (x0,y0,z0,x1,y1,z1 in LPS mm) or 4 (x0,y0,x1,y1 in "
                         f"pixels of a 2-D image)")
    return values


def box_from_numbers(values: Sequence[float], geometry: Geometry, name: str = DEFAULT_NAME) -> BoxPrompt:
    """Six numbers: LPS corners in mm. Four numbers: column, row of two corners of a 2-D (one-slice) image."""
    if len(values) == 6:
        return BoxPrompt(tuple(values[:3]), tuple(values[3:]), name)
    if len(values) != 4:
        raise ValueError("a box is 6 numbers (LPS mm) or 4 numbers (pixels of a 2-D image)")
    if geometry.shape[0] != 1:
        raise ValueError(f"four pixel numbers describe a box on a 2-D image, but this image has {geometry.shape[0]} "
                         f"slices: give the box as x0,y0,z0,x1,y1,z1 in LPS mm (or an ROI file)")
    x0, y0, x1, y1 = values
    corners = geometry.ijk_to_world(np.array([[x0, y0, 0.0], [x1, y1, 0.0]]))
    return BoxPrompt(tuple(corners.min(axis=0)), tuple(corners.max(axis=0)), name)


def boxes_from_roi_file(path: str | Path) -> list[BoxPrompt]:
    """Every ROI of a Slicer ``.mrk.json`` (LPS or RAS file, axis-aligned), named after the ROI."""
    from radassist.results import read_roi_markups

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "ROI file not found" if not path.exists() else "is not a file")
    detections = read_roi_markups(path)
    if not detections.items:
        raise InputError(path, "holds no ROI")
    boxes = []
    for index, detection in enumerate(detections.items, start=1):
        name = str(detection.extra.get("name") or "").strip() or f"{DEFAULT_NAME} {index}"
        boxes.append(BoxPrompt.from_center_size(detection.center, detection.size, name))
    return boxes


def slice_orientation(geometry: Geometry) -> AxialReorientation:
    """How a grid is turned into axial slices; a one-slice image is its own slice, whichever way it faces."""
    return AxialReorientation() if geometry.shape[0] == 1 else AxialReorientation.of(geometry)


def voxel_box(box: BoxPrompt, geometry: Geometry, reorientation: AxialReorientation | None = None) -> VoxelBox:
    """The canonical voxel ranges of ``box``; ValueError when it misses the image."""
    reorientation = reorientation or slice_orientation(geometry)
    corners = np.array(list(itertools.product(*zip(box.lower_lps, box.upper_lps))))
    zyx = geometry.world_to_zyx(corners)
    ranges = []
    for axis in range(3):
        original = reorientation.axes[axis]
        length = geometry.shape[original]
        low, high = float(zyx[:, original].min()), float(zyx[:, original].max())
        if reorientation.flips[axis]:
            low, high = length - 1 - high, length - 1 - low
        if high < -0.5 or low > length - 0.5:
            raise ValueError(f"box {box.name!r} lies outside the image (axis {'zyx'[axis]}: voxel {low:.1f} to "
                             f"{high:.1f}, image 0 to {length - 1})")
        first, last = math.ceil(low - 1e-6), math.floor(high + 1e-6)
        if first > last:  # thinner than a voxel: the voxel nearest to its middle
            first = last = int(round((low + high) / 2))
        ranges += [max(first, 0), min(last, length - 1)]
    return VoxelBox(*ranges)


def canonical_to_zyx(points: np.ndarray, geometry: Geometry, reorientation: AxialReorientation) -> np.ndarray:
    """Canonical (slice, row, column) indices (..., 3) -> the array's own (z, y, x) indices (the inverse of the
    mapping :func:`voxel_box` uses)."""
    points = np.asarray(points, dtype=float)
    zyx = np.empty_like(points)
    for axis in range(3):
        original = reorientation.axes[axis]
        length = geometry.shape[original]
        values = points[..., axis]
        zyx[..., original] = length - 1 - values if reorientation.flips[axis] else values
    return zyx


def box_around_mask(mask: np.ndarray, geometry: Geometry, margin_px: float = 0.0, margin_slices: int = 0,
                    name: str = DEFAULT_NAME) -> BoxPrompt:
    """The box of a (z, y, x) mask's voxels on the canonical slices, grown by ``margin_px`` pixels in-plane and
    ``margin_slices`` slices (kept inside the image): how benchmarks draw the box an annotator would."""
    reorientation = slice_orientation(geometry)
    canonical = reorientation.to_canonical(np.asarray(mask, dtype=bool))
    if not canonical.any():
        raise ValueError("an empty mask has no box")
    low, high = [], []
    for axis, (first, stop) in enumerate(nonzero_extent(canonical)):
        margin = margin_slices if axis == 0 else margin_px
        low.append(max(first - margin, 0))
        high.append(min(stop - 1 + margin, canonical.shape[axis] - 1))
    corners = geometry.zyx_to_world(canonical_to_zyx(np.array([low, high], dtype=float), geometry, reorientation))
    return BoxPrompt(tuple(corners.min(axis=0)), tuple(corners.max(axis=0)), name)


def component_boxes(mask: np.ndarray, geometry: Geometry, name: str = DEFAULT_NAME, margin_px: float = 3.0,
                    margin_slices: int = 0, min_voxels: int = 1) -> list[BoxPrompt]:
    """One box around each connected part (26-connected) of a (z, y, x) mask, largest first, named ``<name> 1``,
    ``<name> 2``, ...: how a module turns each tumour of its own result into a box prompt. Parts smaller than
    ``min_voxels`` are left out."""
    from scipy import ndimage

    parts, count = ndimage.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(parts.ravel(), minlength=count + 1)[1:]
    order = [int(i) + 1 for i in np.argsort(-sizes, kind="stable") if sizes[i] >= max(min_voxels, 1)]
    return [box_around_mask(parts == label, geometry, margin_px, margin_slices, f"{name} {number}")
            for number, label in enumerate(order, start=1)]
