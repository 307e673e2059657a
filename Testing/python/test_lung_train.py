"""Lung-DETR training end to end on a tiny synthetic LUNA16 folder: a few epochs of the tiny model, the log and the
checkpoints, an interrupted-and-resumed run that ends in exactly the state of an uninterrupted one, and the best
checkpoint installed as a user model that the detection pipeline loads by id."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from radassist.errors import InputError
from radassist.io.images import read_volume
from radassist.lung.datasets import SlabDataset, SplitConfig, read_luna16, select_slabs
from radassist.lung.losses import DetrLoss
from radassist.lung.model import build_lung_detr
from radassist.lung.preprocess import SlabConfig
from radassist.lung.train import (LOG_COLUMNS, LungTrainConfig, dataset_loss, load_state, model_preset, slab_f1,
                                  train_lung)
from radassist.results.detections import Detection
from radassist.runtime.checkpoints import load_checkpoint
from radassist.synthetic.chest import ChestPhantomConfig
from radassist.synthetic.datasets import write_dataset

CHEST = ChestPhantomConfig(shape=(40, 96, 128), spacing=(1.6, 1.6, 3.0), nodule_count=(2, 3),
                           nodule_diameter_mm=(8.0, 20.0))
EPOCHS = 3


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lung-train")
    write_dataset("lung", root / "luna", cases=4, seed=3, config=CHEST)
    return root


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config_for(workspace: Path, out: str, epochs: int = EPOCHS, **changes) -> LungTrainConfig:
    """The tiny model at a learning rate a tiny model needs; every other setting is the paper's recipe except the
    batch (4, no accumulation) and the positive share (one in two, so four scans give enough nodules)."""
    values = dict(data=workspace / "luna", out=workspace / out, model=model_preset("tiny"), epochs=epochs,
                  batch_size=4, accumulation_steps=1, lr=2e-3, lr_backbone=2e-3, device="cpu", threads=1,
                  cache_dir=workspace / "cache", split=SplitConfig(positive_ratio=(0.5, 0.5, 0.035)))
    values.update(changes)
    return LungTrainConfig(**values)


@pytest.fixture(scope="module")
def trained(workspace, model_home, one_thread):
    return train_lung(config_for(workspace, "run"))


def test_training_writes_log_state_split_and_best_checkpoint(trained, workspace):
    out = workspace / "run"
    assert trained.epochs == EPOCHS and len(trained.history) == EPOCHS and trained.resumed_from is None
    with open(out / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == LOG_COLUMNS and [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(np.isfinite(float(r["train_loss"])) and np.isfinite(float(r["val_loss"])) for r in rows)
    assert float(rows[0]["lr"]) == pytest.approx(2e-3)
    assert (out / "checkpoints" / "last.pt").is_file()
    assert (out / "best" / "model.safetensors").is_file() and (out / "best" / "config.json").is_file()
    assert sum(r["best"] == "True" for r in rows) >= 1
    split = json.loads((out / "split.json").read_text())
    assert set(split["split"]) == {"train", "validation", "test"}
    assert len(split["split"]["train"]) == 3 and len(split["split"]["validation"]) == 1
    assert split["slabs"]["train"]["positive_ratio"] == pytest.approx(0.5, abs=0.05)
    assert not list(out.glob(".radassist-tmp-*")) and not list((out / "checkpoints").glob(".radassist-tmp-*"))
    assert sorted(p.stem for p in (workspace / "cache").glob("*.npz")) == sorted(
        p.stem for p in (workspace / "luna" / "subset0").glob("*.mhd"))


def test_best_checkpoint_loads_and_fits_the_training_slabs_better_than_the_first_epoch(trained, workspace):
    loaded = load_checkpoint(trained.best_checkpoint)
    assert loaded.architecture == "lung-detr" and loaded.config == model_preset("tiny")
    assert loaded.metadata["epoch"] == trained.best_epoch
    data = read_luna16(workspace / "luna")
    from radassist.lung.datasets import SlabCache

    scans = SlabCache(workspace / "cache").prepare(data, trained.split["train"])
    items = select_slabs(scans, 0.5, seed=0)
    plain = SlabDataset(scans, items, None)
    criterion = DetrLoss(loaded.config)
    torch.manual_seed(0)  # the run's seed: the weights training started from
    untrained = dataset_loss(build_lung_detr(loaded.config), plain, criterion, torch.device("cpu"), 4)
    model = loaded.model
    model.load_state_dict(load_state(trained.state)["model"])  # the final weights
    loss = dataset_loss(model, plain, criterion, torch.device("cpu"), 4)
    assert loss < trained.history[0].train_loss
    assert loss < 0.8 * untrained, f"training-set loss {untrained:.2f} -> {loss:.2f}"


def test_the_trained_model_is_installed_and_detects_by_id(trained, workspace, model_home):
    from radassist.lung.pipeline import detect_nodules, load_detr_model
    from radassist.runtime.catalog import load_catalog

    entry = load_catalog().get("lung-detr-user")
    assert entry.task == "lung-nodule-detection" and entry.architecture == "lung-detr"
    assert trained.registered_path is not None and trained.registered_path.is_relative_to(model_home)
    detr = load_detr_model("lung-detr-user")
    assert detr.model_id == "lung-detr-user" and detr.config == model_preset("tiny")
    volume = read_volume(next((workspace / "luna" / "subset0").glob("*.mhd")))
    found = detect_nodules(volume, engine="detr", model="lung-detr-user")
    assert found.engine == "lung-detr" and found.metadata["model"]["id"] == "lung-detr-user"


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(trained, workspace, model_home, one_thread):
    first = train_lung(config_for(workspace, "interrupted", epochs=EPOCHS - 1, model_id=None))
    assert first.epochs == EPOCHS - 1
    saved = load_state(first.state)
    assert saved["epoch"] == EPOCHS - 1
    resumed = train_lung(config_for(workspace, "interrupted", resume=True, model_id=None))
    assert resumed.resumed_from == EPOCHS - 1 and resumed.epochs == EPOCHS
    assert resumed.cache == {"computed": 0, "reused": 4}
    straight, continued = load_state(trained.state), load_state(resumed.state)
    for key, value in straight["model"].items():
        assert torch.equal(value, continued["model"][key]), key
    assert straight["scheduler"] == continued["scheduler"]
    assert torch.equal(straight["torch_rng"], continued["torch_rng"])
    for a, b in zip(trained.history, resumed.history):
        assert (a.train_loss, a.val_loss, a.val_f1, a.best) == (b.train_loss, b.val_loss, b.val_f1, b.best)
    step = straight["optimizer"]["state"][0]["step"]
    assert torch.equal(step, continued["optimizer"]["state"][0]["step"])


def test_refusals_come_before_any_training(trained, workspace, model_home):
    with pytest.raises(InputError, match="--resume"):
        train_lung(config_for(workspace, "run"))
    with pytest.raises(InputError, match="no training state"):
        train_lung(config_for(workspace, "fresh", resume=True))
    with pytest.raises(InputError, match="catalogue model"):
        train_lung(config_for(workspace, "other", model_id="lung-detr"))
    with pytest.raises(InputError, match="another model config"):
        train_lung(config_for(workspace, "run", resume=True, model=model_preset("tiny").__class__.tiny(
            num_queries=8, frozen_batch_norm=False), model_id=None))
    with pytest.raises(InputError, match="epochs must be at least 1"):
        config_for(workspace, "x", epochs=0)
    with pytest.raises(InputError, match="lung windows on, but the slabs are 7.5 mm with lung windows off"):
        config_for(workspace, "x", slabs=SlabConfig(lung_windows=False))
    with pytest.raises(InputError, match="tied to 7.5 mm slabs"):
        config_for(workspace, "x", slabs=SlabConfig(thickness_mm=5.0))


def test_a_resume_without_its_scans_is_refused(trained, workspace, model_home, tmp_path):
    partial = tmp_path / "luna"
    shutil.copytree(workspace / "luna", partial)
    gone = trained.split["validation"][0]
    (partial / "subset0" / f"{gone}.mhd").unlink()
    shutil.copytree(workspace / "run", tmp_path / "run")
    with pytest.raises(InputError, match="lacks 1 scan"):
        train_lung(config_for(workspace, str(tmp_path / "run"), data=partial, resume=True, model_id=None))


def test_slab_f1_scores_boxes_by_iou_and_probability():
    def box(x0, y0, x1, y1, p=1.0):
        return Detection(center=((x0 + x1) / 2, (y0 + y1) / 2, 0.0), size=(x1 - x0, y1 - y0, 1.0), probability=p)

    references = {"a#0": [box(10, 10, 20, 20)], "a#1": [], "b#0": [box(40, 40, 50, 50)]}
    predictions = {"a#0": [box(11, 10, 21, 20, 0.9)],  # IoU 0.82: hit
                   "a#1": [box(0, 0, 5, 5, 0.8)],  # false positive on an empty slab
                   "b#0": [box(40, 40, 50, 50, 0.3)]}  # right place, below the threshold: a miss
    precision, recall, f1 = slab_f1(predictions, references, 0.5, 0.5)
    assert (precision, recall) == (0.5, 0.5) and f1 == pytest.approx(0.5)
