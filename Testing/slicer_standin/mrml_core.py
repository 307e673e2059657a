"""MRML scene and the base node classes, with the behaviour RadAssist relies on: IDs, names, attributes, node
references, display and storage nodes, modify batching, and the scene events the panels observe."""

from __future__ import annotations

import itertools

import vtk

from slicer_standin.strict import StrictObject, active, strict_vtk_class

# Slicer class name -> stand-in class (filled by each mrml_* module; see :func:`node_class`).
NODE_CLASSES: dict[str, type] = {}


def register(cls: type) -> type:
    NODE_CLASSES[cls._vtk_name] = cls
    return cls


def node_class(name: str) -> type:
    """The stand-in class for a Slicer class name: its own, or one made from its nearest implemented ancestor."""
    if name in NODE_CLASSES:
        return NODE_CLASSES[name]
    surface = active()
    if not surface.has_class(name):
        from slicer_standin.surface import Refused

        raise Refused(f"{name} does not exist in Slicer {surface.release}")
    for ancestor in surface.chain(name)[1:]:
        if ancestor in NODE_CLASSES:
            NODE_CLASSES[name] = strict_vtk_class(name, NODE_CLASSES[ancestor])
            return NODE_CLASSES[name]
    raise RuntimeError(f"the stand-in has no ancestor class for {name}")


@register
class vtkMRMLNode(StrictObject, vtk.vtkObject):
    _vtk_name = "vtkMRMLNode"
    _tag = "Node"

    def __init__(self) -> None:
        super().__init__()
        self._id: str | None = None
        self._name: str | None = None
        self._description: str | None = None
        self._scene: vtkMRMLScene | None = None
        self._attributes: dict[str, str] = {}
        self._references: dict[str, list[str]] = {}
        self._hide_from_editors = 0
        self._selectable = 1
        self._singleton_tag: str | None = None
        self._save_with_scene = 1
        self._modify_depth = 0
        self._modified_pending = False

    # identity
    def GetID(self) -> str | None:
        return self._id

    def GetName(self) -> str | None:
        return self._name

    def SetName(self, name: str | None) -> None:
        if name != self._name:
            self._name = None if name is None else str(name)
            self.Modified()

    def GetDescription(self) -> str | None:
        return self._description

    def SetDescription(self, text: str | None) -> None:
        self._description = text
        self.Modified()

    def GetScene(self):
        return self._scene

    def GetNodeTagName(self) -> str:
        return self._tag

    def CreateNodeInstance(self):
        return type(self)()

    def GetHideFromEditors(self) -> int:
        return self._hide_from_editors

    def SetHideFromEditors(self, value: int) -> None:
        self._hide_from_editors = int(value)

    def HideFromEditorsOn(self) -> None:
        self.SetHideFromEditors(1)

    def GetSingletonTag(self) -> str | None:
        return self._singleton_tag

    def SetSingletonTag(self, tag: str | None) -> None:
        self._singleton_tag = tag

    def GetSaveWithScene(self) -> int:
        return self._save_with_scene

    def SetSaveWithScene(self, value: int) -> None:
        self._save_with_scene = int(value)

    # attributes
    def SetAttribute(self, name: str, value: str | None) -> None:
        if value is None:
            self._attributes.pop(name, None)
        else:
            self._attributes[str(name)] = str(value)
        self.Modified()

    def GetAttribute(self, name: str) -> str | None:
        return self._attributes.get(name)

    def RemoveAttribute(self, name: str) -> None:
        self._attributes.pop(name, None)
        self.Modified()

    def GetAttributeNames(self) -> tuple[str, ...]:
        return tuple(self._attributes)

    # modify batching: one ModifiedEvent at EndModify
    def StartModify(self) -> int:
        self._modify_depth += 1
        return int(self._modify_depth > 1)

    def EndModify(self, previous: int) -> int:
        self._modify_depth = max(0, self._modify_depth - 1)
        if self._modify_depth == 0 and self._modified_pending:
            self._modified_pending = False
            vtk.vtkObject.Modified(self)
        return int(self._modify_depth > 0)

    def Modified(self) -> None:
        if self._modify_depth:
            self._modified_pending = True
            return
        vtk.vtkObject.Modified(self)

    # node references
    def SetNodeReferenceID(self, role: str, node_id: str | None) -> None:
        self._references[role] = [node_id] if node_id else []
        self.Modified()

    def SetAndObserveNodeReferenceID(self, role: str, node_id: str | None, events=None) -> None:
        self.SetNodeReferenceID(role, node_id)

    def AddNodeReferenceID(self, role: str, node_id: str) -> None:
        self._references.setdefault(role, []).append(node_id)
        self.Modified()

    def AddAndObserveNodeReferenceID(self, role: str, node_id: str, events=None) -> None:
        self.AddNodeReferenceID(role, node_id)

    def SetNthNodeReferenceID(self, role: str, n: int, node_id: str | None) -> None:
        ids = self._references.setdefault(role, [])
        if node_id is None:
            if n < len(ids):
                ids.pop(n)
        elif n < len(ids):
            ids[n] = node_id
        else:
            ids.append(node_id)
        self.Modified()

    def RemoveNodeReferenceIDs(self, role: str) -> None:
        self._references.pop(role, None)
        self.Modified()

    def GetNodeReferenceID(self, role: str) -> str | None:
        ids = self._references.get(role) or []
        return ids[0] if ids else None

    def GetNthNodeReferenceID(self, role: str, n: int) -> str | None:
        ids = self._references.get(role) or []
        return ids[n] if 0 <= n < len(ids) else None

    def GetNumberOfNodeReferences(self, role: str) -> int:
        return len(self._references.get(role) or [])

    def GetNodeReference(self, role: str):
        node_id = self.GetNodeReferenceID(role)
        return self._scene.GetNodeByID(node_id) if (node_id and self._scene is not None) else None

    def GetNthNodeReference(self, role: str, n: int):
        node_id = self.GetNthNodeReferenceID(role, n)
        return self._scene.GetNodeByID(node_id) if (node_id and self._scene is not None) else None

    def HasNodeReferenceID(self, role: str, node_id: str) -> bool:
        return node_id in (self._references.get(role) or [])

    def Copy(self, other) -> None:
        self._attributes = dict(other._attributes)
        self._name = other._name
        self._description = other._description


@register
class vtkMRMLStorageNode(vtkMRMLNode):
    _vtk_name = "vtkMRMLStorageNode"

    def __init__(self) -> None:
        super().__init__()
        self._file_name: str | None = None

    def GetFileName(self) -> str | None:
        return self._file_name

    def SetFileName(self, name: str | None) -> None:
        self._file_name = name


@register
class vtkMRMLStorableNode(vtkMRMLNode):
    _vtk_name = "vtkMRMLStorableNode"

    def GetStorageNode(self):
        return self.GetNodeReference("storage")

    def GetStorageNodeID(self) -> str | None:
        return self.GetNodeReferenceID("storage")

    def SetAndObserveStorageNodeID(self, node_id: str | None) -> None:
        self.SetNodeReferenceID("storage", node_id)


@register
class vtkMRMLDisplayNode(vtkMRMLNode):
    _vtk_name = "vtkMRMLDisplayNode"

    def __init__(self) -> None:
        super().__init__()
        self._visibility = 1
        self._visibility2d = 1
        self._visibility3d = 1
        self._opacity = 1.0
        self._color = (0.5, 0.5, 0.5)

    def GetVisibility(self) -> int:
        return self._visibility

    def SetVisibility(self, value) -> None:
        self._visibility = int(bool(value))
        self.Modified()

    def VisibilityOn(self) -> None:
        self.SetVisibility(1)

    def VisibilityOff(self) -> None:
        self.SetVisibility(0)

    def GetVisibility2D(self) -> int:
        return self._visibility2d

    def SetVisibility2D(self, value) -> None:
        self._visibility2d = int(bool(value))
        self.Modified()

    def GetVisibility3D(self) -> int:
        return self._visibility3d

    def SetVisibility3D(self, value) -> None:
        self._visibility3d = int(bool(value))
        self.Modified()

    def GetOpacity(self) -> float:
        return self._opacity

    def SetOpacity(self, value: float) -> None:
        self._opacity = float(value)
        self.Modified()

    def GetColor(self) -> tuple[float, float, float]:
        return self._color

    def SetColor(self, *rgb) -> None:
        self._color = tuple(float(v) for v in (rgb[0] if len(rgb) == 1 else rgb))
        self.Modified()

    def SetAndObserveColorNodeID(self, node_id: str | None) -> None:
        self.SetNodeReferenceID("colorNodeID", node_id)

    def GetColorNodeID(self) -> str | None:
        return self.GetNodeReferenceID("colorNodeID")

    def GetDisplayableNode(self):
        if self._scene is None:
            return None
        for node in self._scene._nodes:
            if isinstance(node, vtkMRMLDisplayableNode) and self._id in (node._references.get("display") or []):
                return node
        return None


@register
class vtkMRMLDisplayableNode(vtkMRMLStorableNode):
    _vtk_name = "vtkMRMLDisplayableNode"
    _display_class = "vtkMRMLDisplayNode"

    def GetDisplayNode(self):
        return self.GetNodeReference("display")

    def GetNumberOfDisplayNodes(self) -> int:
        return self.GetNumberOfNodeReferences("display")

    def GetNthDisplayNode(self, n: int):
        return self.GetNthNodeReference("display", n)

    def SetAndObserveDisplayNodeID(self, node_id: str | None) -> None:
        self.SetNodeReferenceID("display", node_id)

    def AddAndObserveDisplayNodeID(self, node_id: str) -> None:
        self.AddNodeReferenceID("display", node_id)

    def CreateDefaultDisplayNodes(self) -> None:
        if self.GetDisplayNode() is not None or self._scene is None:
            return
        display = self._scene.AddNewNodeByClass(self._display_class)
        self.SetAndObserveDisplayNodeID(display.GetID())

    def GetParentTransformNode(self):
        return self.GetNodeReference("transform")

    def GetTransformNodeID(self) -> str | None:
        return self.GetNodeReferenceID("transform")

    def SetAndObserveTransformNodeID(self, node_id: str | None) -> None:
        self.SetNodeReferenceID("transform", node_id)

    def SetDisplayVisibility(self, visible) -> None:
        display = self.GetDisplayNode()
        if display is not None:
            display.SetVisibility(visible)

    def GetDisplayVisibility(self) -> int:
        display = self.GetDisplayNode()
        return display.GetVisibility() if display is not None else 0


@register
class vtkMRMLScriptedModuleNode(vtkMRMLNode):
    """The parameter node: string parameters and node references, as Slicer stores them."""

    _vtk_name = "vtkMRMLScriptedModuleNode"
    _tag = "ScriptedModule"

    def __init__(self) -> None:
        super().__init__()
        self._parameters: dict[str, str] = {}

    def SetParameter(self, name: str, value: str) -> None:
        if self._parameters.get(name) != str(value):
            self._parameters[name] = str(value)
            self.Modified()

    def GetParameter(self, name: str) -> str:
        return self._parameters.get(name, "")

    def UnsetParameter(self, name: str) -> None:
        if self._parameters.pop(name, None) is not None:
            self.Modified()

    def UnsetAllParameters(self) -> None:
        self._parameters.clear()
        self.Modified()

    def GetParameterNames(self) -> tuple[str, ...]:
        return tuple(self._parameters)

    def GetParameterNamesAsCommaSeparatedList(self) -> str:
        return ",".join(self._parameters)

    def GetModuleName(self) -> str | None:
        return self.GetAttribute("ModuleName")

    def SetModuleName(self, name: str) -> None:
        self.SetAttribute("ModuleName", name)


@register
class vtkMRMLScene(StrictObject, vtk.vtkObject):
    """Nodes by ID, unique names, singleton nodes, and the close events panels observe."""

    _vtk_name = "vtkMRMLScene"

    def __init__(self) -> None:
        super().__init__()
        self._nodes: list[vtkMRMLNode] = []
        self._counters: dict[str, itertools.count] = {}
        self._batch = 0
        self._closing = False
        enums = active().enums("vtkMRMLScene")
        self._events = {name: enums[name] for name in ("StartCloseEvent", "EndCloseEvent", "NodeAddedEvent",
                                                         "NodeAboutToBeRemovedEvent", "NodeRemovedEvent",
                                                         "StartBatchProcessEvent", "EndBatchProcessEvent")}

    def _new_id(self, node: vtkMRMLNode) -> str:
        counter = self._counters.setdefault(node.GetClassName(), itertools.count(1))
        while True:
            candidate = f"{node.GetClassName()}{next(counter)}"
            if self.GetNodeByID(candidate) is None:
                return candidate

    def CreateNodeByClass(self, class_name: str):
        return node_class(class_name)()

    def AddNewNodeByClass(self, class_name: str, base_name: str = ""):
        node = self.CreateNodeByClass(class_name)
        if base_name:
            node.SetName(base_name)
        return self.AddNode(node)

    def AddNewNodeByClassWithID(self, class_name: str, base_name: str, node_id: str):
        node = self.CreateNodeByClass(class_name)
        if base_name:
            node.SetName(base_name)
        node._id = node_id
        return self.AddNode(node)

    def AddNode(self, node: vtkMRMLNode):
        if node._singleton_tag:
            existing = self.GetSingletonNode(node._singleton_tag, node.GetClassName())
            if existing is not None:
                existing.Copy(node)
                return existing
        if node._id is None or self.GetNodeByID(node._id) is not None:
            node._id = self._new_id(node)
        if not node._name:
            node._name = self.GenerateUniqueName(node.GetNodeTagName() if node._tag != "Node" else
                                                 node.GetClassName().replace("vtkMRML", "").replace("Node", ""))
        node._scene = self
        self._nodes.append(node)
        self.InvokeEvent(self._events["NodeAddedEvent"])
        return node

    def RemoveNode(self, node) -> None:
        if node is None or node not in self._nodes:
            return
        self.InvokeEvent(self._events["NodeAboutToBeRemovedEvent"])
        for role in ("display", "storage"):
            for node_id in list(node._references.get(role) or []):
                self.RemoveNode(self.GetNodeByID(node_id))
        self._nodes.remove(node)
        node._scene = None
        for other in self._nodes:
            for ids in other._references.values():
                while node._id in ids:
                    ids.remove(node._id)
        self.InvokeEvent(self._events["NodeRemovedEvent"])

    def Clear(self, remove_singletons: int = 0) -> None:
        self._closing = True
        self.InvokeEvent(self._events["StartCloseEvent"])
        for node in list(self._nodes):
            if remove_singletons or not node._singleton_tag:
                self.RemoveNode(node)
        for node in self._nodes:  # singletons are reset, not removed
            if isinstance(node, vtkMRMLScriptedModuleNode):
                node._parameters.clear()
                node._references.clear()
        self._closing = False
        self.InvokeEvent(self._events["EndCloseEvent"])

    def IsClosing(self) -> bool:
        return self._closing

    def GetNodeByID(self, node_id: str | None):
        if not node_id:
            return None
        return next((node for node in self._nodes if node._id == node_id), None)

    def GetFirstNodeByClass(self, class_name: str):
        return next((node for node in self._nodes if node.IsA(class_name)), None)

    def GetFirstNodeByName(self, name: str):
        return next((node for node in self._nodes if node._name == name), None)

    def GetNodesByClass(self, class_name: str) -> vtk.vtkCollection:
        collection = vtk.vtkCollection()
        for node in self._nodes:
            if node.IsA(class_name):
                collection.AddItem(node)
        return collection

    def GetNodesByName(self, name: str) -> vtk.vtkCollection:
        collection = vtk.vtkCollection()
        for node in self._nodes:
            if node._name == name:
                collection.AddItem(node)
        return collection

    def GetNumberOfNodesByClass(self, class_name: str) -> int:
        return sum(1 for node in self._nodes if node.IsA(class_name))

    def GetNthNodeByClass(self, n: int, class_name: str):
        nodes = [node for node in self._nodes if node.IsA(class_name)]
        return nodes[n] if 0 <= n < len(nodes) else None

    def GetNumberOfNodes(self) -> int:
        return len(self._nodes)

    def GetNthNode(self, n: int):
        return self._nodes[n] if 0 <= n < len(self._nodes) else None

    def GetSingletonNode(self, tag: str, class_name: str):
        return next((node for node in self._nodes if node._singleton_tag == tag and node.IsA(class_name)), None)

    def GenerateUniqueName(self, base: str) -> str:
        names = {node._name for node in self._nodes}
        if base not in names:
            return base
        for index in itertools.count(1):
            candidate = f"{base}_{index}"
            if candidate not in names:
                return candidate
        raise AssertionError("unreachable")

    def IsBatchProcessing(self) -> bool:
        return self._batch > 0

    def StartState(self, state: int, progress: int = 0) -> None:
        self._batch += 1
        self.InvokeEvent(self._events["StartBatchProcessEvent"])

    def EndState(self, state: int) -> None:
        self._batch = max(0, self._batch - 1)
        self.InvokeEvent(self._events["EndBatchProcessEvent"])

    def GetNodes(self) -> vtk.vtkCollection:
        collection = vtk.vtkCollection()
        for node in self._nodes:
            collection.AddItem(node)
        return collection
