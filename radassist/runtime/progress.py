"""One progress-and-cancel interface for every long job: tqdm on the CLI, the progress bar and Cancel in Slicer.

Pipelines take a :class:`Progress` and call ``progress.update(fraction, message)``; the caller decides what that
shows. ``update`` raises :class:`Cancelled` once someone has called ``cancel()``, so a pipeline stops at its next
report with nothing written.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from radassist.errors import RadAssistError

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




@contextlib.contextmanager
def tqdm_progress(description: str, disable: bool | None = None) -> Iterator[Progress]:
    """A Progress that drives a tqdm bar on stderr (the CLI's view of a job)."""
    from tqdm import tqdm

    with tqdm(total=1000, desc=description, unit="", bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
              disable=disable, leave=False) as bar:
        def show(fraction: float, message: str) -> None:
            bar.n = int(round(fraction * 1000))
            if message:
                bar.set_postfix_str(message, refresh=False)
            bar.refresh()

        yield Progress(show)
