"""`radassist brain register`, `radassist train brain` and `radassist evaluate brain` end to end on small synthetic
BraTS-style folders: every output file is read back with the real readers (SimpleITK, slicerio, JSON, PIL), bad
input exits with code 2 and leaves nothing behind."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radassist.commands import brain as brain_commands
from radassist.io import read_volume
from radassist.results import read_displacement, read_seg_nrrd
from radassist.synthetic.brain import BrainPhantomConfig
from readable_outputs import assert_curves

SMALL = BrainPhantomConfig(shape=(40, 56, 48), spacing=(3.0, 3.0, 3.0))


def run_cli(argv: list[str]) -> int:
    """The real `radassist` command, in this process."""
    from radassist import cli

    return cli.main(argv)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from radassist.synthetic.datasets import write_dataset

    return write_dataset("brain", tmp_path_factory.mktemp("brain-data"), cases=2, seed=3, config=SMALL)


def _intent_code(path: Path) -> int:
    with gzip.open(path, "rb") as handle:
        header = handle.read(348)
    return struct.unpack_from("<h", header, 68)[0]


def test_register_classic_writes_every_result_slicer_reads(data, tmp_path):
    out = tmp_path / "out"
    code = run_cli(["brain", "register", str(data / "pair_0_moving"), str(data / "pair_0_fixed"), "--out", str(out),
                    "--engine", "classic", "--device", "cpu", "--field-format", "both"])
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert set(brain_commands.OUTPUTS) | {"result.json", "warped_t1.nii.gz", "warped_t1ce.nii.gz",
                                          "warped_t2.nii.gz"} == names
    h5 = read_displacement(out / "transform.h5")
    nifti = read_displacement(out / "displacement.nii.gz")
    assert np.allclose(h5.vectors, nifti.vectors, atol=1e-5) and _intent_code(out / "displacement.nii.gz") == 1006
    truth = read_displacement(data / "pair_0_deformation.h5")
    brain = read_volume(data / "pair_0_fixed" / "pair_0_fixed_flair.nii.gz").array > 0
    error = np.linalg.norm(h5.vectors - truth.vectors, axis=-1)[brain].mean()
    assert error < 0.3 * np.linalg.norm(truth.vectors, axis=-1)[brain].mean()
    fixed_tumour = read_seg_nrrd(out / "tumour_fixed.seg.nrrd")
    assert [s.name for s in fixed_tumour.segments] == ["necrotic and non-enhancing tumour core", "oedema",
                                                      "enhancing tumour"]  # values 1, 2, 4: BraTS 2017-2020
    assert fixed_tumour.segments[1].terminology.type.value == "79654002"  # SNOMED CT Edema
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["engine"] == "classic" and report["summary"]["folding_percent"] == 0.0
    assert report["summary"]["tumour_similarity"] == "robust"  # the tumour labels of the folders, the default
    assert {row["region"] for row in report["rows"]} >= {"oedema", "whole tumour"}
    with Image.open(out / "registration.png") as png:
        assert png.format == "PNG" and png.size[0] > 5 * 100
    record = json.loads((out / "result.json").read_text())
    assert "transform.h5" in record["outputs"]


def test_the_tumour_can_be_masked_outright(data, tmp_path):
    out = tmp_path / "out"
    code = run_cli(["brain", "register", str(data / "pair_0_moving"), str(data / "pair_0_fixed"), "--out", str(out),
                    "--engine", "classic", "--device", "cpu", "--tumour-similarity", "masked"])
    assert code == 0
    assert json.loads((out / "report.json").read_text())["summary"]["tumour_similarity"] == "masked"
    assert json.loads((out / "result.json").read_text())["arguments"]["tumour_similarity"] == "masked"


def test_bad_input_exits_2_and_writes_nothing(data, tmp_path, capsys):
    out = tmp_path / "out"
    code = run_cli(["brain", "register", str(data / "pair_0_moving" / "pair_0_moving_flair.nii.gz"),
                    str(data / "pair_0_fixed"), "--out", str(out), "--engine", "classic"])
    assert code == 2 and "same sequences" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())

    flat = tmp_path / "flat.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(flat)
    code = run_cli(["brain", "register", str(flat), str(flat), "--out", str(out)])
    assert code == 2
    assert not out.exists() or not any(out.iterdir())

    code = run_cli(["brain", "register", str(data / "pair_0_moving"), str(data / "pair_0_fixed"), "--out", str(out),
                    "--engine", "joint"])
    assert code == 2 and "trained weights" in capsys.readouterr().err


def test_train_then_register_with_the_checkpoint_then_evaluate(data, tmp_path):
    model_dir = tmp_path / "model"
    code = run_cli(["train", "brain", "--data", str(data), "--out", str(model_dir), "--epochs", "2",
                    "--features", "4", "8", "--crop", "32", "32", "32", "--sequences", "flair", "t1ce",
                    "--validation-subjects", "0", "--device", "cpu"])
    assert code == 0
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architecture"] == "brain-joint" and config["metadata"]["channels"] == ["flair", "t1ce"]
    assert len(json.loads((model_dir / "history.json").read_text())) == 2
    assert_curves(model_dir)

    out = tmp_path / "joint"
    code = run_cli(["brain", "register", str(data / "pair_1_moving"), str(data / "pair_1_fixed"), "--out", str(out),
                    "--model", str(model_dir), "--device", "cpu"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["engine"] == "joint"
    assert (out / "tumour_moving.seg.nrrd").is_file() and (out / "jacobian.nii.gz").is_file()

    evaluation_dir = tmp_path / "evaluation"
    code = run_cli(["evaluate", "brain", "--data", str(data), "--out", str(evaluation_dir), "--engine", "classic",
                    "--pairs", "1", "--device", "cpu"])
    assert code == 0
    evaluation = json.loads((evaluation_dir / "evaluation.json").read_text())
    summary = evaluation["summary"]
    assert summary["field_error_mean_mm after"] < 0.5 * summary["field_error_mean_mm before"]
    assert summary["warped_tumour_dice after"] > summary["warped_tumour_dice before"]
    assert summary["non_positive_jacobian_percent"] == 0.0
    assert evaluation["pairs"][0]["engine"] == "classic"
    with Image.open(evaluation_dir / "evaluation.png") as png:
        assert png.format == "PNG"


def test_train_option_defaults_are_the_configs_defaults():
    """The parser keeps the paper's defaults as literals (no torch import for --help); they must not drift."""
    from radassist.brain.losses import JointLossConfig
    from radassist.brain.model import BrainJointConfig
    from radassist.brain.train import BrainTrainConfig

    train, model, loss = BrainTrainConfig(), BrainJointConfig(), JointLossConfig()
    assert brain_commands.TRAIN_DEFAULTS == {
        "epochs": train.epochs, "batch_size": train.batch_size, "learning_rate": train.learning_rate,
        "crop_size": train.crop_size, "features": model.features, "merge": model.merge, "alpha": loss.alpha,
        "beta": loss.beta}


def test_two_single_files_of_one_unnamed_sequence(data, tmp_path):
    import shutil

    moving = tmp_path / "before.nii.gz"
    shutil.copy(data / "pair_0_moving" / "pair_0_moving_t1ce.nii.gz", moving)
    out = tmp_path / "out"
    code = run_cli(["brain", "register", str(moving), str(data / "pair_0_fixed" / "pair_0_fixed_t1ce.nii.gz"),
                    "--out", str(out), "--engine", "classic"])
    assert code == 0 and (out / "warped.nii.gz").is_file() and not (out / "tumour_fixed.seg.nrrd").exists()


def test_register_with_the_onnx_backend_matches_torch(data, tmp_path, monkeypatch):
    """`--backend onnx` exports the checkpoint's network once into the cache and registers as torch does."""
    import torch

    from radassist.brain.model import ARCHITECTURE_NAME, BrainJointConfig, BrainJointNet
    from radassist.runtime.checkpoints import save_checkpoint

    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    config = BrainJointConfig(channels_per_image=2, features=(4, 8), convolutions=(1, 2))
    model = BrainJointNet(config)
    with torch.no_grad():  # off the identity start, so the field is a real deformation
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    checkpoint = save_checkpoint(model, ARCHITECTURE_NAME, config, tmp_path / "model",
                                 metadata={"channels": ["flair", "t1ce"]})
    fields = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / backend
        code = run_cli(["brain", "register", str(data / "pair_0_moving"), str(data / "pair_0_fixed"), "--out",
                        str(out), "--model", str(checkpoint), "--engine", "joint", "--backend", backend,
                        "--device", "cpu"])
        assert code == 0
        fields[backend] = read_displacement(out / "transform.h5").vectors
        assert json.loads((out / "report.json").read_text())["summary"]["engine"] == "joint"
    assert len(list((tmp_path / "cache" / "onnx").glob("brain-joint-*.onnx"))) == 1
    assert np.abs(fields["torch"]).max() > 0.5
    assert np.abs(fields["onnx"] - fields["torch"]).max() < 1e-2
