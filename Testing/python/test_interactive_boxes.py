"""Boxes from the command line and from Slicer ROIs onto the slices the model sees, whatever the image's
orientation; the paper's preprocessing; the propagation's stop rule and mask box helpers (no network needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radassist.errors import InputError
from radassist.interactive.boxes import (BoxPrompt, box_around_mask, box_from_numbers, boxes_from_roi_file,
                                         parse_box_numbers, voxel_box)
from radassist.interactive.postprocess import clip_to_box, logits_to_mask, mask_box, tightened_box
from radassist.interactive.preprocess import (IntensityWindow, box_scale, default_window, parse_window,
                                              prepare_slices, resized_shape, window_to_uint8)
from radassist.interactive.propagate import PropagationConfig, propagate_box
from radassist.results import Detection, Detections, write_roi_markups
from radassist.runtime.orientation import AxialReorientation
from radassist.volume import Geometry, lps_to_ras

FLIPPED = (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)  # NIfTI-style RAS storage, in LPS
SAGITTAL_STACK = (0, 0, 1.0, 1.0, 0, 0, 0, 1.0, 0)  # i -> S, j -> L, k -> P


@pytest.mark.parametrize("direction", [(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), FLIPPED, SAGITTAL_STACK])
def test_a_box_around_a_mask_comes_back_to_the_same_voxels(direction):
    geometry = Geometry((20, 30, 40), (0.8, 0.9, 2.5), (10.0, -20.0, 5.0), direction)
    mask = np.zeros(geometry.shape, dtype=bool)
    mask[5:9, 10:18, 20:31] = True
    box = box_around_mask(mask, geometry)
    placed = voxel_box(box, geometry)
    reorientation = AxialReorientation.of(geometry)
    canonical = reorientation.to_canonical(mask)
    z, y, x = (np.flatnonzero(canonical.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    assert (placed.z0, placed.z1, placed.y0, placed.y1, placed.x0, placed.x1) == \
        (z[0], z[-1], y[0], y[-1], x[0], x[-1])


def test_margins_grow_the_box_and_stay_in_the_image():
    geometry = Geometry((10, 50, 50))
    mask = np.zeros(geometry.shape, dtype=bool)
    mask[0:3, 10:20, 40:50] = True
    placed = voxel_box(box_around_mask(mask, geometry, margin_px=3, margin_slices=2), geometry)
    assert (placed.z0, placed.z1, placed.y0, placed.y1, placed.x0, placed.x1) == (0, 4, 7, 22, 37, 49)


def test_a_box_thinner_than_a_voxel_takes_the_nearest_slice_and_one_outside_is_refused():
    geometry = Geometry((10, 50, 50), (1.0, 1.0, 5.0))
    thin = BoxPrompt((10.0, 10.0, 21.0), (20.0, 20.0, 22.0))  # between slices 4 (20 mm) and 5 (25 mm)
    placed = voxel_box(thin, geometry)
    assert placed.z0 == placed.z1 == 4 and (placed.x0, placed.x1) == (10, 20)
    with pytest.raises(ValueError, match="outside the image"):
        voxel_box(BoxPrompt((100.0, 0.0, 0.0), (120.0, 10.0, 10.0)), geometry)


def test_command_line_numbers():
    geometry = Geometry((1, 100, 200))
    assert parse_box_numbers("1, 2,3,4") == [1, 2, 3, 4]
    box = box_from_numbers([10, 20, 50, 60], geometry, "lesion")
    placed = voxel_box(box, geometry)
    assert (placed.x0, placed.y0, placed.x1, placed.y1, placed.z0) == (10, 20, 50, 60, 0)
    with pytest.raises(ValueError, match="6 numbers"):
        parse_box_numbers("1,2,3")
    with pytest.raises(ValueError, match="2-D image"):
        box_from_numbers([1, 2, 3, 4], Geometry((5, 10, 10)))
    box3d = box_from_numbers([5, 6, 7, 1, 2, 3], Geometry((5, 10, 10)))
    assert box3d.lower_lps == (1, 2, 3) and box3d.upper_lps == (5, 6, 7)


def test_slicer_rois_in_lps_and_ras_give_the_same_box(tmp_path):
    detections = Detections([Detection((10.0, -20.0, 30.0), (8.0, 6.0, 4.0), 1.0, "tumour"),
                             Detection((0.0, 0.0, 0.0), (2.0, 2.0, 2.0), 1.0, "node")])
    lps = write_roi_markups(detections, tmp_path / "lps.mrk.json")
    document = json.loads(lps.read_text())
    for markup in document["markups"]:
        markup["coordinateSystem"] = "RAS"
        markup["center"] = list(lps_to_ras(np.array(markup["center"])))
        markup["orientation"] = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    ras = tmp_path / "ras.mrk.json"
    ras.write_text(json.dumps(document))
    for path in (lps, ras):
        boxes = boxes_from_roi_file(path)
        assert [b.name for b in boxes] == ["tumour 1", "node 2"]
        assert boxes[0].lower_lps == pytest.approx((6.0, -23.0, 28.0))
        assert boxes[0].upper_lps == pytest.approx((14.0, -17.0, 32.0))
    with pytest.raises(InputError, match="not found"):
        boxes_from_roi_file(tmp_path / "none.mrk.json")


def test_the_paper_windows():
    ct = np.array([[[-1000.0, -160.0, 40.0, 240.0, 3000.0]]])
    assert window_to_uint8(ct, default_window("CT")).tolist() == [[[0, 0, 127, 255, 255]]]
    mr = np.zeros((1, 1, 1000))
    mr[0, 0, 1:] = np.arange(1.0, 1000.0)
    out = window_to_uint8(mr, default_window("MR"))
    assert out[0, 0, 0] == 0 and out[0, 0, 1] == 0 and out[0, 0, -1] == 255  # 0.5 / 99.5 percentiles of non-zero
    assert parse_window("ct-lung") == IntensityWindow("fixed", -1350.0, 150.0)
    assert parse_window("-100,300") == IntensityWindow("fixed", -100.0, 300.0)
    with pytest.raises(ValueError):
        parse_window("bright")


def test_slices_become_padded_256_inputs_and_boxes_follow_the_resize():
    slices = np.zeros((2, 120, 240), dtype=np.uint8)
    slices[:, 30:60, 100:140] = 200
    inputs = prepare_slices(slices)
    assert inputs.shape == (2, 3, 256, 256) and inputs.min() == 0 and inputs.max() == 1
    assert resized_shape(120, 240) == (128, 256) and box_scale(120, 240) == pytest.approx(256 / 240)
    assert not inputs[:, :, 128:].any()  # padding at the bottom
    assert inputs[0, 0, 40, 120] == pytest.approx(1.0)


def test_logits_go_back_to_the_slice_grid():
    logits = -np.ones((256, 256), dtype=np.float32)
    logits[32:64, 128:192] = 5  # in the resized 128 x 256 frame of a 120 x 240 slice
    mask = logits_to_mask(logits, 120, 240)
    assert mask.shape == (120, 240)
    assert mask_box(mask).tolist() == pytest.approx([120, 30, 179, 59], abs=1)


def test_tightened_box_and_clip():
    previous = np.zeros((50, 50), dtype=bool)
    previous[20:25, 10:15] = True
    limit = np.array([0, 0, 12, 49.0])
    assert tightened_box(previous, limit, 3).tolist() == [7, 17, 12, 27]
    assert tightened_box(np.zeros((50, 50), bool), limit, 3) is None
    assert clip_to_box(np.ones((5, 5), bool), np.array([1, 1, 2, 3])).sum() == 6


def test_propagation_walks_both_ways_and_stops_where_the_object_ends():
    from radassist.interactive.boxes import VoxelBox

    truth = {z: (z - 10) ** 2 < 20 for z in range(0, 20)}  # the object covers slices 6..14
    calls = []

    def segment(index, box, ahead):
        calls.append(index)
        mask = np.zeros((30, 30), dtype=bool)
        if truth[index]:
            mask[10:20, 10:20] = True
            mask[0, 0] = True  # outside the box: clipped away
        return mask, 0.9

    box = VoxelBox(2, 18, 5, 25, 5, 25)
    # every slice (step_mm 0): the 1 mm slices here would otherwise be visited 3 mm apart
    result = propagate_box(box, segment, 1.0, PropagationConfig(step_mm=0))
    segmented = [box.z0 + i for i in range(result.masks.shape[0]) if result.masks[i].any()]
    assert segmented == list(range(6, 15))
    assert result.start_slice == 10 and result.stopped == {"up": 15, "down": 5}
    assert sorted(calls) == list(range(5, 16))  # one slice past each end, nothing beyond
    assert not result.masks[:, 0, 0].any()


def test_a_slice_step_encodes_fewer_slices_and_still_finds_both_ends():
    from radassist.interactive.boxes import VoxelBox

    def disc(index: int) -> np.ndarray:  # a ball of radius 15 slices centred on slice 22
        radius = np.sqrt(max(225 - (index - 22) ** 2, 0))
        rows, cols = np.mgrid[:40, :40]
        return (rows - 20) ** 2 + (cols - 20) ** 2 <= radius ** 2 if radius > 0 else np.zeros((40, 40), bool)

    calls = []

    def segment(index, box, ahead):
        calls.append(index)
        return disc(index), 0.9

    box = VoxelBox(2, 44, 0, 39, 0, 39)
    truth = np.stack([disc(z) for z in box.slices])
    every = propagate_box(box, segment, 1.0, PropagationConfig(tighten_margin=40, step_mm=0))
    every_calls, calls[:] = len(calls), []
    stepped = propagate_box(box, segment, 1.0, PropagationConfig(tighten_margin=40, step_mm=3.0), slice_mm=1.0)
    assert len(calls) < 0.6 * every_calls
    assert np.array_equal(every.masks, truth)
    segmented = [box.z0 + i for i in range(stepped.masks.shape[0]) if stepped.masks[i].any()]
    assert segmented == list(range(8, 37))  # the ball's slices, no more, no fewer
    overlap = 2 * (stepped.masks & truth).sum() / (stepped.masks.sum() + truth.sum())
    assert overlap > 0.95  # interpolated slices follow the ball's changing radius


def test_interpolation_between_two_discs_is_a_disc_in_between():
    from radassist.interactive.propagate import interpolate

    rows, cols = np.mgrid[:60, :60]
    small = (rows - 30) ** 2 + (cols - 30) ** 2 <= 5 ** 2
    large = (rows - 30) ** 2 + (cols - 30) ** 2 <= 15 ** 2
    middle = interpolate(small, large, 0.5)
    assert abs(np.sqrt(middle.sum() / np.pi) - 10) < 0.7
    assert np.array_equal(interpolate(small, large, 0.0), small)


def test_small_objects_get_a_crop_that_holds_the_box_and_survives_small_moves():
    from radassist.interactive.boxes import VoxelBox
    from radassist.interactive.crops import crop_for_box

    big = crop_for_box(VoxelBox(0, 0, 100, 300, 100, 300), 512, 512)
    assert big.full and (big.height, big.width) == (512, 512)
    assert crop_for_box(VoxelBox(0, 0, 250, 260, 250, 260), 512, 512, context=0).full
    crops = set()
    for shift in range(0, 6):  # the annotator nudges a 12-pixel box a few pixels
        box = VoxelBox(0, 0, 200 + shift, 211 + shift, 300 - shift, 311 - shift)
        crop = crop_for_box(box, 512, 512)
        assert not crop.full and crop.height == crop.width == 256  # 3 x 12 px, but never under the 256 frame
        assert crop.y0 <= box.y0 and box.y1 < crop.y0 + crop.height
        assert crop.x0 <= box.x0 and box.x1 < crop.x0 + crop.width
        crops.add(crop)
    assert len(crops) <= 2  # the snapped centre keeps the same square (and its cached embeddings) most of the time
    corner = crop_for_box(VoxelBox(0, 0, 0, 9, 500, 511), 512, 512)
    assert corner.y0 == 0 and corner.x0 + corner.width == 512  # kept inside the image at its edges


def test_a_slice_the_model_rates_poorly_ends_the_object():
    """Past an organ's end the model still outlines something, rated low by its IoU head: that ends the walk."""
    from radassist.interactive.boxes import VoxelBox

    def segment(index, box, ahead):
        mask = np.zeros((30, 30), dtype=bool)
        mask[10:20, 10:20] = True  # never empty ...
        return mask, 0.9 if 6 <= index <= 14 else 0.5  # ... but rated poorly outside slices 6..14

    box = VoxelBox(2, 18, 5, 25, 5, 25)
    result = propagate_box(box, segment, 1.0, PropagationConfig(step_mm=0))
    segmented = [box.z0 + i for i in range(result.masks.shape[0]) if result.masks[i].any()]
    assert segmented == list(range(6, 15))
    trusting = propagate_box(box, segment, 1.0, PropagationConfig(step_mm=0, min_iou=0.0))
    assert trusting.masks.any(axis=(1, 2)).all()  # without the rule it runs to the box's ends
