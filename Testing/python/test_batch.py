"""Cohort batch inference with the classical lung nodule detector on small chest phantoms: one folder per case with
the files `radassist lung detect` writes, a failing case recorded without stopping, a second run that skips what
is done, and two torchrun processes (Gloo) that share the cohort so that each case is processed exactly once.

This file is also the worker torchrun starts: ``python -m torch.distributed.run --nproc-per-node 2 test_batch.py
LIST OUT CALLS`` runs the batch on every rank and logs each case a rank runs to ``CALLS/rank<R>.txt``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from radassist.batch import (BatchTask, CaseInput, ListColumns, case_id_for, is_case_done, read_case_list,
                             run_batch)
from radassist.errors import InputError

HERE = Path(__file__).resolve()
DETECT_FILES = ["nodules.csv", "nodules.mrk.json", "nodules.png", "result.json"]


def lung_task(calls: Path | None = None) -> BatchTask:
    """The classical detector (no weights needed) with the detect command's writers; ``calls`` logs each case
    this process runs."""
    from radassist.commands.lung import write_outputs
    from radassist.io import read_volume
    from radassist.lung.pipeline import LungDetectionConfig, detect_nodules
    from radassist.runtime.distributed import get_rank

    def run_case(case, output, record, progress) -> None:
        if calls is not None:
            with (calls / f"rank{get_rank()}.txt").open("a") as log:
                log.write(case.case_id + "\n")
        volume = read_volume(case.path)
        detections = detect_nodules(volume, LungDetectionConfig(), progress, engine="classic")
        write_outputs(volume, detections, output)
        record.summary = {"findings": len(detections)}

    return BatchTask("lung", "lung detect", run_case, {"engine": "classic"})


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> Path:
    """Four small chest CTs and a file that is not an image."""
    from radassist.io import write_volume
    from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct

    folder = tmp_path_factory.mktemp("cohort")
    config = ChestPhantomConfig(shape=(32, 96, 128), spacing=(2.0, 2.0, 2.5), nodule_count=(1, 2),
                                nodule_diameter_mm=(8.0, 20.0))
    for seed in range(4):
        write_volume(make_chest_ct(seed, config).volume, folder / f"chest{seed}.nrrd")
    (folder / "broken.nrrd").write_text("this is not an image")
    return folder


def write_list(folder: Path, names: list[str], name: str = "cases.txt") -> Path:
    path = folder / name
    path.write_text("# chest phantoms\n" + "\n".join(names) + "\n\n")
    return path


# -- the list file ----------------------------------------------------------------------------------------------------

def test_text_and_csv_lists(tmp_path):
    (tmp_path / "dicom").mkdir()
    cases = read_case_list(write_list(tmp_path, ["a.nii.gz", "sub/b.seg.nrrd", str(tmp_path / "dicom"),
                                                 "odd name.mha"]))
    assert [c.case_id for c in cases] == ["a", "b", "dicom", "odd_name"]
    assert cases[0].path == tmp_path / "a.nii.gz" and cases[0].line == 2  # relative to the list, line numbers kept
    table = tmp_path / "cases.csv"
    table.write_text("id,path,series\np-001,scans/one.nrrd,\np-002,/data/two,1.2.3\n")
    rows = read_case_list(table)
    assert [(c.case_id, c.path, dict(c.fields)) for c in rows] == [
        ("p-001", tmp_path / "scans/one.nrrd", {"series": ""}), ("p-002", Path("/data/two"), {"series": "1.2.3"})]
    assert case_id_for(Path("/x/scan.nii.gz")) == "scan" and case_id_for(Path("/x/.hidden")) == "hidden"


def test_a_task_with_several_inputs_per_case_names_its_columns(tmp_path):
    columns = ListColumns(path=("moving",), required=("fixed",), optional=("fixed_labels",), plain_list=False)
    table = tmp_path / "pairs.csv"
    table.write_text("id,moving,fixed,fixed_labels,note\na,m.nii.gz,/data/f.nii.gz,,x\nb,m2.nrrd,f2.nrrd,l2.nrrd,\n")
    rows = read_case_list(table, columns)
    assert [(c.case_id, c.path, dict(c.fields)) for c in rows] == [
        ("a", tmp_path / "m.nii.gz", {"fixed": "/data/f.nii.gz", "fixed_labels": "", "note": "x"}),
        ("b", tmp_path / "m2.nrrd", {"fixed": str(tmp_path / "f2.nrrd"), "fixed_labels": str(tmp_path / "l2.nrrd"),
                                     "note": ""})]  # path columns resolved like the input, other columns kept as text
    with pytest.raises(InputError, match="needs a CSV case list"):
        read_case_list(write_list(tmp_path, ["m.nii.gz"]), columns)
    table.write_text("id,moving\na,m.nii.gz\n")
    with pytest.raises(InputError, match="a 'fixed' column"):
        read_case_list(table, columns)


@pytest.mark.parametrize("content, name, message", [
    (None, "missing.txt", "case list not found"),
    ("# nothing here\n\n", "empty.txt", "lists no cases"),
    ("a/scan.nrrd\nb/scan.nrrd\n", "twice.txt", "lines 1 and 2 both give case id 'scan'"),
    ("name,path\nx,y.nrrd\n", "noid.csv", "needs an 'id' column"),
    ("id,path\n../up,y.nrrd\n", "badid.csv", "line 2: id '../up' cannot name a folder"),
    ("id,path\nx,\n", "nopath.csv", "line 2: case 'x' has no path"),
])
def test_bad_lists_name_the_file_and_the_problem(tmp_path, content, name, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message) as caught:
        read_case_list(path)
    assert caught.value.path == str(path)


def test_done_means_result_json_lists_outputs_that_are_all_there(tmp_path):
    assert not is_case_done(tmp_path)
    (tmp_path / "nodules.csv").write_text("x")
    (tmp_path / "result.json").write_text(json.dumps({"outputs": ["nodules.csv", "result.json"]}))
    assert is_case_done(tmp_path)
    (tmp_path / "result.json").write_text(json.dumps({"outputs": ["nodules.csv", "nodules.png", "result.json"]}))
    assert not is_case_done(tmp_path)
    (tmp_path / "result.json").write_text("{broken")
    assert not is_case_done(tmp_path)


# -- a cohort in one process ------------------------------------------------------------------------------------------

def test_failures_are_recorded_and_a_second_run_skips_what_is_done(phantoms, tmp_path):
    listing = write_list(tmp_path, [str(phantoms / n) for n in ("chest0.nrrd", "broken.nrrd", "chest1.nrrd")])
    out = tmp_path / "out"
    calls = tmp_path / "calls"
    calls.mkdir()
    report = run_batch(lung_task(calls), listing, out)

    assert [(c.case_id, c.status) for c in report.cases] == [("chest0", "done"), ("broken", "failed"),
                                                             ("chest1", "done")]
    for case in ("chest0", "chest1"):  # the detect command's files, published whole
        assert sorted(p.name for p in (out / case).iterdir()) == DETECT_FILES
        record = json.loads((out / case / "result.json").read_text())
        assert record["command"] == "lung detect" and record["inputs"] == [str(phantoms / f"{case}.nrrd")]
        assert record["arguments"]["engine"] == "classic" and record["arguments"]["out"] == str(out / case)
    assert not (out / "broken").exists()  # nothing half-written, not even an empty folder
    with (out / "failures.csv").open() as handle:
        failures = list(csv.DictReader(handle))
    assert [(f["id"], f["error_type"]) for f in failures] == [("broken", "InputError")]
    assert str(phantoms / "broken.nrrd") in failures[0]["message"]
    summary = json.loads((out / "batch_report.json").read_text())
    assert summary["counts"] == {"total": 3, "done": 2, "skipped": 0, "failed": 1}
    stamps = {c: (out / c / "result.json").stat().st_mtime_ns for c in ("chest0", "chest1")}

    (out / "chest1" / "nodules.png").unlink()  # an incomplete case is not done
    again = run_batch(lung_task(calls), listing, out)
    assert [(c.case_id, c.status) for c in again.cases] == [("chest0", "skipped"), ("broken", "failed"),
                                                            ("chest1", "done")]
    assert (out / "chest0" / "result.json").stat().st_mtime_ns == stamps["chest0"]  # untouched
    assert (out / "chest1" / "nodules.png").is_file()
    assert (calls / "rank0.txt").read_text().split() == ["chest0", "broken", "chest1", "broken", "chest1"]
    assert json.loads((out / "batch_report.json").read_text())["counts"]["skipped"] == 1


# -- a cohort on two processes ----------------------------------------------------------------------------------------

def test_two_ranks_share_the_cohort_and_each_case_runs_exactly_once(phantoms, tmp_path):
    out, calls = tmp_path / "out", tmp_path / "calls"
    calls.mkdir()
    first = write_list(tmp_path, [str(phantoms / "chest0.nrrd")], "first.txt")
    run_batch(lung_task(), first, out)  # chest0 is done before the distributed run
    names = ["chest0.nrrd", "chest1.nrrd", "broken.nrrd", "chest2.nrrd", "chest3.nrrd"]
    listing = write_list(tmp_path, [str(phantoms / n) for n in names])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(HERE), str(listing), str(out), str(calls)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]

    runs = {rank: (calls / f"rank{rank}.txt").read_text().split() for rank in (0, 1)}
    everything = runs[0] + runs[1]
    assert sorted(everything) == ["broken", "chest1", "chest2", "chest3"]  # each pending case once, chest0 skipped
    assert runs[0] and runs[1]  # both ranks worked
    summary = json.loads((out / "batch_report.json").read_text())
    assert summary["world_size"] == 2
    assert summary["counts"] == {"total": 5, "done": 3, "skipped": 1, "failed": 1}
    by_case = {c["case_id"]: c for c in summary["cases"]}
    assert all(by_case[case]["rank"] == rank for rank, cases in runs.items() for case in cases)
    for case in ("chest1", "chest2", "chest3"):
        assert sorted(p.name for p in (out / case).iterdir()) == DETECT_FILES
    assert [line.split(",")[0] for line in (out / "failures.csv").read_text().splitlines()] == ["id", "broken"]
    # Each rank's own view of the report (a file per rank: two ranks printing to one pipe can interleave).
    reports = [json.loads((calls / f"report{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1] and all(r["total"] == 5 for r in reports)


def test_cases_given_directly(phantoms, tmp_path):
    cases = [CaseInput("first", phantoms / "chest2.nrrd")]
    report = run_batch(lung_task(), cases, tmp_path / "out")
    assert report.inputs is None and report.count("done") == 1
    assert sorted(p.name for p in (tmp_path / "out" / "first").iterdir()) == DETECT_FILES


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    result = run_batch(lung_task(Path(sys.argv[3])), Path(sys.argv[1]), Path(sys.argv[2]))
    rank = int(os.environ["RANK"])
    (Path(sys.argv[3]) / f"report{rank}.json").write_text(json.dumps({"rank": rank, "total": len(result.cases)}))
