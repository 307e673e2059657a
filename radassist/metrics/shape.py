"""Shape measures of segmentation masks on their grid (numpy and scipy only)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from radassist.runtime.orientation import AxialReorientation
from radassist.volume import Geometry


def longest_axial_diameter(mask: np.ndarray, geometry: Geometry) -> tuple[float, int]:
    """Longest in-plane distance (mm) across ``mask`` over its axial slices, and that slice's index counted from
    the patient's feet (pixels are squares: a single pixel measures its diagonal)."""
    reorientation = AxialReorientation.of(geometry)
    canonical = reorientation.to_canonical(np.asarray(mask, dtype=bool))
    _, row_mm, col_mm = reorientation.canonical_spacing(geometry)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float) - 0.5
    best, best_slice = 0.0, -1
    for index in np.flatnonzero(canonical.any(axis=(1, 2))):
        plane = canonical[index]
        edge = plane & ~ndimage.binary_erosion(plane)
        pixels = np.argwhere(edge).astype(float)
        points = (pixels[:, None, :] + corners[None]).reshape(-1, 2) * np.array([row_mm, col_mm])
        points = np.unique(points, axis=0)
        hull = points[ConvexHull(points).vertices] if len(points) > 4 else points
        difference = hull[:, None, :] - hull[None, :, :]
        length = float(np.sqrt((difference ** 2).sum(axis=-1)).max())
        if length > best:
            best, best_slice = length, int(index)
    return best, best_slice
