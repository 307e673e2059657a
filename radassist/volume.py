"""The image every RadAssist pipeline takes: voxels plus the geometry that places them in the patient.

Conventions, decided once for the whole project:

* ``array`` is indexed ``[k, j, i]`` = ``[z, y, x]`` (NumPy order, what SimpleITK's GetArrayFromImage gives).
* Geometry is in ITK order and in LPS world millimetres: ``spacing`` = (sx, sy, sz), ``origin`` = world position of
  voxel (i, j, k) = (0, 0, 0), ``direction`` = 3x3 matrix whose *columns* are the world directions of the i, j and k
  axes.
* A continuous voxel index is written ``ijk`` = (i, j, k) = (x, y, z) index. ``world = origin + D @ (spacing * ijk)``.
* RAS appears only where Slicer or a file format demands it (:func:`lps_to_ras`, :meth:`Geometry.ijk_to_ras`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

def lps_to_ras(points: np.ndarray) -> np.ndarray:
    """Convert world points (..., 3) between LPS and RAS (the same flip goes both ways)."""
    return np.asarray(points, dtype=float) * np.array([-1.0, -1.0, 1.0])


ras_to_lps = lps_to_ras


@dataclass(frozen=True)
class Geometry:
    """Where a voxel grid sits in the patient: shape (z, y, x), spacing/origin (x, y, z) in mm, direction (LPS)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(s) for s in self.origin))
        object.__setattr__(self, "direction", tuple(float(s) for s in np.asarray(self.direction).ravel()))
        if len(self.shape) != 3 or len(self.spacing) != 3 or len(self.origin) != 3 or len(self.direction) != 9:
            raise ValueError("Geometry needs a 3-D shape, spacing, origin and a 3x3 direction")
        if min(self.spacing) <= 0 or not np.all(np.isfinite(self.spacing)):
            raise ValueError(f"spacing must be positive and finite, got {self.spacing}")
        if abs(abs(np.linalg.det(self.direction_matrix)) - 1.0) > 1e-3:
            raise ValueError(f"direction must be orthonormal, got {self.direction}")

    # -- matrices -------------------------------------------------------------------------------------------
    @property
    def direction_matrix(self) -> np.ndarray:
        """3x3 direction cosines, columns = world direction of i, j, k."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def ijk_to_lps(self) -> np.ndarray:
        """4x4 homogeneous matrix from (i, j, k, 1) to LPS world mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    @property
    def ijk_to_ras(self) -> np.ndarray:
        """The 4x4 IJK-to-RAS matrix Slicer's volume nodes use (SetIJKToRASMatrix)."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.ijk_to_lps

    @classmethod
    def from_ijk_to_ras(cls, matrix: np.ndarray, shape: tuple[int, int, int]) -> "Geometry":
        """Inverse of :attr:`ijk_to_ras`: recover spacing, origin and direction from a Slicer matrix."""
        m = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(matrix, dtype=float)
        scaled = m[:3, :3]
        spacing = np.linalg.norm(scaled, axis=0)
        return cls(shape=shape, spacing=tuple(spacing), origin=tuple(m[:3, 3]),
                   direction=tuple((scaled / spacing).ravel()))

    # -- point conversions ----------------------------------------------------------------------------------
    def ijk_to_world(self, ijk: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (..., 3) in (i, j, k) order to LPS world mm."""
        return np.asarray(ijk, dtype=float) @ self.ijk_to_lps[:3, :3].T + np.asarray(self.origin)

    def world_to_ijk(self, lps: np.ndarray) -> np.ndarray:
        """LPS world mm (..., 3) to continuous voxel indices (i, j, k)."""
        inverse = np.linalg.inv(self.ijk_to_lps[:3, :3])
        return (np.asarray(lps, dtype=float) - np.asarray(self.origin)) @ inverse.T

    def zyx_to_world(self, zyx: np.ndarray) -> np.ndarray:
        """Array indices (..., 3) in NumPy (z, y, x) order to LPS world mm."""
        return self.ijk_to_world(np.asarray(zyx, dtype=float)[..., ::-1])

    def world_to_zyx(self, lps: np.ndarray) -> np.ndarray:
        """LPS world mm to continuous array indices in NumPy (z, y, x) order."""
        return self.world_to_ijk(lps)[..., ::-1]

    # -- derived facts --------------------------------------------------------------------------------------
    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return (self.spacing[2], self.spacing[1], self.spacing[0])

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical size (x, y, z) covered by the grid."""
        return tuple(float(n * s) for n, s in zip(self.shape[::-1], self.spacing))

    def corners_world(self) -> np.ndarray:
        """The 8 voxel-centre corners of the grid in LPS (8, 3)."""
        nz, ny, nx = self.shape
        ijk = np.array([[i, j, k] for i in (0, nx - 1) for j in (0, ny - 1) for k in (0, nz - 1)], dtype=float)
        return self.ijk_to_world(ijk)

    def same_grid(self, other: "Geometry", tolerance: float = 1e-4) -> bool:
        """True when both grids place every voxel at the same world position (within ``tolerance`` mm)."""
        return self.shape == other.shape and bool(
            np.allclose(self.ijk_to_lps, other.ijk_to_lps, atol=tolerance))

    def with_shape(self, shape: tuple[int, int, int]) -> "Geometry":
        return replace(self, shape=tuple(shape))

    def crop(self, start_zyx: Sequence[int], stop_zyx: Sequence[int]) -> "Geometry":
        """The sub-grid of voxels [start, stop) along (z, y, x): same spacing and direction, each kept voxel at the
        same world position as in this grid."""
        start = np.clip(np.asarray(start_zyx, dtype=int), 0, self.shape)
        stop = np.clip(np.asarray(stop_zyx, dtype=int), start, self.shape)
        origin = self.ijk_to_world(start[::-1].astype(float))
        return replace(self, shape=tuple(int(n) for n in stop - start), origin=tuple(float(v) for v in origin))


@dataclass
class SourceInfo:
    """Where a volume came from: what DICOM or the file told us. Every field is optional."""

    path: str | None = None
    modality: str | None = None
    patient_id: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    frame_of_reference_uid: str | None = None
    series_description: str | None = None
    sop_instance_uids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {})}


@dataclass
class Volume:
    """Voxels (z, y, x) with their LPS geometry and source metadata."""

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    source: SourceInfo = field(default_factory=SourceInfo)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise ValueError(f"a Volume holds a 3-D (z, y, x) array, got shape {self.array.shape}")
        # Normalise and validate through Geometry (raises on bad spacing or direction).
        geometry = self.geometry
        self.spacing, self.origin, self.direction = geometry.spacing, geometry.origin, geometry.direction

    @classmethod
    def from_geometry(cls, array: np.ndarray, geometry: Geometry, source: SourceInfo | None = None) -> "Volume":
        if tuple(np.shape(array)[:3]) != geometry.shape:
            raise ValueError(f"array shape {np.shape(array)} does not match the geometry {geometry.shape}")
        return cls(array=array, spacing=geometry.spacing, origin=geometry.origin, direction=geometry.direction,
                   source=source or SourceInfo())

    @property
    def geometry(self) -> Geometry:
        return Geometry(shape=self.array.shape, spacing=self.spacing, origin=self.origin, direction=self.direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)

    def with_array(self, array: np.ndarray) -> "Volume":
        """A new Volume on the same grid (and with the same source) holding ``array``."""
        return Volume.from_geometry(array, self.geometry.with_shape(np.shape(array)[:3]), self.source)

    # Shorthands for the geometry's conversions, so callers rarely need the Geometry object.
    def ijk_to_world(self, ijk: np.ndarray) -> np.ndarray:
        return self.geometry.ijk_to_world(ijk)

    def world_to_ijk(self, lps: np.ndarray) -> np.ndarray:
        return self.geometry.world_to_ijk(lps)

    @property
    def ijk_to_ras(self) -> np.ndarray:
        return self.geometry.ijk_to_ras

    @property
    def is_2d(self) -> bool:
        """A single slice (a radiograph or mammogram) stored as a one-slice volume."""
        return self.array.shape[0] == 1
