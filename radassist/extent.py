"""Where a mask is: the extent of its nonzero voxels along each axis, and spans grown to a network's stride.

Cropping to what matters (the lungs of a slab, the liver of a scan, the brain of an MRI) is done in several
pipelines; they all find the extent the same cheap way, one ``any`` projection per axis (no index list the size of
the mask), and round a span to a multiple the same way.
"""

from __future__ import annotations

import numpy as np


def nonzero_extent(mask: np.ndarray) -> list[tuple[int, int]] | None:
    """Per axis, the [first, stop) index range holding ``mask``'s nonzero elements; None when there are none."""
    mask = np.asarray(mask)
    extent = []
    for axis in range(mask.ndim):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if present.size == 0:
            return None
        extent.append((int(present[0]), int(present[-1]) + 1))
    return extent


def span_to_multiple(start: int, stop: int, multiple: int) -> tuple[int, int]:
    """[start, stop) grown evenly on both sides (the extra one after) to a length that is a multiple of
    ``multiple``; it may then reach outside the array it came from."""
    length = -(-(stop - start) // multiple) * multiple
    first = start - (length - (stop - start)) // 2
    return first, first + length


__all__ = ["nonzero_extent", "span_to_multiple"]
