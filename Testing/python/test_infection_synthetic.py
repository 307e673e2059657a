"""The infection phantom: findings inside the lungs, at the stated densities and places, the same for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from radassist.lung.infection.synthetic import CONSOLIDATION, EFFUSION, GGO, make_infection_ct


@pytest.fixture(scope="module")
def phantom():
    return make_infection_ct(seed=5)


def test_every_class_is_painted_and_rare(phantom):
    counts = np.bincount(phantom.labels.ravel(), minlength=4)
    assert all(counts[1:] > 20)
    assert counts[1:].sum() < 0.05 * counts.sum()  # findings are rare next to everything else


def test_findings_have_the_stated_densities(phantom):
    hu = phantom.volume.array.astype(float)
    # medians sit in the stated ranges; single voxels carry image noise and (ground glass) some lung texture
    assert -720 <= np.median(hu[phantom.labels == GGO]) <= -480
    assert -110 <= np.median(hu[phantom.labels == CONSOLIDATION]) <= 60
    assert -5 <= np.median(hu[phantom.labels == EFFUSION]) <= 25
    lung_only = (phantom.lungs.labels[0] > 0) & (phantom.labels == 0)
    assert np.median(hu[lung_only]) < -780  # normal lung stays dark


def test_findings_are_inside_the_chest_lungs_and_effusion_is_dependent(phantom):
    lungs_now = phantom.lungs.labels[0] > 0
    parenchymal = (phantom.labels == GGO) | (phantom.labels == CONSOLIDATION)
    assert np.all(lungs_now[parenchymal])  # ground glass and consolidation are lung
    fluid = phantom.labels == EFFUSION
    assert not np.any(lungs_now & fluid)  # fluid is taken out of the lung masks
    z_fluid, y_fluid, _ = np.nonzero(fluid)
    z_lung, y_lung, _ = np.nonzero(lungs_now | fluid)
    assert np.median(y_fluid) > np.median(y_lung)  # posterior: higher y in LPS (dependent part, patient supine)
    assert np.median(z_fluid) < np.median(z_lung)  # towards the lung base


def test_same_seed_same_phantom_and_label_table(phantom):
    again = make_infection_ct(seed=5)
    np.testing.assert_array_equal(again.volume.array, phantom.volume.array)
    np.testing.assert_array_equal(again.labels, phantom.labels)
    assert [e["name"] for e in phantom.label_table] == ["ground-glass opacity", "consolidation", "pleural effusion"]
    assert phantom.labelmap.segment("consolidation").terminology.type.value == "95436008"
    assert not np.array_equal(make_infection_ct(seed=6).labels, phantom.labels)
