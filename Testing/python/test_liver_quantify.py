"""Quantification of any liver segmentation: exact volumes (checked on a real CT's label map), tumour diameters,
burden, Slicer files with overlapping layers, and refusal of segmentations on another grid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radassist.errors import InputError
from radassist.io import read_volume
from radassist.liver.grid import align_to_grid
from radassist.liver.quantify import liver_and_tumour_segments, longest_axial_diameter, quantify_labelmap
from radassist.results import LabelMap, Segment, read_seg_nrrd, terminology_for, write_seg_nrrd
from radassist.volume import Geometry, Volume

GEOMETRY = Geometry((10, 30, 40), spacing=(0.5, 0.8, 2.0), origin=(-10.0, 5.0, 100.0))


def _hand_drawn() -> LabelMap:
    """A liver and two tumours as a Slicer user draws them: tumours in their own layer, over the liver."""
    liver = np.zeros(GEOMETRY.shape, dtype=bool)
    liver[1:9, 2:28, 2:38] = True
    tumour_a = np.zeros_like(liver)
    tumour_a[3:6, 5:10, 5:15] = True  # 3 slices of 5 rows x 10 columns
    tumour_b = np.zeros_like(liver)
    tumour_b[6, 20:22, 30:31] = True
    segments = [Segment("liver", 1), Segment("Tumor 1", 2), Segment("tumor 2", 3)]
    return LabelMap.from_masks([liver, tumour_a, tumour_b], segments, GEOMETRY)


def test_hand_drawn_overlapping_segments_are_measured():
    labelmap = _hand_drawn()
    assert labelmap.layer_count == 2
    voxel_ml = 0.5 * 0.8 * 2.0 / 1000.0
    result = quantify_labelmap(labelmap)
    assert result.liver_voxels == 8 * 26 * 36  # the tumours lie inside the liver: the organ is the union
    assert result.tumour_voxels == 150 + 2
    assert math.isclose(result.liver_volume_ml, 8 * 26 * 36 * voxel_ml)
    assert math.isclose(result.tumour_burden_percent, 100 * 152 / (8 * 26 * 36))
    big, small = result.tumours
    assert (big.number, big.voxels, small.voxels) == (1, 150, 2)
    assert math.isclose(big.longest_axial_diameter_mm, math.hypot(5 * 0.8, 10 * 0.5))
    assert math.isclose(small.longest_axial_diameter_mm, math.hypot(2 * 0.8, 1 * 0.5))
    assert big.axial_slice in (3, 4, 5) and small.axial_slice == 6
    centre = GEOMETRY.zyx_to_world(np.array([4.0, 7.0, 9.5]))
    assert np.allclose(big.center_lps, centre)
    report = result.report()
    assert [row["structure"] for row in report.rows] == ["liver", "tumour 1", "tumour 2"]
    assert report.summary["tumour_count"] == 2 and report.units["volume_ml"] == "mL"


def test_segments_are_found_by_terminology_and_by_lits_labels():
    labels = np.zeros(GEOMETRY.shape, dtype=np.uint8)
    labels[2:8, 5:20, 5:20] = 1
    labels[4:6, 8:12, 8:12] = 2
    coded = LabelMap(labels, GEOMETRY, [Segment("Organ A", 1, terminology=terminology_for("liver")),
                                        Segment("Finding", 2, terminology=terminology_for("liver tumour"))])
    liver, tumours = liver_and_tumour_segments(coded)
    assert [s.name for s in liver] == ["Organ A"] and [s.name for s in tumours] == ["Finding"]
    bare = LabelMap(labels, GEOMETRY, [Segment("Segment_1", 1), Segment("Segment_2", 2)])
    assert quantify_labelmap(bare).tumour_voxels == 32
    other = LabelMap(labels, GEOMETRY, [Segment("kidney", 1), Segment("spleen", 2)])
    with pytest.raises(InputError, match="no liver segment found.*'kidney' \\(label 1\\)"):
        quantify_labelmap(other)
    assert quantify_labelmap(other, liver_labels=[1], tumour_labels=[2]).tumour_voxels == 32


def test_mean_hu_with_the_ct():
    labelmap = _hand_drawn()
    image = np.full(GEOMETRY.shape, 90, dtype=np.int16)
    image[labelmap.labels[1] > 0] = 40
    result = quantify_labelmap(labelmap, Volume.from_geometry(image, GEOMETRY))
    assert result.parenchyma_mean_hu == 90.0 and [t.mean_hu for t in result.tumours] == [40.0, 40.0]


def test_diameter_follows_the_axial_plane_whatever_the_voxel_order():
    """A sagittally stored grid (array axis 2 runs superior): the axial diameter uses the in-plane axes."""
    direction = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0)  # i -> S, j -> P, k -> L
    geometry = Geometry((12, 10, 8), spacing=(3.0, 0.7, 0.9), direction=direction)
    mask = np.zeros(geometry.shape, dtype=bool)
    mask[2:8, 3:5, 4] = True  # 6 voxels along k (left-right, 0.9 mm), 2 along j (0.7 mm), one i (axial) slice
    diameter, axial = longest_axial_diameter(mask, geometry)
    assert math.isclose(diameter, math.hypot(6 * 0.9, 2 * 0.7)) and axial == 4


def test_real_ct_liver_volume_is_voxel_count_times_voxel_volume(test_data):
    """The TotalSegmentator example: liver = label 5, 38,634 voxels of 27 mm^3."""
    folder = test_data / "ct" / "chest_abdomen_example"
    seg = read_volume(folder / "example_seg.nii.gz")
    labels = seg.array.astype(np.uint8)
    segments = [Segment(f"Segment_{v}", int(v)) for v in np.unique(labels) if v > 0]
    labelmap = LabelMap(labels, seg.geometry, segments)
    ct = read_volume(folder / "example_ct_sm.nii.gz")
    aligned = align_to_grid(labelmap, ct.geometry)
    result = quantify_labelmap(aligned, ct, liver_labels=[5], tumour_labels=[])
    count = int((labels == 5).sum())
    assert count == 38634 and result.liver_voxels == count
    assert math.isclose(result.voxel_volume_mm3, float(np.prod(seg.spacing)))
    assert math.isclose(result.liver_volume_ml, count * float(np.prod(seg.spacing)) / 1000.0)
    assert result.tumours == [] and result.tumour_burden_percent == 0.0
    assert result.parenchyma_mean_hu is not None and 0 < result.parenchyma_mean_hu < 200  # soft tissue HU


def test_slicer_cropped_file_is_padded_back_and_other_grids_refused(tmp_path):
    labelmap = _hand_drawn()
    cropped_geometry = Geometry((8, 26, 36), GEOMETRY.spacing, tuple(GEOMETRY.zyx_to_world(np.array([1, 2, 2]))))
    cropped = LabelMap(labelmap.labels[:, 1:9, 2:28, 2:38], cropped_geometry, labelmap.segments)
    write_seg_nrrd(cropped, tmp_path / "cropped.seg.nrrd")
    restored = align_to_grid(read_seg_nrrd(tmp_path / "cropped.seg.nrrd"), GEOMETRY)
    assert np.array_equal(restored.labels, labelmap.labels)
    other = Geometry(GEOMETRY.shape, spacing=(1.0, 1.0, 2.0), origin=GEOMETRY.origin)
    with pytest.raises(InputError, match="does not match the CT.*40x30x10 voxels of 1x1x2 mm"):
        align_to_grid(LabelMap(labelmap.labels, other, labelmap.segments), GEOMETRY, "drawn.seg.nrrd")
    shifted = Geometry(GEOMETRY.shape, GEOMETRY.spacing, tuple(np.add(GEOMETRY.origin, (0.25, 0, 0))))
    with pytest.raises(InputError, match="drawn.seg.nrrd: the segmentation is on a grid"):
        align_to_grid(LabelMap(labelmap.labels, shifted, labelmap.segments), GEOMETRY, "drawn.seg.nrrd")


def test_centroid_and_tumour_components_agree_with_scipy():
    from scipy import ndimage

    from radassist.liver.quantify import mask_centroid, tumour_components

    rng = np.random.default_rng(0)
    mask = ndimage.binary_opening(rng.random((20, 30, 40)) > 0.6)
    np.testing.assert_allclose(mask_centroid(mask), ndimage.center_of_mass(mask), rtol=0, atol=1e-9)
    tumours = np.zeros((20, 30, 40), bool)
    tumours[3:6, 4:8, 30:35] = True
    tumours[10:15, 20:28, 5:9] = True
    tumours[10, 10, 10] = True
    found = tumour_components(tumours)
    assert sorted(int(c.sum()) for _, c in found) == [1, 3 * 4 * 5, 5 * 8 * 4]
    rebuilt = np.zeros_like(tumours)
    for region, component in found:
        rebuilt[region] |= component
    assert np.array_equal(rebuilt, tumours)
    assert tumour_components(np.zeros((4, 4, 4), bool)) == []
