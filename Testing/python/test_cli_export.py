"""`radassist export TASK` and `radassist dataset stats` end to end, with the files Slicer and the engine write:
.seg.nrrd, .mrk.json, a real DICOM series (-> DICOM SEG), PNG views and a mammo report.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, generate_uid

from radassist.annotation.dicom_seg import read_dicom_seg, referenced_uids
from radassist.annotation.export import INDEX_NAME, read_index
from radassist.annotation.provenance import read_provenance
from radassist.commands import annotation
from radassist.errors import RadAssistError
from radassist.io import read_dicom_series, write_volume
from radassist.results import (Classification, ClassifiedImage, Detection, Detections, DisplacementField, LabelMap,
                               ReviewStatus, Segment, write_classification, write_itk_displacement_h5,
                               write_point_markups, write_roi_markups, write_seg_nrrd)
from radassist.results.terminology import terminology_for
from radassist.volume import Geometry, Volume

GRID = Geometry(shape=(10, 24, 20), spacing=(1.5, 1.5, 2.5))


def run(argv: list[str]) -> int:
    """The CLI as the lead will wire it: the annotation module's register()."""
    parser = argparse.ArgumentParser(prog="radassist")
    commands = parser.add_subparsers(dest="command", required=True)
    annotation.register(commands, argparse.HelpFormatter)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except RadAssistError as error:
        print(f"radassist {args.command}: error: {error}")
        return error.exit_code


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))


def _mask(geometry: Geometry, z: slice, y: slice, x: slice) -> np.ndarray:
    mask = np.zeros(geometry.shape, dtype=bool)
    mask[z, y, x] = True
    return mask


def _liver_files(folder: Path, geometry: Geometry, grow: int) -> tuple[Path, Path]:
    segments = [Segment("liver", 1, terminology=terminology_for("liver")),
                Segment("liver tumour", 2, terminology=terminology_for("liver tumour"))]
    ai = LabelMap.from_masks([_mask(geometry, slice(2, 8), slice(5, 15), slice(4, 14)),
                              _mask(geometry, slice(4, 6), slice(8, 11), slice(6, 9))], segments, geometry)
    corrected = LabelMap.from_masks([_mask(geometry, slice(2, 8), slice(5, 15 + grow), slice(4, 14)),
                                     _mask(geometry, slice(4, 6), slice(8, 11), slice(6, 9))], segments, geometry)
    for segment in corrected.segments:
        segment.status = ReviewStatus.COMPLETED
    return write_seg_nrrd(ai, folder / "ai.seg.nrrd"), write_seg_nrrd(corrected, folder / "corrected.seg.nrrd")


def test_liver_from_a_dicom_series_writes_msd_and_dicom_seg(test_data, tmp_path, capsys) -> None:
    series = tmp_path / "dicom"
    series.mkdir()
    series_uid, study_uid = generate_uid(), generate_uid()
    for source in sorted((test_data / "ct/chest_abdomen_example/dicom").iterdir()):
        dataset = pydicom.dcmread(source)
        dataset.SOPClassUID, dataset.SOPInstanceUID = CTImageStorage, dataset.file_meta.MediaStorageSOPInstanceUID
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study_uid, series_uid
        dataset.save_as(series / source.name)
    geometry = read_dicom_series(series).geometry
    ai, corrected = _liver_files(tmp_path, geometry, grow=40)
    out = tmp_path / "dataset"
    assert run(["export", "liver", "--image", str(series), "--ai-result", str(ai), "--corrected", str(corrected),
                "--out", str(out), "--annotator", "Jane Doe", "--model", "liver-unet"]) == 0
    assert f"exported {series_uid} as v1" in capsys.readouterr().out
    assert (out / f"imagesTr/{series_uid}_0000.nii.gz").is_file() and (out / f"labelsTr/{series_uid}.nii.gz").is_file()
    seg = out / f"dicomseg/{series_uid}.dcm"
    assert referenced_uids(seg).series_instance_uid == series_uid
    back = read_dicom_seg(seg, geometry)
    from radassist.results import read_seg_nrrd

    assert np.array_equal(back.mask("liver"), read_seg_nrrd(corrected).mask("liver"))
    record = read_provenance(out / f"provenance/{series_uid}/v1/provenance.json")
    assert record.model.model_id == "liver-unet" and record.annotator == "Jane Doe"
    assert record.source["series_instance_uid"] == series_uid and record.source["images"] == 20
    assert (out / record.ai_result[0]["path"]).read_bytes() == ai.read_bytes()


def test_lung_twice_then_stats(tmp_path, capsys) -> None:
    image = tmp_path / "scan.nii.gz"
    write_volume(Volume.from_geometry(np.zeros(GRID.shape, np.int16), GRID), image)
    ai = write_roi_markups(Detections([Detection((0, 0, 5), (6, 6, 6), 0.8), Detection((9, 9, 9), (4, 4, 4), 0.2)]),
                           tmp_path / "ai.mrk.json")
    corrected = write_roi_markups(Detections([Detection((0, 2, 5), (6, 6, 6), 0.8)]), tmp_path / "fixed.mrk.json")
    out = tmp_path / "luna"
    common = ["--image", str(image), "--ai-result", str(ai), "--corrected", str(corrected), "--out", str(out),
              "--annotator", "ann"]
    assert run(["export", "lung", *common]) == 0
    assert run(["export", "lung", *common]) == 0
    assert "exported scan as v2" in capsys.readouterr().out
    assert (out / "annotations.csv").read_text().splitlines() == [
        "seriesuid,coordX,coordY,coordZ,diameter_mm", "scan,0.0,2.0,5.0,6.0"]
    assert (out / "archive/scan/v1/subset0/scan.mhd").is_file() and (out / "subset0/scan.raw").is_file()
    assert run(["dataset", "stats", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lung export (LUNA16), 1 case(s), 2 version(s)" in text and "0/1/1/0" in text
    assert run(["dataset", "stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["models"]["unknown model"]["boxes"] == {"unchanged": 0, "moved": 1, "deleted": 1, "added": 0}


def test_brain_with_landmarks(tmp_path) -> None:
    flair = tmp_path / "subject_flair.nii.gz"
    write_volume(Volume.from_geometry(np.ones(GRID.shape, np.float32), GRID), flair)
    tumour = LabelMap(_mask(GRID, slice(3, 6), slice(8, 12), slice(8, 12)).astype(np.uint8), GRID,
                      [Segment("enhancing tumour", 1, terminology=terminology_for("enhancing tumour"))])
    write_seg_nrrd(tumour, tmp_path / "t.seg.nrrd")
    vectors = np.zeros((*GRID.shape, 3))
    vectors[..., 0] = 1.0
    write_itk_displacement_h5(DisplacementField(vectors, GRID), tmp_path / "transform.h5")
    write_point_markups(np.array([[5.0, 5.0, 5.0]]), tmp_path / "fixed.mrk.json")
    write_point_markups(np.array([[6.0, 5.0, 5.0]]), tmp_path / "moving.mrk.json")
    out = tmp_path / "brain"
    assert run(["export", "brain", "--image", str(flair), "--ai-result", str(tmp_path / "t.seg.nrrd"),
                "--corrected", str(tmp_path / "t.seg.nrrd"), "--out", str(out), "--case", "s1",
                "--fixed-landmarks", str(tmp_path / "fixed.mrk.json"),
                "--moving-landmarks", str(tmp_path / "moving.mrk.json"), "--transform", str(tmp_path / "transform.h5")
                ]) == 0
    tre = read_provenance(out / "provenance/s1/v1/provenance.json").changes["landmarks"]
    assert tre["before_mm"] == pytest.approx([1.0]) and tre["after_mm"] == pytest.approx([0.0], abs=1e-6)
    assert (out / "subjects/s1/s1_flair.nii.gz").is_file() and (out / "subjects/s1/s1_seg.nii.gz").is_file()


def test_mammo(tmp_path) -> None:
    from radassist.synthetic.mammo import write_png

    png = write_png(np.full((40, 30), 900, dtype=np.uint16), tmp_path / "rcc.png")
    write_png(np.eye(40, 30, dtype=bool), tmp_path / "mask.png")
    write_classification(Classification(images=[], groups=[
        ClassifiedImage("R breast", {"benign": 0.2, "malignant": 0.9})]), tmp_path / "report.json",
        tmp_path / "report.csv")
    (tmp_path / "confirmed.json").write_text(json.dumps({"R": {"benign": 1, "malignant": 0}}))
    out = tmp_path / "exams"
    assert run(["export", "mammo", "--image", f"R-CC={png}", "--mask", f"R-CC:benign={tmp_path / 'mask.png'}",
                "--ai-result", str(tmp_path / "report.json"), "--corrected", str(tmp_path / "confirmed.json"),
                "--out", str(out), "--case", "e1"]) == 0
    exams = json.loads((out / "exam_list.json").read_text())
    assert exams[0]["R-CC"] == ["images/e1_R-CC.png"] and exams[0]["breasts"] == {"R": {"benign": 1, "malignant": 0}}
    assert exams[0]["masks"] == {"R-CC": {"benign": "masks/e1_R-CC_benign.png"}}
    changed = [c for c in read_provenance(out / "provenance/e1/v1/provenance.json").changes["labels"] if c["changed"]]
    assert [(c["name"], c["ai_probability"]) for c in changed] == [("benign", 0.2), ("malignant", 0.9)]


def test_bad_input_names_the_file_and_writes_nothing(tmp_path, capsys) -> None:
    image = tmp_path / "scan.nii.gz"
    write_volume(Volume.from_geometry(np.zeros(GRID.shape, np.int16), GRID), image)
    ai, _ = _liver_files(tmp_path, GRID, grow=1)
    (tmp_path / "broken.seg.nrrd").write_text("not a segmentation")
    out = tmp_path / "dataset"
    code = run(["export", "liver", "--image", str(image), "--ai-result", str(ai), "--corrected",
                str(tmp_path / "broken.seg.nrrd"), "--out", str(out)])
    assert code == 2
    assert "broken.seg.nrrd" in capsys.readouterr().out
    assert not (out / INDEX_NAME).exists()
    (tmp_path / "labels.json").write_text("{}")
    assert run(["export", "mammo", "--image", f"R-CC={image}", "--ai-result", str(tmp_path / "labels.json"),
                "--corrected", str(tmp_path / "labels.json"), "--out", str(out), "--case", "x"]) == 2
    assert "labels.json" in capsys.readouterr().out
    assert run(["dataset", "stats", str(tmp_path)]) == 2
    assert "is not a RadAssist export" in capsys.readouterr().out


def test_an_export_into_a_liver_dataset_keeps_its_index(tmp_path) -> None:
    image = tmp_path / "a.nii.gz"
    write_volume(Volume.from_geometry(np.zeros(GRID.shape, np.int16), GRID), image)
    ai, corrected = _liver_files(tmp_path, GRID, grow=2)
    out = tmp_path / "dataset"
    for case in ("a", "b"):
        assert run(["export", "liver", "--image", str(image), "--ai-result", str(ai), "--corrected", str(corrected),
                    "--out", str(out), "--case", case]) == 0
    assert sorted(read_index(out, "liver")["cases"]) == ["a", "b"]
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 2
