"""`radassist segment box` end to end, as a Slicer job process runs it: a real image, a Slicer ROI file in, a
Slicer segmentation, a report, a PNG and result.json out; bad input refused with exit code 2 and nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import slicerio

from radassist.cli import main
from radassist.results import Detection, Detections, read_seg_nrrd, write_roi_markups
from radassist.volume import lps_to_ras


@pytest.fixture
def home(litemedsam_home, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(litemedsam_home))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    return litemedsam_home


def lung_box(test_data, slices: int = 3):
    """An ROI around the right lung of CTChest4 on ``slices`` slices at the lung's middle (LPS centre, size)."""
    from radassist.interactive.boxes import box_around_mask
    from radassist.io import read_volume

    ct = read_volume(test_data / "slicer" / "CTChest4.nrrd")
    lung = read_seg_nrrd(test_data / "slicer" / "Segmentation.seg.nrrd").mask("right lung")
    middle = int(np.median(np.flatnonzero(lung.any(axis=(1, 2)))))
    part = np.zeros_like(lung)
    part[middle - slices // 2:middle - slices // 2 + slices] = lung[middle - slices // 2:middle - slices // 2 + slices]
    box = box_around_mask(part, ct.geometry, margin_px=1.5)
    return box, part


def test_an_roi_file_in_ras_becomes_a_named_segment(home, test_data, tmp_path, capsys, markups_schema):
    box, reference = lung_box(test_data)
    roi = tmp_path / "box.mrk.json"
    write_roi_markups(Detections([Detection(box.center_lps, box.size_mm, 1.0, "Right lung")]), roi)
    document = json.loads(roi.read_text())  # as Slicer may save it: RAS coordinates
    markup = document["markups"][0]
    markup["coordinateSystem"] = "RAS"
    markup["center"] = list(lps_to_ras(np.array(markup["center"])))
    markup["orientation"] = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    roi.write_text(json.dumps(document))
    out = tmp_path / "out"
    assert main(["segment", "box", str(test_data / "slicer" / "CTChest4.nrrd"), "--roi", str(roi),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Right lung 1:" in printed and "slice(s) encoded" in printed
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.json", "result.json", "segmentation.png",
                                                     "segmentation.seg.nrrd"]
    segmentation = slicerio.read_segmentation(str(out / "segmentation.seg.nrrd"))
    assert [s["name"] for s in segmentation["segments"]] == ["Right lung 1"]
    labels = read_seg_nrrd(out / "segmentation.seg.nrrd")
    mask = labels.mask("Right lung 1")
    overlap = 2 * (mask & reference).sum() / (mask.sum() + reference.sum())
    assert overlap > 0.75
    report = json.loads((out / "report.json").read_text())
    row = report["rows"][0]
    assert row["voxels"] == int(mask.sum())
    assert row["volume_ml"] == pytest.approx(mask.sum() * labels.geometry.voxel_volume_mm3 / 1000, abs=1e-3)
    assert 50 < row["longest_axial_diameter_mm"] < 250
    record = json.loads((out / "result.json").read_text())
    assert record["command"] == "segment box" and "segmentation.seg.nrrd" in record["outputs"]


def test_a_2d_image_takes_a_pixel_box(home, test_data, tmp_path, capsys):
    from benchmarks.interactive_accuracy import gmic_lesion_masks
    from radassist.interactive.postprocess import mask_box

    _, lesion = gmic_lesion_masks(test_data, "R-CC")
    from scipy import ndimage

    labels, _ = ndimage.label(lesion[0], structure=np.ones((3, 3)))
    biggest = labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1
    x0, y0, x1, y1 = mask_box(biggest) + np.array([-20, -20, 20, 20])
    out = tmp_path / "out"
    assert main(["segment", "box", str(test_data / "mammo" / "gmic_exam0" / "0_R-CC.png"),
                 "--box", f"{x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}", "--name", "lesion", "--out", str(out)]) == 0
    mask = read_seg_nrrd(out / "segmentation.seg.nrrd").mask("lesion")[0]
    assert 2 * (mask & biggest).sum() / (mask.sum() + biggest.sum()) > 0.7
    assert mask[: int(y0)].sum() == 0 and mask[:, int(x1) + 2:].sum() == 0  # nothing outside the box


@pytest.mark.parametrize("arguments, message", [
    (["--box", "1,2,3"], "6 numbers"),
    (["--box", "1,2,3,4"], "2-D image"),
    (["--box", "900,900,900,950,950,950"], "outside the image"),
    ([], "give a box"),
    (["--box", "0,0,-100,50,50,-80", "--window", "bright"], "--window"),
    (["--roi", "missing.mrk.json"], "ROI file not found"),
])
def test_bad_boxes_are_refused_and_nothing_is_written(home, test_data, tmp_path, capsys, arguments, message):
    out = tmp_path / "out"
    code = main(["segment", "box", str(test_data / "slicer" / "CTChest4.nrrd"), *arguments, "--out", str(out)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_without_the_model_the_command_says_how_to_install_it(test_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    out = tmp_path / "out"
    code = main(["segment", "box", str(test_data / "slicer" / "CTChest4.nrrd"), "--box", "0,0,-100,50,50,-80",
                 "--out", str(out)])
    assert code == 2
    assert "radassist models install litemedsam" in capsys.readouterr().err
    assert not out.exists()
