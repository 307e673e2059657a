"""BackgroundJob: progress in order, cancel at the next report, errors delivered, polling from another thread."""

from __future__ import annotations

import threading

import pytest

from radassist.errors import InputError
from radassist.runtime.jobs import (BackgroundJob, JobCancelled, JobDone, JobFailed, JobProgress, JobState,
                                    run_in_background)
from radassist.runtime.progress import Cancelled, Progress

TIMEOUT = 30  # generous: only guards against a hang, never a timing assertion


def _finished(job: BackgroundJob) -> list:
    assert job.wait(TIMEOUT), "job did not finish"
    return job.poll()


def test_progress_events_arrive_in_order_then_the_result():
    def work(progress: Progress) -> str:
        for step in range(5):
            progress.update(step / 4, f"step {step}")
        return "done"

    job = run_in_background(work)
    events = _finished(job)
    assert events == [JobProgress(step / 4, f"step {step}") for step in range(5)] + [JobDone("done")]
    assert job.state is JobState.SUCCEEDED and job.state.finished
    assert job.result == "done"
    assert job.poll() == []


def test_sub_ranges_are_reported_in_overall_fractions():
    def work(progress: Progress) -> None:
        progress.sub(0.0, 0.5).update(1.0, "load")
        progress.sub(0.5, 1.0).update(0.5, "infer")

    events = _finished(run_in_background(work))
    assert events[:2] == [JobProgress(0.5, "load"), JobProgress(0.75, "infer")]
    assert events[2] == JobDone(None)


def test_cancel_stops_the_job_at_its_next_progress_report():
    reported, go = threading.Event(), threading.Event()
    reached_after = []

    def work(progress: Progress) -> str:
        progress.update(0.1, "first")
        reported.set()
        go.wait(TIMEOUT)
        progress.update(0.2, "second")  # raises Cancelled
        reached_after.append(True)
        return "should not be delivered"

    job = run_in_background(work)
    assert reported.wait(TIMEOUT)
    assert job.state is JobState.RUNNING
    job.cancel()
    go.set()
    events = _finished(job)
    assert events == [JobProgress(0.1, "first"), JobCancelled()]
    assert reached_after == []
    assert job.state is JobState.CANCELLED
    with pytest.raises(Cancelled):
        job.result


def test_a_cancel_wins_over_a_result_returned_without_reporting():
    gate = threading.Event()
    job = run_in_background(lambda progress: gate.wait(TIMEOUT) and "late result")
    job.cancel()
    gate.set()
    assert _finished(job) == [JobCancelled()]
    assert job.state is JobState.CANCELLED


def test_cancel_before_start_never_runs_the_function():
    called = []
    job = BackgroundJob(lambda progress: called.append(True))
    job.cancel()
    job.start()
    assert _finished(job) == [JobCancelled()]
    assert called == []


def test_an_exception_is_delivered_not_lost():
    def work(progress: Progress) -> None:
        progress.update(0.5, "half")
        raise ValueError("boom in the model")

    job = run_in_background(work)
    events = _finished(job)
    assert events[0] == JobProgress(0.5, "half")
    failure = events[1]
    assert isinstance(failure, JobFailed)
    assert isinstance(failure.error, ValueError) and str(failure.error) == "boom in the model"
    assert "boom in the model" in failure.traceback and "work" in failure.traceback
    assert job.state is JobState.FAILED
    with pytest.raises(ValueError, match="boom"):
        job.result


def test_input_errors_keep_their_type_and_message():
    def work(progress: Progress) -> None:
        raise InputError("/data/scan.nii.gz", "not a 3-D image")

    failure = _finished(run_in_background(work))[-1]
    assert isinstance(failure, JobFailed) and isinstance(failure.error, InputError)
    assert str(failure.error) == "/data/scan.nii.gz: not a 3-D image"


def test_polling_while_running_loses_nothing():
    count = 300

    def work(progress: Progress) -> int:
        for step in range(count):
            progress.update(step / count, str(step))
        return count

    job = run_in_background(work)
    seen: list = []
    while not (seen and isinstance(seen[-1], (JobDone, JobFailed, JobCancelled))):
        finished = job.wait(0)
        batch = job.poll()
        seen.extend(batch)
        assert batch or not finished, "the job finished without a final event"
    assert [e.message for e in seen[:-1]] == [str(step) for step in range(count)]
    assert seen[-1] == JobDone(count)


def test_result_before_the_end_and_second_start_are_refused():
    gate = threading.Event()
    job = run_in_background(lambda progress: gate.wait(TIMEOUT))
    with pytest.raises(RuntimeError, match="no result yet"):
        job.result
    with pytest.raises(RuntimeError, match="only once"):
        job.start()
    gate.set()
    assert _finished(job) == [JobDone(True)]
