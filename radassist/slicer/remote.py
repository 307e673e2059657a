"""Remote mode of the RadAssist panels: local or a server, its URL and token remembered in Slicer's settings,
a consent prompt before image data leaves the machine, and one call that runs a task there.

Thin on purpose: the client, the consent wording and the result files are the engine's (radassist.client), so a
panel gets the very files `radassist ... --server URL` writes and loads them as it loads local results.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qt

from radassist.client import RadAssistClient, run_on_volumes, upload_consent_text
from radassist.runtime.progress import Progress

SETTINGS_MODE = "RadAssist/Server/Mode"          # "local" or "remote"
SETTINGS_URL = "RadAssist/Server/URL"
SETTINGS_TOKEN = "RadAssist/Server/Token"
SETTINGS_CONSENTED = "RadAssist/Server/ConsentedURLs"  # servers the user said not to ask about again


@dataclass
class RemoteSettings:
    """Where tasks run, as the panel's settings remember it."""

    remote: bool = False
    url: str = ""
    token: str = ""

    @classmethod
    def load(cls) -> "RemoteSettings":
        settings = qt.QSettings()
        return cls(remote=str(settings.value(SETTINGS_MODE) or "local") == "remote",
                   url=str(settings.value(SETTINGS_URL) or ""), token=str(settings.value(SETTINGS_TOKEN) or ""))

    def save(self) -> None:
        settings = qt.QSettings()
        settings.setValue(SETTINGS_MODE, "remote" if self.remote else "local")
        settings.setValue(SETTINGS_URL, self.url.strip())
        settings.setValue(SETTINGS_TOKEN, self.token.strip())

    def client(self) -> RadAssistClient:
        """The engine's client for these settings (InputError for an address without http(s)://)."""
        return RadAssistClient(self.url, token=self.token.strip())


def _consented() -> list[str]:
    value = qt.QSettings().value(SETTINGS_CONSENTED)
    return [str(v) for v in (value if isinstance(value, (list, tuple)) else [value] if value else [])]


def confirm_upload(parent: Any, url: str, names: Sequence[str]) -> bool:
    """Ask before any image leaves the machine; "don't ask again" is remembered per server URL."""
    if url in _consented():
        return True
    box = qt.QMessageBox(parent)
    box.setIcon(qt.QMessageBox.Question)
    box.setWindowTitle("Send images to the RadAssist server?")
    box.setText(upload_consent_text(url, names))
    box.setStandardButtons(qt.QMessageBox.Yes | qt.QMessageBox.Cancel)
    box.setDefaultButton(qt.QMessageBox.Cancel)
    remember = qt.QCheckBox("Do not ask again for this server")
    box.setCheckBox(remember)
    if box.exec_() != qt.QMessageBox.Yes:
        return False
    if remember.checked:
        qt.QSettings().setValue(SETTINGS_CONSENTED, _consented() + [url])
    return True


def compute_remotely(settings: RemoteSettings, task: str, volumes: Sequence[Any], options: dict[str, Any] | None,
                     progress: Progress) -> Path:
    """Run ``task`` on the server (worker thread, after :func:`confirm_upload` on the main thread); the folder
    holding the result files, which the panel loads as it loads its local results and then deletes."""
    out = Path(tempfile.mkdtemp(prefix="radassist-remote-"))
    run_on_volumes(settings.client(), task, volumes, options, out, progress)
    return out
