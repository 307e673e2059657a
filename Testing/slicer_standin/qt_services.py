"""Dialogs (answered by the test beforehand), settings, URLs, folders, cursors and the application's statics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slicer_standin.qt_core import LOOP, QObject
from slicer_standin.qt_enums import Qt, _Enum
from slicer_standin.qt_widgets import QPushButton, QWidget

class DialogAnswers:
    """Answers the test prepared for the dialogs the code under test will open, in order. An unanswered dialog
    fails the test with the dialog's text: a logic must never pop up a dialog the test did not expect."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, Any]] = []
        self.shown: list[dict[str, Any]] = []

    def expect(self, kind: str, answer: Any) -> None:
        self.queue.append((kind, answer))

    def take(self, kind: str, description: dict[str, Any]) -> Any:
        self.shown.append({"kind": kind, **description})
        if not self.queue:
            raise AssertionError(f"unexpected {kind} dialog: {description}")
        expected, answer = self.queue.pop(0)
        if expected != kind:
            raise AssertionError(f"expected a {expected} dialog, got a {kind} dialog: {description}")
        if isinstance(answer, BaseException):
            raise answer
        return answer(description) if callable(answer) else answer


DIALOGS = DialogAnswers()


class QDialog(QWidget):
    _qt_name = "QDialog"
    _properties = {"modal": False, "sizeGripEnabled": False}
    _signals = ("accepted()", "rejected()", "finished(int)")
    Rejected, Accepted = _Enum(0), _Enum(1)


class QMessageBox(QDialog):
    _qt_name = "QMessageBox"
    _properties = {"text": "", "informativeText": "", "detailedText": "", "icon": 0, "standardButtons": 0,
                   "textFormat": Qt.AutoText}
    NoIcon, Information, Warning, Critical, Question = (_Enum(v) for v in range(5))
    NoButton, Ok, Save, SaveAll, Open = _Enum(0), _Enum(0x400), _Enum(0x800), _Enum(0x1000), _Enum(0x2000)
    Yes, YesToAll, No, NoToAll, Abort = _Enum(0x4000), _Enum(0x8000), _Enum(0x10000), _Enum(0x20000), _Enum(0x40000)
    Retry, Ignore, Close, Cancel, Discard = (_Enum(v) for v in (0x80000, 0x100000, 0x200000, 0x400000, 0x800000))
    Help, Apply, Reset, RestoreDefaults = _Enum(0x1000000), _Enum(0x2000000), _Enum(0x4000000), _Enum(0x8000000)
    AcceptRole, RejectRole, DestructiveRole, ActionRole = _Enum(0), _Enum(1), _Enum(2), _Enum(3)

    def __init__(self, *args) -> None:
        parent = args[0] if args and isinstance(args[0], QObject) else None
        super().__init__(parent)
        self._check_box = None
        self._default = None
        self._clicked = None
        self._buttons: list[tuple[QPushButton, int]] = []

    def setCheckBox(self, box) -> None:  # noqa: N802
        self._check_box = box

    def checkBox(self):  # noqa: N802
        return self._check_box

    def setDefaultButton(self, button) -> None:  # noqa: N802
        self._default = button

    def addButton(self, text_or_button, role=None):  # noqa: N802
        button = QPushButton(text_or_button) if isinstance(text_or_button, str) else None
        self._buttons.append((button, int(role) if role is not None else 0))
        return button

    def clickedButton(self):  # noqa: N802
        return self._clicked

    def exec_(self) -> int:
        answer = DIALOGS.take("message box", {"title": self.windowTitle, "text": self.text,
                                               "informative": self.informativeText,
                                               "buttons": int(self.standardButtons), "check_box": self._check_box})
        if isinstance(answer, tuple):  # (button, tick the check box)
            answer, tick = answer
            if self._check_box is not None:
                self._check_box.checked = bool(tick)
        if isinstance(answer, str):
            self._clicked = next((b for b, _ in self._buttons if b is not None and b.text == answer), None)
            return 0
        return int(answer)

    exec = exec_

    @staticmethod
    def _static(kind: str, parent, title, text, buttons=None, default=None) -> int:
        answer = DIALOGS.take("message box", {"title": title, "text": text, "kind": kind})
        return int(answer)

    @staticmethod
    def question(parent, title, text, buttons=None, default=None) -> int:
        return QMessageBox._static("question", parent, title, text, buttons, default)

    @staticmethod
    def information(parent, title, text, buttons=None, default=None) -> int:
        return QMessageBox._static("information", parent, title, text, buttons, default)

    @staticmethod
    def warning(parent, title, text, buttons=None, default=None) -> int:
        return QMessageBox._static("warning", parent, title, text, buttons, default)

    @staticmethod
    def critical(parent, title, text, buttons=None, default=None) -> int:
        return QMessageBox._static("critical", parent, title, text, buttons, default)


class QFileDialog(QDialog):
    """PythonQt returns a plain string from the static getters ("" when cancelled)."""

    _qt_name = "QFileDialog"

    @staticmethod
    def getOpenFileName(parent=None, caption="", directory="", filter="", *args) -> str:  # noqa: N802, A002
        return str(DIALOGS.take("open file", {"caption": caption, "directory": directory, "filter": filter}))

    @staticmethod
    def getOpenFileNames(parent=None, caption="", directory="", filter="", *args) -> list:  # noqa: N802, A002
        return list(DIALOGS.take("open files", {"caption": caption, "directory": directory, "filter": filter}))

    @staticmethod
    def getSaveFileName(parent=None, caption="", directory="", filter="", *args) -> str:  # noqa: N802, A002
        return str(DIALOGS.take("save file", {"caption": caption, "directory": directory, "filter": filter}))

    @staticmethod
    def getExistingDirectory(parent=None, caption="", directory="", *args) -> str:  # noqa: N802
        return str(DIALOGS.take("directory", {"caption": caption, "directory": directory}))


class SettingsStore:
    """Slicer's settings (an INI file in real Slicer): one dictionary per stand-in session."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}


SETTINGS = SettingsStore()


class QSettings(QObject):
    _qt_name = "QSettings"
    IniFormat, NativeFormat = _Enum(1), _Enum(0)

    def __init__(self, *args) -> None:
        super().__init__(None)
        self._group: list[str] = []

    def _key(self, key: str) -> str:
        return "/".join(self._group + [str(key)])

    def value(self, key: str, default=None):
        return SETTINGS.values.get(self._key(key), default)

    def setValue(self, key: str, value) -> None:  # noqa: N802
        SETTINGS.values[self._key(key)] = value

    def remove(self, key: str) -> None:
        prefix = self._key(key)
        for name in [k for k in SETTINGS.values if k == prefix or k.startswith(prefix + "/")]:
            del SETTINGS.values[name]

    def contains(self, key: str) -> bool:
        return self._key(key) in SETTINGS.values

    def allKeys(self) -> list[str]:  # noqa: N802
        prefix = "/".join(self._group)
        return [k[len(prefix) + 1:] if prefix else k for k in SETTINGS.values if not prefix or
                k.startswith(prefix + "/")]

    def childKeys(self) -> list[str]:  # noqa: N802
        return [k for k in self.allKeys() if "/" not in k]

    def beginGroup(self, name: str) -> None:  # noqa: N802
        self._group.append(str(name))

    def endGroup(self) -> None:  # noqa: N802
        if self._group:
            self._group.pop()

    def sync(self) -> None:
        return None


class QUrl:
    _qt_name = "QUrl"

    def __init__(self, text: str = "") -> None:
        self._text = str(text)

    @staticmethod
    def fromLocalFile(path: str) -> "QUrl":  # noqa: N802
        return QUrl(Path(path).resolve().as_uri())

    def toLocalFile(self) -> str:  # noqa: N802
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(self._text).path) if self._text.startswith("file:") else ""

    def toString(self) -> str:  # noqa: N802
        return self._text

    def isLocalFile(self) -> bool:  # noqa: N802
        return self._text.startswith("file:")


class QDesktopServices:
    _qt_name = "QDesktopServices"
    opened: list[str] = []

    @staticmethod
    def openUrl(url: QUrl) -> bool:  # noqa: N802
        QDesktopServices.opened.append(url.toString())
        return True


class QDir:
    _qt_name = "QDir"

    def __init__(self, path: str = ".") -> None:
        self._path = str(path)

    @staticmethod
    def homePath() -> str:  # noqa: N802
        return str(Path.home())

    @staticmethod
    def tempPath() -> str:  # noqa: N802
        import tempfile

        return tempfile.gettempdir()

    def absolutePath(self) -> str:  # noqa: N802
        return str(Path(self._path).resolve())

    def exists(self) -> bool:
        return Path(self._path).is_dir()


class QCursor:
    _qt_name = "QCursor"

    def __init__(self, shape=Qt.ArrowCursor) -> None:
        self.shape = shape


class QApplication(QObject):
    _qt_name = "QApplication"
    override_cursors: list = []

    @staticmethod
    def processEvents(*args) -> None:  # noqa: N802
        LOOP.process()

    @staticmethod
    def setOverrideCursor(cursor) -> None:  # noqa: N802
        QApplication.override_cursors.append(cursor)

    @staticmethod
    def restoreOverrideCursor() -> None:  # noqa: N802
        if QApplication.override_cursors:
            QApplication.override_cursors.pop()

    @staticmethod
    def overrideCursor():  # noqa: N802
        return QApplication.override_cursors[-1] if QApplication.override_cursors else None


class QColor:
    _qt_name = "QColor"

    def __init__(self, *rgb) -> None:
        self._rgb = tuple(rgb[:3]) if rgb else (0, 0, 0)

    def red(self) -> int:
        return int(self._rgb[0])

    def green(self) -> int:
        return int(self._rgb[1])

    def blue(self) -> int:
        return int(self._rgb[2])


class QSize:
    _qt_name = "QSize"

    def __init__(self, width: int = -1, height: int = -1) -> None:
        self._size = (width, height)

    def width(self) -> int:
        return self._size[0]

    def height(self) -> int:
        return self._size[1]


class QIcon:
    _qt_name = "QIcon"

    def __init__(self, path: str = "") -> None:
        self._path = path
