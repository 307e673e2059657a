"""Slicer side of the job runner: run a :class:`BackgroundJob`, keep the GUI alive, show progress, offer Cancel.

A qt.QTimer polls the job from the main thread, so results are turned into nodes where MRML lives and the GUI keeps
repainting while the model runs in a worker thread. While a job runs, the module's Apply button reads "Cancel" and
cancels the job; afterwards it is restored. Errors go to the caller's ``on_error`` -- nothing here opens a popup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import qt

from radassist.runtime.jobs import BackgroundJob, JobCancelled, JobDone, JobFailed, JobProgress
from radassist.runtime.progress import Progress

PROGRESS_STEPS = 1000


class SlicerJobRunner:
    """Runs one job at a time for a module widget, driving its Apply button and progress bar."""

    def __init__(self, apply_button: qt.QPushButton, progress_bar: qt.QProgressBar, cancel_text: str = "Cancel",
                 poll_interval_ms: int = 100) -> None:
        self._button = apply_button
        self._progress_bar = progress_bar
        self._cancel_text = cancel_text
        self._idle_text = apply_button.text
        self._idle_tooltip = apply_button.toolTip
        self._job: BackgroundJob | None = None
        self._on_success: Callable[[Any], None] | None = None
        self._on_error: Callable[[BaseException], None] | None = None
        self._on_cancelled: Callable[[], None] | None = None
        self._timer = qt.QTimer()
        self._timer.setInterval(poll_interval_ms)
        self._timer.timeout.connect(self._poll)
        self._progress_bar.setRange(0, PROGRESS_STEPS)
        self._progress_bar.hide()

    @property
    def running(self) -> bool:
        return self._job is not None

    def start(self, fn: Callable[[Progress], Any], on_success: Callable[[Any], None],
              on_error: Callable[[BaseException], None],
              on_cancelled: Callable[[], None] | None = None) -> BackgroundJob:
        """Run ``fn(progress)`` in a worker thread; the callbacks run later in the main thread."""
        if self._job is not None:
            raise RuntimeError("a RadAssist job is already running")
        self._on_success, self._on_error, self._on_cancelled = on_success, on_error, on_cancelled
        self._idle_text = self._button.text
        self._idle_tooltip = self._button.toolTip
        self._button.text = self._cancel_text
        self._button.toolTip = "Stop the running job"
        self._show_progress(0.0, "Starting...")
        self._job = BackgroundJob(fn).start()
        self._timer.start()
        return self._job

    def cancel(self) -> None:
        """Ask the running job to stop; it ends at its next progress report."""
        if self._job is not None:
            self._job.cancel()
            self._progress_bar.setFormat("Cancelling... %p%")

    def toggle(self, start_job: Callable[[], None]) -> None:
        """Apply-button handler: cancel the running job, or call ``start_job`` (which calls :meth:`start`)."""
        if self.running:
            self.cancel()
        else:
            start_job()

    def _show_progress(self, fraction: float, message: str) -> None:
        self._progress_bar.show()
        self._progress_bar.setValue(int(round(fraction * PROGRESS_STEPS)))
        label = message.replace("%", "%%")
        self._progress_bar.setFormat(f"{label} %p%" if label else "%p%")

    def _poll(self) -> None:
        job = self._job
        if job is None:
            self._timer.stop()
            return
        for event in job.poll():
            if isinstance(event, JobProgress):
                if not job.cancel_requested:
                    self._show_progress(event.fraction, event.message)
            else:
                self._finish(event)
                return

    def _finish(self, event: JobDone | JobFailed | JobCancelled) -> None:
        self._timer.stop()
        self._job = None
        self._button.text = self._idle_text
        self._button.toolTip = self._idle_tooltip
        self._progress_bar.hide()
        on_success, on_error, on_cancelled = self._on_success, self._on_error, self._on_cancelled
        self._on_success = self._on_error = self._on_cancelled = None
        if isinstance(event, JobDone):
            try:
                on_success(event.result)
            except Exception as error:  # noqa: BLE001 -- turning a result into nodes can fail too; report it
                logging.exception("RadAssist: applying the result failed")
                on_error(error)
        elif isinstance(event, JobFailed):
            logging.error("RadAssist job failed:\n%s", event.traceback)
            on_error(event.error)
        elif on_cancelled is not None:
            on_cancelled()
