"""Solid nodules drawn into a real CT (TotalSegmentator's example CT, its lung bases over the diaphragm): they
follow the attachment they were drawn with, and the classical detector ranks each one above everything the real
scan itself gives it (diaphragm, chest wall, vessels). The full study is benchmarks/NODULE_CANDIDATES.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radassist.io import read_volume
from radassist.lung.classic import detect_candidates
from radassist.lung.pipeline import LungDetectionConfig
from radassist.lung.preprocess import lung_mask_volume
from radassist.synthetic.inserted_nodules import InsertionConfig, insert_nodules, lung_maps

ATTACHMENTS = ("isolated", "vessel", "pleura")


@pytest.fixture(scope="module")
def host(test_data: Path):
    volume = read_volume(test_data / "ct" / "chest_abdomen_example" / "example_ct.nii.gz")
    return volume, lung_maps(volume)


@pytest.fixture(scope="module")
def case(host):
    volume, maps = host
    return insert_nodules(volume, ATTACHMENTS, seed=0, maps=maps)


def _within(nodule, center) -> bool:
    """LUNA16's hit rule: the candidate's centre lies within the nodule's radius."""
    return float(np.linalg.norm(np.subtract(center, nodule.center))) < nodule.diameter_mm / 2


def test_the_real_scan_alone_gives_no_candidate_a_box_at_the_default_threshold(host):
    volume, _ = host
    found = detect_candidates(volume)
    assert len(found) > 20 and max(d.probability for d in found.items) < LungDetectionConfig().score_threshold


def test_inserted_nodules_have_their_size_attenuation_and_attachment(host, case):
    volume, maps = host
    config = InsertionConfig()
    assert case.unplaced == [] and [n.label for n in case.nodules.items] == list(ATTACHMENTS)
    assert not np.array_equal(case.volume.array, volume.array)
    for nodule in case.nodules.items:
        assert config.diameter_mm[0] <= nodule.diameter_mm <= config.diameter_mm[1]
        ball_ml = np.pi / 6 * nodule.diameter_mm ** 3 / 1000
        assert 0.6 * ball_ml <= nodule.extra["drawn_ml"] <= 1.3 * ball_ml, nodule  # partial volume counted
        centre = np.round(volume.geometry.world_to_zyx(np.asarray(nodule.center))).astype(int)
        assert -150 <= case.volume.array[tuple(centre)] <= 200  # soft tissue now, where the lung was
        assert volume.array[tuple(centre)] < -300 or nodule.label == "pleura"
    isolated, vessel, pleura = case.nodules.items
    assert isolated.extra["lung_share"] == 1.0 and vessel.extra["lung_share"] == 1.0
    low, high = config.pleural_lung_share
    assert low <= pleura.extra["lung_share"] <= high  # broad-based on the wall, mostly in the lung
    to_vessel = [maps.to_vessel_mm[tuple(np.round(volume.geometry.world_to_zyx(np.asarray(n.center))).astype(int))]
                 for n in (isolated, vessel)]
    assert to_vessel[0] >= isolated.diameter_mm / 2 + config.isolated_gap_mm - 3.0  # 3 mm voxels
    assert to_vessel[1] <= vessel.diameter_mm / 2  # the vessel reaches into it


def test_inserted_solid_nodules_of_6_mm_and_more_rank_above_the_scans_own_candidates(case):
    found = detect_candidates(case.volume, mask_volume=lung_mask_volume(case.volume))
    assert found.score_name == "score" and len(found) > 20  # the real scan gives many candidates of its own
    nodules = case.nodules.items
    assert all(n.diameter_mm >= 6.0 for n in nodules)
    on_nodule = [any(_within(n, d.center) for n in nodules) for d in found.items]
    best_other = max(d.probability for d, hit in zip(found.items, on_nodule) if not hit)
    for nodule in nodules:
        hits = [d for d in found.items if _within(nodule, d.center)]
        assert hits, f"the {nodule.label} nodule of {nodule.diameter_mm:.1f} mm was not found"
        assert hits[0].probability > best_other, (nodule.label, hits[0].probability, best_other)
    assert on_nodule[:3] == [True, True, True]  # the three nodules are the top three candidates


def test_large_pleural_nodules_in_thin_lung_bases_leave_the_lungs_found(host):
    """Two large pleura-attached nodules in this scan's thin lung crescents (the benchmark's run 6) once made the
    lung finder report no lung at all, because the lung volume was judged after the erosion that cuts bridges."""
    volume, maps = host
    without = lung_mask_volume(volume)
    with_nodules = lung_mask_volume(insert_nodules(volume, ("pleura", "pleura", "isolated"), seed=6, maps=maps).volume)
    voxel_ml = without.geometry.voxel_volume_mm3 / 1000.0
    lung_ml, lung_with_nodules_ml = without.array.sum() * voxel_ml, with_nodules.array.sum() * voxel_ml
    assert lung_ml > 60.0 and lung_with_nodules_ml > 0.85 * lung_ml, (lung_ml, lung_with_nodules_ml)
