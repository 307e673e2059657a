"""Registration results: a dense displacement field on the fixed image's grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radassist.volume import Geometry


@dataclass
class DisplacementField:
    """``vectors[z, y, x]`` = (dx, dy, dz) in LPS mm (float32 or float64): the fixed-image point p maps to
    p + u(p) in the moving image.

    This is ITK's resampling direction (fixed -> moving), the one Slicer's grid transforms and ITK's
    DisplacementFieldTransform files use, so resampling the moving image with it yields the warped image.
    """

    vectors: np.ndarray
    geometry: Geometry
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors)
        if self.vectors.dtype not in (np.float32, np.float64):  # float32 is kept: a 1 mm brain field is 107 MB so
            self.vectors = self.vectors.astype(np.float64)      # (what the engines compute and the files hold)
        if self.vectors.shape != (*self.geometry.shape, 3):
            raise ValueError(f"vectors must be {(*self.geometry.shape, 3)}, got {self.vectors.shape}")
        if not np.all(np.isfinite(self.vectors)):
            raise ValueError("displacement vectors must be finite")

    def displacement_at(self, lps: np.ndarray) -> np.ndarray:
        """Displacement (LPS mm) at world points (N, 3), trilinear between grid points (edge values outside)."""
        from scipy.ndimage import map_coordinates

        zyx = self.geometry.world_to_zyx(np.atleast_2d(lps)).T
        return np.stack([map_coordinates(self.vectors[..., c], zyx, order=1, mode="nearest")
                         for c in range(3)], axis=-1)

    def transform_points(self, lps: np.ndarray) -> np.ndarray:
        """Map fixed-space world points to the moving space."""
        lps = np.atleast_2d(np.asarray(lps, dtype=float))
        return lps + self.displacement_at(lps)

    @property
    def magnitude(self) -> np.ndarray:
        return np.linalg.norm(self.vectors, axis=-1)
