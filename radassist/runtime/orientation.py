"""Which way a voxel array's axes run in the patient, and how to turn it so slices are axial (numpy only, so
code that only needs orientation does not import torch)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from radassist.volume import Geometry


@dataclass(frozen=True)
class AxialReorientation:
    """Axis order and flips that make a (z, y, x) array's axes run towards Superior, Posterior and Left.

    ``axes[a]`` is the original array axis that becomes canonical axis ``a``; ``flips[a]`` reverses it. Both
    methods act on the last three axes, so channel axes in front are carried along.
    """

    axes: tuple[int, int, int] = (0, 1, 2)
    flips: tuple[bool, bool, bool] = (False, False, False)

    @classmethod
    def of(cls, geometry: Geometry) -> "AxialReorientation":
        """The reorientation of a grid: the axis permutation that best follows the world axes (S, P, L)."""
        # direction columns are the world directions of i, j, k = array axes 2, 1, 0
        world_of_array_axis = [geometry.direction_matrix[:, 2 - axis] for axis in range(3)]
        wanted = (2, 1, 0)  # canonical axis 0 follows world z (S), 1 follows y (P), 2 follows x (L)
        best = max(itertools.permutations(range(3)),
                   key=lambda perm: sum(abs(world_of_array_axis[perm[a]][wanted[a]]) for a in range(3)))
        flips = tuple(bool(world_of_array_axis[best[a]][wanted[a]] < 0) for a in range(3))
        return cls(tuple(best), flips)

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        lead = array.ndim - 3
        array = np.transpose(array, tuple(range(lead)) + tuple(lead + a for a in self.axes))
        return np.flip(array, axis=tuple(lead + axis for axis, flip in enumerate(self.flips) if flip))

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        lead = array.ndim - 3
        array = np.flip(array, axis=tuple(lead + axis for axis, flip in enumerate(self.flips) if flip))
        inverse = tuple(int(np.argsort(self.axes)[a]) for a in range(3))
        return np.transpose(array, tuple(range(lead)) + tuple(lead + a for a in inverse))

    def canonical_spacing(self, geometry: Geometry) -> tuple[float, float, float]:
        """Voxel size (mm) along the canonical (S, P, L) array axes."""
        zyx = geometry.spacing_zyx
        return tuple(zyx[a] for a in self.axes)
