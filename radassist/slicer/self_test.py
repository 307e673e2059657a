"""Steps the four modules' self-tests share, run inside Slicer (or the strict stand-in): drive the panel as a user
does (buttons, selectors), wait for its job processes while Slicer's events keep flowing, then review, export and
cancel. They use the panel's own widgets, so a self-test checks what a user gets, not a shortcut around it."""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import slicer

JOB_TIMEOUT_S = 1800.0


def widget_of(module_name: str):
    """The module's panel (created and set up on first use, as when the user selects the module)."""
    return getattr(slicer.modules, module_name.lower()).widgetRepresentation().self()


def wait_for_job(runner, timeout_s: float = JOB_TIMEOUT_S) -> None:
    """Process Slicer's events until ``runner``'s job process has ended and its result is in the scene."""
    deadline = time.monotonic() + timeout_s
    while runner.running:
        if time.monotonic() > deadline:
            runner.cancel()
            raise RuntimeError(f"the job did not finish in {timeout_s:.0f} s")
        slicer.app.processEvents()
        time.sleep(0.05)
    slicer.app.processEvents()


def click_and_wait(widget, button) -> str:
    """Press a panel button that starts a job; the panel's status line once the job is done."""
    button.click()
    wait_for_job(widget._runner)
    return widget.ui.statusLabel.text


def load_sample_through_panel(test, widget) -> None:
    status = click_and_wait(widget, widget.ui.loadSampleButton)
    test.assertTrue(status.startswith("Loaded"), status)


def select_model(test, widget, model_id: str) -> None:
    """Re-read the models section and choose ``model_id`` in its table, as a user clicks its row."""
    section = widget.modelsSection
    section.refresh()
    ids = [section.table.item(row, 0).text() for row in range(section.table.rowCount)]
    test.assertIn(model_id, ids)
    section.table.selectRow(ids.index(model_id))
    test.assertEqual(section.selectedModelId, model_id)


def apply_through_panel(test, widget, expected: str) -> str:
    status = click_and_wait(widget, widget.ui.applyButton)
    test.assertIn(expected, status)
    return status


def cancel_through_panel(test, widget, counted_class: str) -> None:
    """Apply, then press the same button (now Cancel): the job ends and nothing is added to the scene."""
    before = len(slicer.util.getNodesByClass(counted_class))
    widget.ui.applyButton.click()
    test.assertEqual(widget.ui.applyButton.text, "Cancel")
    widget.ui.applyButton.click()
    wait_for_job(widget._runner)
    test.assertEqual(widget.ui.statusLabel.text, "Cancelled; nothing was added to the scene.")
    test.assertEqual(len(slicer.util.getNodesByClass(counted_class)), before)


def review_and_export(test, widget, dataset: Path) -> dict:
    """Approve the first result, step to the next one, export into ``dataset``; returns the provenance."""
    review = widget.reviewSection
    test.assertGreater(review.table.rowCount, 0)
    review.table.selectRow(0)
    review.statusComboBox.currentIndex = review.statusComboBox.findText("approved")
    review.onStatusChosen(review.statusComboBox.currentIndex)
    test.assertEqual(review.table.item(0, 1).text(), "approved")
    review.nextButton.click()
    review.folderButton.directory = str(dataset)
    review.annotatorLineEdit.text = "self-test"
    review.exportButton.click()
    test.assertTrue(review.statusLabel.text.startswith("Exported"), review.statusLabel.text)
    (provenance,) = list(Path(dataset).rglob("provenance.json"))
    record = json.loads(provenance.read_text(encoding="utf-8"))
    test.assertEqual(record["annotator"], "self-test")
    return record


@contextmanager
def scratch_models_folder():
    """A private models folder for the duration of a test (jobs inherit it): the user's own models stay untouched."""
    previous = os.environ.get("RADASSIST_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="radassist-selftest-") as folder:
        os.environ["RADASSIST_CACHE_DIR"] = folder
        try:
            yield Path(folder)
        finally:
            if previous is None:
                os.environ.pop("RADASSIST_CACHE_DIR", None)
            else:
                os.environ["RADASSIST_CACHE_DIR"] = previous
