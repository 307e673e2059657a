"""`radassist liver segment|quantify`, `radassist train liver` and `radassist evaluate liver` through the real CLI:
files Slicer opens, exit code 2 with one clear line and nothing written for bad input, and no segmentation at all
without trained weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import slicerio
from PIL import Image

from radassist import cli
from radassist.commands import liver as liver_commands
from radassist.synthetic.abdomen import AbdomenPhantomConfig
from radassist.synthetic.datasets import write_dataset

PHANTOM = AbdomenPhantomConfig(shape=(16, 48, 64), spacing=(4.4, 4.4, 12.0), tumour_count=(1, 2),
                               tumour_radius_mm=(12.0, 25.0), tumour_contrast_hu=(40.0, 60.0))


def test_liver_commands_are_registered() -> None:
    assert liver_commands in cli.COMMAND_MODULES and liver_commands in cli.TASK_MODULES


@pytest.fixture(scope="module")
def lits(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lits") / "data"
    write_dataset("liver", folder, 1, 0, config=PHANTOM)
    return folder


@pytest.fixture(scope="module")
def trained(lits, tmp_path_factory) -> Path:
    import torch

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("model") / "liver-unet"
    code = cli.main(["train", "liver", "--data", str(lits), "--out", str(out), "--arch", "unet",
                     "--channels", "8,16,32", "--image-size", "32", "--window", "abdominal", "--epochs", "20",
                     "--learning-rate", "3e-3", "--validation-fraction", "0", "--keep-empty-fraction", "1",
                     "--no-augment", "--device", "cpu"])
    assert code == 0
    return out


def test_train_writes_a_checkpoint_with_its_recipe(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["architecture"] == "liver-unet" and config["config"]["channels"] == [8, 16, 32]
    assert config["metadata"]["window"] == [-200.0, 250.0] and config["metadata"]["image_size"] == [32, 32]
    assert [label["name"] for label in config["labels"]] == ["Liver", "Liver tumour"]
    history = config["metadata"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_segment_writes_slicer_files(lits, trained, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["liver", "segment", str(lits / "volume-0.nii"), "--out", str(out), "--model", str(trained),
                     "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.json", "result.json",
                                                     "segmentation.png", "segmentation.seg.nrrd"]
    segmentation = slicerio.read_segmentation(str(out / "segmentation.seg.nrrd"))
    codes = {s["name"]: s["terminology"]["type"][1] for s in segmentation["segments"]}
    assert codes == {"Liver": "10200004", "Liver tumour": "108369006"}
    report = json.loads((out / "report.json").read_text())
    liver_voxels = int(np.count_nonzero(segmentation["voxels"]))
    assert report["summary"]["liver_voxels"] == liver_voxels
    assert report["rows"][0]["structure"] == "liver"
    assert (out / "report.csv").read_text().splitlines()[0].startswith("structure,voxels,volume_ml")
    with Image.open(out / "segmentation.png") as image:
        assert image.format == "PNG"


def test_segment_without_weights_says_how_to_get_them(lits, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert cli.main(["liver", "segment", str(lits / "volume-0.nii"), "--out", str(out), "--arch", "unet",
                     "--device", "cpu"]) == 2
    message = capsys.readouterr().err
    assert "no trained liver-unet weights" in message and "radassist train liver" in message
    assert "radassist models import" in message
    assert not out.exists()


def test_segment_refuses_a_non_ct(lits, tmp_path, capsys):
    from radassist.io import read_volume, write_volume

    ct = read_volume(lits / "volume-0.nii")
    mr_like = ct.with_array((ct.array.astype(np.float32) + 1100.0) / 10.0)
    write_volume(mr_like, tmp_path / "mr.nii.gz")
    out = tmp_path / "out"
    assert cli.main(["liver", "segment", str(tmp_path / "mr.nii.gz"), "--out", str(out), "--device", "cpu"]) == 2
    assert "mr.nii.gz: does not look like a CT" in capsys.readouterr().err
    assert not out.exists()


def test_quantify_a_lits_label_map_with_its_ct(lits, tmp_path, capsys):
    out = tmp_path / "q"
    assert cli.main(["liver", "quantify", str(lits / "segmentation-0.nii"), "--image", str(lits / "volume-0.nii"),
                     "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    from radassist.io import read_volume

    labels = read_volume(lits / "segmentation-0.nii").array
    voxel = float(np.prod(read_volume(lits / "segmentation-0.nii").spacing))
    assert report["summary"]["liver_voxels"] == int((labels > 0).sum())
    assert np.isclose(report["summary"]["total_tumour_volume_ml"], round((labels == 2).sum() * voxel / 1000, 3))
    assert (out / "segmentation.png").is_file()
    assert "tumour 1:" in capsys.readouterr().out


def test_quantify_refuses_a_segmentation_on_another_grid(lits, tmp_path, capsys, test_data):
    out = tmp_path / "q"
    seg = test_data / "ct" / "chest_abdomen_example" / "example_seg.nii.gz"
    assert cli.main(["liver", "quantify", str(seg), "--image", str(lits / "volume-0.nii"), "--liver-label", "5",
                     "--out", str(out)]) == 2
    assert "does not match the CT" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_quantify_real_ct_label_map(test_data, capsys):
    folder = test_data / "ct" / "chest_abdomen_example"
    assert cli.main(["liver", "quantify", str(folder / "example_seg.nii.gz"), "--image",
                     str(folder / "example_ct_sm.nii.gz"), "--liver-label", "5", "--tumour-label", "5"]) == 2
    assert "label(s) [5] are given as both liver and tumour" in capsys.readouterr().err
    assert cli.main(["liver", "quantify", str(folder / "example_seg.nii.gz"), "--liver-label", "5"]) == 0
    assert "liver 1043.1 mL, 0 tumour(s)" in capsys.readouterr().out  # 38,634 voxels x 27 mm^3


def test_evaluate_against_itself_and_with_the_model(lits, trained, tmp_path):
    out = tmp_path / "ev"
    assert cli.main(["evaluate", "liver", "--data", str(lits), "--predictions", str(lits), "--out", str(out)]) == 0
    summary = json.loads((out / "evaluation.json").read_text())["summary"]
    assert summary["liver"]["dice_per_case"] == 1.0 and summary["tumour"]["msd_mm"] == 0.0
    assert summary["lesion_detection"]["recall"] == 1.0
    assert (out / "evaluation.png").is_file()
    out_model = tmp_path / "ev_model"
    assert cli.main(["evaluate", "liver", "--data", str(lits), "--model", str(trained), "--out", str(out_model),
                     "--device", "cpu"]) == 0
    scored = json.loads((out_model / "evaluation.json").read_text())["summary"]
    assert scored["liver"]["dice_per_case"] > 0.6
