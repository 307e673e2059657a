"""Geometry conventions: voxel <-> world (LPS), LPS <-> RAS, and Slicer's IJK-to-RAS matrix."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from radassist.volume import Geometry, Volume, lps_to_ras, ras_to_lps

finite = st.floats(min_value=-500, max_value=500, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0.05, max_value=10, allow_nan=False)
angles = st.floats(min_value=-np.pi, max_value=np.pi, allow_nan=False)


def rotation(a: float, b: float, c: float) -> np.ndarray:
    """A proper rotation from three Euler angles (z, y, x)."""
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


geometries = st.builds(
    lambda spacing, origin, eul, flip: Geometry(
        shape=(7, 9, 11), spacing=spacing, origin=origin,
        direction=(rotation(*eul) @ np.diag([1, 1, -1 if flip else 1])).ravel()),
    st.tuples(positive, positive, positive), st.tuples(finite, finite, finite), st.tuples(angles, angles, angles),
    st.booleans())
points = st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=5).map(np.array)


@settings(max_examples=200, deadline=None)
@given(geometries, points)
def test_world_to_ijk_inverts_ijk_to_world(geometry: Geometry, ijk: np.ndarray) -> None:
    assert np.allclose(geometry.world_to_ijk(geometry.ijk_to_world(ijk)), ijk, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(geometries, points)
def test_zyx_is_ijk_reversed(geometry: Geometry, ijk: np.ndarray) -> None:
    assert np.allclose(geometry.zyx_to_world(ijk[:, ::-1]), geometry.ijk_to_world(ijk))


@settings(max_examples=100, deadline=None)
@given(geometries, points)
def test_ijk_to_world_matches_simpleitk(geometry: Geometry, ijk: np.ndarray) -> None:
    image = sitk.Image(11, 9, 7, sitk.sitkUInt8)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    expected = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(map(float, p))) for p in ijk])
    assert np.allclose(geometry.ijk_to_world(ijk), expected, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(geometries, points)
def test_ijk_to_ras_is_lps_flipped(geometry: Geometry, ijk: np.ndarray) -> None:
    homogeneous = np.c_[ijk, np.ones(len(ijk))]
    ras = (geometry.ijk_to_ras @ homogeneous.T).T[:, :3]
    assert np.allclose(ras, lps_to_ras(geometry.ijk_to_world(ijk)), atol=1e-6)
    assert np.allclose(ras_to_lps(ras), geometry.ijk_to_world(ijk), atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(geometries)
def test_geometry_survives_the_slicer_matrix(geometry: Geometry) -> None:
    back = Geometry.from_ijk_to_ras(geometry.ijk_to_ras, geometry.shape)
    assert np.allclose(back.spacing, geometry.spacing)
    assert np.allclose(back.origin, geometry.origin)
    assert np.allclose(back.direction, geometry.direction, atol=1e-9)


def test_hand_computed_ijk_to_ras() -> None:
    # An axial LPS volume: i runs to the patient's left (+L), j to posterior, k to superior.
    geometry = Geometry(shape=(10, 20, 30), spacing=(0.5, 0.5, 2.0), origin=(-100.0, -120.0, 50.0))
    expected = np.array([[-0.5, 0, 0, 100.0], [0, -0.5, 0, 120.0], [0, 0, 2.0, 50.0], [0, 0, 0, 1]])
    assert np.allclose(geometry.ijk_to_ras, expected)
    assert np.allclose(geometry.ijk_to_world([2, 4, 1]), [-99.0, -118.0, 52.0])
    assert np.allclose(geometry.zyx_to_world([1, 4, 2]), [-99.0, -118.0, 52.0])


def test_volume_rejects_2d_and_bad_geometry() -> None:
    with pytest.raises(ValueError, match="3-D"):
        Volume(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="spacing"):
        Volume(np.zeros((2, 2, 2)), spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="orthonormal"):
        Volume(np.zeros((2, 2, 2)), direction=(2, 0, 0, 0, 1, 0, 0, 0, 1))


def test_volume_keeps_geometry_through_with_array() -> None:
    volume = Volume(np.zeros((3, 4, 5), np.int16), spacing=(0.7, 0.8, 2.5), origin=(1, 2, 3),
                    direction=rotation(0.3, 0.2, 0.1).ravel())
    other = volume.with_array(np.ones((3, 4, 5), np.float32))
    assert other.geometry.same_grid(volume.geometry)
    assert other.array.dtype == np.float32
    assert volume.geometry.voxel_volume_mm3 == pytest.approx(0.7 * 0.8 * 2.5)
    assert not volume.is_2d and Volume(np.zeros((1, 4, 4))).is_2d
