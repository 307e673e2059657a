"""DICOM SEG written with highdicom on a real CT series: reads back into the same masks (overlaps kept), carries
the segment names and SNOMED CT codes, references the source UIDs, and passes dicom3tools' dciodvfy."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, generate_uid

from radassist.annotation.dicom_seg import (read_dicom_seg, read_source_series, referenced_uids,
                                            validate_with_dciodvfy, write_dicom_seg)
from radassist.annotation.provenance import ModelInfo
from radassist.errors import InputError
from radassist.io import read_dicom_series
from radassist.results import LabelMap, Segment
from radassist.results.terminology import terminology_for
from radassist.volume import Geometry

REAL_SERIES = "ct/chest_abdomen_example/dicom"


@pytest.fixture(scope="module")
def series(test_data: Path, tmp_path_factory) -> tuple[Path, dict]:
    """The real series copied with the UIDs it lacks (its Study/Series/SOP Instance UIDs are empty)."""
    folder = tmp_path_factory.mktemp("dicom") / "ct"
    folder.mkdir()
    uids = {"study": generate_uid(), "series": generate_uid(), "sop": []}
    for source in sorted((test_data / REAL_SERIES).iterdir()):
        dataset = pydicom.dcmread(source)
        dataset.SOPClassUID = CTImageStorage
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = uids["study"], uids["series"]
        dataset.PatientID, dataset.PatientName = "RADASSIST-TEST", "Test^Patient"
        uids["sop"].append(str(dataset.SOPInstanceUID))
        dataset.save_as(folder / source.name)
    uids["frame"] = str(pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).FrameOfReferenceUID)
    return folder, uids


def _labels(geometry: Geometry) -> LabelMap:
    liver = np.zeros(geometry.shape, dtype=bool)
    liver[4:14, 200:330, 120:300] = True
    tumour = np.zeros(geometry.shape, dtype=bool)
    tumour[7:10, 240:270, 180:220] = True  # inside the liver: overlapping segments
    lung = np.zeros(geometry.shape, dtype=bool)
    lung[0:3, 50:90, 60:120] = True
    segments = [Segment("liver", 1, terminology=terminology_for("liver"), color=(0.87, 0.51, 0.4)),
                Segment("liver tumour", 2, terminology=terminology_for("liver tumour")),
                Segment("right lung", 3, terminology=terminology_for("right lung"))]
    return LabelMap.from_masks([liver, tumour, lung], segments, geometry)


@pytest.fixture(scope="module")
def written(series, tmp_path_factory) -> tuple[Path, LabelMap, Geometry]:
    folder, _ = series
    volume = read_dicom_series(folder)
    labels = _labels(volume.geometry)
    path = write_dicom_seg(labels, folder, tmp_path_factory.mktemp("seg") / "seg.dcm",
                           model=ModelInfo("liver-unet", "0.1.0"), annotator="Doe^Jane")
    return path, labels, volume.geometry


def test_reads_back_into_the_same_masks(written) -> None:
    path, labels, geometry = written
    back = read_dicom_seg(path, reference=geometry)
    assert [s.name for s in back.segments] == ["liver", "liver tumour", "right lung"]
    assert back.layer_count == 2  # the tumour overlaps the liver and stays its own mask
    for segment in labels.segments:
        assert np.array_equal(back.mask(segment.name), labels.mask(segment)), segment.name


def test_segment_codes_are_the_catalogues(written) -> None:
    path, labels, _ = written
    back = read_dicom_seg(path)
    for original, read in zip(labels.segments, back.segments):
        assert read.terminology == original.terminology
    assert back.segment("right lung").terminology.type_modifier.value == "24028007"
    dataset = pydicom.dcmread(path)
    assert dataset.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    assert dataset.SegmentSequence[1].SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert dataset.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert dataset.SegmentSequence[0].SegmentAlgorithmName == "liver-unet"
    assert str(dataset.ContentCreatorName) == "Doe^Jane"


def test_without_a_reference_the_frames_span_their_own_grid(written) -> None:
    from radassist.annotation.changes import resample_labels

    path, labels, geometry = written
    back = read_dicom_seg(path)
    assert back.geometry.shape[0] < geometry.shape[0]  # empty frames are not stored
    assert np.array_equal(resample_labels(back, geometry).mask("liver"), labels.mask("liver"))


def test_references_the_source_series(written, series) -> None:
    path, _, _ = written
    _, uids = series
    references = referenced_uids(path)
    assert references.study_instance_uid == uids["study"]
    assert references.series_instance_uid == uids["series"]
    assert sorted(references.sop_instance_uids) == sorted(uids["sop"])
    assert references.frame_of_reference_uid == uids["frame"]
    dataset = pydicom.dcmread(path)
    assert dataset.PatientID == "RADASSIST-TEST" and dataset.Modality == "SEG"
    sources = {str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
               for item in dataset.PerFrameFunctionalGroupsSequence}
    assert sources <= set(uids["sop"])


def test_valid_according_to_dciodvfy(written) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    ok, report = validate_with_dciodvfy(written[0])
    assert ok, report


def test_a_cropped_segmentation_is_placed_on_the_series_grid(series, tmp_path) -> None:
    folder, _ = series
    grid = read_source_series(folder).geometry
    crop = Geometry(shape=(3, 10, 12), spacing=grid.spacing, direction=grid.direction,
                    origin=tuple(grid.zyx_to_world(np.array([5, 100, 200]))))
    labels = LabelMap(np.ones((3, 10, 12), dtype=np.uint8), crop, [Segment("liver", 1)])
    back = read_dicom_seg(write_dicom_seg(labels, folder, tmp_path / "crop.dcm", algorithm_type="MANUAL"), grid)
    expected = np.zeros(grid.shape, dtype=bool)
    expected[5:8, 100:110, 200:212] = True
    assert np.array_equal(back.mask("liver"), expected)
    assert back.segment("liver").terminology.type.value == "10200004"  # named "liver": the catalogue's code


def test_a_series_without_uids_is_refused(test_data, tmp_path) -> None:
    volume = read_dicom_series(test_data / REAL_SERIES)
    with pytest.raises(InputError, match="has no StudyInstanceUID|has no SeriesInstanceUID|has no SOPInstanceUID"):
        write_dicom_seg(_labels(volume.geometry), test_data / REAL_SERIES, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def test_not_a_segmentation(tmp_path, series) -> None:
    folder, _ = series
    with pytest.raises(InputError, match="not a readable DICOM Segmentation"):
        read_dicom_seg(next(folder.iterdir()))
