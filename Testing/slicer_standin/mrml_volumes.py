"""Volume nodes and oriented image data: voxels in a real vtkImageData, geometry as Slicer keeps it (spacing,
origin and IJK-to-RAS directions on the node; the image data's own origin and spacing unused)."""

from __future__ import annotations

import numpy as np
import vtk

from slicer_standin.mrml_core import vtkMRMLDisplayableNode, vtkMRMLDisplayNode, register
from slicer_standin.strict import StrictObject, copy_into, matrix_array, vtk_matrix


def ijk_to_ras(spacing, origin, directions) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(directions, dtype=float) @ np.diag(np.asarray(spacing, dtype=float))
    matrix[:3, 3] = np.asarray(origin, dtype=float)
    return matrix


def decompose(matrix: np.ndarray) -> tuple[tuple, tuple, np.ndarray]:
    """Spacing, origin and unit direction columns of an IJK-to-RAS matrix (as vtkMRMLVolumeNode does it)."""
    linear = np.asarray(matrix, dtype=float)[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    directions = linear / np.where(spacing == 0, 1.0, spacing)
    return tuple(spacing), tuple(np.asarray(matrix, dtype=float)[:3, 3]), directions


@register
class vtkMRMLVolumeDisplayNode(vtkMRMLDisplayNode):
    _vtk_name = "vtkMRMLVolumeDisplayNode"


@register
class vtkMRMLScalarVolumeDisplayNode(vtkMRMLVolumeDisplayNode):
    _vtk_name = "vtkMRMLScalarVolumeDisplayNode"

    def __init__(self) -> None:
        super().__init__()
        self._auto_window_level = 1
        self._window, self._level = 256.0, 128.0

    def SetAutoWindowLevel(self, value) -> None:
        self._auto_window_level = int(bool(value))

    def GetAutoWindowLevel(self) -> int:
        return self._auto_window_level

    def SetWindowLevelMinMax(self, low: float, high: float) -> None:
        self._auto_window_level = 0
        self._window, self._level = float(high - low), float(high + low) / 2.0
        self.Modified()

    def SetWindowLevel(self, window: float, level: float) -> None:
        self._auto_window_level = 0
        self._window, self._level = float(window), float(level)
        self.Modified()

    def GetWindow(self) -> float:
        return self._window

    def GetLevel(self) -> float:
        return self._level


@register
class vtkMRMLLabelMapVolumeDisplayNode(vtkMRMLVolumeDisplayNode):
    _vtk_name = "vtkMRMLLabelMapVolumeDisplayNode"


@register
class vtkMRMLVolumeNode(vtkMRMLDisplayableNode):
    _vtk_name = "vtkMRMLVolumeNode"
    _tag = "Volume"

    def __init__(self) -> None:
        super().__init__()
        self._spacing = (1.0, 1.0, 1.0)
        self._origin = (0.0, 0.0, 0.0)
        self._directions = np.eye(3)
        self._image: vtk.vtkImageData | None = None

    # geometry
    def SetSpacing(self, *values) -> None:
        self._spacing = tuple(float(v) for v in (values[0] if len(values) == 1 else values))
        self.Modified()

    def GetSpacing(self) -> tuple[float, float, float]:
        return self._spacing

    def SetOrigin(self, *values) -> None:
        self._origin = tuple(float(v) for v in (values[0] if len(values) == 1 else values))
        self.Modified()

    def GetOrigin(self) -> tuple[float, float, float]:
        return self._origin

    def SetIJKToRASMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        self._spacing, self._origin, self._directions = decompose(matrix_array(matrix))
        self.Modified()

    def GetIJKToRASMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        copy_into(matrix, ijk_to_ras(self._spacing, self._origin, self._directions))

    def GetRASToIJKMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        copy_into(matrix, np.linalg.inv(ijk_to_ras(self._spacing, self._origin, self._directions)))

    def SetIJKToRASDirectionMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        self._directions = matrix_array(matrix)[:3, :3].copy()
        self.Modified()

    def GetIJKToRASDirectionMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        values = np.eye(4)
        values[:3, :3] = self._directions
        copy_into(matrix, values)

    def SetIJKToRASDirections(self, *values) -> None:
        flat = np.asarray(values[0] if len(values) == 1 else values, dtype=float).reshape(3, 3)
        self._directions = flat.copy()
        self.Modified()

    # voxels
    def GetImageData(self) -> vtk.vtkImageData | None:
        return self._image

    def SetAndObserveImageData(self, image: vtk.vtkImageData | None) -> None:
        self._image = image
        self.Modified()

    def CopyOrientation(self, other) -> None:
        self._spacing, self._origin, self._directions = other._spacing, other._origin, other._directions.copy()
        self.Modified()


@register
class vtkMRMLScalarVolumeNode(vtkMRMLVolumeNode):
    _vtk_name = "vtkMRMLScalarVolumeNode"
    _display_class = "vtkMRMLScalarVolumeDisplayNode"


@register
class vtkMRMLLabelMapVolumeNode(vtkMRMLScalarVolumeNode):
    _vtk_name = "vtkMRMLLabelMapVolumeNode"
    _display_class = "vtkMRMLLabelMapVolumeDisplayNode"


@register
class vtkMRMLVectorVolumeNode(vtkMRMLScalarVolumeNode):
    _vtk_name = "vtkMRMLVectorVolumeNode"


class vtkOrientedImageData(StrictObject, vtk.vtkImageData):
    """Slicer's image with a direction matrix (vtkSegmentationCore): the geometry of segment labelmaps."""

    _vtk_name = "vtkOrientedImageData"

    def __init__(self) -> None:
        super().__init__()
        self._directions = np.eye(3)

    def SetImageToWorldMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        spacing, origin, self._directions = decompose(matrix_array(matrix))
        vtk.vtkImageData.SetSpacing(self, *spacing)
        vtk.vtkImageData.SetOrigin(self, *origin)
        self.Modified()

    def GetImageToWorldMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        copy_into(matrix, self.image_to_world())

    def SetDirectionMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        self._directions = matrix_array(matrix)[:3, :3].copy()

    def GetDirectionMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        values = np.eye(4)
        values[:3, :3] = self._directions
        copy_into(matrix, values)

    def DeepCopy(self, other) -> None:
        vtk.vtkImageData.DeepCopy(self, other)
        if isinstance(other, vtkOrientedImageData):
            self._directions = other._directions.copy()

    def image_to_world(self) -> np.ndarray:
        return ijk_to_ras(vtk.vtkImageData.GetSpacing(self), vtk.vtkImageData.GetOrigin(self), self._directions)


def image_array(image: vtk.vtkImageData) -> np.ndarray:
    """A (k, j, i[, components]) view of an image's scalars (what slicer.util.arrayFrom* return)."""
    from vtk.util import numpy_support

    scalars = image.GetPointData().GetScalars()
    if scalars is None:
        raise ValueError("the image has no scalars")
    dims = image.GetDimensions()
    shape = tuple(reversed(dims))
    components = scalars.GetNumberOfComponents()
    array = numpy_support.vtk_to_numpy(scalars)
    return array.reshape(shape + ((components,) if components > 1 else ()))


def image_from_array(array: np.ndarray, image: vtk.vtkImageData | None = None) -> vtk.vtkImageData:
    from vtk.util import numpy_support

    array = np.ascontiguousarray(array)
    image = image or vtk.vtkImageData()
    components = array.shape[3] if array.ndim == 4 else 1
    shape = array.shape[:3]
    image.SetDimensions(shape[2], shape[1], shape[0])
    scalars = numpy_support.numpy_to_vtk(array.reshape(-1, components) if components > 1 else array.ravel(),
                                         deep=True)
    image.GetPointData().SetScalars(scalars)
    return image


__all__ = ["vtkOrientedImageData", "image_array", "image_from_array", "ijk_to_ras", "decompose", "vtk_matrix"]
