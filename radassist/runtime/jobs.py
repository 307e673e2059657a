"""Run a long job in a worker thread and hand its progress and outcome to whoever polls: Slicer's GUI timer today,
a server tomorrow.

The job is ``fn(progress) -> result``. It reports through the :class:`Progress` it is given; :meth:`cancel` makes
that Progress raise :class:`Cancelled` at the job's next report. Everything the job says becomes an event in a
thread-safe queue, read with :meth:`BackgroundJob.poll` from the caller's thread, so GUI objects are only touched
where they live. The final event is exactly one of :class:`JobDone`, :class:`JobFailed`, :class:`JobCancelled`.
"""

from __future__ import annotations

import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

from radassist.runtime.progress import Cancelled, Progress

T = TypeVar("T")


class JobState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobProgress:
    fraction: float
    message: str


@dataclass(frozen=True)
class JobDone:
    result: Any


@dataclass(frozen=True)
class JobFailed:
    error: BaseException
    traceback: str


@dataclass(frozen=True)
class JobCancelled:
    pass


JobEvent = JobProgress | JobDone | JobFailed | JobCancelled


class BackgroundJob(Generic[T]):
    """One run of ``fn(progress)`` in a daemon thread, observed through :meth:`poll`.

    A cancel request wins over a late result: once :meth:`cancel` was called the job ends as cancelled even if
    ``fn`` returns without reporting again, so a caller never applies a result the user asked to drop. A real
    error raised after a cancel is still delivered as :class:`JobFailed`, never swallowed.
    """

    def __init__(self, fn: Callable[[Progress], T], name: str = "radassist-job") -> None:
        self._fn = fn
        self._name = name
        self._events: queue.Queue[JobEvent] = queue.Queue()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._state = JobState.PENDING
        self._result: T | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------------------------------------
    def start(self) -> "BackgroundJob[T]":
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("a BackgroundJob runs only once")
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._state = JobState.RUNNING
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop at its next progress report (no effect once it has finished)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; True when it has."""
        return self._finished.wait(timeout)

    # -- observation ------------------------------------------------------------------------------------------
    def poll(self) -> list[JobEvent]:
        """All events since the last poll, oldest first. Safe to call from any thread."""
        events: list[JobEvent] = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    @property
    def state(self) -> JobState:
        with self._lock:
            return self._state

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def result(self) -> T:
        """The job's return value; raises when it did not succeed (the original error when it failed)."""
        state = self.state
        if state is JobState.SUCCEEDED:
            return self._result  # type: ignore[return-value]
        if state is JobState.FAILED and self._error is not None:
            raise self._error
        if state is JobState.CANCELLED:
            raise Cancelled()
        raise RuntimeError(f"the job has no result yet (state {state.value})")

    # -- worker thread ----------------------------------------------------------------------------------------
    def _report(self, fraction: float, message: str) -> None:
        self._events.put(JobProgress(fraction, message))

    def _finish(self, state: JobState, event: JobEvent) -> None:
        # Event first: a poller that has seen the final event can rely on it; ``state`` follows at once.
        self._events.put(event)
        with self._lock:
            self._state = state
        self._finished.set()

    def _run(self) -> None:
        progress = Progress(self._report, self._cancel)
        try:
            progress.check_cancelled()
            result = self._fn(progress)
            progress.check_cancelled()  # a cancel request wins over a late result
        except Cancelled:
            self._finish(JobState.CANCELLED, JobCancelled())
        except BaseException as error:  # noqa: BLE001 -- delivered to the poller, never lost in the thread
            self._error = error
            self._finish(JobState.FAILED, JobFailed(error, traceback.format_exc()))
        else:
            self._result = result
            self._finish(JobState.SUCCEEDED, JobDone(result))


def run_in_background(fn: Callable[[Progress], T], name: str = "radassist-job") -> BackgroundJob[T]:
    """Start ``fn`` in a worker thread and return its job."""
    return BackgroundJob(fn, name).start()
