"""The panels' remembered choices (where to run, where to export, who annotates) as plain dataclasses.

They read and write through any object with Qt's ``value(key)`` / ``setValue(key, value)``: Slicer's
``qt.QSettings()`` by default, a plain mapping in tests. No Qt import at module level, so the parsing (what an
empty or odd stored value means) is tested without Slicer.
"""

from __future__ import annotations

import getpass
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from radassist.errors import InputError

SETTINGS_MODE = "RadAssist/Server/Mode"          # "local" or "remote"
SETTINGS_URL = "RadAssist/Server/URL"
SETTINGS_TOKEN = "RadAssist/Server/Token"
SETTINGS_ANNOTATOR = "RadAssist/Export/Annotator"
SETTINGS_EXPORT_FOLDER = "RadAssist/Export/{task}/Folder"  # one dataset folder per export task


class Store(Protocol):
    def value(self, key: str) -> Any: ...

    def setValue(self, key: str, value: Any) -> None: ...


class MappingStore:
    """A dict behind Qt's settings interface (scripts and tests)."""

    def __init__(self, values: MutableMapping[str, Any] | None = None) -> None:
        self.values = values if values is not None else {}

    def value(self, key: str) -> Any:
        return self.values.get(key)

    def setValue(self, key: str, value: Any) -> None:  # noqa: N802 -- Qt's name
        self.values[key] = value


def _store(store: Store | None) -> Store:
    if store is not None:
        return store
    import qt

    return qt.QSettings()


def _text(value: Any) -> str:
    """A stored value as text: None, empty QVariants and lists of nothing read as ""."""
    if value is None or isinstance(value, (list, tuple)) and not value:
        return ""
    return str(value).strip()


@dataclass
class RemoteSettings:
    """Where tasks run: here, or on the RadAssist server at ``url`` with ``token``."""

    remote: bool = False
    url: str = ""
    token: str = ""

    @classmethod
    def load(cls, store: Store | None = None) -> "RemoteSettings":
        values = _store(store)
        return cls(remote=_text(values.value(SETTINGS_MODE)).lower() == "remote",
                   url=_text(values.value(SETTINGS_URL)), token=_text(values.value(SETTINGS_TOKEN)))

    def save(self, store: Store | None = None) -> None:
        values = _store(store)
        values.setValue(SETTINGS_MODE, "remote" if self.remote else "local")
        values.setValue(SETTINGS_URL, self.url.strip())
        values.setValue(SETTINGS_TOKEN, self.token.strip())

    def client(self):
        """The engine's client (InputError for an address without http(s):// or an empty token)."""
        from radassist.client import RadAssistClient

        if not self.token.strip():
            raise InputError(None, "enter the server's token (its administrator gives it out)")
        return RadAssistClient(self.url, token=self.token.strip())


def default_annotator() -> str:
    """The login name, as `radassist export` uses when no --annotator is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class ExportSettings:
    """Where a task's corrected labels go (one dataset folder per task) and who corrected them."""

    task: str
    folder: str = ""
    annotator: str = ""

    @classmethod
    def load(cls, task: str, store: Store | None = None) -> "ExportSettings":
        values = _store(store)
        return cls(task, _text(values.value(SETTINGS_EXPORT_FOLDER.format(task=task))),
                   _text(values.value(SETTINGS_ANNOTATOR)) or default_annotator())

    def save(self, store: Store | None = None) -> None:
        values = _store(store)
        values.setValue(SETTINGS_EXPORT_FOLDER.format(task=self.task), self.folder.strip())
        values.setValue(SETTINGS_ANNOTATOR, self.annotator.strip())

    def checked(self) -> tuple[Path, str]:
        """(dataset folder, annotator), or InputError saying what is missing, before anything is written."""
        if not self.folder.strip():
            raise InputError(None, f"choose a dataset folder for the {self.task} export")
        folder = Path(self.folder.strip()).expanduser()
        if folder.exists() and not folder.is_dir():
            raise InputError(folder, "is a file; the export needs a folder")
        if not self.annotator.strip():
            raise InputError(None, "enter the annotator's name (it goes into every case's provenance)")
        return folder, self.annotator.strip()
