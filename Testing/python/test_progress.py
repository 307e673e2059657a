"""The one progress/cancel interface: sub-ranges map into the parent range, cancel stops the next report."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from radassist.errors import InputError
from radassist.runtime.progress import (DEFAULT_LOG_INTERVAL_S, PROGRESS_INTERVAL_ENV, Cancelled, Progress,
                                        ProgressLines, log_interval_s, tqdm_progress)


def test_sub_ranges_report_in_the_parent_scale() -> None:
    seen: list[tuple[float, str]] = []
    progress = Progress(lambda f, m: seen.append((round(f, 6), m)))
    first, second = progress.sub(0.0, 0.25), progress.sub(0.25, 1.0)
    first.update(1.0, "read")
    second.sub(0.5, 1.0).update(0.5, "infer")
    assert seen == [(0.25, "read"), (0.8125, "infer")]


def test_cancel_raises_at_the_next_report_everywhere() -> None:
    progress = Progress()
    child = progress.sub(0.5, 1.0)
    child.update(0.1)
    progress.cancel()
    assert child.cancelled
    with pytest.raises(Cancelled):
        child.update(0.2)


def test_steps_reports_after_each_item() -> None:
    seen: list[float] = []
    items = list(Progress(lambda f, m: seen.append(f)).steps(["a", "b", "c", "d"]))
    assert items == ["a", "b", "c", "d"]
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_write_the_first_report_then_one_per_interval_and_the_finish() -> None:
    stream, clock = io.StringIO(), _Clock()
    progress = Progress(ProgressLines("train unet", stream, interval_s=10.0, clock=clock))
    for now, fraction, message in [(0.0, 0.0, "epoch 1/4"), (3.0, 0.1, "epoch 1/4 loss 0.9"),
                                   (10.5, 0.3, "epoch 2/4 loss 0.5"), (12.0, 0.4, "epoch 2/4 loss 0.4"),
                                   (14.0, 1.0, "epoch 4/4 loss 0.1"), (15.0, 1.0, "epoch 4/4 loss 0.1")]:
        clock.now = now
        progress.update(fraction, message)
    assert stream.getvalue().splitlines() == ["train unet:   0% epoch 1/4", "train unet:  30% epoch 2/4 loss 0.5",
                                              "train unet: 100% epoch 4/4 loss 0.1"]


def test_the_cli_progress_writes_lines_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_INTERVAL_ENV, "0")
    stream = io.StringIO()
    with tqdm_progress("reading LiTS", stream=stream) as progress:
        assert list(progress.steps(["a", "b"], "case")) == ["a", "b"]
    assert stream.getvalue().splitlines() == ["reading LiTS:   0% case", "reading LiTS:  50% case",
                                              "reading LiTS: 100% case"]
    with tqdm_progress("quiet", disable=True, stream=stream) as progress:
        progress.update(0.5, "nothing")
    assert "quiet" not in stream.getvalue()


def test_a_bad_progress_interval_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROGRESS_INTERVAL_ENV, "soon")
    with pytest.raises(InputError, match=r"RADASSIST_PROGRESS_INTERVAL must be a number of seconds, got 'soon'"):
        log_interval_s()
    monkeypatch.setenv(PROGRESS_INTERVAL_ENV, "-1")
    with pytest.raises(InputError, match="0 or more seconds"):
        log_interval_s()
    monkeypatch.delenv(PROGRESS_INTERVAL_ENV)
    assert log_interval_s() == DEFAULT_LOG_INTERVAL_S


def test_a_training_command_run_from_a_script_reports_progress_in_its_log(tmp_path) -> None:
    """What a user running ``nohup radassist ... > log 2>&1`` sees: the job's lines, not a blank log."""
    environment = {**os.environ, PROGRESS_INTERVAL_ENV: "0"}
    result = subprocess.run([sys.executable, "-m", "radassist.cli", "synth", "liver", "--cases", "1",
                             "--out", str(tmp_path / "lits")], capture_output=True, text=True, env=environment,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "%" in line]
    assert lines and lines[-1].split(":")[1].strip().startswith("100%"), result.stderr
