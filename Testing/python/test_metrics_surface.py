"""LiTS metrics on shapes whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np

from radassist.metrics.surface import (average_symmetric_surface_distance, lits_scores,
                                       maximum_symmetric_surface_distance, relative_volume_difference,
                                       surface_voxels, volumetric_overlap_error)


def _box(shape=(20, 20, 40), start=(5, 5, 5), size=(10, 10, 10)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, a + n) for a, n in zip(start, size))] = True
    return mask


def test_overlap_and_volume():
    reference = _box()
    prediction = _box(start=(5, 5, 10))  # shifted by 5 along x: overlap 500 of a 1500 union
    assert math.isclose(volumetric_overlap_error(reference, prediction), 1 - 500 / 1500)
    assert relative_volume_difference(reference, prediction) == 0.0
    assert math.isclose(relative_volume_difference(reference, _box(size=(10, 10, 15))), 0.5)
    assert volumetric_overlap_error(np.zeros((3, 3, 3)), np.zeros((3, 3, 3))) == 0.0
    assert math.isnan(relative_volume_difference(np.zeros((3, 3, 3)), reference[:3, :3, :3]))


def test_surface_is_the_border_layer():
    surface = surface_voxels(_box(size=(4, 4, 4)))
    assert surface.sum() == 4 ** 3 - 2 ** 3


def test_shift_gives_its_distance_in_mm():
    reference = _box()
    prediction = _box(start=(5, 5, 8))  # 3 voxels along x
    spacing = (2.0, 1.0, 0.5)  # (z, y, x) mm
    assert math.isclose(maximum_symmetric_surface_distance(reference, prediction, spacing), 1.5)
    assert average_symmetric_surface_distance(reference, reference, spacing) == 0.0
    assssd = average_symmetric_surface_distance(reference, prediction, spacing)
    assert 0 < assssd < 1.5


def test_lits_scores_bundle_and_empty_cases():
    reference = _box()
    scores = lits_scores(reference, reference, (1.0, 1.0, 1.0))
    assert (scores.dice, scores.voe, scores.rvd, scores.assd_mm, scores.msd_mm) == (1.0, 0.0, 0.0, 0.0, 0.0)
    empty = np.zeros_like(reference)
    missed = lits_scores(reference, empty)
    assert missed.dice == 0.0 and missed.voe == 1.0 and missed.rvd == -1.0
    assert math.isnan(missed.assd_mm) and missed.to_dict()["assd_mm"] is None
    assert math.isnan(lits_scores(empty, empty).dice)
