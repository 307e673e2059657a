"""Item views: a table of items (QTableWidget and its items, the header views) and the model indexes that a
qMRMLTableView's clicks carry."""

from __future__ import annotations

from typing import Any

from slicer_standin.qt_core import QObject
from slicer_standin.qt_enums import QAbstractItemView, Qt, _Enum
from slicer_standin.qt_widgets import QFrame, QWidget

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
