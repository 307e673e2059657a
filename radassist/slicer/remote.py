"""Remote mode of the RadAssist panels: local or a server, its URL and token remembered in Slicer's settings,
and a consent prompt before image data leaves the machine.

Thin on purpose: the job process runs the task on the server with the engine's client (radassist.client), so a
panel gets the very files a local run writes and loads them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import qt

from radassist.client import upload_consent_text
from radassist.slicer.settings_store import RemoteSettings

SETTINGS_CONSENTED = "RadAssist/Server/ConsentedURLs"  # servers the user said not to ask about again

__all__ = ["RemoteSettings", "confirm_upload"]  # RemoteSettings: settings_store's, re-exported


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
