"""`radassist train lung` from the command line: a tiny run, its result.json and log, --resume, the installed
model in `radassist models list`, and bad input that exits 2 with nothing written."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import pytest

from radassist import cli
from radassist.cli import _Formatter
from radassist.commands import TASK_MODULES, lung_train, train_evaluate
from radassist.errors import RadAssistError
from radassist.synthetic.chest import ChestPhantomConfig
from radassist.synthetic.datasets import write_dataset
from readable_outputs import assert_curves

CHEST = ChestPhantomConfig(shape=(40, 96, 128), spacing=(1.6, 1.6, 3.0), nodule_count=(2, 3),
                           nodule_diameter_mm=(8.0, 20.0))
TINY = ("--config", "tiny", "--batch-size", "4", "--accumulation", "1", "--learning-rate", "2e-3",
        "--learning-rate-backbone", "2e-3", "--device", "cpu", "--threads", "1")


def radassist(*argv: str) -> int:
    """The `radassist` command: cli.main once the lead has registered lung_train, else the same parser built
    here with register_all (as cli.build_parser does)."""
    argv = tuple(str(a) for a in argv)
    if lung_train in TASK_MODULES or argv[0] != "train":
        return cli.main(list(argv))
    parser = argparse.ArgumentParser(prog="radassist", formatter_class=_Formatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train_evaluate.register_all(commands, _Formatter, (lung_train,))
    args = parser.parse_args(list(argv))
    try:
        return int(args.handler(args) or 0)
    except RadAssistError as error:
        print(f"radassist {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code


@pytest.fixture(scope="module")
def luna(tmp_path_factory) -> Path:
    return write_dataset("lung", tmp_path_factory.mktemp("luna") / "luna", cases=3, seed=8, config=CHEST)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """Prepared slabs shared by the runs of this file (each scan is prepared once)."""
    return tmp_path_factory.mktemp("slab-cache")


def log_epochs(out: Path) -> list[int]:
    with open(out / "train_log.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_help_lists_the_recipe_options(capsys):
    with pytest.raises(SystemExit) as done:
        radassist("train", "lung", "--help")
    assert done.value.code == 0
    text = capsys.readouterr().out
    for option in ("--data", "--out", "--epochs", "--batch-size", "--accumulation", "--learning-rate",
                   "--learning-rate-backbone", "--config", "--resume", "--seed", "--device", "--threads", "--model-id",
                   "--learning-rate-step", "--learning-rate-gamma", "--model"):
        assert option in text
    assert "12.7 %" in text and "StepLR" in text


def test_train_then_resume_then_the_model_is_listed(luna, cache, tmp_path, model_home, capsys):
    out = tmp_path / "run"
    assert radassist("train", "lung", "--data", luna, "--out", out, "--epochs", 1, "--model-id", "my-lung-detr",
                     "--cache-dir", cache, *TINY) == 0
    printed = capsys.readouterr().out
    assert "my-lung-detr" in printed and "radassist lung detect --engine detr --model my-lung-detr" in printed
    record = json.loads((out / "result.json").read_text())
    assert record["command"] == "train lung" and record["summary"]["epochs"] == 1
    assert record["summary"]["registered_model"] == "my-lung-detr"
    assert record["summary"]["scans"] == {"train": 2, "validation": 1, "test": 0}
    assert log_epochs(out) == [1]
    assert (out / "best" / "model.safetensors").is_file() and (out / "checkpoints" / "last.pt").is_file()

    assert radassist("train", "lung", "--data", luna, "--out", out, "--epochs", 2, "--resume", "--model-id",
                     "my-lung-detr", "--cache-dir", cache, *TINY) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["summary"]["resumed_from_epoch"] == 1 and record["summary"]["cache"]["reused"] == 3
    assert log_epochs(out) == [1, 2]
    assert_curves(out)
    capsys.readouterr()

    assert radassist("models", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert "my-lung-detr" in json.dumps(listed)


def test_a_second_run_into_the_same_folder_needs_resume(luna, cache, tmp_path, model_home, capsys):
    out = tmp_path / "run"
    assert radassist("train", "lung", "--data", luna, "--out", out, "--epochs", 1, "--no-register",
                     "--cache-dir", cache, *TINY) == 0
    before = (out / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    assert radassist("train", "lung", "--data", luna, "--out", out, "--epochs", 1, "--no-register", *TINY) == 2
    error = capsys.readouterr().err
    assert "not empty" in error and "--resume to continue the run saved there, or --overwrite" in error
    assert (out / "checkpoints" / "last.pt").read_bytes() == before


def test_bad_data_exits_2_naming_the_folder_and_writes_nothing(tmp_path, model_home, capsys):
    empty = tmp_path / "no-scans"
    empty.mkdir()
    out = tmp_path / "out"
    assert radassist("train", "lung", "--data", empty, "--out", out, "--epochs", 1, *TINY) == 2
    error = capsys.readouterr().err
    assert str(empty) in error and "subset" in error
    assert not [p for p in out.rglob("*") if p.is_file()]


def test_a_catalogue_model_id_is_refused(luna, tmp_path, model_home, capsys):
    assert radassist("train", "lung", "--data", luna, "--out", tmp_path / "out", "--model-id", "lung-detr",
                     *TINY) == 2
    assert "catalogue model" in capsys.readouterr().err


def _saved_network(folder: Path, architecture: str, config, seed: int, **metadata) -> Path:
    import torch

    from radassist.runtime.checkpoints import save_checkpoint
    from radassist.runtime.registry import build_model

    torch.manual_seed(seed)
    return save_checkpoint(build_model(architecture, config), architecture, config, folder, metadata=metadata)


def test_init_starts_from_the_given_weights_and_registers_a_new_version(luna, cache, tmp_path, model_home, capsys):
    """--model with no --config takes the checkpoint's network; with a vanishing learning rate the best checkpoint's
    parameters are the starting ones; --register-as keeps it as the next version of the base model."""
    import torch

    from radassist.lung.train import model_preset
    from radassist.runtime.catalog import installed_path, load_catalog
    from radassist.runtime.checkpoints import load_checkpoint, sha256_file

    base = _saved_network(tmp_path / "base", "lung-detr", model_preset("tiny"), 5, modelId="lung-base",
                          modelVersion="1.0.0")
    out = tmp_path / "tuned"
    assert radassist("train", "lung", "--data", luna, "--out", out, "--epochs", 1, "--model", base, "--register-as",
                     "lung-base", "--learning-rate", "1e-12", "--learning-rate-backbone", "1e-12", "--batch-size", "4",
                     "--accumulation", "1", "--device", "cpu", "--threads", "1", "--cache-dir", cache) == 0
    assert "registered as model lung-base 1.1.0" in capsys.readouterr().out
    best = load_checkpoint(out / "best")
    start = dict(load_checkpoint(base).model.named_parameters())
    assert all(torch.allclose(value, start[name], atol=1e-6) for name, value in best.model.named_parameters())
    started = best.metadata["finetunedFrom"]
    assert (started["model_id"], started["version"]) == ("lung-base", "1.0.0")
    assert started["weights_sha256"] == sha256_file(base / "model.safetensors")
    record = json.loads((out / "result.json").read_text())
    assert record["summary"]["registered_model"] is None and record["summary"]["registered_as"] == "lung-base 1.1.0"
    entry = load_catalog().get("lung-base")
    assert (entry.version, entry.task) == ("1.1.0", "lung-nodule-detection")
    assert {m.name for m in entry.reported_metrics} <= {"val_f1", "val_precision", "val_recall", "val_scan_cpm"}
    installed = load_checkpoint(installed_path(entry))
    assert installed.metadata["finetunedFrom"] == started and installed.metadata["epoch"] == 1

    # a resumed run keeps recording where the fine-tuning started (from its saved state)
    assert radassist("train", "lung", "--data", luna, "--out", out, "--epochs", 2, "--resume", "--no-register",
                     "--learning-rate", "1e-12", "--learning-rate-backbone", "1e-12", "--batch-size", "4",
                     "--accumulation", "1", "--device", "cpu", "--threads", "1", "--cache-dir", cache) == 0
    assert json.loads((out / "result.json").read_text())["summary"]["finetuned_from"] == started


def test_init_that_does_not_fit_is_refused_and_nothing_is_written(luna, tmp_path, model_home, capsys):
    from radassist.lung.train import model_preset
    from radassist.runtime.registry import MonaiUNetConfig

    base = _saved_network(tmp_path / "base", "lung-detr", model_preset("tiny"), 5)
    other = _saved_network(tmp_path / "other", "monai-unet", MonaiUNetConfig(spatial_dims=2, channels=(8, 16),
                                                                             strides=(2,)), 0)
    out = tmp_path / "out"
    for options, message in ((["--model", other], "is a monai-unet network; this training needs lung-detr"),
                             (["--model", base, "--config", "paper"], "the training asks for"),
                             (["--model", base, "--resume"], "a resumed run continues from its own saved weights"),
                             (["--model", base, "--register-as", "x-model", "--model-id", "y"], "leave out")):
        assert radassist("train", "lung", "--data", luna, "--out", out, "--epochs", 1, *options) == 2
        assert message in capsys.readouterr().err
        assert not [p for p in out.rglob("*") if p.is_file()]


def test_the_learning_rate_schedule_is_set_from_the_command_line(luna, cache, tmp_path, model_home):
    out = tmp_path / "run"
    assert radassist("train", "lung", "--data", luna, "--out", out, "--epochs", 3, "--learning-rate-step", 2,
                     "--learning-rate-gamma", 0.5, "--no-register", "--cache-dir", cache, *TINY) == 0
    with open(out / "train_log.csv", newline="") as handle:
        rates = [(float(row["lr"]), float(row["lr_backbone"])) for row in csv.DictReader(handle)]
    assert rates == [pytest.approx((2e-3, 2e-3))] * 2 + [pytest.approx((1e-3, 1e-3))]
