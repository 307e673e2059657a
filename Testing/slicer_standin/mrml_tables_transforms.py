"""Table nodes (a real vtkTable inside, with per-column unit and description) and transform nodes (linear and grid,
with their display node) as RadAssist fills them."""

from __future__ import annotations

import numpy as np
import vtk

from slicer_standin.mrml_core import vtkMRMLDisplayableNode, vtkMRMLDisplayNode, vtkMRMLStorableNode, register
from slicer_standin.strict import StrictObject, copy_into, matrix_array


@register
class vtkMRMLTableNode(vtkMRMLStorableNode):
    _vtk_name = "vtkMRMLTableNode"
    _tag = "Table"

    def __init__(self) -> None:
        super().__init__()
        self._table = vtk.vtkTable()
        self._column_properties: dict[str, dict[str, str]] = {}

    def GetTable(self) -> vtk.vtkTable:
        return self._table

    def AddColumn(self, array=None):
        if array is None:
            array = vtk.vtkStringArray()
            array.SetName(f"Column {self._table.GetNumberOfColumns() + 1}")
        rows = self._table.GetNumberOfRows()
        if self._table.GetNumberOfColumns() and array.GetNumberOfTuples() != rows:
            # Slicer pads or refuses; RadAssist always adds full columns, so refuse loudly
            raise ValueError(f"column {array.GetName()!r} has {array.GetNumberOfTuples()} values, table has {rows}")
        self._table.AddColumn(array)
        self.Modified()
        return array

    def RemoveAllColumns(self) -> None:
        while self._table.GetNumberOfColumns():
            self._table.RemoveColumn(0)
        self._column_properties.clear()
        self.Modified()

    def RemoveColumn(self, index: int) -> None:
        self._table.RemoveColumn(index)
        self.Modified()

    def GetNumberOfRows(self) -> int:
        return self._table.GetNumberOfRows()

    def GetNumberOfColumns(self) -> int:
        return self._table.GetNumberOfColumns()

    def GetColumnIndex(self, name: str) -> int:
        for index in range(self._table.GetNumberOfColumns()):
            if self._table.GetColumn(index).GetName() == name:
                return index
        return -1

    def GetColumnName(self, index: int) -> str:
        column = self._table.GetColumn(index)
        return column.GetName() if column is not None else ""

    def GetColumnByName(self, name: str):
        return self._table.GetColumnByName(name)

    def GetCellText(self, row: int, column: int) -> str:
        array = self._table.GetColumn(column)
        if array is None or not 0 <= row < array.GetNumberOfTuples():
            return ""
        value = array.GetValue(row) if isinstance(array, vtk.vtkStringArray) else array.GetVariantValue(row)
        return value if isinstance(value, str) else value.ToString()

    def SetCellText(self, row: int, column: int, text: str) -> bool:
        array = self._table.GetColumn(column)
        if array is None:
            return False
        if isinstance(array, vtk.vtkStringArray):
            array.SetValue(row, str(text))
        else:
            array.SetValue(row, float(text))
        self.Modified()
        return True

    def AddEmptyRow(self) -> int:
        for index in range(self._table.GetNumberOfColumns()):
            array = self._table.GetColumn(index)
            array.InsertNextValue("" if isinstance(array, vtk.vtkStringArray) else 0)
        self.Modified()
        return self._table.GetNumberOfRows() - 1

    def _set_property(self, column: str, key: str, value: str) -> None:
        self._column_properties.setdefault(column, {})[key] = str(value)

    def SetColumnUnitLabel(self, column: str, unit: str) -> None:
        self._set_property(column, "unitLabel", unit)

    def GetColumnUnitLabel(self, column: str) -> str:
        return self._column_properties.get(column, {}).get("unitLabel", "")

    def SetColumnDescription(self, column: str, text: str) -> None:
        self._set_property(column, "description", text)

    def GetColumnDescription(self, column: str) -> str:
        return self._column_properties.get(column, {}).get("description", "")

    def SetColumnProperty(self, column: str, key: str, value: str) -> None:
        self._set_property(column, key, value)

    def GetColumnProperty(self, column: str, key: str) -> str:
        return self._column_properties.get(column, {}).get(key, "")

    def SetUseColumnTitleAsColumnHeader(self, value) -> None:
        return None


@register
class vtkMRMLTransformDisplayNode(vtkMRMLDisplayNode):
    _vtk_name = "vtkMRMLTransformDisplayNode"

    def __init__(self) -> None:
        super().__init__()
        self._mode = 0
        self._editor_visibility = 0

    def SetVisualizationMode(self, mode: int) -> None:
        self._mode = int(mode)
        self.Modified()

    def GetVisualizationMode(self) -> int:
        return self._mode

    def SetAndObserveRegionNode(self, node) -> None:
        self.SetNodeReferenceID("region", node.GetID() if node is not None else None)

    def GetRegionNode(self):
        return self.GetNodeReference("region")

    def SetAndObserveGlyphPointsNode(self, node) -> None:
        self.SetNodeReferenceID("glyphPoints", node.GetID() if node is not None else None)

    def SetEditorVisibility(self, value) -> None:
        self._editor_visibility = int(bool(value))

    def GetEditorVisibility(self) -> int:
        return self._editor_visibility

    def SetGridSpacingMm(self, value: float) -> None:
        return None


@register
class vtkMRMLTransformNode(vtkMRMLDisplayableNode):
    _vtk_name = "vtkMRMLTransformNode"
    _display_class = "vtkMRMLTransformDisplayNode"
    _tag = "Transform"

    def __init__(self) -> None:
        super().__init__()
        self._to_parent: vtk.vtkAbstractTransform | None = None
        self._from_parent: vtk.vtkAbstractTransform | None = None

    def SetAndObserveTransformToParent(self, transform) -> None:
        self._to_parent, self._from_parent = transform, None
        self.Modified()

    def SetAndObserveTransformFromParent(self, transform) -> None:
        self._from_parent, self._to_parent = transform, None
        self.Modified()

    def GetTransformToParent(self):
        return self._to_parent if self._to_parent is not None else \
            (self._from_parent.GetInverse() if self._from_parent is not None else None)

    def GetTransformFromParent(self):
        return self._from_parent if self._from_parent is not None else \
            (self._to_parent.GetInverse() if self._to_parent is not None else None)

    def IsLinear(self) -> int:
        transform = self._to_parent or self._from_parent
        return int(transform is None or isinstance(transform, (vtk.vtkLinearTransform, vtk.vtkTransform)))

    def IsTransformToWorldLinear(self) -> int:
        node = self
        while node is not None:
            if not node.IsLinear():
                return 0
            node = node.GetParentTransformNode()
        return 1

    def _matrix_to_parent(self) -> np.ndarray:
        transform = self.GetTransformToParent()
        if transform is None:
            return np.eye(4)
        if not isinstance(transform, vtk.vtkLinearTransform):
            raise ValueError(f"{self.GetName()} is not linear")
        return matrix_array(transform.GetMatrix())

    def GetMatrixTransformToParent(self, matrix: vtk.vtkMatrix4x4) -> None:
        copy_into(matrix, self._matrix_to_parent())

    def GetMatrixTransformToWorld(self, matrix: vtk.vtkMatrix4x4) -> None:
        values, node = np.eye(4), self
        while node is not None:
            values = node._matrix_to_parent() @ values
            node = node.GetParentTransformNode()
        copy_into(matrix, values)


@register
class vtkMRMLLinearTransformNode(vtkMRMLTransformNode):
    _vtk_name = "vtkMRMLLinearTransformNode"

    def SetMatrixTransformToParent(self, matrix: vtk.vtkMatrix4x4) -> None:
        transform = vtk.vtkTransform()
        transform.SetMatrix(matrix)
        self.SetAndObserveTransformToParent(transform)


@register
class vtkMRMLGridTransformNode(vtkMRMLTransformNode):
    _vtk_name = "vtkMRMLGridTransformNode"


class vtkOrientedGridTransform(StrictObject, vtk.vtkGridTransform):
    """vtkAddon's grid transform with a direction matrix for its displacement grid."""

    _vtk_name = "vtkOrientedGridTransform"

    def __init__(self) -> None:
        super().__init__()
        self._direction = vtk.vtkMatrix4x4()

    def SetGridDirectionMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        self._direction.DeepCopy(matrix)
        self.Modified()

    def GetGridDirectionMatrix(self) -> vtk.vtkMatrix4x4:
        return self._direction

    def TransformPoint(self, *point):
        """vtkAddon's forward mapping: the point's grid index is found through origin, spacing and the direction
        matrix, and the displacement there (trilinear here; RadAssist checks it at grid points) is added."""
        xyz = np.asarray(point[0] if len(point) == 1 else point, dtype=float)
        grid = self.GetDisplacementGrid()
        if grid is None:
            return tuple(xyz)
        from vtk.util import numpy_support

        index_to_world = np.eye(4)
        index_to_world[:3, :3] = matrix_array(self._direction)[:3, :3] @ np.diag(grid.GetSpacing())
        index_to_world[:3, 3] = grid.GetOrigin()
        ijk = (np.linalg.inv(index_to_world) @ np.append(xyz, 1.0))[:3]
        dims = grid.GetDimensions()
        vectors = numpy_support.vtk_to_numpy(grid.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0], 3)
        base = np.clip(np.floor(ijk).astype(int), 0, np.array(dims) - 1)
        frac = ijk - base
        displacement = np.zeros(3)
        for corner in np.ndindex(2, 2, 2):
            index = np.minimum(base + corner, np.array(dims) - 1)
            weight = np.prod([f if c else 1.0 - f for f, c in zip(frac, corner)])
            displacement += weight * vectors[index[2], index[1], index[0]]
        return tuple(xyz + displacement * self.GetDisplacementScale() + self.GetDisplacementShift())


__all__ = ["vtkOrientedGridTransform", "vtkMRMLDisplayableNode"]
