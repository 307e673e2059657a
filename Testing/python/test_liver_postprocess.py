"""Cleaning a slice-wise prediction: largest liver, holes filled, tumours only in or at the liver, tiny ones gone."""

from __future__ import annotations

import numpy as np

from radassist.liver.postprocess import PostprocessConfig, clean_liver_labels
from radassist.volume import Geometry

GEOMETRY = Geometry((20, 40, 40), spacing=(1.0, 1.0, 1.0))  # 1 mm^3 voxels: 1000 voxels = 1 mL


def _prediction() -> np.ndarray:
    labels = np.zeros(GEOMETRY.shape, dtype=np.uint8)
    labels[2:18, 5:30, 5:30] = 1  # the liver
    labels[8:10, 22:24, 22:24] = 0  # a hole inside it
    labels[5:12, 10:18, 10:18] = 2  # a tumour inside: 448 voxels
    labels[14:16, 28:33, 28:33] = 2  # a tumour at the edge, sticking out: kept
    labels[3:5, 36:39, 36:39] = 1  # a separate island (spleen taken for liver): dropped
    labels[10:12, 36:39, 2:5] = 2  # a "tumour" away from the liver: dropped
    labels[3, 20, 20] = 2  # a one-voxel tumour inside the liver: dropped, becomes liver
    return labels


def test_cleaning_steps():
    cleaned, summary = clean_liver_labels(_prediction(), GEOMETRY, PostprocessConfig(min_tumour_volume_ml=0.01))
    assert cleaned[9, 23, 23] == 1  # hole filled as liver
    assert cleaned[4, 37, 37] == 0 and summary.liver_components_removed == 2  # the island and the far "tumour"
    assert cleaned[11, 37, 3] == 0 and summary.tumours_outside_liver_removed == 1
    assert cleaned[3, 20, 20] == 1 and summary.small_tumours_removed == 1
    assert (cleaned[5:12, 10:18, 10:18] == 2).all()
    assert cleaned[15, 32, 32] == 2  # the part outside the liver's box stays with its tumour
    assert summary.hole_voxels_filled == 8


def test_switches_turn_steps_off():
    config = PostprocessConfig(keep_largest_liver=False, fill_holes=False, min_tumour_volume_ml=0.0)
    cleaned, summary = clean_liver_labels(_prediction(), GEOMETRY, config)
    assert cleaned[4, 37, 37] == 1 and cleaned[9, 23, 23] == 0 and cleaned[3, 20, 20] == 2
    assert summary.liver_components_removed == 0 and summary.hole_voxels_filled == 0


def test_cleaning_on_the_organs_box_gives_what_the_whole_volume_gives():
    """The same prediction placed in a larger scan (zeros around it) and at the scan's very edge (no margin on two
    sides) is cleaned exactly as on its own grid."""
    labels = _prediction()
    config = PostprocessConfig(min_tumour_volume_ml=0.01)
    alone, summary = clean_liver_labels(labels, GEOMETRY, config)
    bigger = np.zeros((30, 60, 70), dtype=np.uint8)
    bigger[4:24, 15:55, 30:70] = labels  # touching the last column of the larger scan
    placed, placed_summary = clean_liver_labels(bigger, Geometry(bigger.shape), config)
    assert np.array_equal(placed[4:24, 15:55, 30:70], alone) and placed_summary == summary
    assert not placed[:4].any() and not placed[24:].any() and not placed[:, :15].any()
    ring = np.zeros((12, 30, 30), dtype=np.uint8)  # a liver shaped as a closed box at the array's first slices
    ring[0:8, 0:20, 0:20] = 1
    ring[2:6, 5:15, 5:15] = 0  # an enclosed cavity: filled
    cleaned, cavity = clean_liver_labels(ring, Geometry(ring.shape), config)
    assert cleaned[0:8, 0:20, 0:20].all() and cavity.hole_voxels_filled == 4 * 10 * 10


def test_an_empty_prediction_stays_empty():
    cleaned, summary = clean_liver_labels(np.zeros(GEOMETRY.shape, np.uint8), GEOMETRY)
    assert not cleaned.any() and summary.liver_components_removed == 0


def _random_organ(seed: int) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    return ndimage.binary_opening(rng.random((14, 24, 26)) > 0.35, iterations=1)


def test_slice_filling_also_fills_every_hole_enclosed_in_3d():
    from scipy import ndimage

    from radassist.liver.postprocess import fill_holes

    for seed in range(5):
        organ = _random_organ(seed)
        organ[4:9, 6:16, 6:16] = True
        organ[5:8, 8:14, 8:14] = False  # a cavity closed in 3-D
        slice_then = ndimage.binary_fill_holes(organ)
        for index in range(organ.shape[0]):
            slice_then[index] = ndimage.binary_fill_holes(slice_then[index])
        assert np.array_equal(fill_holes(organ), slice_then), seed
        assert fill_holes(organ)[5:8, 8:14, 8:14].all()


def test_largest_component_is_the_largest_26_connected_one():
    from scipy import ndimage

    from radassist.liver.postprocess import FULL_CONNECTIVITY, largest_component

    for seed in range(5):
        organ = _random_organ(seed)
        labels, count = ndimage.label(organ, structure=FULL_CONNECTIVITY)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        largest, dropped = largest_component(organ)
        assert dropped == count - 1 and largest.sum() == sizes.max()
        assert np.array_equal(largest, labels == np.argmax(sizes)) or sorted(sizes)[-2] == sizes.max()
    diagonal = np.zeros((3, 3, 3), bool)
    diagonal[0, 0, 0] = diagonal[1, 1, 1] = diagonal[2, 2, 2] = True  # corners touching: one component
    largest, dropped = largest_component(diagonal)
    assert dropped == 0 and np.array_equal(largest, diagonal)
