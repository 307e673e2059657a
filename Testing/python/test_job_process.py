"""Jobs in their own process, as the Slicer panels run them: real processes, real signals, real files."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from radassist.io import read_volume, write_volume
from radassist.runtime import job_folder
from radassist.runtime.jobs import JobCancelled, JobDone, JobFailed, JobProgress
from radassist.runtime.process_jobs import ProcessJob, task_job_argv
from radassist.volume import Volume

pytestmark = pytest.mark.skipif(os.name == "nt", reason="process-group signals are POSIX here; Windows uses taskkill")


def _convert_job(folder: Path, source: Path) -> ProcessJob:
    request = job_folder.TaskJobRequest("convert", [job_folder.JobInput(str(source.relative_to(folder)), "ct.nrrd")],
                                        {"format": "nifti", "name": "converted"}, device="cpu")
    job_folder.write_request(folder, request)
    return ProcessJob(task_job_argv(sys.executable, folder), folder)


def test_a_task_job_writes_the_servers_files_and_reports_progress(tmp_path: Path):
    volume = Volume(array=np.arange(60, dtype=np.int16).reshape(3, 4, 5), spacing=(0.5, 0.7, 2.0))
    source = tmp_path / "inputs" / "ct.nrrd"
    write_volume(volume, source)
    events = _convert_job(tmp_path, source).start().wait(120)
    assert isinstance(events[-1], JobDone) and events[-1].result == tmp_path / "output"
    assert any(isinstance(e, JobProgress) for e in events)
    assert all(isinstance(e, JobProgress) for e in events[:-1])
    assert np.array_equal(read_volume(tmp_path / "output" / "converted.nii.gz").array, volume.array)
    record = json.loads((tmp_path / "output" / "result.json").read_text())
    assert record["command"] == "convert" and record["inputs"] == ["ct.nrrd"]
    assert job_folder.read_error(tmp_path) is None


def test_a_bad_input_fails_with_the_engines_sentence(tmp_path: Path):
    source = tmp_path / "inputs" / "ct.nrrd"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"NRRD0004\nthis is not a volume\n")
    events = _convert_job(tmp_path, source).start().wait(120)
    assert isinstance(events[-1], JobFailed)
    assert "ct.nrrd" in str(events[-1].error)
    assert job_folder.read_error(tmp_path)["kind"] == "input"
    assert not (tmp_path / "output").exists()  # nothing half-written


def test_cancel_ends_the_whole_process_tree(tmp_path: Path):
    """The job starts a worker of its own (as a DDP job or pip does); Cancel ends both."""
    pid_file = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time; "
            f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
            f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(600)")
    job = ProcessJob([sys.executable, "-c", code], tmp_path / "job").start()
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the job did not start its worker"
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    job.cancel()
    events = job.wait(30)
    assert isinstance(events[-1], JobCancelled)
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the job's worker survived Cancel"
        time.sleep(0.05)


def test_a_job_killed_by_the_system_is_reported_and_the_parent_lives_on(tmp_path: Path):
    code = "import os, signal; print('allocating'); os.kill(os.getpid(), signal.SIGKILL)"
    events = ProcessJob([sys.executable, "-c", code], tmp_path).start().wait(60)
    final = events[-1]
    assert isinstance(final, JobFailed)
    assert "SIGKILL" in str(final.error) and "out of memory" in str(final.error)
    assert "allocating" in final.traceback  # the end of the job's log comes with it


def test_an_unexpected_error_in_the_job_is_reported_with_its_traceback(tmp_path: Path):
    job_folder.write_request(tmp_path, job_folder.TaskJobRequest("convert", [], {}))
    code = ("import sys, radassist.runtime.job_runner as runner\n"
            "def broken(*args): raise ValueError('a bug, not the input')\n"
            "runner.run_local = broken\n"
            f"sys.exit(runner.main([{str(tmp_path)!r}]))")
    events = ProcessJob([sys.executable, "-c", code], tmp_path).start().wait(60)
    final = events[-1]
    assert isinstance(final, JobFailed) and "a bug, not the input" in str(final.error)
    assert "Traceback" in final.traceback and job_folder.read_error(tmp_path)["kind"] == "crash"


def test_a_cli_command_reports_progress_to_the_job_folder(tmp_path: Path):
    """A GUI runs ``radassist ...`` commands as jobs too: their progress arrives as JSON lines."""
    from radassist.runtime.process_jobs import cli_argv

    job = ProcessJob(cli_argv(sys.executable, "synth", "lung", "--out", str(tmp_path / "out"), "--cases", "1"),
                     tmp_path / "job").start()
    events = job.wait(300)
    assert isinstance(events[-1], JobDone), getattr(events[-1], "error", None)
    assert any(isinstance(e, JobProgress) for e in events)


def test_progress_lines_are_read_whole_and_once(tmp_path: Path):
    path = tmp_path / job_folder.PROGRESS
    reader = job_folder.ProgressReader(path)
    assert reader.read() == []
    path.write_text('{"fraction": 0.25, "message": "a"}\n{"fraction": 0.5, "mes')
    assert reader.read() == [(0.25, "a")]
    with open(path, "a") as handle:
        handle.write('sage": "b"}\nnot json\n')
    assert reader.read() == [(0.5, "b")]
    assert reader.read() == []
    writer = job_folder.ProgressFile(tmp_path / "p.jsonl", interval_s=10.0, clock=iter([0.0, 1.0, 2.0]).__next__)
    writer(0.1, "first")
    writer(0.2, "too soon")
    writer(1.0, "finished")
    assert [line["message"] for line in map(json.loads, (tmp_path / "p.jsonl").read_text().splitlines())] == \
        ["first", "finished"]


def test_a_terminated_job_removes_what_it_staged(tmp_path: Path):
    """SIGTERM unwinds the job, so its staged output folder does not stay behind."""
    code = ("import sys, time, radassist.runtime.job_runner as runner\n"
            "from radassist.io.atomic import RunOutput\n"
            "def slow(folder, request, progress):\n"
            "    with RunOutput(folder / 'output') as output:\n"
            "        output.path('half.txt').write_text('half')\n"
            "        print('staged', flush=True)\n"
            "        time.sleep(600)\n"
            "runner.run_local = slow\n"
            f"sys.exit(runner.main([{str(tmp_path)!r}]))")
    job_folder.write_request(tmp_path, job_folder.TaskJobRequest("convert", [], {}))
    job = ProcessJob([sys.executable, "-c", code], tmp_path).start()
    deadline = time.monotonic() + 60
    while "staged" not in job_folder.log_tail(tmp_path):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job.cancel()
    assert isinstance(job.wait(30)[-1], JobCancelled)
    leftovers = [p for p in tmp_path.rglob("*") if "half" in p.name]
    assert leftovers == [] and not (tmp_path / "output").exists()  # asked to stop (SIGTERM), it cleaned up
