"""The Qt widgets, layouts and helpers RadAssist's panels use, with the behaviour a test can observe: values,
enabled/visible state, signals emitted when a value changes, items of combo boxes and tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slicer_standin.qt_core import LOOP, BoundSignal, QObject, QTimer  # noqa: F401 -- QTimer re-exported for qt

# -- enums (values as in Qt 5/6) ------------------------------------------------------------------------------------


class _Enum(int):
    """A Qt enum value: an int that also combines with | (flags)."""

    def __or__(self, other):
        return _Enum(int(self) | int(other))

    __ror__ = __or__


class Qt:
    _qt_name = "Qt"
    NoTextInteraction, TextSelectableByMouse, TextSelectableByKeyboard = _Enum(0), _Enum(1), _Enum(2)
    LinksAccessibleByMouse, LinksAccessibleByKeyboard, TextEditable = _Enum(4), _Enum(8), _Enum(16)
    TextBrowserInteraction = _Enum(1 | 4 | 8)
    DisplayRole, DecorationRole, EditRole, ToolTipRole, StatusTipRole = (_Enum(v) for v in (0, 1, 2, 3, 4))
    UserRole = _Enum(256)
    ArrowCursor, WaitCursor, BusyCursor = _Enum(0), _Enum(3), _Enum(16)
    Unchecked, PartiallyChecked, Checked = _Enum(0), _Enum(1), _Enum(2)
    NoItemFlags, ItemIsSelectable, ItemIsEditable = _Enum(0), _Enum(1), _Enum(2)
    ItemIsDragEnabled, ItemIsDropEnabled, ItemIsUserCheckable, ItemIsEnabled = (_Enum(v) for v in (4, 8, 16, 32))
    AlignLeft, AlignRight, AlignHCenter, AlignJustify = (_Enum(v) for v in (1, 2, 4, 8))
    AlignTop, AlignBottom, AlignVCenter = _Enum(32), _Enum(64), _Enum(128)
    AlignCenter = _Enum(4 | 128)
    Horizontal, Vertical = _Enum(1), _Enum(2)
    PlainText, RichText, AutoText = _Enum(0), _Enum(1), _Enum(2)
    AscendingOrder, DescendingOrder = _Enum(0), _Enum(1)


class QAbstractItemView:
    _qt_name = "QAbstractItemView"
    NoSelection, SingleSelection, MultiSelection, ExtendedSelection, ContiguousSelection = (
        _Enum(v) for v in range(5))
    SelectItems, SelectRows, SelectColumns = _Enum(0), _Enum(1), _Enum(2)
    NoEditTriggers, CurrentChanged, DoubleClicked, SelectedClicked = _Enum(0), _Enum(1), _Enum(2), _Enum(4)
    EditKeyPressed, AnyKeyPressed, AllEditTriggers = _Enum(8), _Enum(16), _Enum(31)


class QHeaderView(QObject):
    _qt_name = "QHeaderView"
    Interactive, Stretch, Fixed, ResizeToContents = _Enum(0), _Enum(1), _Enum(2), _Enum(3)
    _properties = {"visible": True, "stretchLastSection": False}

    def setSectionResizeMode(self, *args) -> None:  # noqa: N802
        return None

    def resizeSection(self, index: int, size: int) -> None:  # noqa: N802
        return None

    def hide(self) -> None:
        self.visible = False

    def show(self) -> None:
        self.visible = True


# -- widgets -------------------------------------------------------------------------------------------------------


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


class QTableWidgetItem:
    """Not a QObject in Qt: plain getters and setters."""

    _qt_name = "QTableWidgetItem"

    def __init__(self, text: str = "") -> None:
        self._data: dict[int, Any] = {int(Qt.DisplayRole): str(text)}
        self._flags = Qt.ItemIsSelectable | Qt.ItemIsEditable | Qt.ItemIsEnabled
        self._table = None
        self._row = self._column = -1

    def text(self) -> str:
        return str(self._data.get(int(Qt.DisplayRole), ""))

    def setText(self, text: str) -> None:  # noqa: N802
        self._data[int(Qt.DisplayRole)] = str(text)
        if self._table is not None:
            self._table._emit("itemChanged", self)

    def toolTip(self) -> str:  # noqa: N802
        return str(self._data.get(int(Qt.ToolTipRole), ""))

    def setToolTip(self, text: str) -> None:  # noqa: N802
        self._data[int(Qt.ToolTipRole)] = str(text)

    def data(self, role=Qt.DisplayRole):
        return self._data.get(int(role))

    def setData(self, role, value) -> None:  # noqa: N802
        self._data[int(role)] = value

    def flags(self):
        return self._flags

    def setFlags(self, flags) -> None:  # noqa: N802
        self._flags = flags

    def checkState(self):  # noqa: N802
        return self._data.get(10, Qt.Unchecked)

    def setCheckState(self, state) -> None:  # noqa: N802
        self._data[10] = state

    def setTextAlignment(self, alignment) -> None:  # noqa: N802
        self._data[7] = alignment

    def setForeground(self, brush) -> None:  # noqa: N802
        self._data[9] = brush

    def setBackground(self, brush) -> None:  # noqa: N802
        self._data[8] = brush

    def row(self) -> int:
        return self._row

    def column(self) -> int:
        return self._column

    def tableWidget(self):  # noqa: N802
        return self._table


class QAbstractItemViewWidget(QFrame):
    _qt_name = "QAbstractItemView"
    _properties = {"selectionBehavior": QAbstractItemView.SelectItems,
                   "selectionMode": QAbstractItemView.SingleSelection,
                   "editTriggers": QAbstractItemView.DoubleClicked, "alternatingRowColors": False,
                   "sortingEnabled": False, "showGrid": True, "wordWrap": True}
    _signals = ("clicked(QModelIndex)", "doubleClicked(QModelIndex)", "activated(QModelIndex)",
                "pressed(QModelIndex)", "entered(QModelIndex)")

    def model(self):
        return None


class QTableWidget(QAbstractItemViewWidget):
    _qt_name = "QTableWidget"
    _properties = {"rowCount": 0, "columnCount": 0}
    _signals = ("itemSelectionChanged()", "cellClicked(int,int)", "cellDoubleClicked(int,int)",
                "cellChanged(int,int)", "currentCellChanged(int,int,int,int)", "itemChanged(QTableWidgetItem*)",
                "itemClicked(QTableWidgetItem*)", "itemDoubleClicked(QTableWidgetItem*)")

    def __init__(self, *args) -> None:
        parent = args[-1] if args and isinstance(args[-1], QObject) else None
        super().__init__(parent)
        self._items: dict[tuple[int, int], QTableWidgetItem] = {}
        self._widgets: dict[tuple[int, int], QWidget] = {}
        self._current = (-1, -1)
        self._selected_rows: set[int] = set()
        self._headers: list[str] = []
        self._horizontal, self._vertical = QHeaderView(), QHeaderView()
        numbers = [a for a in args if isinstance(a, int)]
        if len(numbers) == 2:
            self._values["rowCount"], self._values["columnCount"] = numbers

    def _set_rowCount(self, value) -> None:  # noqa: N802
        value = int(value)
        self._values["rowCount"] = value
        self._items = {key: item for key, item in self._items.items() if key[0] < value}
        self._selected_rows = {row for row in self._selected_rows if row < value}
        if self._current[0] >= value:
            self._current = (-1, -1)

    def _set_columnCount(self, value) -> None:  # noqa: N802
        self._values["columnCount"] = int(value)

    def setHorizontalHeaderLabels(self, labels) -> None:  # noqa: N802
        self._headers = [str(label) for label in labels]
        if len(self._headers) > self._values["columnCount"]:
            self._values["columnCount"] = len(self._headers)

    def horizontalHeaderItem(self, column: int):  # noqa: N802
        return QTableWidgetItem(self._headers[column]) if column < len(self._headers) else None

    def horizontalHeader(self) -> QHeaderView:  # noqa: N802
        return self._horizontal

    def verticalHeader(self) -> QHeaderView:  # noqa: N802
        return self._vertical

    def setItem(self, row: int, column: int, item: QTableWidgetItem) -> None:  # noqa: N802
        if not (0 <= row < self._values["rowCount"] and 0 <= column < self._values["columnCount"]):
            return  # Qt ignores items outside the table
        item._table, item._row, item._column = self, row, column
        self._items[(row, column)] = item

    def item(self, row: int, column: int):
        return self._items.get((row, column))

    def takeItem(self, row: int, column: int):  # noqa: N802
        return self._items.pop((row, column), None)

    def setCellWidget(self, row: int, column: int, widget) -> None:  # noqa: N802
        widget.setParent(self)
        self._widgets[(row, column)] = widget

    def cellWidget(self, row: int, column: int):  # noqa: N802
        return self._widgets.get((row, column))

    def clearContents(self) -> None:  # noqa: N802
        self._items.clear()
        self._widgets.clear()

    def clear(self) -> None:
        self.clearContents()
        self._headers = []

    def insertRow(self, row: int) -> None:  # noqa: N802
        shifted = {}
        for (r, c), item in self._items.items():
            key = (r + 1 if r >= row else r, c)
            item._row = key[0]
            shifted[key] = item
        self._items = shifted
        self._values["rowCount"] += 1

    def removeRow(self, row: int) -> None:  # noqa: N802
        self._items = {(r - (r > row), c): item for (r, c), item in self._items.items() if r != row}
        self._values["rowCount"] = max(0, self._values["rowCount"] - 1)

    def currentRow(self) -> int:  # noqa: N802
        return self._current[0]

    def currentColumn(self) -> int:  # noqa: N802
        return self._current[1]

    def setCurrentCell(self, row: int, column: int) -> None:  # noqa: N802
        previous = self._current
        self._current = (row, column)
        self._selected_rows = {row} if row >= 0 else set()
        self._emit("currentCellChanged", row, column, previous[0], previous[1])
        self._emit("itemSelectionChanged")

    def selectRow(self, row: int) -> None:  # noqa: N802
        if 0 <= row < self._values["rowCount"]:
            self.setCurrentCell(row, max(self._current[1], 0))

    def clearSelection(self) -> None:  # noqa: N802
        self._selected_rows = set()
        self._current = (-1, -1)
        self._emit("itemSelectionChanged")

    def selectedItems(self) -> list[QTableWidgetItem]:  # noqa: N802
        return [item for (row, _), item in sorted(self._items.items()) if row in self._selected_rows]

    def resizeColumnsToContents(self) -> None:  # noqa: N802
        return None

    def resizeRowsToContents(self) -> None:  # noqa: N802
        return None

    def scrollToItem(self, item, hint=0) -> None:  # noqa: N802
        return None

    def sortItems(self, column: int, order=Qt.AscendingOrder) -> None:  # noqa: N802
        return None

    def _user_clicks_cell(self, row: int, column: int = 0) -> None:
        """What a user's click on a cell does (tests)."""
        self.setCurrentCell(row, column)
        self._emit("cellClicked", row, column)
        item = self.item(row, column)
        if item is not None:
            self._emit("itemClicked", item)


# -- layouts -------------------------------------------------------------------------------------------------------


class QLayoutItem:
    def __init__(self, widget=None, layout=None) -> None:
        self._widget, self._layout = widget, layout

    def widget(self):
        return self._widget

    def layout(self):
        return self._layout


class QLayout(QObject):
    _qt_name = "QLayout"
    _properties = {"spacing": -1, "sizeConstraint": 0, "contentsMargins": None}

    def __init__(self, parent=None) -> None:
        super().__init__(None)
        self._items: list[QLayoutItem] = []
        self._owner = None
        if isinstance(parent, QWidget):
            parent.setLayout(self)

    def _widget(self):
        layout = self
        while layout is not None and layout._owner is None:
            layout = layout.parent()
        return layout._owner if layout is not None else None

    def _adopt(self, widget) -> None:
        """Qt reparents a widget added to a layout to the layout's widget (now, or when the layout is installed)."""
        owner = self._widget()
        widget.setParent(owner)

    def _adopt_layout(self, layout) -> None:
        layout.setParent(self)
        owner = self._widget()
        if owner is not None:
            for widget in layout.widgets():
                widget.setParent(owner)

    def addWidget(self, widget, *args) -> None:  # noqa: N802
        self._adopt(widget)
        self._items.append(QLayoutItem(widget=widget))

    def insertWidget(self, index: int, widget, *args) -> None:  # noqa: N802
        self._adopt(widget)
        self._items.insert(index, QLayoutItem(widget=widget))

    def addLayout(self, layout, *args) -> None:  # noqa: N802
        self._adopt_layout(layout)
        self._items.append(QLayoutItem(layout=layout))

    def addStretch(self, stretch: int = 0) -> None:  # noqa: N802
        self._items.append(QLayoutItem())

    def addSpacing(self, size: int) -> None:  # noqa: N802
        self._items.append(QLayoutItem())

    def addItem(self, item) -> None:  # noqa: N802
        self._items.append(item if isinstance(item, QLayoutItem) else QLayoutItem())

    def removeWidget(self, widget) -> None:  # noqa: N802
        self._items = [item for item in self._items if item.widget() is not widget]

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int):  # noqa: N802
        return self._items[index] if 0 <= index < len(self._items) else None

    def setContentsMargins(self, *margins) -> None:  # noqa: N802
        return None

    def setSpacing(self, value: int) -> None:  # noqa: N802
        self._values["spacing"] = int(value)

    def widgets(self) -> list:
        """Every widget in this layout and its sub-layouts, in order (tests)."""
        found = []
        for item in self._items:
            if item.widget() is not None:
                found.append(item.widget())
            elif item.layout() is not None:
                found.extend(item.layout().widgets())
        return found


class QBoxLayout(QLayout):
    _qt_name = "QBoxLayout"


class QVBoxLayout(QBoxLayout):
    _qt_name = "QVBoxLayout"


class QHBoxLayout(QBoxLayout):
    _qt_name = "QHBoxLayout"


class QGridLayout(QLayout):
    _qt_name = "QGridLayout"

    def addWidget(self, widget, *args) -> None:  # noqa: N802
        super().addWidget(widget)

    def addLayout(self, layout, *args) -> None:  # noqa: N802
        super().addLayout(layout)


class QFormLayout(QLayout):
    _qt_name = "QFormLayout"
    LabelRole, FieldRole, SpanningRole = _Enum(0), _Enum(1), _Enum(2)

    def addRow(self, *args) -> None:  # noqa: N802
        for part in args:
            if isinstance(part, str):
                label = QLabel(part)
                self.addWidget(label)
            elif isinstance(part, QLayout):
                self.addLayout(part)
            elif isinstance(part, QWidget):
                self.addWidget(part)
            else:
                raise TypeError(f"QFormLayout.addRow: unsupported argument {part!r}")

    def setWidget(self, row: int, role, widget) -> None:  # noqa: N802
        self.addWidget(widget)

    def setLayout(self, row: int, role, layout) -> None:  # noqa: N802
        self.addLayout(layout)

    def rowCount(self) -> int:  # noqa: N802
        return len(self._items)


# -- dialogs, settings, services -----------------------------------------------------------------------------------


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


class QModelIndex:
    """An index into a stand-in item model (row, column and the model that answers ``data``)."""

    _qt_name = "QModelIndex"

    def __init__(self, model=None, row: int = -1, column: int = -1) -> None:
        self._model, self._row, self._column = model, row, column

    def row(self) -> int:
        return self._row

    def column(self) -> int:
        return self._column

    def isValid(self) -> bool:  # noqa: N802
        return self._model is not None and self._row >= 0 and self._column >= 0

    def sibling(self, row: int, column: int) -> "QModelIndex":
        return QModelIndex(self._model, row, column)

    def data(self, role=Qt.DisplayRole):
        return self._model.data(self, role) if self._model is not None else None

    def model(self):
        return self._model
