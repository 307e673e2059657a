"""The classical nodule candidate detector: blob measures on exact shapes, sensitivity on chest phantoms, and a
plausible, small result on real CT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radassist.io import read_volume
from radassist.lung import classic
from radassist.lung.preprocess import lung_mask_volume, mask_on_grid
from radassist.runtime.progress import Cancelled, Progress
from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct

# A phantom on a coarser grid than the default (3.7 M voxels instead of 12 M) keeps the file fast.
PHANTOM = ChestPhantomConfig(shape=(75, 192, 256), spacing=(1.05, 1.05, 1.875))
SEEDS = (0, 1, 2)


def ball(radius_mm: float, spacing: float = 1.0, size: int = 41) -> np.ndarray:
    axes = np.ogrid[(slice(-(size // 2), size // 2 + 1),) * 3]
    distance = np.sqrt(sum((a * spacing) ** 2 for a in axes))
    return np.where(distance <= radius_mm, 40.0, -850.0).astype(np.float32)


def tube(radius_mm: float, size: int = 41) -> np.ndarray:
    _, y, x = np.ogrid[:size, :size, :size]
    distance = np.sqrt((y - size // 2) ** 2 + (x - size // 2) ** 2)
    return np.broadcast_to(np.where(distance <= radius_mm, 40.0, -850.0), (size, size, size)).astype(np.float32)


def test_blob_scales_cover_4_to_30_mm():
    sigmas = classic.blob_sigmas(4.0, 30.0, 7)
    assert np.isclose(sigmas[0] * np.sqrt(3), 2.0) and np.isclose(sigmas[-1] * np.sqrt(3), 15.0)


@pytest.mark.parametrize("radius", [3.0, 7.0])
def test_a_ball_is_measured_as_a_round_blob_of_its_size(radius):
    image = ball(radius)
    sigmas = classic.blob_sigmas(4.0, 30.0, 7)
    space = classic.blob_scale_space(image, sigmas, 1.0)
    centre = np.array([20, 20, 20])
    scale = int(space.scale[tuple(centre)])
    assert abs(np.sqrt(3) * sigmas[scale] - radius) <= 0.45 * radius  # scale selection finds the size
    features = classic.measure_candidate(image, space, centre, float(sigmas[scale]), 1.0, -850.0)
    assert abs(features["diameter_mm"] - 2 * radius) < 1.0
    assert features["elongation"] < 1.2 and features["leak"] == 0.0 and features["blobness"] > 0.8
    assert classic.passes_filters(features, classic.ClassicDetectorConfig())
    assert classic.candidate_score(features, classic.ClassicDetectorConfig()) > 0.9


def test_a_vessel_is_not_a_blob():
    image = tube(2.5)
    sigmas = classic.blob_sigmas(4.0, 30.0, 7)
    space = classic.blob_scale_space(image, sigmas, 1.0)
    centre = np.array([20, 20, 20])
    assert classic.hessian_blobness(space.smoothed[0], centre) < 0.1
    features = classic.measure_candidate(image, space, centre, float(sigmas[1]), 1.0, -850.0)
    config = classic.ClassicDetectorConfig()
    if features is not None and classic.passes_filters(features, config):  # left to the score: it ranks far lower
        nodule = ball(3.0)  # a 6 mm nodule, the smallest the score is meant to rank above vessels
        nodule_space = classic.blob_scale_space(nodule, sigmas, 1.0)
        scale = int(nodule_space.scale[tuple(centre)])
        nodule_features = classic.measure_candidate(nodule, nodule_space, centre, float(sigmas[scale]), 1.0, -850.0)
        assert features["prolate"] > 3.0 and features["blobness"] < 0.1
        assert classic.candidate_score(features, config) < classic.candidate_score(nodule_features, config) - 0.25


def test_a_vessel_attached_to_a_nodule_is_cut_off():
    image = np.maximum(ball(5.0), tube(1.5))
    space = classic.blob_scale_space(image, classic.blob_sigmas(4.0, 30.0, 7), 1.0)
    features = classic.measure_candidate(image, space, np.array([20, 20, 20]), 5.0 / np.sqrt(3), 1.0, -850.0)
    assert abs(features["diameter_mm"] - 10.0) < 1.5 and features["elongation"] < 1.4


@pytest.fixture(scope="module")
def phantoms():
    return [make_chest_ct(seed, PHANTOM) for seed in SEEDS]


def test_ranks_most_phantom_nodules_of_6_mm_and_more_before_the_second_false_positive(phantoms):
    """The score ranks candidates (it is not a probability): what counts is the order, as a FROC reads it."""
    hits = total = 0
    for phantom in phantoms:
        found = classic.detect_candidates(phantom.volume)
        assert found.engine == "classic" and "not a trained model" in found.metadata["engine_description"]
        assert found.score_name == "score" and all(d.score_name == "score" for d in found.items)
        assert all(d.label == "nodule candidate" and 4.0 <= d.diameter_mm <= 30.0 for d in found.items)
        assert [d.probability for d in found.items] == sorted((d.probability for d in found.items), reverse=True)
        on_nodule = [[i for i, nodule in enumerate(phantom.nodules.items)
                      if np.linalg.norm(np.subtract(d.center, nodule.center)) <= max(nodule.diameter_mm / 2, 2.5)]
                     for d in found.items]
        false_seen, found_before = 0, set()
        for nodules in on_nodule:  # best first, up to the second false positive: 2 false positives per scan
            if not nodules:
                false_seen += 1
                if false_seen == 2:
                    break
            found_before |= set(nodules)
        big = [i for i, nodule in enumerate(phantom.nodules.items) if nodule.diameter_mm >= 6.0]
        total += len(big)
        hits += len(set(big) & found_before)
    sensitivity = hits / total
    print(f"classic detector on {len(phantoms)} phantoms: {hits} of {total} nodules of 6 mm or more ranked before "
          f"the second false positive ({sensitivity:.2f})")
    assert total >= 4
    assert sensitivity >= 0.75


def test_progress_and_cancel(phantoms):
    seen = []
    classic.detect_candidates(phantoms[0].volume, progress=Progress(lambda f, m: seen.append(f)))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        classic.detect_candidates(phantoms[0].volume, progress=progress)


def test_real_chest_ct_gives_few_candidates_inside_the_lungs(test_data: Path):
    """CTChest4 is a real chest CT with 10 mm slices (too thick for the pipeline, which refuses it): called
    directly, the detector still has to stay plausible on real anatomy: every candidate in or at the lungs. (How
    its score ranks nodules there is measured in benchmarks/NODULE_CANDIDATES.md: poorly, on 10 mm slices.)"""
    volume = read_volume(test_data / "slicer" / "CTChest4.nrrd")
    masks = lung_mask_volume(volume)
    found = classic.detect_candidates(volume, mask_volume=masks)
    assert 0 < len(found) <= classic.ClassicDetectorConfig().max_candidates and found.score_name == "score"
    lungs = mask_on_grid(masks, volume.geometry)
    for detection in found.items:
        zyx = np.round(volume.geometry.world_to_zyx(np.asarray(detection.center))).astype(int)
        zyx = np.clip(zyx, 0, np.array(volume.shape) - 1)
        near = lungs[max(zyx[0] - 1, 0):zyx[0] + 2, max(zyx[1] - 5, 0):zyx[1] + 6, max(zyx[2] - 5, 0):zyx[2] + 6]
        assert near.any(), f"candidate at {detection.center} is far from the lungs"


def test_scan_without_lungs_gives_no_candidates(test_data: Path):
    volume = read_volume(test_data / "ct" / "chest_abdomen_example" / "dicom")
    found = classic.detect_candidates(volume)
    assert len(found) == 0 and found.engine == "classic"
