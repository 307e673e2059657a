"""Markups: the ROI node (centre in its object-to-node matrix, size, axes, one control point at the centre) and
the parts of the Markups logic RadAssist calls."""

from __future__ import annotations

import numpy as np
import vtk

from slicer_standin.mrml_core import vtkMRMLDisplayableNode, vtkMRMLDisplayNode, register
from slicer_standin.strict import StrictObject, active, matrix_array


def _xyz(values) -> np.ndarray:
    return np.asarray(values[0] if len(values) == 1 else values, dtype=float).reshape(3)


def _to_world(node) -> np.ndarray:
    """The node's parent transforms to world (linear only, as the stand-in's transforms are)."""
    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    matrix = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(matrix)
    return matrix_array(matrix)


@register
class vtkMRMLMarkupsDisplayNode(vtkMRMLDisplayNode):
    _vtk_name = "vtkMRMLMarkupsDisplayNode"


@register
class vtkMRMLMarkupsROIDisplayNode(vtkMRMLMarkupsDisplayNode):
    _vtk_name = "vtkMRMLMarkupsROIDisplayNode"


@register
class vtkMRMLMarkupsNode(vtkMRMLDisplayableNode):
    _vtk_name = "vtkMRMLMarkupsNode"
    _display_class = "vtkMRMLMarkupsDisplayNode"
    _tag = "Markups"

    def __init__(self) -> None:
        super().__init__()
        self._points: list[dict] = []
        self._locked = 0

    def GetNumberOfControlPoints(self) -> int:
        return len(self._points)

    def GetNthControlPointDescription(self, n: int) -> str:
        return self._points[n]["description"] if 0 <= n < len(self._points) else ""

    def SetNthControlPointDescription(self, n: int, text: str) -> None:
        if 0 <= n < len(self._points):
            self._points[n]["description"] = str(text)
            self.Modified()

    def GetNthControlPointLabel(self, n: int) -> str:
        return self._points[n]["label"] if 0 <= n < len(self._points) else ""

    def SetNthControlPointLabel(self, n: int, text: str) -> None:
        if 0 <= n < len(self._points):
            self._points[n]["label"] = str(text)

    def GetNthControlPointPosition(self, n: int, out) -> None:
        out[:3] = list(self._points[n]["position"])

    def GetNthControlPointPositionWorld(self, n: int, out) -> None:
        position = _to_world(self) @ np.append(self._points[n]["position"], 1.0)
        out[:3] = list(position[:3])

    def AddControlPoint(self, *position) -> int:
        self._points.append({"position": _xyz(position), "label": "", "description": ""})
        self.Modified()
        return len(self._points) - 1

    def RemoveAllControlPoints(self) -> None:
        self._points.clear()
        self.Modified()

    def GetLocked(self) -> int:
        return self._locked

    def SetLocked(self, value) -> None:
        self._locked = int(bool(value))


@register
class vtkMRMLMarkupsFiducialNode(vtkMRMLMarkupsNode):
    _vtk_name = "vtkMRMLMarkupsFiducialNode"


@register
class vtkMRMLMarkupsROINode(vtkMRMLMarkupsNode):
    _vtk_name = "vtkMRMLMarkupsROINode"
    _display_class = "vtkMRMLMarkupsROIDisplayNode"

    def __init__(self) -> None:
        super().__init__()
        self._object_to_node = vtk.vtkMatrix4x4()
        self._size = np.zeros(3)
        self._roi_type = 0

    def _center_node(self) -> np.ndarray:
        return matrix_array(self._object_to_node)[:3, 3]

    def _place_center_point(self) -> None:
        center = self._center_node()
        if self._points:
            self._points[0]["position"] = center
        else:
            self._points.append({"position": center, "label": "", "description": ""})

    def SetCenter(self, *center) -> None:
        xyz = _xyz(center)
        for axis in range(3):
            self._object_to_node.SetElement(axis, 3, float(xyz[axis]))
        self._place_center_point()
        self.Modified()

    def SetCenterWorld(self, *center) -> None:
        node = np.linalg.inv(_to_world(self)) @ np.append(_xyz(center), 1.0)
        self.SetCenter(*node[:3])

    def GetCenter(self, out=None):
        center = self._center_node()
        if out is None:
            return vtk.vtkVector3d(*center)
        out[:3] = list(center)
        return None

    def GetCenterWorld(self, out=None):
        center = (_to_world(self) @ np.append(self._center_node(), 1.0))[:3]
        if out is None:
            return vtk.vtkVector3d(*center)
        out[:3] = list(center)
        return None

    def SetSize(self, *size) -> None:
        self._size = _xyz(size)
        self.Modified()

    def GetSize(self, out=None):
        if out is None:
            return tuple(self._size)
        out[:3] = list(self._size)
        return None

    def GetSizeWorld(self, out) -> None:
        axes = _to_world(self)[:3, :3] @ matrix_array(self._object_to_node)[:3, :3]
        out[:3] = list(self._size * np.linalg.norm(axes, axis=0))

    def SetRadiusXYZ(self, *radius) -> None:
        self.SetSize(*(2.0 * _xyz(radius)))

    def GetRadiusXYZ(self, out) -> None:
        out[:3] = list(self._size / 2.0)

    def GetAxis(self, index: int, out) -> None:
        out[:3] = list(matrix_array(self._object_to_node)[:3, index])

    def GetAxisWorld(self, index: int, out) -> None:
        axis = _to_world(self)[:3, :3] @ matrix_array(self._object_to_node)[:3, index]
        out[:3] = list(axis / np.linalg.norm(axis))

    def GetXAxisWorld(self, out) -> None:
        self.GetAxisWorld(0, out)

    def GetYAxisWorld(self, out) -> None:
        self.GetAxisWorld(1, out)

    def GetZAxisWorld(self, out) -> None:
        self.GetAxisWorld(2, out)

    def GetObjectToNodeMatrix(self) -> vtk.vtkMatrix4x4:
        return self._object_to_node

    def SetAndObserveObjectToNodeMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        self._object_to_node.DeepCopy(matrix)
        self._place_center_point()
        self.Modified()

    def GetROIType(self) -> int:
        return self._roi_type

    def SetROIType(self, value: int) -> None:
        self._roi_type = int(value)


class vtkSlicerMarkupsLogic(StrictObject, vtk.vtkObject):
    """What RadAssist asks of the Markups logic: jump the slice views, pick the active list."""

    _vtk_name = "vtkSlicerMarkupsLogic"

    def __init__(self) -> None:
        super().__init__()
        self._jumps: list[tuple[float, float, float, bool, int]] = []
        self._active_list = None

    def JumpSlicesToLocation(self, x: float, y: float, z: float, centered: bool, view_group: int = -1,
                             exclude_node=None) -> None:
        self._jumps.append((float(x), float(y), float(z), bool(centered), int(view_group)))

    def SetActiveList(self, node) -> None:
        self._active_list = node

    def SetActiveListID(self, node) -> None:
        self._active_list = node

    def GetActiveListID(self) -> str:
        return self._active_list.GetID() if self._active_list is not None else ""

    # what the tests read back
    @property
    def jumps(self) -> list[tuple[float, float, float, bool, int]]:
        return list(self._jumps)


__all__ = ["vtkSlicerMarkupsLogic", "active"]
