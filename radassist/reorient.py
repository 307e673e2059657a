"""The same voxels stored another way: a label map written with its axes in another order or direction than its
image (TotalSegmentator's DICOM example flips one) holds the same lattice, and is put in the image's order exactly,
by transposing and flipping its array: no interpolation, no voxel lost.
"""

from __future__ import annotations

import numpy as np

from radassist.errors import InputError
from radassist.volume import Geometry, Volume

TOLERANCE = 1e-3


def axis_codes(geometry: Geometry) -> str:
    """The patient directions the i, j, k axes point to (LPS letters, e.g. 'LPS', 'RAS', 'LPI')."""
    letters = (("L", "R"), ("P", "A"), ("S", "I"))
    columns = geometry.direction_matrix.T
    return "".join(letters[axis][0 if column[axis] > 0 else 1]
                   for column, axis in zip(columns, np.argmax(np.abs(columns), axis=1)))


def reorient_like(array: np.ndarray, geometry: Geometry, like: Geometry) -> tuple[np.ndarray, Geometry] | None:
    """``array`` (..., z, y, x) on ``geometry`` with its axes put in the order and direction of ``like`` (same
    voxels, new origin), or None when the two grids do not run along the same lines with the same spacing."""
    to_source = np.linalg.inv(geometry.ijk_to_lps[:3, :3]) @ like.ijk_to_lps[:3, :3]  # like ijk steps -> source ijk
    permutation = np.argmax(np.abs(to_source), axis=0)        # source axis for each ``like`` axis
    signs = np.sign(to_source[permutation, [0, 1, 2]])
    expected = np.zeros((3, 3))
    expected[permutation, [0, 1, 2]] = signs
    if sorted(permutation) != [0, 1, 2] or not np.allclose(to_source, expected, atol=TOLERANCE):
        return None
    lead = array.ndim - 3
    # array axes are (z, y, x) = ijk reversed: ``like`` array axis b holds ijk axis 2 - b
    order = [2 - int(permutation[2 - b]) for b in range(3)]
    moved = np.transpose(array, [*range(lead), *[lead + o for o in order]])
    moved = np.flip(moved, axis=[lead + b for b in range(3) if signs[2 - b] < 0])
    # the new first voxel: in source ijk, the far end of every flipped axis
    first = np.zeros(3)
    flipped = permutation[signs < 0]
    first[flipped] = np.array(geometry.shape)[2 - flipped] - 1
    spacing = tuple(geometry.spacing[int(permutation[a])] for a in range(3))
    return np.ascontiguousarray(moved), Geometry(shape=moved.shape[lead:], spacing=spacing,
                                                 origin=tuple(geometry.ijk_to_world(first)), direction=like.direction)


def describe_grid(geometry: Geometry) -> str:
    """'240x240x155 voxels of 1x1x1 mm at (0.00, -239.00, 0.00), axes LPS': what a refusal names."""
    nz, ny, nx = geometry.shape
    spacing = "x".join(f"{s:g}" for s in geometry.spacing)
    origin = ", ".join(f"{o:.2f}" for o in geometry.origin)
    return f"{nx}x{ny}x{nz} voxels of {spacing} mm at ({origin}), axes {axis_codes(geometry)}"


def array_on_grid_of(volume: Volume, reference: Geometry, what: str, tolerance: float = 1e-3) -> np.ndarray:
    """``volume``'s array on ``reference``'s grid: as it is, or with its axes reordered and flipped when it holds the
    same voxels stored another way; an InputError naming both grids otherwise."""
    if volume.geometry.same_grid(reference, tolerance=tolerance):
        return volume.array
    turned = reorient_like(volume.array, volume.geometry, reference)
    if turned is not None and turned[1].same_grid(reference, tolerance=tolerance):
        return turned[0]
    raise InputError(volume.source.path, f"the {what} is not on the grid of its image: {what} "
                                         f"{describe_grid(volume.geometry)}, image {describe_grid(reference)}")
