"""Safety of labels: an export interrupted at any step (an exception, or the process killed with SIGKILL) leaves
the dataset as it was, and two exports at once (two processes) lose nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from radassist.annotation import store
from radassist.annotation.export import dataset_files, read_index
from radassist.annotation.export_msd import export_segmentation
from radassist.annotation.msd import read_msd_dataset
from radassist.annotation.store import JOURNAL_NAME, STAGING_PREFIX, recover

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The same small case, built the same way here and in the worker processes.
CASE_CODE = textwrap.dedent("""
    import numpy as np
    from radassist.results import LabelMap, Segment
    from radassist.volume import Geometry, Volume

    def case(seed):
        grid = Geometry(shape=(6, 12, 10))
        rng = np.random.default_rng(seed)
        image = Volume.from_geometry(rng.integers(-100, 100, grid.shape).astype(np.int16), grid)
        liver = np.zeros(grid.shape, dtype=bool)
        liver[1:5, 2:2 + seed % 7 + 3, 2:8] = True
        tumour = np.zeros(grid.shape, dtype=bool)
        tumour[2:4, 3:5, 3:5] = True
        labels = LabelMap.from_masks([liver, tumour], [Segment("liver", 1), Segment("liver tumour", 2)], grid)
        return image, labels
""")
namespace: dict = {}
exec(CASE_CODE, namespace)  # noqa: S102 - the worker script's own case builder, so both sides agree
make_case = namespace["case"]

WORKER = CASE_CODE + textwrap.dedent("""
    import os, signal, sys
    from radassist.annotation import store
    from radassist.annotation.export_msd import export_segmentation

    root, kill_at, who = sys.argv[1], sys.argv[2], sys.argv[3]
    if kill_at != "-":
        def crash(step):
            if step == kill_at or step.startswith(kill_at + " of"):
                os.kill(os.getpid(), signal.SIGKILL)
        store.crash_point = crash
    for number, name in enumerate(sys.argv[4:]):
        image, labels = case(number + len(who))
        export_segmentation(root, "liver", name, image, labels, labels, annotator=who)
""")


def _export(root: Path, case: str, seed: int, annotator: str = "test"):
    image, labels = make_case(seed)
    return export_segmentation(root, "liver", case, image, labels, labels, annotator=annotator)


def _worker(tmp_path: Path) -> Path:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return script


def _run(script: Path, root: Path, kill_at: str, who: str, *cases: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    return subprocess.Popen([sys.executable, str(script), str(root), kill_at, who, *cases], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _visible(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name: data for name, data in files.items() if not name.startswith((".", STAGING_PREFIX))}


class Injected(RuntimeError):
    pass


@pytest.mark.parametrize("step", ["training files staged", "staged", "journal written", "operation 1",
                                  "operation 4", "last operation"])
def test_an_exception_at_any_step_leaves_the_dataset_as_it_was(tmp_path, monkeypatch, step) -> None:
    root = tmp_path / "data"
    _export(root, "case1", 1)
    _export(root, "case2", 2)
    before = dataset_files(root)

    def crash(name: str) -> None:
        last = name.startswith("operation") and name.split()[1] == name.split()[3]
        if name == step or name.startswith(step + " of") or (step == "last operation" and last):
            raise Injected(name)

    monkeypatch.setattr(store, "crash_point", crash)
    with pytest.raises(Injected):
        _export(root, "case1", 3)  # a second version: archives v1's files and replaces the index files
    assert dataset_files(root) == before
    monkeypatch.undo()
    assert _export(root, "case1", 3).version == "v2"
    assert len(read_msd_dataset(root).cases) == 2


def test_an_exception_while_writing_the_labels_leaves_nothing(tmp_path, monkeypatch) -> None:
    import radassist.annotation.export_msd as export_msd

    root = tmp_path / "data"
    _export(root, "case1", 1)
    before = dataset_files(root)

    def broken(volume, path, compress=True):
        path.write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(export_msd, "write_volume", broken)
    with pytest.raises(OSError, match="disk full"):
        _export(root, "case2", 2)
    assert dataset_files(root) == before


@pytest.mark.parametrize("kill_at, journal_left", [("training files staged", False), ("journal written", True),
                                                   ("operation 3", True)])
def test_a_killed_export_leaves_the_dataset_as_it_was(tmp_path, kill_at, journal_left) -> None:
    root = tmp_path / "data"
    _export(root, "case1", 1)
    before = dataset_files(root)
    process = _run(_worker(tmp_path), root, kill_at, "killed", "case1")
    _, errors = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL, errors
    assert (root / JOURNAL_NAME).is_file() == journal_left
    if not journal_left:  # killed before the first rename: nothing visible changed, only staging is left
        assert _visible(dataset_files(root)) == _visible(before)
    with store.dataset_lock(root):
        assert recover(root) == journal_left
    assert dataset_files(root) == before
    assert read_index(root)["cases"]["case1"]["latest"] == "v1"


def test_the_next_export_undoes_a_killed_one_first(tmp_path) -> None:
    root = tmp_path / "data"
    _export(root, "case1", 1)
    process = _run(_worker(tmp_path), root, "operation 2", "killed", "case9")
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    assert _export(root, "case2", 2).version == "v1"
    assert sorted(read_index(root)["cases"]) == ["case1", "case2"]  # case9 never happened
    assert not (root / "imagesTr" / "case9_0000.nii.gz").exists()
    assert not any(p.name.startswith(STAGING_PREFIX) for p in root.iterdir())


def test_two_exports_at_once_lose_nothing(tmp_path) -> None:
    root = tmp_path / "data"
    script = _worker(tmp_path)
    first = _run(script, root, "-", "ann", "a1", "a2", "shared", "a3")
    second = _run(script, root, "-", "bob", "b1", "shared", "b2", "b3")
    for process in (first, second):
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors
    index = read_index(root, "liver")
    assert sorted(index["cases"]) == ["a1", "a2", "a3", "b1", "b2", "b3", "shared"]
    shared = index["cases"]["shared"]["versions"]
    assert [v["version"] for v in shared] == ["v1", "v2"] and {v["annotator"] for v in shared} == {"ann", "bob"}
    assert shared[0]["archived"] and all((root / f).is_file() for f in shared[0]["files"])
    document = json.loads((root / "dataset.json").read_text())
    assert document["numTraining"] == 7 and len(read_msd_dataset(root).cases) == 7
    for info in index["cases"].values():
        for version in info["versions"]:
            assert (root / version["provenance"]).is_file()
    assert not (root / JOURNAL_NAME).exists()

