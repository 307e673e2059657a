"""`radassist batch brain-register` and `radassist batch lung-infection`: each case folder holds the files the single
command writes, a bad case is recorded and the rest go on, a second run resumes, and a list without the needed
columns is refused before anything is written. Small synthetic inputs: the classic registration engine, and an
untrained tiny infection U-Net installed as the catalogue model in a private cache."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from radassist import cli
from radassist.commands import batch as batch_command
from task_outputs import BRAIN_FILES, INFECTION_FILES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path_factory):
    """`batch` on the real CLI, and a model folder of our own so no installed weights are found."""
    if batch_command not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + (batch_command,))
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(folder))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    return folder


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def brains(tmp_path_factory) -> Path:
    """Two synthetic pairs, and a case list in a CSV with relative paths (one pair's fixed image is missing)."""
    from radassist.synthetic.brain import BrainPhantomConfig
    from radassist.synthetic.datasets import write_dataset

    root = tmp_path_factory.mktemp("brains")
    write_dataset("brain", root, cases=2, seed=5, config=BrainPhantomConfig(shape=(24, 32, 28), spacing=(5.0,) * 3))
    return root


def _brain_list(root: Path, second_fixed: str) -> Path:
    listing = root / "pairs.csv"
    listing.write_text("id,moving,fixed,fixed_labels\n"
                       "a,pair_0_moving/pair_0_moving_t1ce.nii.gz,pair_0_fixed/pair_0_fixed_t1ce.nii.gz,"
                       "pair_0_fixed/pair_0_fixed_seg.nii.gz\n"
                       f"b,pair_1_moving/pair_1_moving_t1ce.nii.gz,{second_fixed},"
                       "pair_1_fixed/pair_1_fixed_seg.nii.gz\n")
    return listing


def test_batch_brain_register_writes_what_register_writes_records_failures_and_resumes(brains, tmp_path, capsys):
    out = tmp_path / "out"
    listing = _brain_list(brains, "pair_1_fixed/missing.nii.gz")
    code, stdout, stderr = run(capsys, "batch", "brain-register", "--inputs", listing, "--out", out, "--engine",
                               "classic", "--device", "cpu")
    assert code == 1, stderr
    assert "2 case(s): 1 done now, 0 already done (skipped), 1 failed" in stdout and "missing.nii.gz" in stdout
    with (out / "failures.csv").open() as handle:
        assert [row["id"] for row in csv.DictReader(handle)] == ["b"]
    assert sorted(p.name for p in (out / "a").iterdir()) == BRAIN_FILES and not (out / "b").exists()
    with (out / "predictions.csv").open() as handle:  # one row per finished pair: its result.json summary
        rows = list(csv.DictReader(handle))
    summary = json.loads((out / "a" / "result.json").read_text())["summary"]
    assert [row["case"] for row in rows] == ["a"] and rows[0]["engine"] == summary["engine"] == "classic"

    single = tmp_path / "single"  # the same pair through `radassist brain register`
    code, _, stderr = run(capsys, "brain", "register", brains / "pair_0_moving" / "pair_0_moving_t1ce.nii.gz",
                          brains / "pair_0_fixed" / "pair_0_fixed_t1ce.nii.gz", "--fixed-labels",
                          brains / "pair_0_fixed" / "pair_0_fixed_seg.nii.gz", "--out", single, "--engine",
                          "classic", "--device", "cpu")
    assert code == 0, stderr
    assert sorted(p.name for p in single.iterdir()) == BRAIN_FILES
    for name in ("report.json", "report.csv", "registration.png"):
        assert (out / "a" / name).read_bytes() == (single / name).read_bytes(), name
    record = json.loads((out / "a" / "result.json").read_text())
    assert record["command"] == "brain register" and record["summary"]["engine"] == "classic"
    assert record["inputs"] == [str(brains / "pair_0_moving" / "pair_0_moving_t1ce.nii.gz"),
                                str(brains / "pair_0_fixed" / "pair_0_fixed_t1ce.nii.gz")]

    listing = _brain_list(brains, "pair_1_fixed/pair_1_fixed_t1ce.nii.gz")  # the user fixes the list
    code, stdout, stderr = run(capsys, "batch", "brain-register", "--inputs", listing, "--out", out, "--engine",
                               "classic", "--device", "cpu")
    assert code == 0, stderr
    assert "2 case(s): 1 done now, 1 already done (skipped), 0 failed" in stdout
    assert sorted(p.name for p in (out / "b").iterdir()) == BRAIN_FILES


def test_brain_register_needs_a_csv_with_moving_and_fixed(brains, tmp_path, capsys):
    out = tmp_path / "out"
    plain = tmp_path / "list.txt"
    plain.write_text(f"{brains / 'pair_0_moving'}\n")
    code, _, stderr = run(capsys, "batch", "brain-register", "--inputs", plain, "--out", out)
    assert code == 2 and "needs a CSV case list" in stderr and "id, moving, fixed" in stderr
    no_fixed = tmp_path / "list.csv"
    no_fixed.write_text("id,moving\na,x.nii.gz\n")
    code, _, stderr = run(capsys, "batch", "brain-register", "--inputs", no_fixed, "--out", out)
    assert code == 2 and "a 'fixed' column" in stderr
    empty_fixed = tmp_path / "empty.csv"
    empty_fixed.write_text("id,moving,fixed\na,x.nii.gz,\n")
    code, _, stderr = run(capsys, "batch", "brain-register", "--inputs", empty_fixed, "--out", out)
    assert code == 2 and "line 2: case 'a' has no fixed" in stderr
    assert not out.exists()


def test_batch_lung_infection_writes_what_infection_writes(private_cache, tmp_path, capsys):
    from radassist.io import write_volume
    from radassist.lung.infection.model import default_label_table
    from radassist.lung.infection.synthetic import InfectionPhantomConfig, make_infection_ct
    from radassist.lung.infection.train import build_network
    from radassist.runtime.catalog import installed_path, load_catalog
    from radassist.runtime.checkpoints import save_checkpoint
    from radassist.synthetic.chest import ChestPhantomConfig

    name, config, network = build_network("unet", {"channels": (4, 8)}, 4, seed=0)
    save_checkpoint(network, name, config, installed_path(load_catalog().get(name)), labels=default_label_table())
    chest = InfectionPhantomConfig(chest=ChestPhantomConfig(shape=(16, 48, 48), spacing=(6.5, 6.5, 15.0),
                                                            nodule_count=(0, 0), vessel_generations=3,
                                                            airway_generations=2))
    write_volume(make_infection_ct(0, chest).volume, tmp_path / "ct0.nrrd")
    (tmp_path / "broken.nrrd").write_text("not an image")
    listing = tmp_path / "cases.txt"
    listing.write_text("ct0.nrrd\nbroken.nrrd\n")
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "batch", "lung-infection", "--inputs", listing, "--out", out, "--device", "cpu")
    assert code == 1, stderr
    assert "2 case(s): 1 done now, 0 already done (skipped), 1 failed" in stdout and "failed: broken" in stdout
    code, _, stderr = run(capsys, "lung", "infection", tmp_path / "ct0.nrrd", "--out", tmp_path / "single",
                          "--device", "cpu")
    assert code == 0, stderr
    assert sorted(p.name for p in (out / "ct0").iterdir()) == INFECTION_FILES == sorted(
        p.name for p in (tmp_path / "single").iterdir())
    for name in ("infection_report.json", "infection_report.csv", "infection_preview.png"):
        assert (out / "ct0" / name).read_bytes() == (tmp_path / "single" / name).read_bytes(), name
    record = json.loads((out / "ct0" / "result.json").read_text())
    assert record["command"] == "lung infection" and record["summary"]["model"]
    code, stdout, _ = run(capsys, "batch", "lung-infection", "--inputs", listing, "--out", out, "--device", "cpu")
    assert code == 1 and "1 already done (skipped), 1 failed" in stdout  # resumed: only the broken case again
