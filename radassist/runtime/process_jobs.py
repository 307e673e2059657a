"""A job in its own process, watched from a GUI's event loop: the parent side of :mod:`radassist.runtime.job_folder`.

:class:`ProcessJob` starts a command (usually ``PythonSlicer -m radassist.runtime.job_runner FOLDER``, or a
``radassist`` CLI command, or pip) with its output going to the job folder's log, and :meth:`ProcessJob.poll`
turns what the process left in the folder into the events of :mod:`radassist.runtime.jobs`: progress, then exactly
one of done, failed or cancelled. Cancel ends the whole process tree (a job may start its own workers); a process
that dies (a crash, the out-of-memory killer) is reported with its exit code and the end of its log, and the parent
lives on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from radassist.errors import RadAssistError
from radassist.runtime import job_folder
from radassist.runtime.jobs import JobCancelled, JobDone, JobEvent, JobFailed, JobProgress

KILL_AFTER_S = 5.0  # a job asked to stop gets this long before it is killed


class JobProcessError(RadAssistError):
    """The job process failed; ``details`` holds what it printed last (for a "details" box or a log)."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def failure_message(folder: Path, returncode: int) -> JobProcessError:
    """What to tell the user about a job process that ended with ``returncode``."""
    details = job_folder.log_tail(folder)
    error = job_folder.read_error(folder)
    if error is not None and error.get("kind") == "input":
        return JobProcessError(error["message"], details)
    if error is not None:
        return JobProcessError(f"the job failed unexpectedly: {error['message']}", error.get("traceback") or details)
    if returncode < 0:
        cause = " (killed by the system: most likely it ran out of memory)" if -returncode == signal.SIGKILL \
            else ""
        return JobProcessError(f"the job process ended on {_signal_name(returncode)}{cause}", details)
    last = next((line for line in reversed(details.splitlines()) if line.strip()), "")
    return JobProcessError(last or f"the job process ended with exit code {returncode}", details)


class ProcessJob:
    """One command run in ``folder`` (created if needed). ``result`` of a successful job is ``folder/output``."""

    def __init__(self, argv: Sequence[str], folder: str | Path, env: dict[str, str] | None = None) -> None:
        self.argv = [str(arg) for arg in argv]
        self.folder = Path(folder)
        self.env = env
        self.process: subprocess.Popen | None = None
        self._progress: job_folder.ProgressReader | None = None
        self._cancel_requested_at: float | None = None
        self._finished = False

    @property
    def output(self) -> Path:
        return self.folder / job_folder.OUTPUT

    def start(self) -> "ProcessJob":
        if self.process is not None:
            raise RuntimeError("a ProcessJob runs only once")
        self.folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        env[job_folder.PROGRESS_FILE_ENV] = str(self.folder / job_folder.PROGRESS)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._progress = job_folder.ProgressReader(self.folder / job_folder.PROGRESS)
        with open(self.folder / job_folder.LOG, "ab") as log:
            kwargs: dict = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": subprocess.STDOUT, "env": env,
                            "cwd": str(self.folder)}
            if os.name == "nt":
                kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW
            else:
                kwargs["start_new_session"] = True  # its own process group: Cancel reaches its children too
            self.process = subprocess.Popen(self.argv, **kwargs)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and not self._finished

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested_at is not None

    def cancel(self) -> None:
        """Ask the process tree to stop (SIGTERM); :meth:`poll` kills it if it has not stopped in time."""
        if self.process is None or self._finished or self._cancel_requested_at is not None:
            return
        self._cancel_requested_at = time.monotonic()
        self._signal_tree(terminate=True)

    def _signal_tree(self, terminate: bool) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if os.name == "nt":
            subprocess.run(["taskkill", "/PID", str(self.process.pid), "/T"] + ([] if terminate else ["/F"]),
                           capture_output=True, check=False)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM if terminate else signal.SIGKILL)

    def poll(self) -> list[JobEvent]:
        """Events since the last poll, oldest first; the last event of a finished job is final."""
        if self.process is None or self._finished:
            return []
        events: list[JobEvent] = [JobProgress(fraction, message) for fraction, message in self._progress.read()]
        returncode = self.process.poll()
        if returncode is None:
            if self._cancel_requested_at is not None and time.monotonic() - self._cancel_requested_at > KILL_AFTER_S:
                self._signal_tree(terminate=False)
            return events
        self._finished = True
        if not self.cancel_requested:  # the group may hold children the job started; they end with it
            self._signal_tree(terminate=False)
        events.extend(JobProgress(f, m) for f, m in self._progress.read())
        if self.cancel_requested:
            events.append(JobCancelled())
        elif returncode == 0:
            events.append(JobDone(self.output))
        else:
            error = failure_message(self.folder, returncode)
            events.append(JobFailed(error, error.details))
        return events

    def wait(self, timeout: float | None = None) -> list[JobEvent]:
        """Block until the job ends (scripts and tests); all its events."""
        deadline = None if timeout is None else time.monotonic() + timeout
        events: list[JobEvent] = []
        while True:
            events.extend(self.poll())
            if self._finished:
                return events
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the job in {self.folder} did not finish in {timeout} s")
            time.sleep(0.05)


def task_job_argv(python: str | Path, folder: Path) -> list[str]:
    """The command that runs a task job folder in ``python`` (PythonSlicer in Slicer)."""
    return [str(python), "-m", "radassist.runtime.job_runner", str(folder)]


def cli_argv(python: str | Path, *args: str) -> list[str]:
    """The command that runs ``radassist ARGS`` in ``python``."""
    return [str(python), "-m", "radassist.cli", *args]


__all__ = ["JobProcessError", "ProcessJob", "task_job_argv", "cli_argv", "failure_message"]
