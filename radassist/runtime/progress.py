"""One progress-and-cancel interface for every long job: tqdm on the CLI, the progress bar and Cancel in Slicer.

Pipelines take a :class:`Progress` and call ``progress.update(fraction, message)``; the caller decides what that
shows. ``update`` raises :class:`Cancelled` once someone has called ``cancel()``, so a pipeline stops at its next
report with nothing written.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from radassist.errors import InputError, RadAssistError

ProgressCallback = Callable[[float, str], None]


class Cancelled(RadAssistError):
    """The user cancelled the job."""

    def __init__(self) -> None:
        super().__init__("cancelled by the user")


class Progress:
    """Reports a fraction 0..1 with a message, and carries a cancel flag shared with sub-ranges."""

    def __init__(self, callback: ProgressCallback | None = None, cancel_event: threading.Event | None = None,
                 start: float = 0.0, end: float = 1.0) -> None:
        self._callback = callback
        self._cancel = cancel_event or threading.Event()
        self._start, self._end = start, end

    def update(self, fraction: float, message: str = "") -> None:
        """Report progress within this range; raises Cancelled when the job was cancelled."""
        self.check_cancelled()
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self._callback is not None:
            self._callback(self._start + fraction * (self._end - self._start), message)

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def sub(self, start: float, end: float) -> "Progress":
        """A Progress for one step that covers [start, end] of this one (same callback, same cancel flag)."""
        span = self._end - self._start
        return Progress(self._callback, self._cancel, self._start + start * span, self._start + end * span)

    def steps(self, items: list, message: str = "") -> Iterator:
        """Iterate ``items`` and report after each one."""
        total = max(len(items), 1)
        self.update(0.0, message)
        for index, item in enumerate(items):
            yield item
            self.update((index + 1) / total, message)


PROGRESS_INTERVAL_ENV = "RADASSIST_PROGRESS_INTERVAL"
DEFAULT_LOG_INTERVAL_S = 30.0


class ProgressLines:
    """Progress as plain lines for a log file: "description:  37% message", at most one every ``interval``
    seconds, plus the first report and the finish.

    A tqdm bar redraws one line with carriage returns, which a log file or a batch scheduler's output does not
    show usefully (tqdm writes nothing at all when stderr is not a terminal), so a training run started with
    ``nohup`` or under a job scheduler would otherwise report nothing for hours.
    """

    def __init__(self, description: str, stream: TextIO, interval_s: float = DEFAULT_LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.description, self.stream, self.interval_s, self.clock = description, stream, float(interval_s), clock
        self._last_time: float | None = None
        self._last_line = ""
        self._finished = False

    def __call__(self, fraction: float, message: str) -> None:
        now = self.clock()
        finished = fraction >= 1.0
        due = self._last_time is None or now - self._last_time >= self.interval_s
        if not (due or (finished and not self._finished)):
            return
        line = f"{self.description}: {fraction * 100:3.0f}%" + (f" {message}" if message else "")
        if line != self._last_line:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_line = line
        self._last_time = now
        self._finished = self._finished or finished


def log_interval_s() -> float:
    """Seconds between progress lines in a log (``$RADASSIST_PROGRESS_INTERVAL``, default 30)."""
    text = os.environ.get(PROGRESS_INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_LOG_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        raise InputError(None, f"${PROGRESS_INTERVAL_ENV} must be a number of seconds, got {text!r}") from None
    if value < 0 or math.isnan(value):
        raise InputError(None, f"${PROGRESS_INTERVAL_ENV} must be 0 or more seconds, got {text!r}")
    return value


@contextlib.contextmanager
def tqdm_progress(description: str, disable: bool | None = None, stream: TextIO | None = None) -> Iterator[Progress]:
    """The CLI's view of a job on ``stream`` (stderr): a tqdm bar on a terminal, :class:`ProgressLines` in a log
    (every ``$RADASSIST_PROGRESS_INTERVAL`` seconds), nothing when ``disable``; JSON lines to
    ``$RADASSIST_PROGRESS_FILE`` when a GUI runs the command as a job."""
    stream = sys.stderr if stream is None else stream
    if disable:
        yield Progress()
        return
    from radassist.runtime.job_folder import PROGRESS_FILE_ENV, ProgressFile

    if os.environ.get(PROGRESS_FILE_ENV):  # run as a GUI's job: reports go to its job folder
        yield Progress(ProgressFile(os.environ[PROGRESS_FILE_ENV]))
        return
    if not _is_terminal(stream):
        yield Progress(ProgressLines(description, stream, log_interval_s()))
        return
    from tqdm import tqdm

    with tqdm(total=1000, desc=description, unit="", bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
              file=stream, leave=False) as bar:
        def show(fraction: float, message: str) -> None:
            bar.n = int(round(fraction * 1000))
            if message:
                bar.set_postfix_str(message, refresh=False)
            bar.refresh()

        yield Progress(show)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
