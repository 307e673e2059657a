"""The Qt widgets RadAssist's panels use, with the behaviour a test can observe: values, enabled/visible state,
and the signals a change of value emits. Item views, layouts and dialogs/services have their own files."""

from __future__ import annotations

from slicer_standin.qt_core import QObject
from slicer_standin.qt_enums import Qt, _Enum

class QWidget(QObject):
    _qt_name = "QWidget"
    _properties = {"enabled": True, "visible": True, "toolTip": "", "styleSheet": "", "windowTitle": "",
                   "minimumWidth": 0, "minimumHeight": 0, "maximumWidth": 16777215, "maximumHeight": 16777215,
                   "geometry": None, "sizePolicy": None, "focusPolicy": 0, "statusTip": "", "whatsThis": "",
                   "accessibleName": "", "font": None, "layoutDirection": 0}
    _signals = ("customContextMenuRequested(QPoint)", "windowTitleChanged(QString)")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._layout = None
        self._explicitly_hidden = False

    def layout(self):
        return self._layout

    def setLayout(self, layout) -> None:  # noqa: N802
        self._layout = layout
        layout._owner = self
        for widget in layout.widgets():
            widget.setParent(self)

    def show(self) -> None:
        self.visible = True

    def hide(self) -> None:
        self.visible = False

    def setVisible(self, visible) -> None:  # noqa: N802
        self.visible = bool(visible)

    def setHidden(self, hidden) -> None:  # noqa: N802
        self.visible = not hidden

    def isVisibleTo(self, ancestor) -> bool:  # noqa: N802
        widget = self
        while widget is not None and widget is not ancestor:
            if not widget.visible:
                return False
            widget = widget.parent()
        return True

    def isEnabledTo(self, ancestor) -> bool:  # noqa: N802
        widget = self
        while widget is not None and widget is not ancestor:
            if not widget.enabled:
                return False
            widget = widget.parent()
        return True

    def parentWidget(self):  # noqa: N802
        return self.parent()

    def setFixedHeight(self, value: int) -> None:  # noqa: N802
        self.minimumHeight = self.maximumHeight = int(value)

    def setFixedWidth(self, value: int) -> None:  # noqa: N802
        self.minimumWidth = self.maximumWidth = int(value)

    def setSizePolicy(self, *policy) -> None:  # noqa: N802
        self._values["sizePolicy"] = policy

    def setContentsMargins(self, *margins) -> None:  # noqa: N802
        return None

    def update(self) -> None:
        return None

    def repaint(self) -> None:
        return None

    def adjustSize(self) -> None:  # noqa: N802
        return None

    def setFocus(self) -> None:  # noqa: N802
        return None

    def close(self) -> bool:
        self.visible = False
        return True

    def window(self):
        widget = self
        while widget.parent() is not None:
            widget = widget.parent()
        return widget


class QFrame(QWidget):
    _qt_name = "QFrame"
    _properties = {"frameShape": 0, "frameShadow": 0, "lineWidth": 1}
    NoFrame, Box, Panel, StyledPanel, HLine, VLine = (_Enum(v) for v in (0, 1, 2, 6, 4, 5))


class QLabel(QFrame):
    _qt_name = "QLabel"
    _properties = {"text": "", "wordWrap": False, "textFormat": Qt.AutoText, "openExternalLinks": False,
                   "textInteractionFlags": Qt.LinksAccessibleByMouse, "alignment": Qt.AlignLeft, "indent": -1,
                   "margin": 0, "scaledContents": False, "pixmap": None}
    _signals = ("linkActivated(QString)", "linkHovered(QString)")

    def __init__(self, text: str = "", parent=None) -> None:
        if isinstance(text, QObject):
            text, parent = "", text
        super().__init__(parent)
        self._values["text"] = str(text)

    def _set_text(self, value) -> None:
        self._values["text"] = str(value)

    def clear(self) -> None:
        self._values["text"] = ""


class QAbstractButton(QWidget):
    _qt_name = "QAbstractButton"
    _properties = {"text": "", "checkable": False, "checked": False, "autoExclusive": False, "icon": None,
                   "shortcut": None, "iconSize": None}
    _signals = ("clicked()", "clicked(bool)", "toggled(bool)", "pressed()", "released()")

    def __init__(self, text: str = "", parent=None) -> None:
        if isinstance(text, QObject):
            text, parent = "", text
        super().__init__(parent)
        self._values["text"] = str(text)

    def _set_text(self, value) -> None:
        self._values["text"] = str(value)

    def _set_checked(self, value) -> None:
        value = bool(value)
        if not self._values["checkable"] or value == self._values["checked"]:
            if not self._values["checkable"]:
                self._values["checked"] = False
            return
        self._values["checked"] = value
        if value and self._values["autoExclusive"] and self.parent() is not None:
            for sibling in self.parent().children():
                if sibling is not self and isinstance(sibling, QAbstractButton) and \
                        sibling._values["autoExclusive"] and sibling._values["checked"]:
                    sibling.checked = False
        self._emit("toggled", value)

    def click(self) -> None:
        """What a user's click does: nothing when disabled; toggles a checkable button, then clicked(checked)."""
        if not self.isEnabledTo(None):
            return
        if self._values["checkable"]:
            if not (self._values["autoExclusive"] and self._values["checked"]):
                self.checked = not self._values["checked"]
        self._emit("clicked", self._values["checked"])

    def animateClick(self, msec: int = 100) -> None:  # noqa: N802
        self.click()

    def toggle(self) -> None:
        self.checked = not self._values["checked"]


class QPushButton(QAbstractButton):
    _qt_name = "QPushButton"
    _properties = {"default": False, "autoDefault": False, "flat": False, "menu": None}


class QToolButton(QAbstractButton):
    _qt_name = "QToolButton"
    _properties = {"popupMode": 0, "toolButtonStyle": 0, "autoRaise": False}


class QCheckBox(QAbstractButton):
    _qt_name = "QCheckBox"
    _properties = {"tristate": False}
    _signals = ("stateChanged(int)",)

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(text, parent)
        self._values["checkable"] = True

    def _set_checked(self, value) -> None:
        before = self._values["checked"]
        QAbstractButton._set_checked(self, value)
        if before != self._values["checked"]:
            self._emit("stateChanged", int(Qt.Checked if self._values["checked"] else Qt.Unchecked))

    def checkState(self) -> int:  # noqa: N802
        return Qt.Checked if self._values["checked"] else Qt.Unchecked

    def setCheckState(self, state) -> None:  # noqa: N802
        self.checked = int(state) == int(Qt.Checked)


class QRadioButton(QAbstractButton):
    _qt_name = "QRadioButton"

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(text, parent)
        self._values["checkable"] = True
        self._values["autoExclusive"] = True


class QComboBox(QWidget):
    _qt_name = "QComboBox"
    _properties = {"currentIndex": -1, "currentText": "", "count": 0, "editable": False, "maxVisibleItems": 10,
                   "sizeAdjustPolicy": 0, "placeholderText": "", "currentData": None}
    _signals = ("currentIndexChanged(int)", "currentTextChanged(QString)", "activated(int)", "highlighted(int)",
                "editTextChanged(QString)")
    AdjustToContents, AdjustToContentsOnFirstShow, AdjustToMinimumContentsLengthWithIcon = (
        _Enum(v) for v in (0, 1, 2))

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._items: list[dict] = []

    def _sync(self) -> None:
        index = self._values["currentIndex"]
        self._values["count"] = len(self._items)
        self._values["currentText"] = self._items[index]["text"] if 0 <= index < len(self._items) else ""
        self._values["currentData"] = self._items[index]["data"].get(int(Qt.UserRole)) \
            if 0 <= index < len(self._items) else None

    def _set_currentIndex(self, value) -> None:  # noqa: N802
        value = int(value)
        if not -1 <= value < len(self._items):
            value = -1
        if value == self._values["currentIndex"]:
            return
        self._values["currentIndex"] = value
        self._sync()
        self._emit("currentIndexChanged", value)
        self._emit("currentTextChanged", self._values["currentText"])

    def _set_currentText(self, value) -> None:  # noqa: N802
        index = self.findText(str(value))
        if index >= 0:
            self.currentIndex = index

    def _set_count(self, value) -> None:
        raise AttributeError("QComboBox.count is read-only")

    def addItem(self, text, user_data=None) -> None:  # noqa: N802
        if not isinstance(text, str):  # addItem(icon, text, data)
            text, user_data = user_data, None
        data = {} if user_data is None else {int(Qt.UserRole): user_data}
        self._items.append({"text": str(text), "data": data})
        self._sync()
        if self._values["currentIndex"] == -1:
            self.currentIndex = 0

    def addItems(self, texts) -> None:  # noqa: N802
        for text in texts:
            self.addItem(text)

    def insertItem(self, index: int, text: str, user_data=None) -> None:  # noqa: N802
        self._items.insert(index, {"text": str(text), "data": {} if user_data is None else
                                   {int(Qt.UserRole): user_data}})
        if index <= self._values["currentIndex"]:
            self._values["currentIndex"] += 1
        self._sync()
        if self._values["currentIndex"] == -1:
            self.currentIndex = 0

    def removeItem(self, index: int) -> None:  # noqa: N802
        if 0 <= index < len(self._items):
            self._items.pop(index)
            current = self._values["currentIndex"]
            if index < current or current >= len(self._items):
                self._values["currentIndex"] = min(current - (index < current), len(self._items) - 1)
                self._sync()
                self._emit("currentIndexChanged", self._values["currentIndex"])
            self._sync()

    def clear(self) -> None:
        self._items.clear()
        changed = self._values["currentIndex"] != -1
        self._values["currentIndex"] = -1
        self._sync()
        if changed:
            self._emit("currentIndexChanged", -1)

    def itemText(self, index: int) -> str:  # noqa: N802
        return self._items[index]["text"] if 0 <= index < len(self._items) else ""

    def setItemText(self, index: int, text: str) -> None:  # noqa: N802
        self._items[index]["text"] = str(text)
        self._sync()

    def itemData(self, index: int, role=Qt.UserRole):  # noqa: N802
        return self._items[index]["data"].get(int(role)) if 0 <= index < len(self._items) else None

    def setItemData(self, index: int, value, role=Qt.UserRole) -> None:  # noqa: N802
        self._items[index]["data"][int(role)] = value
        self._sync()

    def findText(self, text: str) -> int:  # noqa: N802
        return next((i for i, item in enumerate(self._items) if item["text"] == text), -1)

    def findData(self, data, role=Qt.UserRole) -> int:  # noqa: N802
        return next((i for i, item in enumerate(self._items) if item["data"].get(int(role)) == data), -1)

    def _user_chooses(self, text: str) -> None:
        """What a user picking an item does (tests): the index changes and activated(int) follows."""
        index = self.findText(text)
        if index < 0:
            raise ValueError(f"{self.objectName or 'combo box'} has no item {text!r}: "
                             f"{[item['text'] for item in self._items]}")
        self.currentIndex = index
        self._emit("activated", index)


class QAbstractSpinBox(QWidget):
    _qt_name = "QAbstractSpinBox"
    _properties = {"readOnly": False, "suffix": "", "prefix": "", "keyboardTracking": True, "wrapping": False,
                   "specialValueText": "", "buttonSymbols": 0, "alignment": 0}
    _signals = ("editingFinished()",)


class QSpinBox(QAbstractSpinBox):
    _qt_name = "QSpinBox"
    _properties = {"value": 0, "minimum": 0, "maximum": 99, "singleStep": 1}
    _signals = ("valueChanged(int)", "textChanged(QString)")

    def _set_value(self, value) -> None:
        value = max(self._values["minimum"], min(self._values["maximum"], int(value)))
        if value != self._values["value"]:
            self._values["value"] = value
            self._emit("valueChanged", value)

    def _set_minimum(self, value) -> None:
        self._values["minimum"] = int(value)
        self._values["maximum"] = max(self._values["maximum"], int(value))
        self.value = self._values["value"]

    def _set_maximum(self, value) -> None:
        self._values["maximum"] = int(value)
        self._values["minimum"] = min(self._values["minimum"], int(value))
        self.value = self._values["value"]

    def setRange(self, low, high) -> None:  # noqa: N802
        self.minimum, self.maximum = low, high


class QDoubleSpinBox(QAbstractSpinBox):
    _qt_name = "QDoubleSpinBox"
    _properties = {"value": 0.0, "minimum": 0.0, "maximum": 99.99, "singleStep": 1.0, "decimals": 2}
    _signals = ("valueChanged(double)", "textChanged(QString)")

    def _set_value(self, value) -> None:
        value = round(max(self._values["minimum"], min(self._values["maximum"], float(value))),
                      self._values["decimals"])
        if value != self._values["value"]:
            self._values["value"] = value
            self._emit("valueChanged", value)

    def setRange(self, low, high) -> None:  # noqa: N802
        self._values["minimum"], self._values["maximum"] = float(low), float(high)
        self.value = self._values["value"]


class QLineEdit(QWidget):
    _qt_name = "QLineEdit"
    _properties = {"text": "", "placeholderText": "", "readOnly": False, "echoMode": 0, "maxLength": 32767,
                   "clearButtonEnabled": False, "frame": True, "inputMask": "", "alignment": 0}
    _signals = ("textChanged(QString)", "textEdited(QString)", "editingFinished()", "returnPressed()")
    Normal, NoEcho, Password, PasswordEchoOnEdit = (_Enum(v) for v in range(4))

    def __init__(self, text: str = "", parent=None) -> None:
        if isinstance(text, QObject):
            text, parent = "", text
        super().__init__(parent)
        self._values["text"] = str(text)

    def _set_text(self, value) -> None:
        value = str(value)
        if value != self._values["text"]:
            self._values["text"] = value
            self._emit("textChanged", value)

    def clear(self) -> None:
        self.text = ""

    def _user_types(self, text: str) -> None:
        """What a user typing does (tests): textEdited, textChanged, then editingFinished."""
        self.text = text
        self._emit("textEdited", text)
        self._emit("editingFinished")


class QPlainTextEdit(QFrame):
    _qt_name = "QPlainTextEdit"
    _properties = {"plainText": "", "readOnly": False, "placeholderText": ""}
    _signals = ("textChanged()",)

    def toPlainText(self) -> str:  # noqa: N802
        return self._values["plainText"]

    def setPlainText(self, text: str) -> None:  # noqa: N802
        self._values["plainText"] = str(text)
        self._emit("textChanged")

    def appendPlainText(self, text: str) -> None:  # noqa: N802
        self.setPlainText(self._values["plainText"] + ("\n" if self._values["plainText"] else "") + str(text))


class QProgressBar(QWidget):
    _qt_name = "QProgressBar"
    _properties = {"value": 0, "minimum": 0, "maximum": 100, "format": "%p%", "textVisible": True,
                   "orientation": Qt.Horizontal, "invertedAppearance": False, "alignment": 0}
    _signals = ("valueChanged(int)",)

    def setRange(self, low, high) -> None:  # noqa: N802
        self._values["minimum"], self._values["maximum"] = int(low), int(high)

    def _set_value(self, value) -> None:
        value = int(value)
        if value != self._values["value"]:
            self._values["value"] = value
            self._emit("valueChanged", value)

    def reset(self) -> None:
        self._values["value"] = self._values["minimum"] - 1

    def text(self) -> str:
        span = max(self._values["maximum"] - self._values["minimum"], 1)
        percent = int(round(100.0 * (self._values["value"] - self._values["minimum"]) / span))
        return self._values["format"].replace("%p", str(percent)).replace("%v", str(self._values["value"]))
