"""`radassist mammo classify`, `radassist train mammo` and `radassist evaluate mammo` end to end, on phantom
PNG views and an exam list written by `radassist synth`'s writer; outputs read back with SimpleITK, jsonschema
(Slicer's markups schema) and PIL."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from radassist.commands import mammo, train_evaluate
from radassist.errors import RadAssistError
from radassist.synthetic.datasets import write_dataset
from radassist.synthetic.mammo import MammoPhantomConfig, write_png
from readable_outputs import assert_readable_png

MODEL = json.dumps(dict(global_filters=4, global_blocks=[1, 1, 1], global_strides=[1, 2, 2], post_processing_dim=16,
                        cam_size=[12, 8], top_t_percent=5.0, num_patches=3, crop_shape=[48, 48], local_filters=4,
                        local_blocks=[1, 1, 1], attention_dim=8))


def run(argv: list[str]) -> int:
    """The CLI as the lead will wire it: `mammo` through register, train/evaluate through the task hooks."""
    parser = argparse.ArgumentParser(prog="radassist")
    commands = parser.add_subparsers(dest="command", required=True)
    mammo.register(commands, argparse.HelpFormatter)
    train_evaluate.register_all(commands, argparse.HelpFormatter, (mammo,))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except RadAssistError as error:
        print(f"radassist {args.command}: error: {error}")
        return error.exit_code


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # one torch thread: several test processes share the machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset("mammo", tmp_path_factory.mktemp("exams") / "data", 2, 3,
                         config=MammoPhantomConfig(shape=(256, 160), pixel_spacing_mm=1.0))


@pytest.fixture(scope="module")
def checkpoint(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "gmic"
    assert run(["train", "mammo", "--data", str(data), "--out", str(out), "--epochs", "2", "--batch-size", "4",
                "--image-size", "192", "128", "--config", MODEL, "--trials", "2", "--validation-fraction", "0.5",
                "--device", "cpu"]) == 0
    return out


def test_train_writes_a_checkpoint_with_its_search(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["architecture"] == "gmic" and config["config"]["crop_shape"] == [48, 48]
    trials = config["metadata"]["trials"]
    assert len(trials) == 2 and config["metadata"]["chosenTrial"] in (0, 1)
    assert all(len(t["train_loss"]) == 2 and len(t["validation_loss"]) == 2 for t in trials)
    record = json.loads((checkpoint / "result.json").read_text())
    assert record["summary"]["trials"] == 2 and record["summary"]["validation_images"] == 4


def test_classify_writes_report_saliency_maps_patches_and_picture(checkpoint, data, tmp_path, markups_schema,
                                                                 capsys):
    out = tmp_path / "out"
    views = [data / "images" / "0_L-CC.png", data / "images" / "0_L-MLO.png"]
    assert run(["mammo", "classify", *map(str, views), "--out", str(out), "--model", str(checkpoint),
                "--tta", "1", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "L-CC" in printed and "L breast" in printed
    report = json.loads((out / "report.json").read_text())
    assert [i["image_id"] for i in report["images"]] == ["L-CC", "L-MLO"]
    assert [g["image_id"] for g in report["groups"]] == ["L breast"]
    for name in ("benign", "malignant"):
        mean = np.mean([i["probabilities"][name] for i in report["images"]])
        assert report["groups"][0]["probabilities"][name] == pytest.approx(mean)
    with (out / "report.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["level"] for r in rows] == ["image", "image", "group"] and "malignant" in rows[0]
    for view in ("L-CC", "L-MLO"):
        for name in ("benign", "malignant"):
            image = sitk.ReadImage(str(out / view / f"saliency_{name}.nrrd"))
            values = sitk.GetArrayFromImage(image)
            assert values.shape == (1, 256, 160) and 0.0 <= values.min() and values.max() <= 1.0
            assert values.max() > 0
        markups = json.loads((out / view / "patches.mrk.json").read_text())
        jsonschema.validate(markups, markups_schema)
        rois = markups["markups"]
        assert len(rois) == 3 and all(r["type"] == "ROI" and r["coordinateSystem"] == "LPS" for r in rois)
        assert sum(r["measurements"][0]["value"] for r in rois) == pytest.approx(1.0, abs=1e-4)  # attention
        assert all(r["size"][:2] == [48.0, 48.0] for r in rois)
    with Image.open(out / "gmic.png") as picture:
        assert picture.mode == "RGB" and picture.height > 100
    record = json.loads((out / "result.json").read_text())
    assert "L-CC/saliency_malignant.nrrd" in record["outputs"] and record["summary"]["L breast"]


def test_without_weights_classify_says_how_to_get_them_and_writes_nothing(data, tmp_path, capsys):
    out = tmp_path / "out"
    code = run(["mammo", "classify", str(data / "images" / "0_L-CC.png"), "--out", str(out), "--device", "cpu"])
    assert code == 2 and not out.exists()
    message = capsys.readouterr().out
    assert "radassist models import gmic-1 sample_model_1.p" in message and "radassist train mammo" in message


def test_unnamed_views_are_asked_for_and_then_accepted(checkpoint, data, tmp_path, capsys):
    anonymous = tmp_path / "scan.png"
    anonymous.write_bytes((data / "images" / "1_R-MLO.png").read_bytes())
    out = tmp_path / "out"
    code = run(["mammo", "classify", str(anonymous), "--out", str(out), "--model", str(checkpoint)])
    assert code == 2 and not out.exists()
    assert "scan.png" in capsys.readouterr().out
    assert run(["mammo", "classify", str(anonymous), "--out", str(out), "--model", str(checkpoint),
                "--laterality", "R", "--view", "MLO"]) == 0
    assert (out / "R-MLO" / "patches.mrk.json").is_file()
    code = run(["mammo", "classify", str(anonymous), str(anonymous), "--out", str(tmp_path / "o2"), "--model",
                str(checkpoint), "--laterality", "R", "--laterality", "L", "--laterality", "R"])
    assert code == 2 and "once per file" in capsys.readouterr().out


def test_an_image_smaller_than_a_patch_is_refused_before_anything_is_written(checkpoint, tmp_path, capsys):
    small = write_png(np.full((40, 30), 900, np.uint16), tmp_path / "L_CC.png")
    out = tmp_path / "out"
    assert run(["mammo", "classify", str(small), "--out", str(out), "--model", str(checkpoint)]) == 2
    assert not out.exists() and "smaller than one GMIC patch" in capsys.readouterr().out


def test_evaluate_reports_aucs_with_intervals_and_saliency_dice(checkpoint, data, tmp_path, capsys):
    out = tmp_path / "eval"
    assert run(["evaluate", "mammo", "--data", str(data), "--model", str(checkpoint), "--out", str(out),
                "--ci", "bootstrap", "--device", "cpu"]) == 0
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["summary"]["images"] == 8 and evaluation["summary"]["breasts"] == 4
    for key, result in evaluation["metadata"]["auc"].items():
        assert result["auc"] is None or (result["method"] == "bootstrap" and
                                         result["ci_low"] <= result["auc"] <= result["ci_high"]), key
    with (out / "evaluation.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 8
    assert_readable_png(out / "roc.png")
    assert "AUC" in capsys.readouterr().out
