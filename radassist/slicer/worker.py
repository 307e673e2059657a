"""Slicer side of a job: start a :class:`~radassist.runtime.process_jobs.ProcessJob`, keep the GUI alive, show its
progress, offer Cancel, and remove the job's folder once the job has ended and its callbacks have run.

A qt.QTimer polls the job's folder from the main thread, so results become nodes where MRML lives while the job
runs in its own process. While a job runs, the module's button reads "Cancel" and ends the job's process tree;
afterwards it is restored. Errors go to the caller's ``on_error``; nothing here opens a popup.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import ctk
import qt

from radassist.runtime.jobs import JobDone, JobFailed, JobProgress

PROGRESS_STEPS = 1000
POLL_INTERVAL_MS = 100


def collapsible_section(title: str, collapsed: bool = True):
    """A panel section that folds away under its title (a ctkCollapsibleButton)."""
    section = ctk.ctkCollapsibleButton()
    section.text = title
    section.collapsed = collapsed
    return section


def status_label(selectable: bool = True):
    """A wrapped label for a section's messages; ``selectable`` lets the user copy them (urls, sha256, reasons)."""
    label = qt.QLabel()
    label.wordWrap = True
    if selectable:
        label.setTextInteractionFlags(qt.Qt.TextSelectableByMouse)
    return label


def add_job_controls(form, text: str, tooltip: str, selectable: bool = False):
    """``(button, progress bar, status label)`` added as rows of ``form``: the button that starts a job (and reads
    Cancel while it runs), its progress bar and a wrapped status line, as every job section has them."""
    button = qt.QPushButton(text)
    button.toolTip = tooltip
    form.addRow(button)
    progressBar = qt.QProgressBar()
    form.addRow(progressBar)
    statusLabel = status_label(selectable)
    form.addRow(statusLabel)
    return button, progressBar, statusLabel


def selection_table(headers: Sequence[str], on_selection: Callable[[], None]):
    """A read-only table whose rows are selected one at a time; ``on_selection`` runs when the selection changes."""
    table = qt.QTableWidget()
    table.setColumnCount(len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
    table.setSelectionMode(qt.QAbstractItemView.SingleSelection)
    table.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setStretchLastSection(True)
    table.connect("itemSelectionChanged()", on_selection)
    return table


class JobSection:
    """What a panel section with a job button shares: its :class:`SlicerJobRunner` (``_runner``) and its status line
    (``statusLabel``)."""

    @property
    def running(self) -> bool:
        return self._runner.running

    def cancel(self) -> None:
        self._runner.cancel()

    def setStatus(self, text: str) -> None:
        self.statusLabel.text = text


class SlicerJobRunner:
    """Runs one job at a time for a panel section, driving its button and progress bar."""

    def __init__(self, button, progress_bar) -> None:
        self._button = button
        self._progress_bar = progress_bar
        self._idle_text = button.text
        self._idle_tooltip = button.toolTip
        self._job = None
        self._on_success: Callable[[Any], None] | None = None
        self._on_error: Callable[[BaseException], None] | None = None
        self._on_cancelled: Callable[[], None] | None = None
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._poll)
        self._progress_bar.setRange(0, PROGRESS_STEPS)
        self._progress_bar.hide()

    @property
    def running(self) -> bool:
        return self._job is not None

    def start(self, job, on_success: Callable[[Any], None], on_error: Callable[[BaseException], None],
              on_cancelled: Callable[[], None] | None = None):
        """Start ``job`` (a ProcessJob, not yet started); the callbacks run later in the main thread, and its folder
        is removed after them."""
        if self._job is not None:
            raise RuntimeError("a RadAssist job is already running")
        self._on_success, self._on_error, self._on_cancelled = on_success, on_error, on_cancelled
        self._idle_text = self._button.text
        self._idle_tooltip = self._button.toolTip
        try:
            job.start()
        except OSError as error:  # PythonSlicer missing or not executable
            on_error(error)
            shutil.rmtree(job.folder, ignore_errors=True)
            return None
        self._job = job
        self._button.text = "Cancel"
        self._button.toolTip = "Stop the running job"
        self._show_progress(0.0, "Starting...")
        self._timer.start()
        return job

    def cancel(self) -> None:
        """End the running job's process tree; the panel hears about it at the next poll."""
        if self._job is not None:
            self._job.cancel()
            self._progress_bar.setFormat("Cancelling... %p%")

    def toggle(self, start_job: Callable[[], None]) -> None:
        """Button handler: cancel the running job, or call ``start_job`` (which calls :meth:`start`)."""
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

    def _finish(self, event) -> None:
        self._timer.stop()
        folder = self._job.folder
        self._job = None
        self._button.text = self._idle_text
        self._button.toolTip = self._idle_tooltip
        self._progress_bar.hide()
        on_success, on_error, on_cancelled = self._on_success, self._on_error, self._on_cancelled
        self._on_success = self._on_error = self._on_cancelled = None
        try:
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
        finally:
            shutil.rmtree(folder, ignore_errors=True)
