"""`radassist lung infection`, `radassist train lung-infection` and `radassist evaluate lung-infection` end to end,
on phantom data written in the public data sets' layouts (NIfTI volumes of slices, PNG slices)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import slicerio
import torch
from PIL import Image

from radassist.cli import main as run  # the real command line, as a user types it
from radassist.io import write_volume
from radassist.lung.infection.synthetic import InfectionPhantomConfig, make_infection_ct
from radassist.results import write_seg_nrrd
from radassist.synthetic.chest import ChestPhantomConfig
from radassist.volume import SourceInfo, Volume
from readable_outputs import assert_curves

SMALL = InfectionPhantomConfig(chest=ChestPhantomConfig(shape=(16, 48, 48), spacing=(6.5, 6.5, 15.0),
                                                        nodule_count=(0, 0), vessel_generations=3,
                                                        airway_generations=2))




@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def phantoms():
    return [make_infection_ct(seed, SMALL) for seed in (0, 1)]


@pytest.fixture(scope="module")
def nifti_data(phantoms, tmp_path_factory):
    """images/ and masks/ with one NIfTI volume of slices per phantom (the COVID-19 CT segmentation layout)."""
    root = tmp_path_factory.mktemp("nifti-data")
    for number, phantom in enumerate(phantoms):
        write_volume(phantom.volume, root / "images" / f"case{number}.nii.gz")
        write_volume(phantom.volume.with_array(phantom.labels), root / "masks" / f"case{number}.nii.gz")
    return root


@pytest.fixture(scope="module")
def checkpoint(nifti_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    code = run(["train", "lung-infection", "--data", str(nifti_data), "--out", str(out), "--epochs", "2",
                "--image-size", "48", "--channels", "4", "8", "--learning-rate", "0.01", "--batch-size", "4",
                "--device", "cpu"])
    assert code == 0
    return out


def test_train_writes_a_checkpoint_with_label_table_weights_and_input(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["architecture"] == "lung-infection-unet"
    assert_curves(checkpoint)
    assert config["config"]["channels"] == [4, 8] and config["config"]["out_channels"] == 4
    assert [label["name"] for label in config["labels"]] == ["ground-glass opacity", "consolidation",
                                                             "pleural effusion"]
    assert config["labels"][1]["terminology"]["type"] == ["SCT", "95436008", "Lung consolidation"]
    meta = config["metadata"]
    assert meta["input"] == {"imageSize": [48, 48], "window": [-1350.0, 150.0], "normalization": "window"}
    assert meta["lossFunction"] == "median-frequency weighted cross-entropy"
    assert len(meta["classWeights"]) == 4 and meta["classWeights"][0] < 0.1 < min(meta["classWeights"][1:])
    assert meta["trainSlices"] + meta["validationSlices"] == 32 and meta["validationSlices"] == 5  # 16 % of 32
    result = json.loads((checkpoint / "result.json").read_text())
    assert result["summary"]["architecture"] == "lung-infection-unet"
    assert (checkpoint / "model.safetensors").is_file()


def test_train_with_a_dice_per_slice_records_it_and_refuses_it_without_the_dice_term(nifti_data, tmp_path, capsys):
    common = ["--data", str(nifti_data), "--epochs", "1", "--image-size", "48", "--channels", "4", "8",
              "--batch-size", "4", "--device", "cpu", "--plain-ce"]
    assert run(["train", "lung-infection", "--out", str(tmp_path / "alone"), "--dice-per-image", *common]) == 2
    assert "give it with the Dice loss" in capsys.readouterr().err
    assert not (tmp_path / "alone" / "config.json").exists()
    assert run(["train", "lung-infection", "--out", str(tmp_path / "per-slice"), "--dice-loss", "--dice-per-image",
                *common]) == 0
    meta = json.loads((tmp_path / "per-slice" / "config.json").read_text())["metadata"]
    assert meta["lossFunction"] == "cross-entropy + soft Dice per slice and class present"
    assert meta["training"]["dice_per_image"] is True


def test_segment_a_ct_and_write_seg_nrrd_report_and_preview(phantoms, checkpoint, tmp_path):
    phantom = phantoms[0]
    ct = write_volume(phantom.volume, tmp_path / "chest.nrrd")
    lungs = write_seg_nrrd(phantom.lungs, tmp_path / "lungs.seg.nrrd")
    out = tmp_path / "out"
    code = run(["lung", "infection", str(ct), "--out", str(out), "--model", str(checkpoint), "--lungs",
                str(lungs), "--device", "cpu"])
    assert code == 0
    segmentation = slicerio.read_segmentation(str(out / "infection.seg.nrrd"))
    assert [s["name"] for s in segmentation["segments"]] == ["ground-glass opacity", "consolidation",
                                                             "pleural effusion"]
    assert segmentation["voxels"].shape[-3:] in (phantom.volume.shape, phantom.volume.shape[::-1])
    report = json.loads((out / "infection_report.json").read_text())
    structures = [row["structure"] for row in report["rows"]]
    assert structures == ["ground-glass opacity", "consolidation", "pleural effusion", "right lung", "left lung"]
    assert 0 <= report["summary"]["right_lung_infected_percent"] <= 100
    assert (out / "infection_report.csv").read_text().startswith("structure,")
    with Image.open(out / "infection_preview.png") as preview:
        assert preview.width > 100
    result = json.loads((out / "result.json").read_text())
    assert "infection.seg.nrrd" in result["outputs"]


def test_png_slices_train_and_evaluate_with_perfect_predictions(phantoms, tmp_path):
    data = tmp_path / "png"
    phantom = phantoms[1]
    window = np.clip((phantom.volume.array.astype(float) + 1350) / 1500, 0, 1)
    for z in (3, 5, 7):
        for folder, array in (("images", (window[z] * 255).astype(np.uint8)), ("masks", phantom.labels[z])):
            (data / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(data / folder / f"slice{z}.png")
    out = tmp_path / "evaluation"
    assert run(["evaluate", "lung-infection", "--data", str(data), "--predictions", str(data / "masks"),
                "--out", str(out)]) == 0
    document = json.loads((out / "evaluation.json").read_text())
    classes = document["multiclass"]["classes"]
    assert document["slices"] == 3
    assert document["multiclass"]["pixel_accuracy"] == 1.0
    present = [c for c in classes if c["true_voxels"] > 0]
    assert present and all(c["dice"] == 1.0 and c["iou"] == 1.0 for c in present)
    counts = np.array(document["multiclass"]["confusion_matrix"]["counts"])
    assert counts.sum() == 3 * 48 * 48 and np.count_nonzero(counts - np.diag(np.diag(counts))) == 0
    with Image.open(out / "confusion_matrix.png") as png:
        assert png.size[0] > 300

    trained = tmp_path / "segnet"
    assert run(["train", "lung-infection", "--data", str(data), "--out", str(trained), "--arch", "segnet",
                "--epochs", "1", "--image-size", "32", "--channels", "4", "8", "--validation-fraction", "0",
                "--plain-ce", "--device", "cpu"]) == 0
    config = json.loads((trained / "config.json").read_text())
    assert config["architecture"] == "lung-infection-segnet" and config["config"]["convs_per_stage"] == [2, 2]
    assert config["metadata"]["lossFunction"] == "cross-entropy"


def test_evaluate_a_checkpoint_on_nifti_data(nifti_data, checkpoint, tmp_path):
    out = tmp_path / "scores"
    assert run(["evaluate", "lung-infection", "--data", str(nifti_data), "--model", str(checkpoint),
                "--out", str(out), "--device", "cpu"]) == 0
    document = json.loads((out / "evaluation.json").read_text())
    assert document["slices"] == 32
    counts = np.array(document["multiclass"]["confusion_matrix"]["counts"])
    assert counts.sum() == 32 * 48 * 48
    assert 0.0 <= document["multiclass"]["pixel_accuracy"] <= 1.0
    assert document["binary"]["classes"][1]["class"] == "any finding"


def test_bad_inputs_exit_with_code_2_and_nothing_written(phantoms, checkpoint, tmp_path, capsys):
    mr = Volume(phantoms[0].volume.array, phantoms[0].volume.spacing, source=SourceInfo(modality="MR"))
    image = write_volume(Volume(np.full((4, 16, 16), 300, np.int16)), tmp_path / "not-ct.nrrd")
    out = tmp_path / "out"
    assert run(["lung", "infection", str(image), "--out", str(out), "--model", str(checkpoint),
                "--device", "cpu"]) == 2
    assert "not-ct.nrrd: does not look like a CT in Hounsfield units" in capsys.readouterr().err
    assert not any(p.name.endswith((".seg.nrrd", ".json")) for p in out.rglob("*"))
    assert mr.source.modality == "MR"

    lonely = tmp_path / "lonely"
    (lonely / "images").mkdir(parents=True)
    (lonely / "masks").mkdir()
    write_volume(phantoms[0].volume, lonely / "images" / "case.nii.gz")
    assert run(["train", "lung-infection", "--data", str(lonely), "--out", str(tmp_path / "t"), "--epochs", "1",
                "--device", "cpu"]) == 2
    assert "case.nii.gz: has no mask of the same name" in capsys.readouterr().err

    bad_mask = tmp_path / "bad"
    (bad_mask / "images").mkdir(parents=True)
    (bad_mask / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad_mask / "images" / "a.png")
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(bad_mask / "masks" / "a.png")
    assert run(["train", "lung-infection", "--data", str(bad_mask), "--out", str(tmp_path / "t2"), "--epochs", "1",
                "--device", "cpu"]) == 2
    assert "a.png: holds values [255]; a mask holds class values 0..3" in capsys.readouterr().err
