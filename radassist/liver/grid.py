"""Put a segmentation onto a CT's voxel grid, exactly, or refuse with a clear message.

A label map stored with its axes in another order or direction (the same voxels) is first put in the CT's order
(:mod:`radassist.reorient`). Slicer saves a ``.seg.nrrd`` cropped to the segments' extent by default: the same
voxel lattice as the CT (same spacing and direction, origin shifted by whole voxels), a smaller box. Such a file is
padded back onto the CT grid without any interpolation. Anything else (other spacing, rotation, half-voxel shifts)
is a segmentation made on a different image, and measuring it against this CT would be wrong, so it is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radassist.errors import InputError
from radassist.results.labelmap import LabelMap
from radassist.reorient import describe_grid, reorient_like
from radassist.volume import Geometry

TOLERANCE_VOXELS = 1e-3


def voxel_offset(source: Geometry, target: Geometry) -> np.ndarray | None:
    """Whole-voxel (z, y, x) offset of ``source``'s first voxel in ``target``'s grid, or None when the two grids
    are not the same lattice."""
    if not (np.allclose(source.spacing, target.spacing, rtol=1e-4, atol=1e-5)
            and np.allclose(source.direction_matrix, target.direction_matrix, atol=1e-4)):
        return None
    zyx = target.world_to_zyx(np.asarray(source.origin))
    rounded = np.round(zyx)
    if np.max(np.abs(zyx - rounded)) > TOLERANCE_VOXELS:
        return None
    return rounded.astype(int)


def align_to_grid(labelmap: LabelMap, target: Geometry, path: str | Path | None = None,
                  image_path: str | Path | None = None, image_name: str = "CT") -> LabelMap:
    """``labelmap`` on ``target``: unchanged when the grids match, padded/cropped when it is the same lattice
    (labels outside the target are refused), else an InputError naming both grids (the target called
    ``image_name`` in the message)."""
    if labelmap.geometry.same_grid(target):
        return labelmap
    where = path or labelmap.source.path
    stored = labelmap.geometry  # what a refusal names: the grid as the file has it
    turned = reorient_like(labelmap.labels, labelmap.geometry, target)
    if turned is not None:  # the same voxels stored in another axis order or direction: put them in the CT's
        labelmap = LabelMap(labels=turned[0], geometry=turned[1], segments=list(labelmap.segments),
                            source=labelmap.source, metadata=dict(labelmap.metadata))
        if labelmap.geometry.same_grid(target):
            return labelmap
    grids = (f"{image_name}{f' {image_path}' if image_path else ''}: segmentation {describe_grid(stored)}, "
             f"{image_name} {describe_grid(target)}")
    offset = voxel_offset(labelmap.geometry, target)
    if offset is None:
        raise InputError(where, f"the segmentation is on a grid that does not match the {grids}; segment this "
                                f"{image_name}, or resample the segmentation onto it (e.g. in Slicer)")
    labels = np.zeros((labelmap.layer_count, *target.shape), dtype=labelmap.labels.dtype)
    source_start = np.maximum(-offset, 0)
    target_start = np.maximum(offset, 0)
    size = np.minimum(np.array(labelmap.geometry.shape) - source_start, np.array(target.shape) - target_start)
    if np.all(size > 0):
        src = tuple(slice(int(a), int(a + n)) for a, n in zip(source_start, size))
        dst = tuple(slice(int(a), int(a + n)) for a, n in zip(target_start, size))
        labels[(slice(None), *dst)] = labelmap.labels[(slice(None), *src)]
    if np.count_nonzero(labels) != np.count_nonzero(labelmap.labels):
        raise InputError(where, f"the segmentation reaches outside the {grids}")
    return LabelMap(labels=labels, geometry=target, segments=list(labelmap.segments), source=labelmap.source,
                    metadata=dict(labelmap.metadata))
