"""The brain-register and lung-infection server tasks over real HTTP on 127.0.0.1: the files a client gets back are
the files `radassist brain register` and `radassist lung infection` write for the same input, and bad uploads are
refused with a message that names the user's file. Small synthetic inputs: the classic registration engine, and an
untrained tiny infection U-Net installed as the catalogue model in a private cache."""

from __future__ import annotations

import filecmp
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import requests

from radassist.client import JobFailed, RadAssistClient
from server_fixtures import AUTH, TOKEN, running_server, submit, wait_state
from task_outputs import BRAIN_FILES, INFECTION_FILES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run_cli(*argv: str) -> int:
    from radassist import cli

    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private model cache holding an untrained tiny lung-infection-unet as the installed catalogue model."""
    from radassist.lung.infection.model import default_label_table
    from radassist.lung.infection.train import build_network
    from radassist.runtime.catalog import installed_path, load_catalog
    from radassist.runtime.checkpoints import save_checkpoint

    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RADASSIST_CACHE_DIR", str(folder))
        patch.delenv("RADASSIST_CATALOGS", raising=False)
        name, config, network = build_network("unet", {"channels": (4, 8)}, 4, seed=0)
        save_checkpoint(network, name, config, installed_path(load_catalog().get(name)),
                        metadata={"input": {"imageSize": [64, 64], "window": [-1350.0, 150.0]}},
                        labels=default_label_table())
        yield folder


@pytest.fixture(scope="module")
def server(cache, tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("tasks")) as (url, _):
        yield url


@pytest.fixture(scope="module")
def brain_pair(tmp_path_factory) -> Path:
    from radassist.synthetic.brain import BrainPhantomConfig
    from radassist.synthetic.datasets import write_dataset

    return write_dataset("brain", tmp_path_factory.mktemp("brain"), cases=1, seed=3,
                         config=BrainPhantomConfig(shape=(24, 32, 28), spacing=(5.0, 5.0, 5.0)))


@pytest.fixture(scope="module")
def chest_ct(tmp_path_factory) -> Path:
    from radassist.io import write_volume
    from radassist.lung.infection.synthetic import InfectionPhantomConfig, make_infection_ct
    from radassist.synthetic.chest import ChestPhantomConfig

    config = InfectionPhantomConfig(chest=ChestPhantomConfig(shape=(16, 48, 48), spacing=(6.5, 6.5, 15.0),
                                                             nodule_count=(0, 0), vessel_generations=3,
                                                             airway_generations=2))
    return write_volume(make_infection_ct(0, config).volume, tmp_path_factory.mktemp("chest") / "chest.nrrd")


def _same_content(first: Path, second: Path) -> bool:
    """Byte for byte, except where two CLI runs differ too: a .gz by its content (the gzip header holds the time
    it was written), a .seg.nrrd by voxels and header fields (a comment holds the time), an ITK transform .h5 by
    its field and geometry (HDF5 keeps its own bookkeeping)."""
    if first.name.endswith(".seg.nrrd"):
        import nrrd

        (one, one_header), (two, two_header) = nrrd.read(str(first)), nrrd.read(str(second))
        return np.array_equal(one, two) and repr(one_header) == repr(two_header)
    if first.name.endswith(".gz"):
        return gzip.decompress(first.read_bytes()) == gzip.decompress(second.read_bytes())
    if first.suffix == ".h5":
        from radassist.results import read_displacement

        one, two = read_displacement(first), read_displacement(second)
        return np.array_equal(one.vectors, two.vectors) and one.geometry.same_grid(two.geometry, tolerance=1e-9)
    return filecmp.cmp(first, second, shallow=False)


def _same_files(local: Path, remote: Path, written: list[Path], expected: list[str]) -> None:
    assert sorted(p.name for p in local.iterdir()) == expected
    assert sorted(p.name for p in written) == expected
    for name in expected:
        if name != "result.json":
            assert _same_content(local / name, remote / name), name
    local_record = json.loads((local / "result.json").read_text())
    remote_record = json.loads((remote / "result.json").read_text())
    assert remote_record["summary"] == local_record["summary"]
    assert remote_record["command"] == local_record["command"]
    assert str(remote.parent) not in json.dumps(remote_record)  # no server path leaks into the result


def test_brain_register_gives_the_cli_files(server, brain_pair, tmp_path):
    moving = brain_pair / "pair_0_moving" / "pair_0_moving_t1ce.nii.gz"
    fixed = brain_pair / "pair_0_fixed" / "pair_0_fixed_t1ce.nii.gz"
    labels = brain_pair / "pair_0_fixed" / "pair_0_fixed_seg.nii.gz"
    assert run_cli("brain", "register", moving, fixed, "--fixed-labels", labels, "--out", tmp_path / "local",
                   "--engine", "classic", "--device", "cpu") == 0
    client = RadAssistClient(server, token=TOKEN)
    written = client.run("brain-register", [labels, moving, fixed],
                         {"role": ["fixed-labels", "moving", "fixed"], "engine": "classic",
                          "tumour_similarity": "masked"}, tmp_path / "remote-masked")
    record = json.loads((tmp_path / "remote-masked" / "result.json").read_text())
    assert record["summary"]["tumour_similarity"] == "masked"  # the option reaches the engine
    written = client.run("brain-register", [labels, moving, fixed],
                         {"role": ["fixed-labels", "moving", "fixed"], "engine": "classic"}, tmp_path / "remote")
    _same_files(tmp_path / "local", tmp_path / "remote", written, BRAIN_FILES)
    record = json.loads((tmp_path / "remote" / "result.json").read_text())
    assert record["command"] == "brain register" and record["summary"]["engine"] == "classic"
    assert record["summary"]["tumour_similarity"] == "robust"
    assert record["summary"]["registration_channel"] == "t1ce"  # named from the client's file name

    # two files and no roles: the moving image first, the fixed one second (the CLI's order)
    assert run_cli("brain", "register", moving, fixed, "--out", tmp_path / "local2", "--engine", "classic",
                   "--device", "cpu") == 0
    written = client.run("brain-register", [moving, fixed], {"engine": "classic"}, tmp_path / "remote2")
    _same_files(tmp_path / "local2", tmp_path / "remote2", written,
                [name for name in BRAIN_FILES if name != "tumour_fixed.seg.nrrd"])


def test_brain_register_refuses_unclear_uploads(server, brain_pair):
    data = (brain_pair / "pair_0_fixed" / "pair_0_fixed_t1ce.nii.gz").read_bytes()
    three = [("a_t1ce.nii.gz", data), ("b_t1ce.nii.gz", data), ("c_t1ce.nii.gz", data)]
    job = submit(server, "brain-register", three).json()
    done = wait_state(server, job["id"], ("succeeded", "failed"))
    assert done["state"] == "failed" and "option 'role'" in done["error"]
    job = submit(server, "brain-register", three[:2], options='{"role": ["moving", "moving"]}').json()
    done = wait_state(server, job["id"], ("succeeded", "failed"))
    assert done["state"] == "failed" and "no file has the role 'fixed'" in done["error"]
    refused = submit(server, "brain-register", three[:2], options='{"role": ["moving", "sideways"]}')
    assert refused.status_code == 400 and "role" in refused.json()["detail"]


def test_lung_infection_gives_the_cli_files(server, cache, chest_ct, tmp_path, monkeypatch):
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(cache))
    assert run_cli("lung", "infection", chest_ct, "--out", tmp_path / "local", "--arch", "unet", "--device",
                   "cpu") == 0
    client = RadAssistClient(server, token=TOKEN)
    written = client.run("lung-infection", [chest_ct], {"arch": "unet"}, tmp_path / "remote")
    _same_files(tmp_path / "local", tmp_path / "remote", written, INFECTION_FILES)
    record = json.loads((tmp_path / "remote" / "result.json").read_text())
    assert record["command"] == "lung infection" and record["summary"]["engine"].startswith("torch")
    assert run_cli("lung", "infection", chest_ct, "--out", tmp_path / "local-onnx", "--backend", "onnx", "--device",
                   "cpu") == 0
    written = client.run("lung-infection", [chest_ct], {"backend": "onnx"}, tmp_path / "remote-onnx")
    _same_files(tmp_path / "local-onnx", tmp_path / "remote-onnx", written, INFECTION_FILES)
    assert json.loads((tmp_path / "remote-onnx" / "result.json").read_text())["summary"]["engine"].startswith("onnx")
    with pytest.raises(JobFailed, match="lung-infection-segnet"):  # not installed: a clear failure, no files
        client.run("lung-infection", [chest_ct], {"arch": "segnet"}, tmp_path / "segnet")
    assert not (tmp_path / "segnet").exists() or not any((tmp_path / "segnet").iterdir())


def test_info_lists_the_new_tasks(server):
    tasks = {task["name"]: task for task in requests.get(f"{server}/info", headers=AUTH, timeout=30).json()["tasks"]}
    brain, infection = tasks["brain-register"], tasks["lung-infection"]
    assert brain["command"] == "brain register" and "moving" in brain["title"] and "fixed" in brain["title"]
    role = next(o for o in brain["options"] if o["name"] == "role")
    assert role["type"] == "list of str" and "fixed-labels" in role["choices"]
    similarity = next(o for o in brain["options"] if o["name"] == "tumour_similarity")
    assert similarity["choices"] == ["robust", "masked"] and similarity["default"] == "robust"
    assert infection["command"] == "lung infection" and infection["max_files"] == 2
    options = {o["name"]: o for o in infection["options"]}
    assert options["arch"]["choices"] == ["unet", "segnet"] and options["backend"]["choices"] == ["torch", "onnx"]
    assert [m["id"] for m in infection["models"]] == ["lung-infection-unet", "lung-infection-segnet"]


def test_uploads_are_named_like_the_cli_and_the_slicer_panel_name_them(brain_pair, tmp_path):
    from radassist.server.tasks_base import TaskInput
    from radassist.server.tasks_brain import BRAIN_REGISTER, read_pair

    image = brain_pair / "pair_0_fixed" / "pair_0_fixed_t1ce.nii.gz"

    def pair(names, **options):
        inputs = [TaskInput(image, name) for name in names]
        return read_pair(inputs, BRAIN_REGISTER.parse_options(options))

    moving, fixed = pair(["moving_sequence1.nrrd", "fixed_sequence1.nrrd", "fixed_other.nrrd", "moving_other.nrrd"],
                         role=["moving", "fixed", "fixed", "moving"])
    assert sorted(moving.images) == sorted(fixed.images) == ["other", "sequence1"]
    moving, fixed = pair(["a.nii.gz", "b_flair.nii.gz"])  # the unnamed one takes the other's sequence
    assert list(moving.images) == list(fixed.images) == ["flair"]
    moving, fixed = pair(["a.nii.gz", "b.nii.gz"], sequence=["t2", "t2"])
    assert list(moving.images) == ["t2"]
