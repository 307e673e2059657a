"""Chest CT phantom: determinism, realistic HU, lung sides in LPS, and nodule ground truth that matches the image."""

from __future__ import annotations

import numpy as np
import pydicom.uid
import pytest

from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct

SMALL = ChestPhantomConfig(shape=(56, 144, 192), spacing=(1.2, 1.2, 2.0), nodule_count=(3, 4),
                           nodule_diameter_mm=(6.0, 20.0))


@pytest.fixture(scope="module")
def phantom():
    return make_chest_ct(seed=3, config=SMALL)


def test_same_seed_same_phantom_other_seed_other_phantom(phantom):
    again = make_chest_ct(seed=3, config=SMALL)
    other = make_chest_ct(seed=4, config=SMALL)
    assert np.array_equal(phantom.volume.array, again.volume.array)
    assert np.array_equal(phantom.lungs.labels, again.lungs.labels)
    assert [d.center for d in phantom.nodules.items] == [d.center for d in again.nodules.items]
    assert phantom.series_uid == again.series_uid
    assert not np.array_equal(phantom.volume.array, other.volume.array)
    assert phantom.series_uid != other.series_uid


def test_series_uid_is_a_valid_dicom_uid(phantom):
    assert pydicom.uid.UID(phantom.series_uid).is_valid
    assert phantom.volume.source.series_instance_uid == phantom.series_uid
    assert phantom.nodules.series_uid == phantom.series_uid


def test_hounsfield_units_are_realistic(phantom):
    hu = phantom.volume.array
    assert hu.dtype == np.int16
    corner = hu[:, :6, :6]
    assert -1024 <= np.median(corner) <= -960  # air outside the body
    lungs = phantom.lungs.labels[0] > 0
    assert -900 <= np.median(hu[lungs]) <= -780
    soft = hu[(hu > -200) & (hu < 200)]
    assert soft.size > 0.15 * hu.size  # a body of fat and soft tissue around the lungs
    assert 20 <= np.median(hu[(hu > -20) & (hu < 120)]) <= 70
    assert np.count_nonzero((hu > -160) & (hu < -60)) > 0.02 * hu.size  # fat
    assert np.count_nonzero(hu > 400) > 1000 and hu.max() <= 1500  # ribs and spine
    assert np.count_nonzero(hu[~lungs] < -950) > 0  # airways and air outside


def test_the_patients_right_lung_is_at_low_x(phantom):
    geometry = phantom.lungs.geometry
    for name, sign in (("Right lung", -1), ("Left lung", 1)):
        mask = phantom.lungs.mask(name)
        assert mask.sum() * geometry.voxel_volume_mm3 / 1000 > 200  # mL
        center = geometry.zyx_to_world(np.argwhere(mask).mean(axis=0))
        assert np.sign(center[0]) == sign
    assert not np.any(phantom.lungs.mask("Right lung") & phantom.lungs.mask("Left lung"))
    assert not np.any(phantom.airway_mask & (phantom.lungs.labels[0] > 0))
    assert phantom.airway_mask.sum() > 50


def test_each_nodule_is_a_dense_blob_of_its_diameter_inside_a_lung(phantom):
    volume = phantom.volume
    geometry = volume.geometry
    hu = volume.array.astype(float)
    assert SMALL.nodule_count[0] <= len(phantom.nodules) <= SMALL.nodule_count[1]
    z, y, x = np.indices(geometry.shape)
    world = geometry.zyx_to_world(np.stack([z, y, x], axis=-1).astype(float))
    for nodule in phantom.nodules.items:
        assert nodule.probability == 1.0 and nodule.label == "nodule"
        assert SMALL.nodule_diameter_mm[0] * 0.5 <= nodule.diameter_mm <= SMALL.nodule_diameter_mm[1]
        assert np.prod(nodule.size) ** (1 / 3) == pytest.approx(nodule.diameter_mm, rel=1e-6)
        index = tuple(np.round(geometry.world_to_zyx(np.asarray(nodule.center))).astype(int))
        assert phantom.lungs.labels[0][index] in (1, 2)
        distance = np.linalg.norm(world - np.asarray(nodule.center), axis=-1)
        radius = nodule.diameter_mm / 2
        core = hu[distance <= 0.5 * radius]
        assert -150 <= core.mean() <= 150  # solid nodule
        shell = hu[(distance >= radius + 2.5) & (distance <= radius + 5.0)]
        assert np.median(shell) < -500  # surrounded by lung
        threshold = (nodule.extra["hu"] + (-860.0)) / 2
        dense = (distance <= radius + 2.0) & (hu > threshold)
        measured = 2 * (dense.sum() * geometry.voxel_volume_mm3 * 3 / (4 * np.pi)) ** (1 / 3)
        assert measured == pytest.approx(nodule.diameter_mm, rel=0.2)


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        ChestPhantomConfig(nodule_diameter_mm=(10.0, 3.0))
    with pytest.raises(ValueError):
        ChestPhantomConfig(shape=(4, 64, 64))
    with pytest.raises(ValueError):
        make_chest_ct(seed=-1, config=SMALL)
