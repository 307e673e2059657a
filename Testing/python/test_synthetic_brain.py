"""Brain MRI pair: MR contrasts, BraTS labels, and the known deformation (moving(p + u(p)) == fixed(p))."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from radassist.io.sitk_bridge import array_to_sitk, volume_to_sitk
from radassist.synthetic.brain import MODALITIES, BrainPhantomConfig, inverse_map, make_brain_pair

SMALL = BrainPhantomConfig(shape=(64, 80, 72), spacing=(2.2, 2.2, 2.2))


@pytest.fixture(scope="module")
def pair():
    return make_brain_pair(seed=5, config=SMALL)


def _resample_moving_to_fixed(pair, image, interpolator=sitk.sitkLinear, sign: float = 1.0) -> np.ndarray:
    """What ITK does with the returned field: sample the moving image at p + u(p) for each fixed point p."""
    field = array_to_sitk(sign * pair.deformation.vectors, pair.deformation.geometry, is_vector=True)
    transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    reference = volume_to_sitk(pair.fixed["t1"])
    resampled = sitk.Resample(image, reference, transform, interpolator, 0.0)
    return sitk.GetArrayFromImage(resampled)


def test_same_seed_same_pair_other_seed_other_pair(pair):
    again = make_brain_pair(seed=5, config=SMALL)
    other = make_brain_pair(seed=6, config=SMALL)
    for name in MODALITIES:
        assert np.array_equal(pair.fixed[name].array, again.fixed[name].array)
        assert np.array_equal(pair.moving[name].array, again.moving[name].array)
    assert np.array_equal(pair.deformation.vectors, again.deformation.vectors)
    assert not np.array_equal(pair.fixed["t1"].array, other.fixed["t1"].array)
    assert not np.array_equal(pair.deformation.vectors, other.deformation.vectors)


def test_sequences_are_skull_stripped_with_mr_contrasts(pair):
    brain = pair.brain_mask
    labels = pair.fixed_labels.labels[0]
    normal = brain & (labels == 0)
    assert set(pair.fixed) == set(MODALITIES) == set(pair.moving)
    for name in MODALITIES:
        image = pair.fixed[name].array
        assert image.dtype == np.float32 and image.min() >= 0
        assert np.all(image[~brain] == 0)
        assert np.all(pair.moving[name].array[~pair.moving_brain_mask] == 0)
    t1, t2 = pair.fixed["t1"].array[normal], pair.fixed["t2"].array[normal]
    assert np.corrcoef(t1, t2)[0, 1] < -0.3  # CSF dark on T1 and bright on T2, white matter the opposite
    flair, t1ce = pair.fixed["flair"].array, pair.fixed["t1ce"].array
    assert flair[labels == 2].mean() > 1.4 * flair[normal].mean()  # oedema bright on FLAIR
    assert pair.fixed["t2"].array[labels == 2].mean() > 1.2 * pair.fixed["t2"].array[normal].mean()
    assert t1ce[labels == 4].mean() > 1.4 * t1ce[normal].mean()  # enhancing rim
    assert t1ce[labels == 1].mean() < 0.6 * t1ce[labels == 4].mean()  # necrotic core does not enhance


def test_labels_keep_the_brats_values(pair):
    for label_map in (pair.fixed_labels, pair.moving_labels):
        assert set(np.unique(label_map.labels)) == {0, 1, 2, 4}
        assert [s.label_value for s in label_map.segments] == [1, 2, 4]
    labels = pair.fixed_labels.labels[0]
    assert np.all(pair.brain_mask[labels > 0])
    center = tuple(np.round(pair.deformation.geometry.world_to_zyx(np.asarray(pair.tumour_center))).astype(int))
    assert labels[center] in (1, 4)


def test_moving_resampled_through_the_field_gives_back_fixed(pair):
    inner = ndimage.binary_erosion(pair.brain_mask, iterations=2)
    for name in ("t1", "flair"):
        fixed = pair.fixed[name].array
        warped = _resample_moving_to_fixed(pair, volume_to_sitk(pair.moving[name]))
        error = np.abs(warped - fixed)[inner].mean()
        unregistered = np.abs(pair.moving[name].array - fixed)[inner].mean()
        backwards = _resample_moving_to_fixed(pair, volume_to_sitk(pair.moving[name]), sign=-1.0)
        assert error < 0.4 * unregistered
        assert error < 0.3 * np.abs(backwards - fixed)[inner].mean()  # the direction is fixed -> moving
        assert error < 0.03 * np.median(fixed[inner])  # what is left is interpolated noise
    labels = pair.fixed_labels.labels[0]
    warped_labels = _resample_moving_to_fixed(pair, array_to_sitk(pair.moving_labels.labels[0],
                                                                  pair.deformation.geometry),
                                              sitk.sitkNearestNeighbor)
    tumour, back = labels > 0, warped_labels > 0
    assert 2 * np.sum(tumour & back) / (tumour.sum() + back.sum()) > 0.95


def test_noise_free_pair_meets_the_relation_closely():
    pair = make_brain_pair(seed=5, config=dataclasses.replace(SMALL, noise=0.0))
    inner = ndimage.binary_erosion(pair.brain_mask, iterations=2)
    fixed = pair.fixed["t2"].array
    warped = _resample_moving_to_fixed(pair, volume_to_sitk(pair.moving["t2"]))
    assert np.median(np.abs(warped - fixed)[inner]) < 0.01 * np.median(fixed[inner])


def test_field_is_smooth_invertible_and_inverted_exactly(pair):
    field = pair.deformation
    assert field.geometry.same_grid(pair.fixed["t1"].geometry)
    assert 1.0 < field.magnitude[pair.brain_mask].max() < 20.0
    spacing = field.geometry.spacing_zyx
    gradients = np.stack([np.stack(np.gradient(field.vectors[..., c], *spacing), axis=-1) for c in range(3)],
                         axis=-2)  # d u_c / d (z, y, x)
    jacobian = np.eye(3) + gradients[..., ::-1]  # columns in (x, y, z) order
    assert np.linalg.det(jacobian).min() > 0.3
    coordinates = inverse_map(field)
    world = field.geometry.zyx_to_world(np.moveaxis(coordinates, 0, -1).reshape(-1, 3))
    mapped = field.transform_points(world)
    grid = field.geometry.zyx_to_world(np.indices(field.geometry.shape).reshape(3, -1).T.astype(float))
    inside = np.all((coordinates > 0) & (coordinates < np.array(field.geometry.shape).reshape(3, 1, 1, 1) - 1),
                    axis=0).reshape(-1)
    assert np.abs(mapped - grid)[inside].max() < 0.01  # x + u(x) == q, in mm


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        BrainPhantomConfig(oedema_ratio=(0.5, 1.0))
    with pytest.raises(ValueError):
        BrainPhantomConfig(noise=-0.1)
