"""The "Models" section every RadAssist panel shows: installed models, install/import/remove, cache folder, device.

Built in code so a panel adds it with one call, ``ModelsSection(self.layout, task="lung")``. The widget only draws:
rows, button states and tooltips, advice for failed downloads, device choices and the cache folder all come from
:mod:`radassist.runtime.model_status`, the same code behind ``radassist models``. Downloads and imports are
``radassist models install/import`` commands run in their own process through :class:`SlicerJobRunner` (Install
becomes Cancel, a progress bar shows the bytes); an offline failure shows where to put the file by hand, in
selectable text. Until RadAssist's packages are installed the section says so and offers nothing else. The panel
reads :attr:`ModelsSection.selectedModelId` and :attr:`ModelsSection.device`, or observes the selection with
:meth:`ModelsSection.addSelectionObserver`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import qt
import slicer

from radassist.errors import RadAssistError
from radassist.slicer.worker import SlicerJobRunner, collapsible_section, selection_table, status_label

if TYPE_CHECKING:
    from radassist.runtime.model_status import ModelRow

COLUMNS = ("Model", "Version", "Status", "Size", "Licence")
SETTINGS_MODELS_FOLDER = "RadAssist/ModelsFolder"
SETTINGS_DEVICE = "RadAssist/Device"
WEIGHTS_FILTER = "Model weights (*.pt *.pth *.ckpt *.p *.bin *.safetensors);;All files (*)"


def _saved_setting(key: str) -> str | None:
    value = qt.QSettings().value(key)
    return str(value) if value else None


class ModelsSection:
    """A collapsible "Models" section for the models of ``task`` (a catalogue task or a prefix such as "lung").

    ``dependencies`` is the panel's :class:`~radassist.slicer.dependency_section.DependencySection`: the catalogue
    and the devices are read only once RadAssist's packages are installed.
    """

    def __init__(self, parent_layout, task: str, dependencies=None) -> None:
        self.task = task
        self._dependencies = dependencies
        self._rows: list[ModelRow] = []
        self._device_values: list[str] = []
        self._load_failed = False
        self._folder_restored = False
        self._selection_observers: list[Callable[[str | None], None]] = []

        self.widget = collapsible_section("Models", collapsed=False)
        layout = qt.QVBoxLayout(self.widget)

        self.table = selection_table(COLUMNS, self._onSelectionChanged)
        layout.addWidget(self.table)

        buttons = qt.QHBoxLayout()
        self.installButton = qt.QPushButton("Install")
        self.importButton = qt.QPushButton("Import...")
        self.removeButton = qt.QPushButton("Remove")
        self.refreshButton = qt.QPushButton("Refresh")
        self.refreshButton.toolTip = "Read the catalogue and the models folder again (e.g. after a download by hand)."
        for button in (self.installButton, self.importButton, self.removeButton, self.refreshButton):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.installButton.connect("clicked(bool)", self.onInstall)
        self.importButton.connect("clicked(bool)", self.onImport)
        self.removeButton.connect("clicked(bool)", self.onRemove)
        self.refreshButton.connect("clicked(bool)", self.onRefresh)

        self.progressBar = qt.QProgressBar()
        layout.addWidget(self.progressBar)
        self.statusLabel = status_label()  # urls and sha256 can be copied
        layout.addWidget(self.statusLabel)

        form = qt.QFormLayout()
        folderRow = qt.QHBoxLayout()
        self.folderLabel = qt.QLabel()
        self.folderLabel.setTextInteractionFlags(qt.Qt.TextSelectableByMouse)
        self.openFolderButton = qt.QPushButton("Open")
        self.changeFolderButton = qt.QPushButton("Change...")
        self.changeFolderButton.toolTip = "Keep models in another folder (remembered by Slicer)."
        folderRow.addWidget(self.folderLabel, 1)
        folderRow.addWidget(self.openFolderButton)
        folderRow.addWidget(self.changeFolderButton)
        self.openFolderButton.connect("clicked(bool)", self.onOpenFolder)
        self.changeFolderButton.connect("clicked(bool)", self.onChangeFolder)
        form.addRow("Models folder:", folderRow)
        self.deviceComboBox = qt.QComboBox()
        self.deviceComboBox.connect("currentIndexChanged(int)", self._onDeviceChanged)
        form.addRow("Device:", self.deviceComboBox)
        self.deviceNoteLabel = status_label()
        form.addRow(self.deviceNoteLabel)
        layout.addLayout(form)

        self._runner = SlicerJobRunner(self.installButton, self.progressBar)
        self.refresh(devices=True)
        parent_layout.addWidget(self.widget)

    def _ready(self) -> bool:
        return self._dependencies is None or self._dependencies.ready()

    # -- what the panel reads ---------------------------------------------------------------------------------
    @property
    def selectedModel(self) -> ModelRow | None:
        index = self.table.currentRow()
        return self._rows[index] if 0 <= index < len(self._rows) else None

    @property
    def selectedModelId(self) -> str | None:
        row = self.selectedModel
        return None if row is None else row.id

    @property
    def device(self) -> str:
        index = self.deviceComboBox.currentIndex
        return self._device_values[index] if 0 <= index < len(self._device_values) else "auto"

    def addSelectionObserver(self, callback: Callable[[str | None], None]) -> None:
        """Call ``callback(model_id or None)`` whenever the selected model changes."""
        self._selection_observers.append(callback)

    def cancel(self) -> None:
        """Stop a running download (the panel calls this on cleanup and scene close); the part is kept."""
        self._runner.cancel()

    # -- filling the widgets ----------------------------------------------------------------------------------
    def refresh(self, devices: bool = False) -> None:  # noqa: C901 -- one pass over the section's state
        """Re-read rows and the models folder; ``devices`` also re-lists devices (first use imports torch)."""
        if not self._ready():
            self._fillTable([], None)
            self.folderLabel.text = ""
            self.setStatus("Install RadAssist's Python packages (top of this panel) to list and install models.")
            for button in (self.installButton, self.importButton, self.removeButton, self.openFolderButton,
                           self.changeFolderButton):
                button.enabled = False
            return
        from radassist.runtime import model_status

        if not self._folder_restored:  # first refresh with the packages: the folder Slicer's settings remember
            _, note = model_status.restore_cache_folder(_saved_setting(SETTINGS_MODELS_FOLDER))
            self._folder_restored, devices = True, True
            self.setStatus(note)
        selected = self.selectedModel
        try:
            rows = model_status.model_rows(self.task)
        except RadAssistError as error:
            self._load_failed = True
            rows = []
            self.setStatus(model_status.listing_failure_text(error))
        else:
            if self._load_failed:
                self.setStatus("")  # the problem reported earlier is solved
            self._load_failed = False
        self._fillTable(rows, selected)
        self.openFolderButton.enabled = True
        folder = model_status.cache_folder()
        self.folderLabel.text = str(folder.models)
        self.folderLabel.toolTip = folder.how_to_change
        self.openFolderButton.toolTip = f"Show {folder.models} in the file browser."
        if devices:
            self._fillDevices()
        self._updateButtons()

    def _fillTable(self, rows: list[ModelRow], selected: ModelRow | None) -> None:
        from radassist.runtime.model_status import default_row

        self._rows = list(rows)
        wasBlocked = self.table.blockSignals(True)
        self.table.clearContents()
        self.table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            tooltip = f"{row.title}\nTask: {row.task}\nFolder: {row.folder}"
            for column, text in enumerate((row.id, row.version, row.status, row.size_text, row.licence)):
                item = qt.QTableWidgetItem(text)
                item.setToolTip(tooltip)
                self.table.setItem(index, column, item)
        self.table.resizeColumnsToContents()
        same = [i for i, r in enumerate(rows) if selected is not None and r.label == selected.label]
        keep = same[0] if same else default_row(rows)
        if keep is not None:
            self.table.selectRow(keep)
        self.table.blockSignals(wasBlocked)
        self._notifySelection()

    def _fillDevices(self) -> None:
        from radassist.runtime import model_status

        choices = model_status.device_choices()
        current = self.device if self._device_values else _saved_setting(SETTINGS_DEVICE)
        wasBlocked = self.deviceComboBox.blockSignals(True)
        self.deviceComboBox.clear()
        self._device_values = choices.values
        for index, option in enumerate(choices.options):
            self.deviceComboBox.addItem(option.label)
            self.deviceComboBox.setItemData(index, option.tooltip, qt.Qt.ToolTipRole)
        self.deviceComboBox.setCurrentIndex(choices.index_of(current))
        self.deviceComboBox.blockSignals(wasBlocked)
        self.deviceNoteLabel.text = choices.note
        self.deviceNoteLabel.visible = bool(choices.note)

    def _updateButtons(self) -> None:
        from radassist.runtime import model_status

        if self._runner.running:  # Install is the download's Cancel button meanwhile
            self.installButton.enabled = True
            for button in (self.importButton, self.removeButton, self.refreshButton, self.changeFolderButton):
                button.enabled = False
            return
        actions = model_status.row_actions(self.selectedModel)
        self.installButton.enabled = actions.can_install
        self.installButton.toolTip = actions.install_tip
        self.importButton.enabled = actions.import_target is not None
        self.importButton.toolTip = actions.import_tip
        self.removeButton.enabled = actions.can_remove
        self.removeButton.toolTip = actions.remove_tip
        self.refreshButton.enabled = True
        self.changeFolderButton.enabled = True

    def setStatus(self, text: str) -> None:
        self.statusLabel.text = text
        if text:
            logging.info("RadAssist models: %s", text)

    # -- events -----------------------------------------------------------------------------------------------
    def _onSelectionChanged(self) -> None:
        self._updateButtons()
        self._notifySelection()

    def _notifySelection(self) -> None:
        model_id = self.selectedModelId
        for callback in self._selection_observers:
            callback(model_id)

    def _onDeviceChanged(self, index: int) -> None:
        qt.QSettings().setValue(SETTINGS_DEVICE, self.device)

    def onRefresh(self) -> None:
        self.setStatus("")
        self.refresh(devices=True)

    def onInstall(self) -> None:
        self._runner.toggle(self._startInstall)

    def _startInstall(self) -> None:
        from radassist.runtime import model_status
        from radassist.runtime.model_status import Frontend

        row = self.selectedModel
        if row is None or not model_status.row_actions(row).can_install or not self._ready():
            return
        try:
            entry = model_status.find_entry(row.id, row.version)
        except RadAssistError as error:
            self.setStatus(str(error))
            return
        arguments = ["models", "install", row.id, "--version", row.version]
        if entry.consent_required:  # the licence is shown, and the download starts only once the user accepts it
            from radassist.runtime.download import licence_terms

            terms = licence_terms(entry)
            if not slicer.util.confirmOkCancelDisplay(
                    f"{terms.text}\n\nDo you accept the licence of {terms.model} ({terms.name})?",
                    windowTitle=f"RadAssist: licence of {terms.model}"):
                self.setStatus(f"{row.label} was not installed: its licence ({terms.name}) was not accepted.")
                return
            arguments.append("--accept-license")
        self._runModelsCommand(arguments, "install", f"Downloading {row.label}...", f"Installed {row.label}.",
                               lambda error: model_status.install_failure_text(entry, error, Frontend.PANEL),
                               f"Download of {row.label} cancelled; what arrived is kept and Install resumes it.")

    def _runModelsCommand(self, arguments: list[str], kind: str, running: str, done: str,
                          failure: Callable[[BaseException], str], cancelled: str) -> None:
        """Run ``radassist ARGUMENTS`` in its own process; whatever the outcome, say it and re-read the rows."""
        from radassist.slicer import jobs

        try:
            job = jobs.command_job(*arguments, kind=kind)
        except RadAssistError as error:
            self.setStatus(str(error))
            return
        self.setStatus(running)

        def ended(text: str) -> None:
            self.setStatus(text)
            self.refresh()

        self._runner.start(job, on_success=lambda _output: ended(done), on_error=lambda error: ended(failure(error)),
                           on_cancelled=lambda: ended(cancelled))
        self._updateButtons()

    def onImport(self) -> None:
        from radassist.runtime import model_status

        row = self.selectedModel
        target = model_status.row_actions(row).import_target if row is not None else None
        if row is None or target is None or self._runner.running or not self._ready():
            return
        caption = f"Weights for {row.label}" if target == row.id else f"Weights of your own {row.task} model"
        path = qt.QFileDialog.getOpenFileName(self.widget, caption, str(Path.home()), WEIGHTS_FILTER)
        if path:
            name = Path(path).name
            self._runModelsCommand(["models", "import", target, str(path)], "import",
                                   f"Checking and installing {name}...", f"Imported {name}.",
                                   lambda error: f"Import failed: {error}", "Import cancelled.")

    def onRemove(self) -> None:
        from radassist.runtime import model_status

        row = self.selectedModel
        if row is None or not model_status.row_actions(row).can_remove or self._runner.running:
            return
        if not slicer.util.confirmYesNoDisplay(f"Delete {row.label} from {row.folder}?",
                                               windowTitle="RadAssist: remove model"):
            return
        try:
            removed = model_status.remove_model(row.id, row.version)
        except (RadAssistError, OSError) as error:
            self.setStatus(f"Could not remove {row.label}: {error}")
        else:
            self.setStatus(f"Removed {row.label}" + (f" ({removed[0]})." if removed else "."))
        self.refresh()

    def onOpenFolder(self) -> None:
        from radassist.runtime import model_status

        models = model_status.cache_folder().models
        try:
            models.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            self.setStatus(f"Cannot create {models}: {error.strerror or error}")
            return
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(models)))

    def onChangeFolder(self) -> None:
        from radassist.runtime import model_status

        current = model_status.cache_folder().path
        chosen = qt.QFileDialog.getExistingDirectory(self.widget, "Folder for RadAssist models", str(current))
        if not chosen:
            return
        try:
            folder = model_status.use_cache_folder(chosen)
        except RadAssistError as error:
            self.setStatus(str(error))
            return
        qt.QSettings().setValue(SETTINGS_MODELS_FOLDER, str(folder.path))
        self.setStatus(f"Models are now kept in {folder.models}.")
        self.refresh()
