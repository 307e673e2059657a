"""Segmentation files: Slicer .seg.nrrd (real Slicer files round-tripped), NIfTI label maps, terminology."""

from __future__ import annotations

import json
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio

from radassist.errors import InputError
from radassist.results import (LabelMap, ReviewStatus, Segment, read_labelmap_nifti, read_seg_nrrd,
                               terminology_for, write_labelmap_nifti, write_seg_nrrd)
from radassist.results.label_nifti import sidecar_path
from radassist.results.seg_nrrd import reference_geometry_string
from radassist.results.terminology import (CATALOGUE, SLICER_GENERAL_ANATOMY, context_for, from_slicer_string,
                                           to_slicer_string)
from radassist.volume import Geometry

REAL_FILES = ["Segmentation.seg.nrrd", "SegmentationOverlapping.seg.nrrd"]


def assert_same_labelmap(a: LabelMap, b: LabelMap) -> None:
    assert a.geometry.same_grid(b.geometry, tolerance=1e-6)
    assert a.layer_count == b.layer_count
    assert [s.name for s in a.segments] == [s.name for s in b.segments]
    for sa, sb in zip(a.segments, b.segments):
        assert (sa.label_value, sa.layer, sa.segment_id, sa.status) == \
               (sb.label_value, sb.layer, sb.segment_id, sb.status)
        assert np.allclose(sa.color, sb.color, atol=1e-6)
        assert sa.terminology == sb.terminology
        assert np.array_equal(a.mask(sa), b.mask(sb)), sa.name


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_slicer_segmentation_round_trips(test_data: Path, tmp_path: Path, name: str) -> None:
    original = read_seg_nrrd(test_data / "slicer" / name)
    written = write_seg_nrrd(original, tmp_path / name)
    again = read_seg_nrrd(written)
    assert_same_labelmap(original, again)
    # The raw voxels of every segment match what slicerio itself reads from the original file.
    reference = slicerio.read_segmentation(str(test_data / "slicer" / name))
    for segment in again.segments:
        expected = slicerio.segment_mask(reference, segment.segment_id).transpose(2, 1, 0)
        assert np.array_equal(again.mask(segment), expected), segment.name


def test_real_file_contents_are_understood(test_data: Path) -> None:
    labelmap = read_seg_nrrd(test_data / "slicer" / "SegmentationOverlapping.seg.nrrd")
    assert labelmap.layer_count == 2 and labelmap.geometry.shape == (34, 128, 128)
    right = labelmap.segment("right lung")
    assert right.label_value == 5 and right.layer == 0
    assert right.status is ReviewStatus.IN_PROGRESS
    assert right.terminology == terminology_for("right lung")
    assert np.allclose(right.color, (0.0862745, 0.772549, 0.278431))
    overlap = [s for s in labelmap.segments if s.layer == 1]
    assert overlap and (labelmap.mask(overlap[0]) & (labelmap.labels[0] > 0)).any()
    # Right lung is on the patient's right: smaller LPS x than the left lung.
    right_x = labelmap.geometry.zyx_to_world(np.argwhere(labelmap.mask("right lung")).mean(axis=0))[0]
    left_x = labelmap.geometry.zyx_to_world(np.argwhere(labelmap.mask("left lung")).mean(axis=0))[0]
    assert right_x < left_x


def _synthetic_labelmap() -> LabelMap:
    geometry = Geometry(shape=(6, 8, 10), spacing=(0.8, 0.9, 2.5), origin=(-10.0, 20.0, 5.0),
                        direction=(0, 1, 0, -1, 0, 0, 0, 0, 1))
    liver = np.zeros(geometry.shape, bool)
    liver[1:5, 2:7, 2:9] = True
    tumour = np.zeros(geometry.shape, bool)
    tumour[2:4, 3:5, 4:6] = True  # inside the liver: overlaps, so it needs its own layer
    segments = [Segment("liver", 1, color=(0.8, 0.5, 0.4), terminology=terminology_for("liver"),
                        status=ReviewStatus.COMPLETED),
                Segment("liver tumour", 2, color=(0.9, 0.2, 0.2), terminology=terminology_for("liver tumour"),
                        status=ReviewStatus.FLAGGED, extra={"Reviewer": "AB"})]
    return LabelMap.from_masks([liver, tumour], segments, geometry)


def test_written_header_is_what_slicer_expects(tmp_path: Path) -> None:
    labelmap = _synthetic_labelmap()
    path = write_seg_nrrd(labelmap, tmp_path / "liver.seg.nrrd")
    header = nrrd.read_header(str(path))
    assert header["space"] == "left-posterior-superior"
    assert header["kinds"] == ["list", "domain", "domain", "domain"]
    assert list(header["sizes"]) == [2, 10, 8, 6]
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert header["Segmentation_ReferenceImageExtentOffset"] == "0 0 0"
    assert "Reference image geometry|" + reference_geometry_string(labelmap.geometry) in \
        header["Segmentation_ConversionParameters"]
    tags = header["Segment1_Tags"].split("|")
    assert "Segmentation.Status:flagged" in tags and "Reviewer:AB" in tags
    assert tags[-1] == ""  # older Slicer versions need the closing '|'
    assert header["Segment1_Layer"] == "1" and header["Segment1_LabelValue"] == "2"
    assert header["Segment0_Extent"] == "0 9 0 7 0 5"

    read_back = slicerio.read_segmentation(str(path))
    assert np.allclose(read_back["ijkToLPS"], labelmap.geometry.ijk_to_lps)
    tumour = slicerio.segment_from_name(read_back, "liver tumour")
    assert tumour["status"] == "flagged" and tumour["tags"] == {"Reviewer": "AB"}
    assert tumour["terminology"]["type"] == ["SCT", "108369006", "Neoplasm"]
    assert tumour["terminology"]["anatomicRegion"] == ["SCT", "10200004", "Liver"]
    liver = slicerio.segment_from_name(read_back, "liver")
    assert liver["terminology"]["contextName"] == SLICER_GENERAL_ANATOMY
    assert np.array_equal(slicerio.segment_mask(read_back, "liver tumour").transpose(2, 1, 0),
                          labelmap.mask("liver tumour"))
    assert_same_labelmap(labelmap, read_seg_nrrd(path))


def test_reference_geometry_matches_slicer_serialisation(test_data: Path) -> None:
    path = test_data / "slicer" / "Segmentation.seg.nrrd"
    header = nrrd.read_header(str(path))
    value = header["Segmentation_ConversionParameters"].split("Reference image geometry|")[1].split("|")[0]
    expected = np.array([float(v) for v in value.rstrip(";").split(";")])
    ours = np.array([float(v) for v in reference_geometry_string(read_seg_nrrd(path).geometry).rstrip(";").split(";")])
    assert np.allclose(ours, expected, atol=1e-6)


def test_terminology_string_matches_slicer_file(test_data: Path) -> None:
    header = nrrd.read_header(str(test_data / "slicer" / "Segmentation.seg.nrrd"))
    tag = next(t for t in header["Segment4_Tags"].split("|") if t.startswith("TerminologyEntry:"))
    text = tag.split(":", 1)[1]
    assert to_slicer_string(terminology_for("right lung")) == text
    terminology, context, anatomic = from_slicer_string(text)
    assert terminology == terminology_for("right lung") and context == SLICER_GENERAL_ANATOMY
    assert slicerio.segmentation.terminology_entry_from_string(to_slicer_string(terminology_for("lung nodule")))[
        "anatomicRegion"] == ["SCT", "39607008", "Lung"]


def test_catalogue_covers_every_product() -> None:
    expected = {"lung", "right lung", "left lung", "lung nodule", "liver", "liver tumour", "brain",
                "tumour necrosis", "oedema", "enhancing tumour", "ground-glass opacity", "consolidation",
                "pleural effusion", "breast mass", "calcification"}
    assert expected <= set(CATALOGUE)
    for entry in CATALOGUE.values():
        assert entry.terminology.category.value in {"123037004", "49755003"}
        assert context_for(entry.terminology) == entry.context
        assert from_slicer_string(to_slicer_string(entry.terminology))[0] == entry.terminology
    with pytest.raises(KeyError, match="known"):
        terminology_for("spleen tumour")


def test_bad_seg_nrrd_gives_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_seg_nrrd(tmp_path / "missing.seg.nrrd")
    garbage = tmp_path / "garbage.seg.nrrd"
    garbage.write_text("this is not a NRRD file\n")
    with pytest.raises(InputError) as info:
        read_seg_nrrd(garbage)
    assert info.value.path == str(garbage)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    labelmap = _synthetic_labelmap()
    labelmap.segments[0].extra["bad"] = "a|b"
    with pytest.raises(ValueError):
        write_seg_nrrd(labelmap, tmp_path / "out.seg.nrrd")
    assert list(tmp_path.iterdir()) == []


def test_nifti_one_layer_round_trip_with_label_table(tmp_path: Path) -> None:
    geometry = Geometry(shape=(5, 6, 7), spacing=(1.5, 1.5, 3.0), origin=(1.0, 2.0, 3.0))
    labels = np.zeros(geometry.shape, np.uint8)
    labels[1:3, 1:4, 2:5] = 1
    labels[3:5, 2:5, 1:3] = 3
    labelmap = LabelMap(labels, geometry, [Segment("liver", 1, (0.8, 0.5, 0.4), terminology_for("liver")),
                                           Segment("liver tumour", 3, (0.9, 0.2, 0.2),
                                                   terminology_for("liver tumour"), ReviewStatus.COMPLETED)])
    [path] = write_labelmap_nifti(labelmap, tmp_path / "liver.nii.gz")
    assert path == tmp_path / "liver.nii.gz"
    table = json.loads(sidecar_path(path).read_text())
    assert [(e["value"], e["name"]) for e in table["labels"]] == [(1, "liver"), (3, "liver tumour")]
    assert table["labels"][1]["terminology"]["type"] == ["SCT", "108369006", "Neoplasm"]
    image = sitk.ReadImage(str(path))
    assert np.array_equal(sitk.GetArrayFromImage(image), labels)
    assert np.allclose(image.GetOrigin(), geometry.origin)
    assert_same_labelmap(labelmap, read_labelmap_nifti(path))
    # Without the sidecar, every label becomes a generic segment; a plain mapping names them.
    sidecar_path(path).unlink()
    assert [s.name for s in read_labelmap_nifti(path).segments] == ["Segment_1", "Segment_3"]
    named = read_labelmap_nifti(path, label_table={"1": "liver", "3": "tumour"})
    assert [(s.name, s.label_value) for s in named.segments] == [("liver", 1), ("tumour", 3)]


def test_nifti_overlap_is_written_per_layer_never_flattened(test_data: Path, tmp_path: Path) -> None:
    labelmap = read_seg_nrrd(test_data / "slicer" / "SegmentationOverlapping.seg.nrrd")
    paths = write_labelmap_nifti(labelmap, tmp_path / "chest.nii.gz")
    assert [p.name for p in paths] == ["chest_layer1.nii.gz", "chest_layer2.nii.gz"]
    assert not (tmp_path / "chest.nii.gz").exists()
    assert json.loads((tmp_path / "chest_layer2.json").read_text())["layer"] == 1
    again = read_labelmap_nifti(tmp_path / "chest.nii.gz")
    assert again.layer_count == 2
    for segment in labelmap.segments:
        assert np.array_equal(again.mask(segment.name), labelmap.mask(segment)), segment.name
        assert again.segment(segment.name).terminology == segment.terminology


def test_nifti_label_table_errors(tmp_path: Path) -> None:
    geometry = Geometry(shape=(2, 3, 4))
    labels = np.zeros(geometry.shape, np.uint8)
    labels[0, 0, 0] = 2
    [path] = write_labelmap_nifti(LabelMap(labels, geometry, [Segment("x", 2)]), tmp_path / "x.nii.gz")
    sidecar_path(path).write_text(json.dumps({"labels": [{"value": 1, "name": "other"}]}))
    with pytest.raises(InputError, match=r"\[2\]"):
        read_labelmap_nifti(path)
    with pytest.raises(InputError, match="file not found"):
        read_labelmap_nifti(tmp_path / "none.nii.gz")
    with pytest.raises(InputError, match="NIfTI"):
        read_labelmap_nifti(tmp_path / "x.mha")
