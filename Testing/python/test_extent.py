"""The extent of a mask's nonzero voxels and spans grown to a stride, shared by the lung, liver and brain crops."""

from __future__ import annotations

import numpy as np

from radassist.extent import nonzero_extent, span_to_multiple


def test_extent_is_the_first_and_past_the_last_index_per_axis():
    mask = np.zeros((6, 7, 8), bool)
    mask[1, 2, 3] = mask[4, 5, 6] = True
    assert nonzero_extent(mask) == [(1, 5), (2, 6), (3, 7)]
    assert nonzero_extent(mask[1]) == [(2, 3), (3, 4)]
    assert nonzero_extent(np.zeros((3, 3), bool)) is None


def test_span_grows_evenly_to_the_multiple():
    assert span_to_multiple(10, 20, 32) == (-1, 31)  # 22 more: 11 before, 11 after
    assert span_to_multiple(60, 75, 32) == (52, 84)  # 17 more: 8 before, 9 after
    assert span_to_multiple(0, 64, 32) == (0, 64)  # already a multiple
