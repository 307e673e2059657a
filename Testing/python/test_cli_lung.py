"""`radassist lung detect` as a user runs it: Slicer-loadable markups, LUNA16 CSV, PNG and result.json; clear
refusals with exit code 2 and an empty output folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image

from radassist import cli
from radassist.commands import lung as lung_command
from radassist.io import write_volume
from radassist.results import read_detections_csv, read_roi_markups
from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct


@pytest.fixture(autouse=True)
def lung_group_and_private_cache(monkeypatch, tmp_path_factory):
    """The `lung` group on the real CLI (added here if the command list does not have it yet), and a model
    folder of our own so no installed weights are found."""
    if lung_command not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + (lung_command,))
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory):
    phantom = make_chest_ct(0, ChestPhantomConfig(shape=(75, 192, 256), spacing=(1.05, 1.05, 1.875)))
    path = tmp_path_factory.mktemp("input") / "chest.nrrd"
    write_volume(phantom.volume, path)
    return path, phantom


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_detect_and_its_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["lung", "detect", "--help"])
    text = capsys.readouterr().out
    for option in ("--engine", "--model", "--backend", "--threshold", "--device", "--series", "--out"):
        assert option in text
    assert "radassist models install lung-detr" in text


def test_detect_writes_slicer_markups_luna16_csv_png_and_result(phantom_file, tmp_path, capsys, markups_schema):
    path, phantom = phantom_file
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "lung", "detect", str(path), "--out", str(out), "--threshold", "0.8")
    assert code == 0, stderr
    assert "classical candidate detector" in stderr  # auto without weights says what it falls back to
    assert sorted(p.name for p in out.iterdir()) == ["nodules.csv", "nodules.mrk.json", "nodules.png",
                                                     "result.json"]
    document = json.loads((out / "nodules.mrk.json").read_text())
    jsonschema.validate(document, markups_schema)
    rois = read_roi_markups(out / "nodules.mrk.json")
    assert len(rois) >= 1 and all(m["coordinateSystem"] == "LPS" for m in document["markups"])
    # the classical detector's number is a heuristic score, and is called so everywhere
    description = document["markups"][0]["controlPoints"][0]["description"]
    assert "score=" in description and "probability" not in description and "diameter_mm=" in description
    assert document["markups"][0]["measurements"][0]["name"] == "score"
    assert rois.score_name == "score" and all(d.probability >= 0.8 for d in rois.items)  # boxes: the threshold
    with (out / "nodules.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header == ["seriesuid", "coordX", "coordY", "coordZ", "score", "diameter_mm"]
    table = read_detections_csv(out / "nodules.csv")["chest"]  # a NRRD file: the seriesuid is its name
    assert table.score_name == "score"
    # every candidate is in the CSV, best first: the boxed ones at the top, then those under the threshold
    scores = [d.probability for d in table.items]
    assert scores == sorted(scores, reverse=True) and len(table) > len(rois) and min(scores) < 0.8
    assert len(rois) == sum(score >= 0.8 for score in scores)
    assert np.allclose([d.center for d in table.items[:len(rois)]], [d.center for d in rois.items], atol=1e-3)
    biggest = max(phantom.nodules.items, key=lambda n: n.diameter_mm)
    assert any(np.linalg.norm(np.subtract(d.center, biggest.center)) < biggest.diameter_mm / 2 for d in table.items)
    with Image.open(out / "nodules.png") as image:
        assert image.format == "PNG" and image.size[0] > 100
    record = json.loads((out / "result.json").read_text())
    summary = record["summary"]
    assert record["command"] == "lung detect" and summary["engine"] == "classic" and summary["score_name"] == "score"
    assert summary["findings"] == len(rois) and summary["candidates"] == len(table)
    assert summary["nodules"][0]["rank"] == 1 and "score" in summary["nodules"][0]
    assert "probability" not in summary["nodules"][0]
    assert "nodule candidate(s) from the classical detector at score >= 0.8" in stdout


def test_threshold_and_max_nodules_limit_the_findings(phantom_file, tmp_path, capsys):
    path, _ = phantom_file
    out = tmp_path / "few"
    code, _, stderr = run(capsys, "lung", "detect", str(path), "--out", str(out), "--engine", "classic",
                          "--threshold", "0.05", "--max-nodules", "2")
    assert code == 0, stderr
    found = read_roi_markups(out / "nodules.mrk.json")
    assert len(found) == 2 and all(d.probability >= 0.05 for d in found.items)


def assert_refused(code: int, stderr: str, out: Path, *phrases: str) -> None:
    assert code == 2 and "Traceback" not in stderr
    for phrase in phrases:
        assert phrase in stderr, stderr
    assert not out.exists() or list(out.iterdir()) == [], "a refused run left files behind"


def test_thick_slices_are_refused_with_nothing_written(test_data: Path, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "lung", "detect", str(test_data / "slicer" / "CTChest4.nrrd"), "--out", str(out),
                          "--engine", "classic")
    assert_refused(code, stderr, out, "CTChest4.nrrd", "10 mm apart")


def test_scan_without_lungs_is_refused(test_data: Path, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "lung", "detect", str(test_data / "ct" / "chest_abdomen_example" / "dicom"),
                          "--out", str(out))
    assert_refused(code, stderr, out, "dicom", "no lung found")


def test_lung_detr_without_weights_says_how_to_get_them(phantom_file, tmp_path, capsys):
    path, _ = phantom_file
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "lung", "detect", str(path), "--out", str(out), "--engine", "detr")
    assert_refused(code, stderr, out, "radassist models install lung-detr", "radassist models import lung-detr")


def test_bad_threshold_is_refused(phantom_file, tmp_path, capsys):
    path, _ = phantom_file
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "lung", "detect", str(path), "--out", str(out), "--threshold", "1.5")
    assert_refused(code, stderr, out, "--threshold must be within 0..1")


def test_lung_detr_checkpoint_folder_runs(phantom_file, tmp_path, capsys):
    import torch

    from radassist.lung.model import LungDetrConfig, build_lung_detr
    from radassist.runtime.checkpoints import save_checkpoint

    torch.manual_seed(0)
    config = LungDetrConfig.tiny()
    folder = save_checkpoint(build_lung_detr(config), "lung-detr", config, tmp_path / "tiny")
    path, _ = phantom_file
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "lung", "detect", str(path), "--out", str(out), "--engine", "detr",
                               "--model", str(folder), "--threshold", "0", "--max-nodules", "5")
    assert code == 0, stderr
    record = json.loads((out / "result.json").read_text())
    assert record["summary"]["engine"] == "lung-detr" and record["summary"]["model"]["sha256"]
    assert 1 <= len(read_roi_markups(out / "nodules.mrk.json")) <= 5
