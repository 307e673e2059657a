"""Gradient integration, the 3-D spatial transformer, the network grid as an LPS displacement field (checked against
SimpleITK resampling with the written ITK .h5 file), and the Jacobian determinant."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage
from scipy.spatial.transform import Rotation

from radassist.brain.postprocess import folding_percentage, jacobian_determinant
from radassist.brain.spatial import (displacement_to_grid, grid_to_displacement, identity_grid, integrate_gradients,
                                     warp)
from radassist.io.sitk_bridge import array_to_sitk
from radassist.results.displacement import DisplacementField
from radassist.results.transforms import write_itk_displacement_h5
from radassist.volume import Geometry

# An oblique-free but non-trivial LPS grid: anisotropic voxels, offset origin, i axis towards R, k axis towards I.
GEOMETRY = Geometry(shape=(20, 24, 28), spacing=(1.5, 1.0, 2.0), origin=(30.0, -12.0, 40.0),
                    direction=(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
# A rotated grid: every entry of D diag(spacing) is non-zero.
OBLIQUE = Geometry(shape=(18, 22, 26), spacing=(1.2, 0.9, 2.5), origin=(-5.0, 8.0, 12.0),
                   direction=tuple(Rotation.from_euler("zyx", [25, -15, 40], degrees=True).as_matrix().ravel()))


def test_constant_unit_gradients_integrate_to_the_identity():
    gradients = torch.ones(2, 3, 5, 6, 7)
    assert torch.allclose(integrate_gradients(gradients), identity_grid((5, 6, 7), batch=2))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_raised_first_gradient_shifts_the_whole_row(axis):
    gradients = torch.ones(1, 3, 5, 6, 7)
    first = [slice(None)] * 3
    first[axis] = 0
    gradients[(0, axis, *first)] += 0.75
    grid = integrate_gradients(gradients)
    identity = identity_grid((5, 6, 7))
    assert torch.allclose(grid[:, axis], identity[:, axis] + 0.75)
    others = [a for a in range(3) if a != axis]
    assert torch.allclose(grid[:, others], identity[:, others])


def test_gradients_of_two_compress_space_by_two():
    gradients = torch.full((1, 3, 4, 4, 8), 1.0)
    gradients[:, 2] = 2.0
    grid = integrate_gradients(gradients)
    assert torch.allclose(grid[0, 2, 0, 0], torch.arange(8, dtype=torch.float32) * 2 + 1)


def test_integration_refuses_wrong_shapes():
    with pytest.raises(ValueError):
        integrate_gradients(torch.ones(1, 2, 4, 4, 4))


def test_warp_with_the_identity_returns_the_image():
    image = torch.randn(2, 3, 6, 7, 8)
    assert torch.allclose(warp(image, identity_grid((6, 7, 8), batch=2)), image, atol=1e-5)


def test_warp_reads_the_moving_image_at_the_grid():
    image = torch.zeros(1, 1, 6, 6, 6)
    image[0, 0, 2, 3, 4] = 1.0
    grid = identity_grid((6, 6, 6)).clone()
    grid[:, 2] += 1.0  # every fixed voxel reads one voxel further along x
    warped = warp(image, grid)
    assert warped[0, 0, 2, 3, 3] == pytest.approx(1.0) and warped[0, 0, 2, 3, 4] == pytest.approx(0.0)


def _smooth_grid(shape, amplitude, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shifts = [ndimage.gaussian_filter(rng.standard_normal(shape), 4.0) for _ in range(3)]
    shifts = [amplitude * s / np.abs(s).max() for s in shifts]
    return np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")) + np.stack(shifts)


def test_grid_as_displacement_field_matches_simpleitk_resampling_with_the_h5(tmp_path):
    """The transformer's warp and ITK's resampling with the written transform agree voxel for voxel."""
    rng = np.random.default_rng(1)
    moving = ndimage.gaussian_filter(rng.standard_normal(GEOMETRY.shape), 1.5).astype(np.float32)
    grid = _smooth_grid(GEOMETRY.shape, amplitude=2.5)
    warped = warp(torch.from_numpy(moving)[None, None], torch.from_numpy(grid).float()[None])[0, 0].numpy()

    field = grid_to_displacement(grid, GEOMETRY)
    path = write_itk_displacement_h5(field, tmp_path / "transform.h5")
    transform = sitk.ReadTransform(str(path))
    moving_image = array_to_sitk(moving, GEOMETRY)  # both images live on the fixed grid
    resampled = sitk.GetArrayFromImage(sitk.Resample(moving_image, moving_image, transform, sitk.sitkLinear, 0.0))

    # where the sampled point lies inside the moving image (outside it ITK and torch pad differently)
    inside = np.all((grid >= 0) & (grid <= np.array(GEOMETRY.shape).reshape(3, 1, 1, 1) - 1), axis=0)
    assert inside.mean() > 0.5
    # the file stores the field in float32 rounded to 1/1024 mm: at most half of that on each axis, times the image's
    # steepest gradient per voxel (a few units here), bounds the difference
    steepest = max(np.abs(g).max() for g in np.gradient(moving))
    assert np.abs(warped - resampled)[inside].max() < 1e-5 + steepest * np.sqrt(3) / 2048 / min(GEOMETRY.spacing)

    # and the millimetres are right: a fixed voxel centre maps to the world point of its grid position
    z, y, x = 7, 11, 13
    fixed_point = GEOMETRY.zyx_to_world(np.array([z, y, x], float))
    expected = GEOMETRY.zyx_to_world(grid[:, z, y, x])
    assert np.allclose(transform.TransformPoint(tuple(fixed_point)), expected, atol=0.5 / 1024)  # stored precision


@pytest.mark.parametrize("geometry", [GEOMETRY, OBLIQUE], ids=["axis-aligned", "oblique"])
def test_grid_and_field_round_trip(geometry):
    grid = _smooth_grid(geometry.shape, amplitude=1.0, seed=4)
    field = grid_to_displacement(grid, geometry)
    assert np.allclose(displacement_to_grid(field), grid)
    # the vectors are D diag(spacing) (di, dj, dk) at every voxel, whatever the grid's orientation
    shift_ijk = (grid - np.indices(geometry.shape))[::-1]
    expected = np.einsum("ab,bzyx->zyxa", geometry.direction_matrix @ np.diag(geometry.spacing), shift_ijk)
    assert np.allclose(field.vectors, expected, atol=1e-12)
    with pytest.raises(ValueError):
        grid_to_displacement(grid[:, :-1], geometry)


@pytest.mark.parametrize("geometry", [GEOMETRY, OBLIQUE], ids=["axis-aligned", "oblique"])
def test_jacobian_of_an_affine_field_is_its_determinant_and_detects_folding(geometry):
    matrix = np.array([[0.2, 0.05, 0.0], [0.0, -0.1, 0.1], [0.03, 0.0, 0.3]])
    points = geometry.zyx_to_world(np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in geometry.shape],
                                                        indexing="ij"), axis=-1))
    field = DisplacementField(points @ matrix.T, geometry)
    determinant = jacobian_determinant(field)
    assert np.allclose(determinant, np.linalg.det(np.eye(3) + matrix), atol=1e-9)
    assert folding_percentage(determinant) == 0.0

    folded = DisplacementField(points @ (-2.0 * np.eye(3)).T, geometry)  # p -> -p: inside out
    assert folding_percentage(jacobian_determinant(folded)) == 100.0
    mask = np.zeros(geometry.shape, bool)
    mask[:5] = True
    assert folding_percentage(jacobian_determinant(folded), mask) == 100.0
