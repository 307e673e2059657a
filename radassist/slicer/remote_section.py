"""The "Where to run" section of the RadAssist panels: on this computer, or on a RadAssist server (URL and token,
remembered in Slicer's settings), with "Test connection". Built in code like the Models section.

The panel reads :attr:`RemoteSection.settings`; with Server chosen its Apply asks for consent
(:func:`radassist.slicer.remote.confirm_upload`) and runs the task through :mod:`radassist.slicer.remote`.
"""

from __future__ import annotations

from typing import Any

import qt

from radassist.slicer.task_requests import connection_text
from radassist.slicer.settings_store import RemoteSettings
from radassist.slicer.worker import JobSection, SlicerJobRunner, add_job_controls, collapsible_section


class RemoteSection(JobSection):
    """A collapsible "Where to run" section; ``task`` is the server task this panel's Apply asks for."""

    def __init__(self, parent_layout, task: str) -> None:
        self.task = task
        saved = RemoteSettings.load()
        self.widget = collapsible_section("Where to run", collapsed=not saved.remote)
        form = qt.QFormLayout(self.widget)
        modes = qt.QHBoxLayout()
        self.localRadioButton = qt.QRadioButton("This computer")
        self.serverRadioButton = qt.QRadioButton("RadAssist server")
        modes.addWidget(self.localRadioButton)
        modes.addWidget(self.serverRadioButton)
        form.addRow("Run on:", modes)
        self.urlLineEdit = qt.QLineEdit(saved.url)
        self.urlLineEdit.placeholderText = "https://radassist.example.org:8000"
        form.addRow("Server URL:", self.urlLineEdit)
        self.tokenLineEdit = qt.QLineEdit(saved.token)
        self.tokenLineEdit.echoMode = qt.QLineEdit.Password
        self.tokenLineEdit.toolTip = "The server's access token (its administrator gives it out)"
        form.addRow("Token:", self.tokenLineEdit)
        self.testButton, self.progressBar, self.statusLabel = add_job_controls(form, "Test connection", "",
                                                                               selectable=True)
        (self.serverRadioButton if saved.remote else self.localRadioButton).checked = True
        self._runner = SlicerJobRunner(self.testButton, self.progressBar)
        self.serverRadioButton.connect("toggled(bool)", self.onChanged)
        self.urlLineEdit.connect("editingFinished()", self.onChanged)
        self.tokenLineEdit.connect("editingFinished()", self.onChanged)
        self.testButton.connect("clicked(bool)", self.onTest)
        self.onChanged()
        parent_layout.addWidget(self.widget)

    @property
    def settings(self) -> RemoteSettings:
        return RemoteSettings(bool(self.serverRadioButton.checked), self.urlLineEdit.text, self.tokenLineEdit.text)

    def onChanged(self, *_: Any) -> None:
        settings = self.settings
        settings.save()
        for widget in (self.urlLineEdit, self.tokenLineEdit):
            widget.enabled = settings.remote

    def onTest(self) -> None:
        self._runner.toggle(self._startTest)

    def _startTest(self) -> None:
        """Ask the server for its health and tasks, from a job process like every other network call."""
        from radassist.errors import RadAssistError
        from radassist.runtime.job_runner import SERVER_CHECK
        from radassist.slicer import jobs
        from radassist.slicer.task_requests import TaskRequest, read_server_check

        settings = self.settings
        try:
            settings.client()
            job = jobs.task_job(TaskRequest([], {}, read_server_check, SERVER_CHECK), "cpu", settings)
        except RadAssistError as error:
            self.statusLabel.text = str(error)
            return

        def answered(folder) -> None:
            self.statusLabel.text = connection_text(*read_server_check(folder), self.task)

        def failed(error: BaseException) -> None:
            self.statusLabel.text = f"No connection: {error}"

        self.statusLabel.text = f"Asking {settings.url.strip()}..."
        self._runner.start(job, on_success=answered, on_error=failed)
