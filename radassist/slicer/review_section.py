"""The "Review and export" section every RadAssist panel shows, built in code like the Models section.

It lists the current result's segments (or ROI boxes) with their review status, sets the status of the selected
one, steps to the next one that is not approved, and exports the corrected result into a dataset folder with the
annotator's name (both remembered in Slicer's settings). Decisions are the engine's: statuses and stepping in
:mod:`radassist.annotation.review`, the export in :mod:`radassist.annotation`, the run kept by
:class:`radassist.slicer.ai_run.AiRun`. Mammography adds the per-breast labels the reader confirms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import ctk
import qt
import slicer

from radassist.annotation.review import STATUS_LABELS, ReviewItem
from radassist.errors import RadAssistError
from radassist.results.segments import ReviewStatus
from radassist.slicer import review
from radassist.slicer.ai_run import AiRun
from radassist.slicer.export_plan import proposed_labels
from radassist.slicer.settings_store import ExportSettings
from radassist.slicer.worker import collapsible_section, selection_table, status_label

STATUSES = list(STATUS_LABELS)  # combo index -> ReviewStatus
BREASTS = (("L", "Left breast"), ("R", "Right breast"))
CLASSES = ("benign", "malignant")


class ReviewSection:
    """A collapsible "Review and export" section for the run ``current_run()`` returns (None before a run)."""

    def __init__(self, parent_layout, current_run: Callable[[], AiRun | None], confirm_labels: bool = False) -> None:
        self._current_run = current_run
        self._items: list[ReviewItem] = []
        self.widget = collapsible_section("Review and export")
        layout = qt.QVBoxLayout(self.widget)

        self.table = selection_table(("Result", "Review status"), self.onSelectionChanged)
        layout.addWidget(self.table)

        row = qt.QHBoxLayout()
        self.statusComboBox = qt.QComboBox()
        for status in STATUSES:
            self.statusComboBox.addItem(STATUS_LABELS[status])
        self.statusComboBox.toolTip = "Review status of the selected result (approved ones are locked for editing)"
        self.statusComboBox.connect("activated(int)", self.onStatusChosen)
        self.nextButton = qt.QPushButton("Next not approved")
        self.nextButton.connect("clicked(bool)", self.onNext)
        self.refreshButton = qt.QPushButton("Refresh")
        self.refreshButton.connect("clicked(bool)", self.onRefresh)
        for widget in (self.statusComboBox, self.nextButton, self.refreshButton):
            row.addWidget(widget)
        layout.addLayout(row)
        self.summaryLabel = qt.QLabel()
        layout.addWidget(self.summaryLabel)

        self.labelBoxes: dict[tuple[str, str], qt.QCheckBox] = {}
        if confirm_labels:
            labels = qt.QFormLayout()
            for side, title in BREASTS:
                boxes = qt.QHBoxLayout()
                for name in CLASSES:
                    self.labelBoxes[(side, name)] = qt.QCheckBox(name)
                    boxes.addWidget(self.labelBoxes[(side, name)])
                labels.addRow(f"{title} (confirmed):", boxes)
            layout.addLayout(labels)

        form = qt.QFormLayout()
        self.folderButton = ctk.ctkDirectoryButton()
        self.folderButton.toolTip = "Dataset folder of this task's export (one per task; remembered)"
        form.addRow("Dataset folder:", self.folderButton)
        self.annotatorLineEdit = qt.QLineEdit()
        self.annotatorLineEdit.toolTip = "Who corrected the result (recorded in every case's provenance)"
        form.addRow("Annotator:", self.annotatorLineEdit)
        layout.addLayout(form)
        self.exportButton = qt.QPushButton("Export corrected labels...")
        self.exportButton.connect("clicked(bool)", self.onExport)
        layout.addWidget(self.exportButton)
        self.statusLabel = status_label()
        layout.addWidget(self.statusLabel)
        parent_layout.addWidget(self.widget)
        self.refresh()

    # -- filling --------------------------------------------------------------------------------------------------
    def newRun(self) -> None:
        """A run has finished: propose the AI's labels (mammography) and list its results."""
        run = self._current_run()
        if run is not None:
            settings = ExportSettings.load(run.task)
            self.folderButton.directory = settings.folder or qt.QDir.homePath()
            self.annotatorLineEdit.text = self.annotatorLineEdit.text or settings.annotator
        if run is not None and self.labelBoxes:
            proposed = proposed_labels(run.ai)
            for (side, name), box in self.labelBoxes.items():
                box.enabled = side in proposed
                box.checked = bool(proposed.get(side, {}).get(name, 0))
        self.widget.collapsed = False
        self.statusLabel.text = ""
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        run = self._current_run()
        self._items = run.target().items() if run is not None else []
        wasBlocked = self.table.blockSignals(True)
        self.table.clearContents()
        self.table.setRowCount(len(self._items))
        for index, item in enumerate(self._items):
            self.table.setItem(index, 0, qt.QTableWidgetItem(item.name))
            self.table.setItem(index, 1, qt.QTableWidgetItem(STATUS_LABELS[item.status]))
            if item.key == select:
                self.table.selectRow(index)
        self.table.blockSignals(wasBlocked)
        self.summaryLabel.text = review.summary_text(self._items) if run is not None else "No result to review yet."
        for widget in (self.nextButton, self.exportButton, self.refreshButton):
            widget.enabled = run is not None
        self.onSelectionChanged()

    def _selected(self) -> ReviewItem | None:
        index = self.table.currentRow()
        return self._items[index] if 0 <= index < len(self._items) else None

    # -- events ---------------------------------------------------------------------------------------------------
    def onSelectionChanged(self) -> None:
        item = self._selected()
        self.statusComboBox.enabled = item is not None
        if item is not None:
            self.statusComboBox.setCurrentIndex(STATUSES.index(item.status))

    def onStatusChosen(self, index: int) -> None:
        item, run = self._selected(), self._current_run()
        if item is None or run is None:
            return
        run.target().set_status(item.key, STATUSES[index])
        self.refresh(select=item.key)

    def onNext(self) -> None:
        run = self._current_run()
        if run is None:
            return
        current = self._selected()
        item = run.target().step(current.key if current is not None else None)
        self.refresh(select=item.key if item is not None else None)
        if item is None:
            self.statusLabel.text = "Everything is approved."

    def onRefresh(self) -> None:
        self.refresh(select=self._selected().key if self._selected() is not None else None)

    def confirmed(self) -> dict[str, dict[str, int]] | None:
        """The per-breast labels the reader confirmed (breasts of the exam only), or None without the editor."""
        if not self.labelBoxes:
            return None
        return {side: {name: int(self.labelBoxes[(side, name)].checked) for name in CLASSES}
                for side, _ in BREASTS if self.labelBoxes[(side, CLASSES[0])].enabled}

    def onExport(self) -> None:
        run = self._current_run()
        if run is None:
            return
        settings = ExportSettings(run.task, self.folderButton.directory, self.annotatorLineEdit.text)
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            folder, annotator = settings.checked()
            settings.save()
            result = run.export(folder, annotator, self.confirmed())
        except Exception as error:  # noqa: BLE001 -- keep Slicer up and say what happened
            if not isinstance(error, RadAssistError):
                logging.exception("RadAssist: export failed")
            self.statusLabel.text = f"Export failed, nothing was written: {error}"
            return
        finally:
            qt.QApplication.restoreOverrideCursor()
        pending = [i.name for i in self._items if i.status is not ReviewStatus.COMPLETED]
        self.statusLabel.text = (f"Exported {result.case} as {result.version} into {result.root}"
                                 + (f" ({len(pending)} not approved, recorded in the provenance)." if pending else "."))
        slicer.app.processEvents()
