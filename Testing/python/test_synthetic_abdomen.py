"""Abdominal CT phantom: determinism, LiTS labels, liver on the patient's right, hypodense tumours."""

from __future__ import annotations

import numpy as np
import pytest

from radassist.synthetic.abdomen import AbdomenPhantomConfig, make_abdomen_ct

SMALL = AbdomenPhantomConfig(shape=(48, 128, 176), spacing=(1.8, 1.8, 4.0), tumour_count=(2, 5),
                             tumour_radius_mm=(8.0, 18.0))


@pytest.fixture(scope="module")
def phantom():
    return make_abdomen_ct(seed=11, config=SMALL)


def test_same_seed_same_phantom_other_seed_other_phantom(phantom):
    again = make_abdomen_ct(seed=11, config=SMALL)
    other = make_abdomen_ct(seed=12, config=SMALL)
    assert np.array_equal(phantom.volume.array, again.volume.array)
    assert np.array_equal(phantom.labels.labels, again.labels.labels)
    assert phantom.tumours == again.tumours
    assert not np.array_equal(phantom.volume.array, other.volume.array)


def test_labels_follow_lits(phantom):
    labels = phantom.labels
    assert set(np.unique(labels.labels)) == {0, 1, 2}
    assert labels.segment("Liver").label_value == 1
    assert labels.segment("Liver tumour").label_value == 2
    assert labels.layer_count == 1
    assert 600 <= labels.volume_ml("Liver") + labels.volume_ml("Liver tumour") <= 2500


def test_liver_is_on_the_patients_right(phantom):
    geometry = phantom.labels.geometry
    liver = phantom.labels.labels[0] > 0
    center = geometry.zyx_to_world(np.argwhere(liver).mean(axis=0))
    assert center[0] < -20  # LPS: the patient's right is at low x


def test_hounsfield_units_are_realistic(phantom):
    hu = phantom.volume.array
    assert hu.dtype == np.int16
    assert np.median(hu[:, :4, :4]) <= -960
    liver = phantom.labels.labels[0] == 1
    assert SMALL.liver_hu[0] - 10 <= hu[liver].mean() <= SMALL.liver_hu[1] + 10
    assert hu[liver].mean() == pytest.approx(phantom.liver_hu, abs=8)
    assert np.count_nonzero((hu > -150) & (hu < -50)) > 0.05 * hu.size  # fat
    assert np.count_nonzero(hu > 400) > 200  # spine
    assert np.count_nonzero(hu[hu > -1100] < -900) > 0.1 * hu.size  # air around the patient


def test_tumours_are_hypodense_and_match_the_labels(phantom):
    volume = phantom.volume
    geometry = volume.geometry
    hu = volume.array.astype(float)
    labels = phantom.labels.labels[0]
    assert SMALL.tumour_count[0] <= len(phantom.tumours) <= SMALL.tumour_count[1]
    liver_mean = hu[labels == 1].mean()
    z, y, x = np.indices(geometry.shape)
    world = geometry.zyx_to_world(np.stack([z, y, x], axis=-1).astype(float))
    for tumour in phantom.tumours:
        index = tuple(np.round(geometry.world_to_zyx(np.asarray(tumour.center))).astype(int))
        assert labels[index] == 2
        near = (np.linalg.norm(world - np.asarray(tumour.center), axis=-1) <= 0.6 * tumour.radius_mm) & (labels == 2)
        assert near.sum() > 0
        contrast = liver_mean - hu[near].mean()
        assert SMALL.tumour_contrast_hu[0] - 8 <= contrast <= SMALL.tumour_contrast_hu[1] + 8
        nominal_ml = 4 / 3 * np.pi * tumour.radius_mm ** 3 / 1000
        assert tumour.volume_ml == pytest.approx(nominal_ml, rel=0.45)
    total = sum(t.volume_ml for t in phantom.tumours)
    assert total == pytest.approx(phantom.labels.volume_ml("Liver tumour"), rel=1e-6)


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        AbdomenPhantomConfig(tumour_count=(3, 1))
    with pytest.raises(ValueError):
        AbdomenPhantomConfig(liver_hu=(110.0, 60.0))
