"""`radassist train brain` and `radassist train lung-infection` with `--model` (formerly `--init`) and `--register-
as`: a fine-tune run starts from the weights of the checkpoint an earlier run wrote (and records it), the result
becomes a new model version in the local catalogue, and a network that does not fit is refused before anything is
written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from radassist import cli
from radassist.annotation.retrain import resolve_init
from radassist.runtime.catalog import installed_path, load_catalog
from radassist.runtime.checkpoints import load_checkpoint
from radassist.synthetic.brain import BrainPhantomConfig

BRAIN_RUN = ["--crop", "16", "16", "16", "--validation-subjects", "0", "--batch-size", "2", "--device", "cpu"]
BRAIN = ["--features", "4", "8", *BRAIN_RUN]
INFECTION = ["--image-size", "32", "--batch-size", "4", "--device", "cpu"]
TINY_LR = "1e-12"  # Adam moves every weight by about the learning rate: a fine-tune run that stays where it started


@pytest.fixture(autouse=True)
def _private(monkeypatch, tmp_path):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(capsys, *argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def parameters(folder: Path) -> np.ndarray:
    """The trainable weights of a checkpoint (batch-norm running statistics move in any training pass)."""
    model = load_checkpoint(folder).model
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])


@pytest.fixture(scope="module")
def brains(tmp_path_factory) -> Path:
    from radassist.synthetic.datasets import write_dataset

    return write_dataset("brain", tmp_path_factory.mktemp("brains"), cases=1, seed=2,
                         config=BrainPhantomConfig(shape=(24, 32, 28), spacing=(5.0, 5.0, 5.0)))


@pytest.fixture(scope="module")
def slices(tmp_path_factory) -> Path:
    """images/ and masks/ with eight 32 x 32 PNG slice pairs."""
    from test_distributed_train import _infection_folder

    return _infection_folder(tmp_path_factory.mktemp("slices") / "data")


def test_brain_finetune_starts_from_the_checkpoint_records_it_and_registers(brains, tmp_path, capsys):
    first = tmp_path / "first"
    code, text = run(capsys, "train", "brain", "--data", brains, "--out", first, "--epochs", "2", "--sequences",
                     "flair", "t1ce", *BRAIN)
    assert code == 0, text
    tuned = tmp_path / "tuned"
    code, text = run(capsys, "train", "brain", "--data", brains, "--out", tuned, "--epochs", "1",
                     "--learning-rate", TINY_LR, "--model", first, "--register-as", "my-brain", *BRAIN)
    assert code == 0, text
    assert "registered as model my-brain 1.0.0" in text
    np.testing.assert_allclose(parameters(tuned), parameters(first), atol=1e-8)  # it started at the file's weights
    fresh = tmp_path / "fresh"
    code, text = run(capsys, "train", "brain", "--data", brains, "--out", fresh, "--epochs", "1",
                     "--learning-rate", TINY_LR, "--sequences", "flair", "t1ce", *BRAIN)
    assert code == 0, text
    assert not np.allclose(parameters(fresh), parameters(first), atol=1e-3)  # without --model it does not

    metadata = json.loads((tuned / "config.json").read_text())["metadata"]
    assert metadata["channels"] == ["flair", "t1ce"]  # the sequences of the checkpoint it started from
    origin = metadata["finetunedFrom"]
    assert origin["source"] == str(first)
    assert origin["weights_sha256"] == json.loads((first / "config.json").read_text())["sha256"]
    entry = load_catalog().get("my-brain")
    assert entry.version == "1.0.0" and entry.task == "brain-registration-segmentation"
    np.testing.assert_allclose(np.concatenate([v.numpy().ravel() for k, v in resolve_init("my-brain").state_dict
                                               .items() if "running" not in k and "num_batches" not in k]),
                               parameters(tuned), atol=0)


def test_brain_init_that_does_not_fit_is_refused(brains, slices, tmp_path, capsys):
    first = tmp_path / "first"
    assert run(capsys, "train", "brain", "--data", brains, "--out", first, "--epochs", "1", "--sequences", "flair",
               *BRAIN)[0] == 0
    out = tmp_path / "out"
    code, text = run(capsys, "train", "brain", "--data", brains, "--out", out, "--epochs", "1", "--model", first,
                     "--features", "4", "8", "16", *BRAIN_RUN)
    assert code == 2 and "its network has convolutions" in text and "features (4, 8)" in text
    code, text = run(capsys, "train", "brain", "--data", brains, "--out", out, "--epochs", "1", "--model", first,
                     "--sequences", "flair", "t1ce", *BRAIN)
    assert code == 2 and "channels_per_image 1" in text and "channels_per_image 2" in text
    infection = tmp_path / "infection"
    assert run(capsys, "train", "lung-infection", "--data", slices, "--out", infection, "--epochs", "1",
               "--channels", "4", "8", *INFECTION)[0] == 0
    code, text = run(capsys, "train", "brain", "--data", brains, "--out", out, "--epochs", "1", "--model", infection,
                     *BRAIN)
    assert code == 2 and "is a lung-infection-unet network; this training needs brain-joint" in text
    code, text = run(capsys, "train", "brain", "--data", brains, "--out", out, "--model", first, "--register-as",
                     "Bad_Id", *BRAIN)
    assert code == 2 and "--register-as Bad_Id" in text
    assert not out.exists() or not any(out.iterdir())


def test_infection_finetune_starts_from_the_checkpoint_and_refuses_misfits(slices, tmp_path, capsys):
    first = tmp_path / "first"
    code, text = run(capsys, "train", "lung-infection", "--data", slices, "--out", first, "--epochs", "2",
                     "--learning-rate", "1e-2", "--channels", "4", "8", *INFECTION)
    assert code == 0, text
    tuned = tmp_path / "tuned"
    code, text = run(capsys, "train", "lung-infection", "--data", slices, "--out", tuned, "--epochs", "1",
                     "--learning-rate", TINY_LR, "--model", first, "--register-as", "my-infection@2.0.0", *INFECTION)
    assert code == 0, text
    np.testing.assert_allclose(parameters(tuned), parameters(first), atol=1e-8)
    config = json.loads((tuned / "config.json").read_text())
    assert config["architecture"] == "lung-infection-unet" and config["config"]["channels"] == [4, 8]
    assert config["metadata"]["finetunedFrom"]["source"] == str(first)
    assert load_catalog().versions("my-infection") == ["2.0.0"]
    registered = load_checkpoint(installed_path(load_catalog().get("my-infection", "2.0.0")))
    assert registered.metadata["input"] == config["metadata"]["input"]  # the pipeline prepares images as trained
    record = json.loads((tuned / "result.json").read_text())
    assert record["summary"]["registered_model"] == "my-infection 2.0.0"

    out = tmp_path / "out"
    for options, message in ((["--arch", "segnet"], "is a lung-infection-unet network; this training needs "
                                                    "lung-infection-segnet"),
                             (["--channels", "4", "8", "16"], "its network has channels (4, 8)")):
        code, text = run(capsys, "train", "lung-infection", "--data", slices, "--out", out, "--epochs", "1",
                         "--model", first, *options, *INFECTION)
        assert code == 2 and message in text, text
    code, text = run(capsys, "train", "lung-infection", "--data", slices, "--out", out, "--epochs", "1", "--model",
                     "no-such-model", *INFECTION)
    assert code == 2 and "--model no-such-model: neither a file nor a model of the catalogue" in text
    assert not out.exists() or not any(out.iterdir())
