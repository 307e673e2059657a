"""Layouts: where a widget goes and which widget becomes its parent (as Qt reparents what a layout holds)."""

from __future__ import annotations

from slicer_standin.qt_core import QObject
from slicer_standin.qt_enums import _Enum
from slicer_standin.qt_widgets import QLabel, QWidget

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
