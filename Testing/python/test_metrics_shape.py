"""Axial long and short axes of a mask (the nodule measures of follow-up guidelines)."""

from __future__ import annotations

import numpy as np
import pytest

from radassist.metrics.shape import axial_axes, longest_axial_diameter
from radassist.volume import Geometry


def test_an_ellipse_measures_its_axes_on_its_widest_slice():
    mask = np.zeros((4, 80, 80), dtype=bool)
    rows, cols = np.mgrid[:80, :80]
    mask[1] = ((rows - 40) / 10.0) ** 2 + ((cols - 40) / 5.0) ** 2 <= 1  # small section
    mask[2] = ((rows - 40) / 30.0) ** 2 + ((cols - 40) / 15.0) ** 2 <= 1  # semi-axes 30 and 15 px
    axes = axial_axes(mask, Geometry((4, 80, 80), (0.5, 0.5, 2.0)))
    assert axes.slice == 2
    assert axes.long_mm == pytest.approx(30.5, abs=0.6)  # 61 pixels of 0.5 mm, pixel corners included
    assert axes.short_mm == pytest.approx(15.5, abs=0.6)
    assert axes.mean_mm == pytest.approx((axes.long_mm + axes.short_mm) / 2)
    assert longest_axial_diameter(mask, Geometry((4, 80, 80), (0.5, 0.5, 2.0))) == (axes.long_mm, 2)


def test_a_rotated_rectangle_short_axis_is_perpendicular_to_the_long_one():
    mask = np.zeros((1, 100, 100), dtype=bool)
    rows, cols = np.mgrid[:100, :100]
    u, v = (rows - 50 + cols - 50) / np.sqrt(2), (rows - 50 - (cols - 50)) / np.sqrt(2)
    mask[0] = (np.abs(u) <= 30) & (np.abs(v) <= 6)  # 60 x 12 at 45 degrees
    axes = axial_axes(mask, Geometry((1, 100, 100)))
    assert axes.long_mm == pytest.approx(np.hypot(60, 12), abs=3)  # the diagonal of the rectangle
    assert 10 < axes.short_mm < 16  # the longest perpendicular chord, not the projected width (23 mm)


def test_an_empty_mask_measures_nothing():
    assert axial_axes(np.zeros((2, 5, 5), bool), Geometry((2, 5, 5))).long_mm == 0.0
