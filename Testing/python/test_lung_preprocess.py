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


# -- lung windows and the cropped grid ----------------------------------------------------------------------------

def test_lung_windows_hold_each_slabs_lung_in_sides_of_whole_strides():
    lung = np.zeros((3, 100, 130), bool)
    lung[0, 40:50, 60:75] = True  # small: a 32x32 window centred on it
    lung[1, 2:90, 1:130] = True  # near the edges: shifted inward, and capped at the image (130 is no multiple)
    windows = pre.lung_windows(lung, 32)  # slab 2 has no lung: the box of all slabs' lung
    assert windows.shape == (3, 4) and windows.dtype == np.int64
    for index, (y0, x0, y1, x1) in enumerate(windows):
        assert 0 <= y0 < y1 <= 100 and 0 <= x0 < x1 <= 130
        inside = np.zeros_like(lung[0])
        inside[y0:y1, x0:x1] = True
        assert not (lung[index] & ~inside).any(), index
    assert tuple(windows[0]) == (29, 52, 61, 84)  # 10 rows grown by 22 (11 each side), 15 columns by 17 (8, 9)
    assert tuple(windows[1]) == (0, 0, 96, 130)  # 88 rows -> 96, moved to start at 0; 129 columns -> 160, capped at 130
    assert tuple(windows[2]) == tuple(pre.lung_windows(lung[:2].any(axis=0, keepdims=True), 32)[0])
    assert tuple(pre.lung_windows(np.zeros((1, 20, 30), bool), 32)[0]) == (0, 0, 20, 30)


def test_cropping_a_grid_keeps_every_voxel_where_it_was():
    geometry = flipped_volume(np.zeros((10, 20, 30), np.int16)).geometry
    crop = geometry.crop((2, 5, 7), (9, 15, 40))  # stop beyond the grid is clipped to it
    assert crop.shape == (7, 10, 23)
    for zyx in ([0, 0, 0], [6, 9, 22], [3, 4, 5]):
        assert np.allclose(crop.zyx_to_world(np.array(zyx)), geometry.zyx_to_world(np.array(zyx) + [2, 5, 7]))


def _mask_volume(shape=(20, 30, 34), spacing=(2.0, 2.0, 2.0)) -> Volume:
    mask = np.zeros(shape, np.uint8)
    mask[6:14, 8:20, 5:15] = 1
    mask[8:12, 10:16, 20:28] = 1
    return Volume(array=mask, spacing=spacing, origin=(-30.0, -20.0, -15.0))


def test_growing_a_mask_on_its_box_equals_growing_it_everywhere():
    from scipy import ndimage

    mask = _mask_volume()
    grown = pre.grow_mask(mask, 5.0)
    distance = ndimage.distance_transform_edt(mask.array == 0, sampling=mask.geometry.spacing_zyx)
    assert np.array_equal(grown.array, (distance <= 5.0).astype(np.uint8))
    assert grown.array.sum() > mask.array.sum()


def test_the_lung_box_on_a_fine_grid_holds_all_of_the_resampled_mask():
    mask = _mask_volume()
    fine = pre.axis_aligned_grid(mask.geometry, (0.7, 0.7, 1.25))
    everywhere = pre.mask_on_grid(mask, fine)
    start, stop = pre.mask_box_on_grid(mask, fine)
    inside = np.zeros_like(everywhere)
    inside[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]] = True
    assert everywhere.any() and not (everywhere & ~inside).any()
    assert np.prod(stop - start) < 0.5 * everywhere.size  # and it is much smaller than the grid
    z_only_start, z_only_stop = pre.mask_box_on_grid(mask, fine, in_plane=False)
    assert tuple(z_only_start[1:]) == (0, 0) and tuple(z_only_stop[1:]) == fine.shape[1:]
    assert (z_only_start[0], z_only_stop[0]) == (start[0], stop[0])


def test_slabs_without_windows_are_those_of_the_whole_resampled_grid(small_phantom):
    """Resampling only the lungs' slices must not change a pixel of what the full-grid route gives."""
    config = pre.SlabConfig(lung_windows=False)
    mask_volume = pre.lung_mask_volume(small_phantom.volume)
    stack = pre.slabs_from_mask(small_phantom.volume, mask_volume, config)
    resampled = pre.resample_volume(small_phantom.volume, config.target_spacing_mm)
    mask = pre.mask_on_grid(pre.grow_mask(mask_volume, config.mask_margin_mm), resampled.geometry)
    reference = pre.make_slab_stack(*pre.crop_to_lungs(resampled, mask), config)
    assert stack.windows is None and stack.image_size == resampled.shape[1:]
    assert np.array_equal(stack.images, reference.images)
    assert stack.geometry.same_grid(reference.geometry)


def test_windowed_slabs_show_all_the_lung_at_the_same_world_positions(small_phantom):
    mask_volume = pre.lung_mask_volume(small_phantom.volume)
    whole = pre.slabs_from_mask(small_phantom.volume, mask_volume, pre.SlabConfig(lung_windows=False))
    windowed = pre.slabs_from_mask(small_phantom.volume, mask_volume, pre.SlabConfig())
    assert len(windowed) == len(whole) and windowed.windows is not None
    assert np.array_equal(windowed.z_ranges, whole.z_ranges)
    area = np.mean([(y1 - y0) * (x1 - x0) for y0, x0, y1, x1 in windowed.windows])
    assert area < 0.75 * whole.image_size[0] * whole.image_size[1]  # the network sees much less
    for nodule in small_phantom.nodules.items:  # each nodule's centre is inside the window of the slabs showing it
        centre = np.asarray(nodule.center)
        pixel = windowed.world_to_pixel(centre)[0]
        assert np.allclose(windowed.pixel_to_world(0, *pixel)[0][:2], centre[:2])
        for index in range(len(windowed)):
            z_low, z_high = windowed.z_extent_mm(index)
            if z_low <= centre[2] <= z_high:
                y0, x0, y1, x1 = windowed.window(index)
                assert x0 <= pixel[0] <= x1 and y0 <= pixel[1] <= y1
                assert windowed.window_image(index).shape == (y1 - y0, x1 - x0)
