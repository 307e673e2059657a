"""The brain and lung-infection training loops under torchrun with two CPU processes (Gloo): both ranks end with
identical weights and histories, the losses (training and validation) match a single process that trains with
the same global batch, gradient accumulation included, and gradients are all-reduced once per optimiser step. `radassist train lung-infection` under torchrun writes one
checkpoint and registers one model, from rank 0.

This file is also the worker torchrun starts: ``python -m torch.distributed.run --nproc-per-node 2
test_distributed_train.py SCENARIOS OUT`` runs each scenario on every rank and writes ``OUT/<scenario>-rank<R>.npz``.
The networks are chosen so that one process with batch 2B computes exactly what two processes with batch B do:
no normalisation layers (batch norm mixes a batch's items; a bias before instance norm has no gradient, and Adam
turns its rounding noise into full steps), and plain losses that are means over equally sized items.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
WORLD = 2
PER_RANK_BATCH = 1
ACCUMULATION = 2


# -- the scenarios (run on every rank by torchrun, or in one process for the reference) -------------------------------

def infection_run(batch_size: int) -> dict[str, np.ndarray]:
    """train_infection on 12 small slices (10 train, 2 held out): U-Net without batch norm, plain cross-entropy."""
    import torch

    from radassist.lung.infection.dataset import SliceDataset
    from radassist.lung.infection.train import InfectionTrainConfig, train_infection

    torch.set_num_threads(1)
    rng = np.random.default_rng(4)
    dataset = SliceDataset()
    yy, xx = np.mgrid[:32, :32]
    for index in range(12):
        cy, cx = rng.integers(8, 24, size=2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(12, 40)
        mask = np.where(disc, 1 + index % 3, 0).astype(np.uint8)
        image = (60.0 * mask + rng.normal(100.0, 10.0, mask.shape)).astype(np.float32)
        dataset.add(image, mask, f"slice{index}")
    config = InfectionTrainConfig(architecture="unet", model={"channels": (4, 8), "batch_norm": False}, epochs=2,
                                  learning_rate=1e-2, batch_size=batch_size, accumulation_steps=ACCUMULATION,
                                  image_size=(32, 32), balanced_loss=False)
    trained = train_infection(dataset, config)
    return {"weights": np.concatenate([p.detach().numpy().ravel() for p in trained.model.parameters()]),
            "loss": np.array([r.train_loss for r in trained.history]),
            "validation_loss": np.array([r.validation_loss for r in trained.history]),
            "validation_dice": np.array(trained.validation.dice, dtype=float)}


def brain_subjects(count: int, seed: int = 0):
    """``count`` tiny subjects (1 sequence, 16 x 20 x 16 voxels) with a bright 'tumour' of class 3."""
    from scipy import ndimage

    from radassist.brain.train import TrainingSubject

    rng = np.random.default_rng(seed)
    shape = (16, 20, 16)
    z, y, x = np.mgrid[:shape[0], :shape[1], :shape[2]]
    subjects = []
    for index in range(count):
        texture = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
        centre = rng.uniform(6, 10, size=3)
        tumour = ((z - centre[0]) ** 2 + (y - centre[1] - 2) ** 2 + (x - centre[2]) ** 2) < 9
        image = (texture / texture.std() + 3.0 * tumour).astype(np.float32)[None]
        subjects.append(TrainingSubject(f"s{index}", image, tumour.astype(np.int64) * 3, np.ones(shape, bool)))
    return subjects


def brain_run(batch_size: int) -> dict[str, np.ndarray]:
    """train_brain on 4 subjects (random pairs and random 16^3 crops), validated on 3 others."""
    import torch

    from radassist.brain.losses import JointLossConfig
    from radassist.brain.model import BrainJointConfig
    from radassist.brain.train import BrainTrainConfig, train_brain

    torch.set_num_threads(1)
    subjects = brain_subjects(7)
    model = BrainJointConfig(channels_per_image=1, features=(4, 8), convolutions=(1, 2), normalization="none")
    config = BrainTrainConfig(epochs=2, batch_size=batch_size, accumulation_steps=ACCUMULATION, learning_rate=1e-2,
                              crop_size=(16, 16, 16), loss=JointLossConfig(alpha=1e-3, tumour_masked_similarity=False),
                              lr_patience=100, early_stop_patience=100)
    result = train_brain(subjects[:4], subjects[4:], model, config, channels=("t1",))
    return {"weights": np.concatenate([p.detach().numpy().ravel() for p in result.model.parameters()]),
            "loss": np.array([r.train_loss for r in result.history]),
            "validation_loss": np.array([r.validation_loss for r in result.history])}


SCENARIOS = {"infection": lambda: infection_run(PER_RANK_BATCH), "brain": lambda: brain_run(PER_RANK_BATCH)}
TRAIN_MODULES = {"infection": "radassist.lung.infection.train", "brain": "radassist.brain.train"}
ALLREDUCE_ROUNDS = {"infection": 2 * 3, "brain": 2 * 1}
"""Gradient all-reduces per run: epochs x optimiser steps. Infection: 10 training slices, 5 per rank in
micro-batches of 1, accumulated in groups of 2, 2 and 1. Brain: 4 pairs, 2 per rank, one group of 2."""


def counting_allreduce(module_name: str) -> list[int]:
    """Make the training module's DDP models record the index of every gradient bucket they all-reduce."""
    import importlib

    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    module = importlib.import_module(module_name)
    real, calls = module.wrap_ddp, []

    def wrap(model, device, **options):
        wrapped = real(model, device, **options)

        def hook(state, bucket):
            calls.append(bucket.index())
            return allreduce_hook(None, bucket)

        wrapped.register_comm_hook(None, hook)
        return wrapped

    module.wrap_ddp = wrap
    return calls


def worker(names: list[str], out: Path) -> None:
    from radassist.runtime.distributed import distributed_session, get_rank, is_distributed

    with distributed_session("cpu"):
        assert is_distributed()
        for name in names:
            calls = counting_allreduce(TRAIN_MODULES[name])
            result = SCENARIOS[name]()
            result["allreduce_rounds"] = np.array([len(calls) / max(len(set(calls)), 1)])
            np.savez(out / f"{name}-rank{get_rank()}.npz", **result)


# -- the tests --------------------------------------------------------------------------------------------------------

def _environment() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """Every scenario once, on two CPU processes started by torchrun (one start-up for all of them)."""
    out = tmp_path_factory.mktemp("ddp-train")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
               str(HERE), ",".join(SCENARIOS), str(out)]
    done = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return out


def load(out: Path, name: str, rank: int) -> dict[str, np.ndarray]:
    with np.load(out / f"{name}-rank{rank}.npz") as data:
        return dict(data)


@pytest.mark.parametrize("name, single_run", [("infection", infection_run), ("brain", brain_run)])
def test_ranks_agree_and_match_one_process_with_the_global_batch(two_ranks, name, single_run):
    ranks = [load(two_ranks, name, r) for r in range(WORLD)]
    for key in ranks[0]:
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)  # identical weights and records
    single = single_run(PER_RANK_BATCH * WORLD)  # one process, the same global batch and accumulation
    np.testing.assert_allclose(ranks[0]["loss"], single["loss"], rtol=1e-4)
    np.testing.assert_allclose(ranks[0]["validation_loss"], single["validation_loss"], rtol=1e-4)
    np.testing.assert_allclose(ranks[0]["weights"], single["weights"], rtol=1e-3, atol=1e-5)
    if "validation_dice" in single:
        np.testing.assert_allclose(ranks[0]["validation_dice"], single["validation_dice"], atol=1e-6)
    assert single["loss"][-1] != single["loss"][0]  # the weights moved: the comparison means something
    unbatched = single_run(PER_RANK_BATCH)  # a single process with the per-rank batch trains differently
    assert not np.allclose(unbatched["weights"], single["weights"], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_gradients_are_all_reduced_once_per_optimiser_step(two_ranks, name):
    """The micro-steps before an optimiser step run under no_sync: one all-reduce per step, not per micro-batch."""
    for rank in range(WORLD):
        assert load(two_ranks, name, rank)["allreduce_rounds"][0] == ALLREDUCE_ROUNDS[name]


def _infection_folder(root: Path) -> Path:
    """images/ and masks/ with eight 32 x 32 PNG slice pairs (the PNG layout `train lung-infection` reads)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:32, :32]
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    for index in range(8):
        cy, cx = rng.integers(8, 24, size=2)
        mask = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < 30, 1 + index % 3, 0).astype(np.uint8)
        image = np.clip(80 + 100 * (mask > 0) + rng.normal(0, 10, mask.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"s{index}.png")
        Image.fromarray(mask).save(root / "masks" / f"s{index}.png")
    return root


def test_radassist_train_lung_infection_under_torchrun_saves_and_registers_once(tmp_path, monkeypatch):
    from radassist.runtime.catalog import load_catalog

    data = _infection_folder(tmp_path / "data")
    out = tmp_path / "model"
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           str(WORLD), "-m", "radassist.cli", "train", "lung-infection", "--data", str(data),
                           "--out", str(out), "--channels", "4", "8", "--image-size", "32", "--epochs", "1",
                           "--batch-size", "2", "--learning-rate", "1e-3", "--register-as", "ddp-infection",
                           "--device", "cpu"], env=_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert done.stdout.count("registered as model ddp-infection 1.0.0") == 1  # rank 0 alone prints and registers
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "result.json",
                                                     "train_log.csv", "training_curves.png"]
    assert load_catalog().versions("ddp-infection") == ["1.0.0"]
    record = json.loads((out / "result.json").read_text())
    assert record["summary"]["registered_model"] == "ddp-infection 1.0.0"


if __name__ == "__main__":
    worker(sys.argv[1].split(","), Path(sys.argv[2]))
    print(json.dumps({"rank": int(os.environ.get("RANK", 0)), "done": sys.argv[1]}))
