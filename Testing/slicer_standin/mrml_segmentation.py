"""Segmentation node, segmentation, segment and the static logic functions RadAssist calls, holding each segment
as a binary labelmap (vtkOrientedImageData), as Slicer does for segmentations made from masks."""

from __future__ import annotations

import numpy as np
import vtk

from slicer_standin.mrml_core import vtkMRMLDisplayableNode, vtkMRMLDisplayNode, register
from slicer_standin.mrml_volumes import ijk_to_ras, image_array, vtkOrientedImageData
from slicer_standin.strict import StrictObject, active

BINARY_LABELMAP = "Binary labelmap"
TERMINOLOGY_TAG = "TerminologyEntry"


class vtkSegment(StrictObject, vtk.vtkObject):
    _vtk_name = "vtkSegment"

    def __init__(self) -> None:
        super().__init__()
        self._name = ""
        self._color = (0.5, 0.5, 0.5)
        self._tags: dict[str, str] = {}
        self._representations: dict[str, vtk.vtkDataObject] = {}
        self._label_value = 1

    def GetName(self) -> str:
        return self._name

    def SetName(self, name: str) -> None:
        self._name = str(name)
        self.Modified()

    def GetColor(self) -> tuple[float, float, float]:
        return self._color

    def SetColor(self, *rgb) -> None:
        self._color = tuple(float(v) for v in (rgb[0] if len(rgb) == 1 else rgb))
        self.Modified()

    def SetTag(self, name: str, value) -> None:
        self._tags[str(name)] = str(value)
        self.Modified()

    def GetTag(self, name: str, value) -> bool:
        """``bool GetTag(std::string, std::string&)``: Python passes a ``vtk.reference("")`` for the value."""
        if name not in self._tags:
            return False
        value.set(self._tags[name])
        return True

    def HasTag(self, name: str) -> bool:
        return name in self._tags

    def RemoveTag(self, name: str) -> None:
        self._tags.pop(name, None)

    def GetTags(self, out) -> None:
        out.update(self._tags)

    def SetTerminology(self, entry: str) -> None:
        self.SetTag(TERMINOLOGY_TAG, entry)

    def GetTerminology(self) -> str:
        return self._tags.get(TERMINOLOGY_TAG, "")

    def GetLabelValue(self) -> int:
        return self._label_value

    def SetLabelValue(self, value: int) -> None:
        self._label_value = int(value)

    def GetRepresentation(self, name: str):
        return self._representations.get(name)

    def AddRepresentation(self, name: str, data) -> None:
        self._representations[name] = data


class vtkSegmentation(StrictObject, vtk.vtkObject):
    _vtk_name = "vtkSegmentation"

    def __init__(self) -> None:
        super().__init__()
        self._segments: dict[str, vtkSegment] = {}

    def _unique_id(self, wanted: str) -> str:
        if wanted and wanted not in self._segments:
            return wanted
        index = len(self._segments) + 1
        while f"Segment_{index}" in self._segments:
            index += 1
        return f"Segment_{index}"

    def AddSegment(self, segment: vtkSegment, segment_id: str = "", insert_before: str = "") -> bool:
        self._segments[self._unique_id(segment_id or segment.GetName())] = segment
        self.Modified()
        return True

    def AddEmptySegment(self, segment_id: str = "", name: str = "", color=None) -> str:
        segment = vtkSegment()
        new_id = self._unique_id(segment_id)
        segment.SetName(name or new_id)
        if color is not None:
            segment.SetColor(color)
        self._segments[new_id] = segment
        self.Modified()
        return new_id

    def RemoveSegment(self, segment_id: str) -> None:
        self._segments.pop(segment_id, None)
        self.Modified()

    def RemoveAllSegments(self) -> None:
        self._segments.clear()
        self.Modified()

    def GetNumberOfSegments(self) -> int:
        return len(self._segments)

    def GetNthSegmentID(self, n: int) -> str:
        ids = list(self._segments)
        return ids[n] if 0 <= n < len(ids) else ""

    def GetNthSegment(self, n: int):
        segment_id = self.GetNthSegmentID(n)
        return self._segments.get(segment_id)

    def GetSegment(self, segment_id: str):
        return self._segments.get(segment_id)

    def GetSegmentIdBySegmentName(self, name: str) -> str:
        return next((sid for sid, segment in self._segments.items() if segment.GetName() == name), "")

    def GetSegmentIndex(self, segment_id: str) -> int:
        ids = list(self._segments)
        return ids.index(segment_id) if segment_id in ids else -1

    def GetSourceRepresentationName(self) -> str:
        return BINARY_LABELMAP

    def GetSegmentIDs(self, out=None):
        ids = list(self._segments)
        if out is None:
            return tuple(ids)
        for segment_id in ids:
            out.InsertNextValue(segment_id)
        return None


@register
class vtkMRMLSegmentationDisplayNode(vtkMRMLDisplayNode):
    _vtk_name = "vtkMRMLSegmentationDisplayNode"

    def __init__(self) -> None:
        super().__init__()
        self._segment_visibility: dict[str, bool] = {}
        self._opacity2d_fill = 0.5

    def SetSegmentVisibility(self, segment_id: str, visible) -> None:
        self._segment_visibility[segment_id] = bool(visible)
        self.Modified()

    def GetSegmentVisibility(self, segment_id: str) -> bool:
        return self._segment_visibility.get(segment_id, True)

    def SetAllSegmentsVisibility(self, visible) -> None:
        node = self.GetDisplayableNode()
        for segment_id in (node.GetSegmentation()._segments if node is not None else ()):
            self._segment_visibility[segment_id] = bool(visible)
        self.Modified()

    def SetOpacity2DFill(self, value: float) -> None:
        self._opacity2d_fill = float(value)

    def GetOpacity2DFill(self) -> float:
        return self._opacity2d_fill


@register
class vtkMRMLSegmentationNode(vtkMRMLDisplayableNode):
    _vtk_name = "vtkMRMLSegmentationNode"
    _display_class = "vtkMRMLSegmentationDisplayNode"
    _tag = "Segmentation"

    def __init__(self) -> None:
        super().__init__()
        self._segmentation = vtkSegmentation()
        self._reference_geometry: np.ndarray | None = None  # IJK-to-RAS of the reference volume
        self._reference_shape: tuple[int, int, int] | None = None

    def GetSegmentation(self) -> vtkSegmentation:
        return self._segmentation

    def SetReferenceImageGeometryParameterFromVolumeNode(self, volume_node) -> None:
        matrix = vtk.vtkMatrix4x4()
        volume_node.GetIJKToRASMatrix(matrix)
        from slicer_standin.strict import matrix_array

        self._reference_geometry = matrix_array(matrix)
        image = volume_node.GetImageData()
        self._reference_shape = tuple(reversed(image.GetDimensions())) if image is not None else None

    def GetNodeReferenceIDOfReferenceVolume(self) -> str | None:
        return self.GetNodeReferenceID("referenceImageGeometryRef")

    def AddSegmentFromBinaryLabelmapRepresentation(self, image, name: str, color=(0.5, 0.5, 0.5),
                                                   segment_id: str = "") -> str:
        copy = vtkOrientedImageData()
        copy.DeepCopy(image)
        segment = vtkSegment()
        segment.SetName(name)
        segment.SetColor(tuple(color))
        segment.AddRepresentation(BINARY_LABELMAP, copy)
        new_id = self._segmentation._unique_id(segment_id)
        self._segmentation._segments[new_id] = segment
        self._segmentation.Modified()
        self.Modified()
        return new_id

    def GetBinaryLabelmapRepresentation(self, segment_id: str, output) -> bool:
        segment = self._segmentation.GetSegment(segment_id)
        image = segment.GetRepresentation(BINARY_LABELMAP) if segment is not None else None
        if image is None:
            return False
        output.DeepCopy(image)
        return True

    def GetSegmentCenterRAS(self, segment_id: str):
        mask = segment_mask(self, segment_id)
        if mask is None or not mask[0].any():
            return None
        array, image_to_world = mask
        center = np.argwhere(array).mean(axis=0)[::-1]  # (i, j, k)
        return tuple(float(v) for v in (image_to_world @ np.append(center, 1.0))[:3])

    def CreateClosedSurfaceRepresentation(self) -> bool:
        return True

    def SetSourceRepresentationToBinaryLabelmap(self) -> None:
        return None


def segment_mask(node: vtkMRMLSegmentationNode, segment_id: str):
    """(mask (k, j, i), image-to-world 4x4) of a segment, or None when it has no binary labelmap."""
    segment = node.GetSegmentation().GetSegment(segment_id)
    image = segment.GetRepresentation(BINARY_LABELMAP) if segment is not None else None
    if image is None:
        return None
    return image_array(image) > 0, image.image_to_world()


def resample_mask(mask: np.ndarray, source_to_world: np.ndarray, target_shape: tuple[int, int, int],
                  target_to_world: np.ndarray) -> np.ndarray:
    """A mask on another voxel grid (nearest neighbour), as Slicer resamples a segment onto a reference volume."""
    if mask.shape == tuple(target_shape) and np.allclose(source_to_world, target_to_world, atol=1e-6):
        return mask.copy()
    target_to_source = np.linalg.inv(source_to_world) @ target_to_world
    k, j, i = np.indices(target_shape)
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    source = target_to_source @ ijk
    coordinates = np.round(source[2::-1]).astype(int)  # (k, j, i)
    inside = np.all((coordinates >= 0) & (coordinates < np.array(mask.shape)[:, None]), axis=0)
    values = np.zeros(i.size, dtype=bool)
    values[inside] = mask[tuple(coordinates[:, inside])]
    return values.reshape(target_shape)


class vtkSlicerSegmentationsModuleLogic(StrictObject, vtk.vtkObject):
    """The static functions of the Segmentations module logic that RadAssist calls."""

    _vtk_name = "vtkSlicerSegmentationsModuleLogic"
    _STATUS = ("notstarted", "inprogress", "completed", "flagged")

    @staticmethod
    def GetStatusTagName() -> str:
        return "Segmentation.Status"

    @staticmethod
    def GetSegmentStatusAsMachineReadableString(status: int) -> str:
        statuses = vtkSlicerSegmentationsModuleLogic._STATUS
        return statuses[status] if 0 <= status < len(statuses) else "unknown"

    @staticmethod
    def GetSegmentStatusAsHumanReadableString(status: int) -> str:
        names = ("Not started", "In progress", "Completed", "Flagged")
        return names[status] if 0 <= status < len(names) else "Unknown"

    @staticmethod
    def GetSegmentStatusFromMachineReadableString(text: str) -> int:
        statuses = vtkSlicerSegmentationsModuleLogic._STATUS
        return statuses.index(text) if text in statuses else -1

    @staticmethod
    def SetSegmentStatus(segment: vtkSegment, status: int) -> None:
        if segment is None:
            return
        statuses = vtkSlicerSegmentationsModuleLogic._STATUS
        if not 0 <= int(status) < len(statuses):
            raise ValueError(f"invalid segment status {status}")
        segment.SetTag("Segmentation.Status", statuses[int(status)])

    @staticmethod
    def GetSegmentStatus(segment: vtkSegment) -> int:
        if segment is None:
            return -1
        text = segment._tags.get("Segmentation.Status")
        return vtkSlicerSegmentationsModuleLogic._STATUS.index(text) if text in \
            vtkSlicerSegmentationsModuleLogic._STATUS else 0


def reference_shape_and_matrix(volume_node) -> tuple[tuple[int, int, int], np.ndarray]:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    from slicer_standin.strict import matrix_array

    return tuple(reversed(volume_node.GetImageData().GetDimensions())), matrix_array(matrix)


__all__ = ["vtkSegment", "vtkSegmentation", "vtkSlicerSegmentationsModuleLogic", "segment_mask", "resample_mask",
           "reference_shape_and_matrix", "active", "ijk_to_ras"]
