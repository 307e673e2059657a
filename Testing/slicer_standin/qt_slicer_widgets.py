"""CTK and Slicer (qMRML) widgets. The qMRML ones are strict: a property, slot or signal that the release's
headers do not declare (``qt_classes`` of the API data) is refused, as PythonQt would not expose it."""

from __future__ import annotations

from typing import Any

from slicer_standin.qt_core import QObject
from slicer_standin.qt_enums import Qt, _Enum
from slicer_standin.qt_item_views import QAbstractItemViewWidget, QModelIndex
from slicer_standin.qt_widgets import QAbstractButton, QWidget
from slicer_standin.strict import active
from slicer_standin.surface import Refused

# -- CTK -----------------------------------------------------------------------------------------------------------


class ctkCollapsibleButton(QAbstractButton):
    _qt_name = "ctkCollapsibleButton"
    _properties = {"collapsed": False, "collapsedHeight": 14, "contentsFrameShape": 0, "buttonTextAlignment": 0,
                   "indicatorAlignment": 0, "flat": False}
    _signals = ("contentsCollapsed(bool)",)

    def _set_collapsed(self, value) -> None:
        value = bool(value)
        if value != self._values["collapsed"]:
            self._values["collapsed"] = value
            self._emit("contentsCollapsed", value)


class ctkPathLineEdit(QWidget):
    _qt_name = "ctkPathLineEdit"
    _properties = {"currentPath": "", "filters": 0, "nameFilters": [], "label": "", "settingKey": "",
                   "showBrowseButton": True, "showHistoryButton": True, "sizeAdjustPolicy": 0}
    _signals = ("currentPathChanged(QString)", "validInputChanged(bool)")
    # ctkPathLineEdit::Filter mirrors QDir::Filter
    Dirs, Files, Drives, NoSymLinks, Readable, Writable, Executable = (
        _Enum(v) for v in (0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40))
    Modified, Hidden, System, AllDirs, CaseSensitive = (_Enum(v) for v in (0x80, 0x100, 0x200, 0x400, 0x800))
    NoDotAndDotDot, NoDot, NoDotDot = _Enum(0x1000), _Enum(0x2000), _Enum(0x4000)

    def _set_currentPath(self, value) -> None:  # noqa: N802
        value = str(value)
        if value != self._values["currentPath"]:
            self._values["currentPath"] = value
            self._emit("currentPathChanged", value)

    def addCurrentPathToHistory(self) -> None:  # noqa: N802
        return None


class ctkDirectoryButton(QWidget):
    _qt_name = "ctkDirectoryButton"
    _properties = {"directory": "", "caption": "", "text": "", "acceptMode": 0, "options": 0}
    _signals = ("directoryChanged(QString)", "directorySelected(QString)")

    def _set_directory(self, value) -> None:
        value = str(value)
        if value != self._values["directory"]:
            self._values["directory"] = value
            self._emit("directoryChanged", value)


class ctkSliderWidget(QWidget):
    _qt_name = "ctkSliderWidget"
    _properties = {"value": 0.0, "minimum": 0.0, "maximum": 99.0, "singleStep": 1.0, "decimals": 2,
                   "suffix": "", "prefix": "", "tracking": True}
    _signals = ("valueChanged(double)", "valueIsChanging(double)")

    def _set_value(self, value) -> None:
        value = max(self._values["minimum"], min(self._values["maximum"], float(value)))
        if value != self._values["value"]:
            self._values["value"] = value
            self._emit("valueChanged", value)


# -- qMRML (strict against the release's headers) ------------------------------------------------------------------


class StrictSlicerQt:
    """Refuses members that the release's qMRML header does not declare (the Qt base class's own are allowed)."""

    _slicer_qt_base: type = QWidget

    def _check(self, name: str) -> None:
        if name.startswith("_"):
            return
        qt_name = type(self)._qt_name
        surface = active()
        if name in surface.qt_members(qt_name):
            return
        base = type(self)._slicer_qt_base
        if hasattr(base, name) or name in base._all_properties() or name in base._all_signals().values():
            return
        raise Refused(f"{qt_name}.{name} does not exist in Slicer {surface.release} (not a property, slot or "
                      f"signal of {qt_name}, nor of {base._qt_name})")

    def __getattribute__(self, name: str):
        if not name.startswith("_") and name not in ("connect", "disconnect"):
            object.__getattribute__(self, "_check")(name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str):
        # reached when __getattribute__ raised AttributeError (Refused is one): say why, not just "no attribute"
        if not name.startswith("_"):
            self._check(name)
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            self._check(name)
        super().__setattr__(name, value)

    def connect(self, signature: str, slot) -> bool:
        self._check(signature.split("(")[0].strip())
        return super().connect(signature, slot)


class qMRMLWidget(StrictSlicerQt, QWidget):
    _qt_name = "qMRMLWidget"
    _signals = ("mrmlSceneChanged(vtkMRMLScene*)",)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._scene = None

    def setMRMLScene(self, scene) -> None:  # noqa: N802
        self._scene = scene
        self._emit("mrmlSceneChanged", scene)

    def mrmlScene(self):  # noqa: N802
        return self._scene


class qMRMLNodeComboBox(StrictSlicerQt, QWidget):
    """Lists the scene's nodes of ``nodeTypes``; keeps its current node as nodes come and go."""

    _qt_name = "qMRMLNodeComboBox"
    _properties = {"nodeTypes": [], "noneEnabled": False, "addEnabled": True, "removeEnabled": True,
                   "editEnabled": False, "renameEnabled": False, "showHidden": False, "showChildNodeTypes": True,
                   "hideChildNodeTypes": [], "baseName": "", "noneDisplay": "None", "selectNodeUponCreation": True,
                   "currentNodeID": "", "interactionNodeSingletonTag": "", "sizeAdjustPolicy": 0}
    _signals = ("currentNodeChanged(vtkMRMLNode*)", "currentNodeChanged(bool)", "currentNodeIDChanged(QString)",
                "nodeAdded(vtkMRMLNode*)", "nodeAddedByUser(vtkMRMLNode*)", "nodeActivated(vtkMRMLNode*)",
                "nodeAboutToBeRemoved(vtkMRMLNode*)", "currentNodeRenamed(QString)",
                "nodeAboutToBeEdited(vtkMRMLNode*)")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._scene = None
        self._current = None
        self._observers: list[int] = []

    def _matches(self, node) -> bool:
        if node is None:
            return False
        if node.GetHideFromEditors() and not self._values["showHidden"]:
            return False
        types = self._values["nodeTypes"] or []
        if self._values["showChildNodeTypes"]:
            return any(node.IsA(name) for name in types)
        return node.GetClassName() in types

    def _listed_nodes(self) -> list:
        if self._scene is None:
            return []
        return [node for node in self._scene._nodes if self._matches(node)]

    def setMRMLScene(self, scene) -> None:  # noqa: N802
        if self._scene is not None:
            for tag in self._observers:
                self._scene.RemoveObserver(tag)
        self._scene = scene
        self._observers = []
        if scene is not None:
            self._observers.append(scene.AddObserver(scene._events["NodeAddedEvent"], self._onSceneChanged))
            self._observers.append(scene.AddObserver(scene._events["NodeRemovedEvent"], self._onSceneChanged))
        self._onSceneChanged()

    def mrmlScene(self):  # noqa: N802
        return self._scene

    def _onSceneChanged(self, caller=None, event=None) -> None:
        nodes = self._listed_nodes()
        if self._current is not None and self._current not in nodes:
            self.setCurrentNode(None)
        if self._current is None and not self._values["noneEnabled"] and nodes:
            self.setCurrentNode(nodes[0])

    def currentNode(self):  # noqa: N802
        return self._current

    def setCurrentNode(self, node) -> None:  # noqa: N802
        if node is not None and (self._scene is None or node not in self._listed_nodes()):
            return  # Qt: a node that is not listed cannot become current
        if node is self._current:
            return
        self._current = node
        self._values["currentNodeID"] = node.GetID() if node is not None else ""
        self._emit("currentNodeChanged", node)
        self._emit("currentNodeIDChanged", self._values["currentNodeID"])

    def setCurrentNodeID(self, node_id: str) -> None:  # noqa: N802
        self.setCurrentNode(self._scene.GetNodeByID(node_id) if self._scene is not None else None)

    def nodeCount(self) -> int:  # noqa: N802
        return len(self._listed_nodes())

    def nodeFromIndex(self, index: int):  # noqa: N802
        nodes = self._listed_nodes()
        return nodes[index] if 0 <= index < len(nodes) else None

    def addAttribute(self, node_type: str, name: str, value=None) -> None:  # noqa: N802
        return None

    def setNodeTypeLabel(self, label: str, node_type: str) -> None:  # noqa: N802
        return None

    def addNode(self, node_type: str = ""):  # noqa: N802
        node = self._scene.AddNewNodeByClass(node_type or self._values["nodeTypes"][0],
                                             self._values["baseName"] or "")
        self.setCurrentNode(node)
        self._emit("nodeAddedByUser", node)
        return node


class qMRMLTableModel:
    """What a qMRMLTableView's model answers: the table node's cell texts by (row, column)."""

    def __init__(self, view: "qMRMLTableView") -> None:
        self._view = view

    def index(self, row: int, column: int) -> QModelIndex:
        return QModelIndex(self, row, column)

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        node = self._view._table
        if node is None or int(role) != int(Qt.DisplayRole):
            return None
        return node.GetCellText(index.row(), index.column())

    def rowCount(self) -> int:  # noqa: N802
        node = self._view._table
        return node.GetNumberOfRows() if node is not None else 0


class qMRMLTableView(StrictSlicerQt, QAbstractItemViewWidget):
    _qt_name = "qMRMLTableView"
    _slicer_qt_base = QAbstractItemViewWidget

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._table = None
        self._scene = None
        self._model = qMRMLTableModel(self)

    def setMRMLTableNode(self, node) -> None:  # noqa: N802
        self._table = node

    def mrmlTableNode(self):  # noqa: N802
        return self._table

    def setMRMLScene(self, scene) -> None:  # noqa: N802
        self._scene = scene

    def mrmlScene(self):  # noqa: N802
        return self._scene

    def model(self):
        return self._model

    def _user_clicks_cell(self, row: int, column: int = 0) -> None:
        """What a user's click on a cell does (tests): clicked(QModelIndex)."""
        self._emit("clicked", self._model.index(row, column))


__all__ = ["QObject"]
