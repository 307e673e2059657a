"""Lung-DETR preprocessing: resampling, the lung mask on real CT, CLAHE, MIP slabs and training boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radassist.io import read_dicom_series, read_volume
from radassist.lung import preprocess as pre
from radassist.results import Detection, read_seg_nrrd
from radassist.volume import Geometry, Volume


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def flipped_volume(array: np.ndarray, spacing=(0.8, 0.9, 2.0)) -> Volume:
    """A volume stored with x and y reversed (as many NIfTI files are), so resampling must turn it."""
    return Volume(array=array, spacing=spacing, origin=(40.0, 30.0, -10.0),
                  direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))


# -- resampling ---------------------------------------------------------------------------------------------------

def test_resampling_factor_is_original_over_target_spacing():
    factor = pre.resampling_factor((0.7, 0.7, 2.5), (None, 1.4, 1.25))
    assert np.allclose(factor, [1.0, 0.5, 2.0])


def test_axis_aligned_grid_covers_the_same_box_with_counts_from_the_factor():
    volume = flipped_volume(np.zeros((10, 20, 30), np.int16))
    grid = pre.axis_aligned_grid(volume.geometry, (None, None, 1.0))
    assert grid.direction == pre.IDENTITY_DIRECTION
    assert grid.shape == (20, 20, 30)  # z: 10 slices x 2.0 mm / 1.0 mm
    assert np.allclose(grid.spacing, (0.8, 0.9, 1.0))

    def box(geometry: Geometry) -> np.ndarray:
        nz, ny, nx = geometry.shape
        corners = np.array([[i, j, k] for i in (-0.5, nx - 0.5) for j in (-0.5, ny - 0.5) for k in (-0.5, nz - 0.5)])
        world = geometry.ijk_to_world(corners)
        return np.stack([world.min(axis=0), world.max(axis=0)])

    assert np.allclose(box(grid), box(volume.geometry))
    uneven = pre.axis_aligned_grid(volume.geometry, (3.0, None, None))  # 24 mm / 3 mm = 8 columns exactly
    assert uneven.shape[2] == 8 and np.isclose(uneven.spacing[0], 3.0)


def test_resampling_keeps_a_feature_at_its_world_position():
    array = np.full((12, 24, 24), -1000, np.int16)
    array[6, 5, 18] = 1000
    volume = flipped_volume(array)
    bright_world = volume.geometry.zyx_to_world(np.array([6, 5, 18]))
    resampled = pre.resample_volume(volume, (None, None, 1.0))
    assert resampled.array.dtype == np.float32
    peak = np.array(np.unravel_index(np.argmax(resampled.array), resampled.shape))
    assert np.linalg.norm(resampled.geometry.zyx_to_world(peak) - bright_world) <= 1.0


# -- lung mask ----------------------------------------------------------------------------------------------------

def test_otsu_threshold_splits_two_populations():
    rng = np.random.default_rng(0)
    lung, tissue = rng.normal(-850, 80, 5000), rng.normal(40, 80, 5000)
    threshold = pre.otsu_threshold(np.concatenate([lung, tissue]))
    assert (lung < threshold).mean() > 0.99 and (tissue > threshold).mean() > 0.99
    from skimage.filters import threshold_otsu

    assert abs(threshold - threshold_otsu(np.concatenate([lung, tissue]))) < 15.0  # one histogram bin


def test_lung_slice_range_drops_end_slices_with_little_lung():
    mask = np.zeros((6, 10, 10), bool)
    mask[1, 0, 0] = True  # one voxel: an edge slice with little lung
    mask[2:5, 2:8, 2:8] = True
    assert pre.lung_slice_range(mask, 0.05) == (2, 5)
    assert pre.lung_slice_range(np.zeros((3, 4, 4), bool), 0.05) == (0, 0)


def test_outside_air_is_removed_and_inside_air_kept():
    low = np.ones((2, 20, 20), bool)
    low[:, 3:17, 3:17] = False  # the body wall
    low[:, 6:14, 6:14] = True  # a lung
    kept = pre.remove_outside_air(low)
    assert kept[:, 6:14, 6:14].all() and not kept[:, 0].any() and kept.sum() == 2 * 64


def test_lung_mask_matches_the_slicer_segmentation_of_a_real_chest_ct(test_data: Path):
    volume = read_volume(test_data / "slicer" / "CTChest4.nrrd")
    reference = read_seg_nrrd(test_data / "slicer" / "Segmentation.seg.nrrd")
    assert reference.geometry.same_grid(volume.geometry)
    lungs = reference.mask("right lung") | reference.mask("left lung")  # labels 5 and 6
    mask = pre.lung_mask(volume)
    assert dice(mask, lungs) > 0.9
    # the same through the coarse-grid path the pipeline uses
    via_grid = pre.mask_on_grid(pre.lung_mask_volume(volume), volume.geometry)
    assert dice(via_grid, lungs) > 0.9


def test_lung_mask_finds_lung_bases_and_skips_bowel_gas(test_data: Path):
    folder = test_data / "ct" / "chest_abdomen_example"
    volume = read_volume(folder / "example_ct_sm.nii.gz")
    labels = read_volume(folder / "example_seg.nii.gz").array
    lobes = (labels >= 10) & (labels <= 14)
    mask = pre.lung_mask(volume)
    assert dice(mask, lobes) > 0.7
    assert not (mask & (volume.array < -950) & ~lobes).sum() > 0.05 * mask.sum()  # colon gas is not lung


def test_abdomen_scan_and_table_mattress_give_no_lung(test_data: Path):
    volume = read_dicom_series(test_data / "ct" / "chest_abdomen_example" / "dicom")
    assert not pre.lung_mask_volume(volume).array.any()


# -- intensity ----------------------------------------------------------------------------------------------------

def test_window_to_unit_clips_and_scales():
    out = pre.window_to_unit(np.array([-2000.0, -1350.0, -600.0, 150.0, 900.0]), -1350.0, 150.0)
    assert out.dtype == np.float32 and np.allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_clahe_raises_local_contrast_within_unit_range():
    rng = np.random.default_rng(1)
    image = np.full((64, 64), 0.2, np.float32)
    image[:, 32:] = 0.8
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)  # faint texture on each half
    out = pre.apply_clahe(image, 0.03, (16, 16))
    assert out.shape == image.shape and out.min() >= 0.0 and out.max() <= 1.0
    assert out[:, :28].std() > 2 * image[:, :28].std()
    assert np.array_equal(pre.apply_clahe(np.zeros((8, 8)), 0.01), np.zeros((8, 8)))


# -- slabs --------------------------------------------------------------------------------------------------------

def test_slab_ranges_cover_the_scan_with_the_configured_thickness_and_stride():
    ranges = pre.slab_ranges(100, 1.25, 7.5, 7.5)
    assert ranges[0] == (0, 6) and all(stop - start == 6 for start, stop in ranges)
    assert ranges[-1][1] == 100 and ranges[1][0] == 6
    overlapping = pre.slab_ranges(100, 1.25, 7.5, 3.75)
    assert overlapping[1] == (3, 9) and overlapping[-1][1] == 100
    assert pre.slab_ranges(4, 1.25, 7.5, 7.5) == [(0, 4)]
    assert pre.slab_ranges(0, 1.0, 7.5, 7.5) == []


def test_maximum_projection_is_the_max_over_each_range():
    array = np.random.default_rng(2).normal(size=(9, 4, 5))
    out = pre.maximum_projection(array, [(0, 3), (3, 9)])
    assert np.array_equal(out[1], array[3:9].max(axis=0))


def _dot_volume() -> tuple[Volume, np.ndarray, np.ndarray]:
    array = np.full((24, 40, 48), -850, np.int16)
    array[10, 20, 30] = 100
    volume = Volume(array=array, spacing=(0.75, 0.75, 1.25), origin=(-10.0, 5.0, -30.0))
    mask = np.ones(array.shape, bool)
    return volume, mask, volume.geometry.zyx_to_world(np.array([10, 20, 30]))


def test_slab_stack_keeps_z_ranges_and_maps_pixels_to_world():
    volume, mask, dot = _dot_volume()
    stack = pre.make_slab_stack(volume, mask, pre.SlabConfig(clahe_clip_limit=0.01))
    assert len(stack) == 4 and stack.image_size == (40, 48)
    assert [tuple(r) for r in stack.z_ranges] == [(0, 6), (6, 12), (12, 18), (18, 24)]
    assert stack.images.dtype == np.float32 and 0.0 <= stack.images.min() and stack.images.max() <= 1.0
    holding = 1  # slices 6..11 hold slice 10
    assert np.unravel_index(np.argmax(stack.images[holding]), (40, 48)) == (20, 30)
    assert stack.images[holding].max() > stack.images[0].max()
    z_low, z_high = stack.z_extent_mm(holding)
    assert z_low < dot[2] < z_high and np.isclose(z_high - z_low, 7.5)
    pixel = stack.world_to_pixel(dot)[0]
    assert np.allclose(pixel, [30.5, 20.5])  # pixel centres sit at index + 0.5
    back = stack.pixel_to_world(holding, pixel[0], pixel[1])[0]
    assert np.allclose(back[:2], dot[:2]) and z_low < back[2] < z_high


def test_slab_stack_masks_outside_the_lungs_and_needs_an_axis_aligned_grid():
    volume, mask, _ = _dot_volume()
    mask[:] = False
    mask[:, 5:15, 5:15] = True
    stack = pre.make_slab_stack(volume, mask, pre.SlabConfig(mask_margin_mm=0.0))
    assert stack.images[1, 20, 30] < 0.01  # the dot is outside the lung mask: the window low value
    with pytest.raises(ValueError, match="axis-aligned"):
        pre.make_slab_stack(flipped_volume(np.zeros((8, 8, 8), np.int16)), np.ones((8, 8, 8), bool))


@pytest.fixture(scope="module")
def small_phantom():
    from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct

    return make_chest_ct(0, ChestPhantomConfig(shape=(75, 192, 256), spacing=(1.05, 1.05, 1.875)))


def holds(boxes: np.ndarray, pixel: np.ndarray) -> bool:
    return bool(np.any((boxes[:, 0] <= pixel[0]) & (pixel[0] <= boxes[:, 2])
                       & (boxes[:, 1] <= pixel[1]) & (pixel[1] <= boxes[:, 3])))


def test_annotations_become_pixel_boxes_on_the_slabs_that_show_them(small_phantom):
    stack, boxes = pre.annotations_to_slab_boxes(small_phantom.volume, small_phantom.nodules)
    assert len(boxes) == len(stack) > 5
    assert np.allclose(stack.geometry.spacing[2], 1.25, atol=0.01)
    for nodule in small_phantom.nodules.items:
        centre_pixel = stack.world_to_pixel(np.asarray(nodule.center))[0]
        showing = [s for s, b in enumerate(boxes) if holds(b, centre_pixel)]
        assert showing, f"nodule at {nodule.center} is on no slab"
        for s in showing:  # each slab showing it overlaps the nodule in z
            z_low, z_high = stack.z_extent_mm(s)
            assert z_low < nodule.box_max[2] and z_high > nodule.box_min[2]
        box = next(b for b in boxes[showing[0]]
                   if b[0] <= centre_pixel[0] <= b[2] and b[1] <= centre_pixel[1] <= b[3])
        width_mm = (box[2] - box[0]) * stack.geometry.spacing[0]
        assert abs(width_mm - nodule.size[0]) < 2 * stack.geometry.spacing[0]
    # the slabs Lung-DETR reads hold the lungs (masked CLAHE image, not blank)
    assert stack.images.max() > 0.5 and stack.lung_fraction.max() > 0.1


def test_nodule_on_no_slab_when_outside_the_grid():
    volume, mask, _ = _dot_volume()
    stack = pre.make_slab_stack(volume, mask)
    far = Detection(center=(500.0, 500.0, 0.0), size=(5.0, 5.0, 5.0), probability=1.0)
    assert all(len(b) == 0 for b in pre.nodule_boxes_on_slabs(stack, [far]))


def test_slab_preview_volume_is_a_running_maximum_along_z():
    volume, _, _ = _dot_volume()
    preview = pre.slab_preview_volume(volume, 7.5)
    assert preview.geometry.same_grid(volume.geometry)
    assert preview.array[8, 20, 30] == 100 and preview.array[12, 20, 30] == 100
    assert preview.array[0, 20, 30] == -850
