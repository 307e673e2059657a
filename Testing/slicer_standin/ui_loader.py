"""``slicer.util.loadUI`` for the stand-in: a Qt Designer .ui file becomes a tree of stand-in widgets, with its
properties (dynamic ones such as ``SlicerParameterName`` included), layouts and signal/slot connections.

A widget class or property the stand-in does not know is an error naming the file, as a typo there would leave a
real panel broken."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from slicer_standin import qt_slicer_widgets as sw
from slicer_standin import qt_module as qw

WIDGET_CLASSES: dict[str, type] = {cls._qt_name: cls for cls in (
    qw.QWidget, qw.QFrame, qw.QLabel, qw.QPushButton, qw.QToolButton, qw.QCheckBox, qw.QRadioButton, qw.QComboBox,
    qw.QSpinBox, qw.QDoubleSpinBox, qw.QLineEdit, qw.QPlainTextEdit, qw.QProgressBar, qw.QTableWidget,
    sw.ctkCollapsibleButton, sw.ctkPathLineEdit, sw.ctkDirectoryButton, sw.ctkSliderWidget, sw.qMRMLWidget,
    sw.qMRMLNodeComboBox, sw.qMRMLTableView)}
LAYOUT_CLASSES: dict[str, type] = {cls._qt_name: cls for cls in (qw.QVBoxLayout, qw.QHBoxLayout, qw.QFormLayout,
                                                                 qw.QGridLayout)}
ENUM_SCOPES = {"Qt": qw.Qt, "QAbstractItemView": qw.QAbstractItemView, "QFrame": qw.QFrame,
               "QComboBox": qw.QComboBox, "QLineEdit": qw.QLineEdit, "ctkPathLineEdit": sw.ctkPathLineEdit,
               "QMessageBox": qw.QMessageBox, "QHeaderView": qw.QHeaderView}
IGNORED_PROPERTIES = {"geometry", "sizeHint", "orientation", "sizeType"}  # layout-only facts with no behaviour


class UiError(ValueError):
    pass


def _enum(text: str, path: Path) -> Any:
    value = 0
    for part in text.split("|"):
        scope, _, name = part.strip().rpartition("::")
        holder = ENUM_SCOPES.get(scope)
        if holder is None or not hasattr(holder, name):
            raise UiError(f"{path}: unknown enum value {part.strip()!r}")
        value |= int(getattr(holder, name))
    return qw._Enum(value)


def _value(prop: ET.Element, path: Path) -> Any:
    node = next(iter(prop))
    tag = node.tag
    if tag in ("string", "cstring"):
        return node.text or ""
    if tag == "bool":
        return (node.text or "").strip() == "true"
    if tag == "number":
        return int(node.text)
    if tag == "double":
        return float(node.text)
    if tag in ("enum", "set"):
        return _enum(node.text or "", path)
    if tag == "stringlist":
        return [child.text or "" for child in node.findall("string")]
    if tag in ("rect", "size", "sizepolicy", "font", "pixmap", "iconset", "color", "palette"):
        return None
    raise UiError(f"{path}: property {prop.get('name')!r} has a value of unknown type <{tag}>")


def _apply_properties(widget, element: ET.Element, path: Path) -> None:
    for prop in element.findall("property"):
        name = prop.get("name")
        if prop.get("stdset") == "0":
            widget.setProperty(name, _value(prop, path))
            continue
        if name in IGNORED_PROPERTIES:
            continue
        value = _value(prop, path)
        try:
            setattr(widget, name, value)
        except AttributeError as error:
            raise UiError(f"{path}: {element.get('class')} {element.get('name')!r}: {error}") from None


def _build_widget(element: ET.Element, parent, path: Path, named: dict[str, Any]):
    class_name = element.get("class")
    cls = WIDGET_CLASSES.get(class_name)
    if cls is None:
        raise UiError(f"{path}: widget class {class_name!r} ({element.get('name')}) is not known to the stand-in")
    widget = cls(parent) if parent is not None else cls()
    widget.objectName = element.get("name") or ""
    named[widget.objectName] = widget
    if isinstance(widget, qw.QComboBox):  # <item> children are the combo box's items, added before its properties
        for item in element.findall("item"):
            text = next((prop.findtext("string") for prop in item.findall("property") if prop.get("name") == "text"),
                        "")
            widget.addItem(text or "")
    _apply_properties(widget, element, path)
    layout_element = element.find("layout")
    if layout_element is not None:
        widget.setLayout(_build_layout(layout_element, path, named))
    for child in element.findall("widget"):  # widgets without a layout (rare)
        _build_widget(child, widget, path, named)
    return widget


def _build_layout(element: ET.Element, path: Path, named: dict[str, Any]):
    cls = LAYOUT_CLASSES.get(element.get("class"))
    if cls is None:
        raise UiError(f"{path}: layout class {element.get('class')!r} is not known to the stand-in")
    layout = cls()
    layout.objectName = element.get("name") or ""
    items = element.findall("item")
    if cls is qw.QFormLayout:  # rows in order, the label column first
        items.sort(key=lambda item: (int(item.get("row", 0)), int(item.get("column", 0))))
    for item in items:
        child = next(iter(item), None)
        if child is None:
            continue
        if child.tag == "widget":
            layout.addWidget(_build_widget(child, None, path, named))
        elif child.tag == "layout":
            layout.addLayout(_build_layout(child, path, named))
        elif child.tag == "spacer":
            layout.addStretch()
    return layout


def load_ui(path: str | Path):
    """The top widget of a .ui file, with every named child reachable through ``findChildren``."""
    path = Path(path)
    if not path.is_file():
        raise UiError(f"{path}: no such .ui file")
    root = ET.parse(path).getroot()
    top = root.find("widget")
    named: dict[str, Any] = {}
    widget = _build_widget(top, None, path, named)
    for connection in root.iter("connection"):
        sender = named.get(connection.findtext("sender"))
        receiver = named.get(connection.findtext("receiver"))
        if sender is None or receiver is None:
            raise UiError(f"{path}: a connection names a widget that does not exist")
        slot_name = connection.findtext("slot").split("(")[0]
        sender.connect(connection.findtext("signal"),
                       lambda *args, r=receiver, s=slot_name: getattr(r, s)(*args))
    return widget
