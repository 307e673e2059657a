"""Shape measures of segmentation masks on their grid (numpy and scipy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from radassist.runtime.orientation import AxialReorientation
from radassist.volume import Geometry


@dataclass(frozen=True)
class AxialAxes:
    """Long and short axis (mm) on the axial slice where the long axis is longest; the short axis is the widest
    extent perpendicular to it (as follow-up guidelines measure nodules); ``slice`` counts from the feet."""

    long_mm: float
    short_mm: float
    slice: int

    @property
    def mean_mm(self) -> float:
        """(long + short) / 2: the "mean diameter" of Lung-RADS and the Fleischner Society."""
        return (self.long_mm + self.short_mm) / 2


def _outline_hull(plane: np.ndarray, row_mm: float, col_mm: float) -> np.ndarray:
    """Corner points (mm) of the convex hull of a 2-D mask's pixels, pixels as squares."""
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float) - 0.5
    edge = plane & ~ndimage.binary_erosion(plane)
    pixels = np.argwhere(edge).astype(float)
    points = np.unique((pixels[:, None, :] + corners[None]).reshape(-1, 2) * np.array([row_mm, col_mm]), axis=0)
    return points[ConvexHull(points).vertices] if len(points) > 4 else points


def axial_axes(mask: np.ndarray, geometry: Geometry) -> AxialAxes:
    """Long and short axial axes of a mask (zeros for an empty mask)."""
    reorientation = AxialReorientation.of(geometry)
    canonical = reorientation.to_canonical(np.asarray(mask, dtype=bool))
    _, row_mm, col_mm = reorientation.canonical_spacing(geometry)
    best = AxialAxes(0.0, 0.0, -1)
    for index in np.flatnonzero(canonical.any(axis=(1, 2))):
        hull = _outline_hull(canonical[index], row_mm, col_mm)
        difference = hull[:, None, :] - hull[None, :, :]
        lengths = np.sqrt((difference ** 2).sum(axis=-1))
        length = float(lengths.max())
        if length > best.long_mm:
            a, b = np.unravel_index(int(np.argmax(lengths)), lengths.shape)
            best = AxialAxes(length, _longest_perpendicular_chord(hull, (hull[a] - hull[b]) / length), int(index))
    return best


def _longest_perpendicular_chord(hull: np.ndarray, direction: np.ndarray, samples: int = 256) -> float:
    """The longest chord of a convex polygon (its vertices in order) perpendicular to the unit ``direction``."""
    along = hull @ direction
    across = hull @ np.array([-direction[1], direction[0]])
    if len(hull) < 3:
        return float(across.max() - across.min())
    start = np.arange(len(hull))
    end = np.roll(start, -1)  # scipy lists 2-D hull vertices in order: edges join neighbours
    longest = 0.0
    for t in np.linspace(along.min(), along.max(), samples):
        a0, a1 = along[start], along[end]
        crossing = (np.minimum(a0, a1) <= t) & (t <= np.maximum(a0, a1)) & (a0 != a1)
        if not crossing.any():
            continue
        share = (t - a0[crossing]) / (a1[crossing] - a0[crossing])
        values = across[start][crossing] + share * (across[end][crossing] - across[start][crossing])
        longest = max(longest, float(values.max() - values.min()))
    return longest


def longest_axial_diameter(mask: np.ndarray, geometry: Geometry) -> tuple[float, int]:
    """Longest in-plane distance (mm) across ``mask`` over its axial slices, and that slice's index counted from
    the patient's feet (pixels are squares: a single pixel measures its diagonal)."""
    axes = axial_axes(mask, geometry)
    return axes.long_mm, axes.slice
