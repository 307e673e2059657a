"""Results are never silently overwritten, work is bounded, and Ctrl-C / SIGTERM / SIGKILL leave no temporary
folders behind: real commands in real subprocesses, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radassist.cli import build_parser, main
from radassist.commands.run_context import KEEPS_OUT, leaf_parsers
from radassist.errors import OutputError
from radassist.io.atomic import RunOutput, is_stale, make_temp_dir, sweep_stale, temp_name

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def radassist(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    environment = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "radassist.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT, env=environment, **popen)


def dead_pid() -> int:
    """The id of a process that has ended (so nothing owns names made with it)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def stale_name(pid: int, prefix: str = ".radassist-tmp-") -> str:
    name = temp_name(prefix)
    host, _, rest = name[len(prefix):].partition(".")
    return f"{prefix}{host}.{pid}.{rest.partition('.')[2]}"


def small_image(folder: Path) -> Path:
    path = folder / "ct.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)), str(path))
    return path


def temporary_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".radassist-tmp-*"))


# -- never overwrite -----------------------------------------------------------------------------------------------

def test_a_run_into_a_non_empty_folder_is_refused_unless_overwrite(tmp_path: Path, capsys) -> None:
    image = small_image(tmp_path)
    out = tmp_path / "out"
    assert main(["convert", str(image), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["convert", str(image), "--out", str(out), "--format", "nifti"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"radassist convert: error: {out}: the output folder is not empty")
    assert "--overwrite" in error and "ct.nrrd" in error
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched, nothing added
    assert main(["convert", str(image), "--out", str(out), "--format", "nifti", "--overwrite"]) == 0
    assert {p.name for p in out.iterdir()} == {"ct.nrrd", "ct.nii.gz", "result.json"}


def test_an_existing_empty_folder_is_used(tmp_path: Path) -> None:
    """A Slicer job runs commands into a fresh, empty temporary folder: that must keep working."""
    out = tmp_path / "job"
    out.mkdir()
    assert main(["convert", str(small_image(tmp_path)), "--out", str(out)]) == 0
    assert (out / "ct.nrrd").is_file()


def test_every_command_with_an_output_folder_offers_overwrite() -> None:
    checked = 0
    for leaf in leaf_parsers(build_parser()):
        options = leaf._option_string_actions
        if "--out" not in options:
            continue
        checked += 1
        if leaf.get_default(KEEPS_OUT):  # batch resumes into its folder, export adds versions to its dataset
            assert "--overwrite" not in options, leaf.prog
        else:
            assert "--overwrite" in options, leaf.prog
    assert checked >= 20


def test_another_live_run_in_the_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    make_temp_dir(out)  # a staging folder of this (live) process
    with pytest.raises(OutputError, match=f"another RadAssist run \\(process {os.getpid()}"):
        RunOutput(out).__enter__()


def test_leftovers_of_a_killed_process_are_swept_and_do_not_count(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale = out / stale_name(dead_pid())
    stale.mkdir()
    (stale / "half.nrrd").write_text("half written")
    mine = out / "notes.txt"
    assert is_stale(stale) and not is_stale(mine)
    foreign = out / ".radassist-tmp-unknown-format"  # not ours to judge: kept
    foreign.mkdir()
    assert sweep_stale(out) == [stale]
    assert sorted(p.name for p in out.iterdir()) == [foreign.name]
    stale.mkdir()
    foreign.rmdir()
    with RunOutput(out) as run:  # only a dead run's leftovers: the folder counts as empty, and is swept
        run.path("a.txt").write_text("a")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]


# -- bounded work ----------------------------------------------------------------------------------------------------

def test_a_billion_synthetic_cases_are_refused_at_once(tmp_path: Path) -> None:
    out = tmp_path / "huge"
    started = time.monotonic()
    process = radassist("synth", "lung", "--cases", "1000000000", "--out", str(out))
    _, error = process.communicate(timeout=120)
    assert process.returncode == 2 and time.monotonic() - started < 60
    assert "radassist synth: error:" in error and "10000" in error
    assert not out.exists()


def test_more_synthetic_cases_than_fit_on_the_disk_are_refused(tmp_path: Path) -> None:
    from radassist.errors import InputError
    from radassist.synthetic.datasets import check_dataset_size

    if shutil.disk_usage(tmp_path).free > 10_000 * 44_100_000 * 1.1:
        pytest.skip("this disk holds 10000 synthetic brain pairs")
    with pytest.raises(InputError, match="GB are free"):
        check_dataset_size("brain", 10_000, tmp_path / "set")
    check_dataset_size("brain", 2, tmp_path / "set")


# -- signals ---------------------------------------------------------------------------------------------------------

def wait_for_staging(out: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not (out.is_dir() and any(p.name.startswith(".radassist-tmp-") for p in out.iterdir())):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the command never started writing"
        time.sleep(0.05)


@pytest.mark.parametrize("signum, code, name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_stops_a_command_within_seconds_and_removes_its_output(tmp_path: Path, signum: int, code: int,
                                                                         name: str) -> None:
    out = tmp_path / "phantoms"
    process = radassist("synth", "mammo", "--cases", "40", "--out", str(out))
    wait_for_staging(out, process)
    time.sleep(0.5)
    sent = time.monotonic()
    process.send_signal(signum)
    _, error = process.communicate(timeout=60)
    assert process.returncode == code and time.monotonic() - sent < 5
    assert error.strip().splitlines()[-1] == f"radassist synth: interrupted by {name}; stopped, unfinished output removed"
    assert "Traceback" not in error
    assert not out.exists()  # the run made the folder; nothing of it stays


STUCK = """
import sys, time
import torch
from radassist.runtime import interrupt
from radassist.io.atomic import RunOutput
torch.set_num_threads(1)
matrix = torch.rand(4000, 4000, dtype=torch.float64)
with interrupt.handling("radassist stuck", grace=1.0):
    with RunOutput(sys.argv[1]) as run:
        run.path("partial.nrrd").write_text("x")
        print("staged", flush=True)
        torch.linalg.eigh(matrix)  # one C call of many seconds: Python's own handler waits for it to end
        print("finished", flush=True)
"""


def test_a_command_stuck_in_one_long_c_call_still_stops(tmp_path: Path) -> None:
    """Ctrl-C (SIGTERM takes the same path, see the test above)."""
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-c", STUCK, str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)))
    try:
        assert process.stdout.readline().strip() == "staged"
        time.sleep(0.3)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        output, error = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # never leave a busy process behind, whatever failed above
            process.kill()
            process.communicate()
    assert process.returncode == 130 and time.monotonic() - sent < 4, error
    assert "finished" not in output and "interrupted by" in error
    assert not out.exists()


def test_a_killed_run_is_cleaned_up_by_the_next_one(tmp_path: Path) -> None:
    out = tmp_path / "phantoms"
    process = radassist("synth", "mammo", "--cases", "40", "--out", str(out))
    wait_for_staging(out, process)
    process.kill()  # SIGKILL: no clean-up code can run
    process.communicate(timeout=60)
    left = [p.name for p in out.iterdir()]
    assert len(left) == 1 and left[0].startswith(".radassist-tmp-")
    again = radassist("synth", "mammo", "--cases", "1", "--out", str(out))
    _, error = again.communicate(timeout=300)
    assert again.returncode == 0, error
    assert temporary_leftovers(out) == []
    assert (out / "exam_list.json").is_file()


def test_a_killed_process_s_system_temporary_folders_are_removed_at_the_next_start(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    stale = scratch / stale_name(dead_pid(), "radassist-mix-")
    (stale / "mix1").mkdir(parents=True)
    live = scratch / stale_name(os.getpid(), "radassist-upload-")  # this test process is alive: kept
    live.mkdir()
    other = scratch / "someone-elses-folder"
    other.mkdir()
    process = radassist("inspect", str(small_image(tmp_path)), env={"TMPDIR": str(scratch)})
    _, error = process.communicate(timeout=120)
    assert process.returncode == 0, error
    assert sorted(p.name for p in scratch.iterdir()) == sorted([live.name, other.name])
