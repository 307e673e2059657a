"""RadAssist values <-> Slicer MRML nodes. Thin on purpose: every rule that can be wrong (axis order, LPS vs RAS,
transform direction, terminology strings, column types) is computed in :mod:`radassist.slicer.conversions`, which is
tested without Slicer; this file only copies those values into nodes and back. Runs inside Slicer only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from radassist.errors import InputError
from radassist.results.detections import Detections
from radassist.results.displacement import DisplacementField
from radassist.results.labelmap import LabelMap
from radassist.results.tables import Classification, Report
from radassist.slicer import conversions
from radassist.volume import Geometry, SourceInfo, Volume

SCALAR_VOLUME_CLASSES = ("vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode")
ROI_ATTRIBUTES = (conversions.PROBABILITY_ATTRIBUTE, conversions.LABEL_ATTRIBUTE, conversions.DIAMETER_ATTRIBUTE,
                  conversions.STATUS_ATTRIBUTE)

# DICOM tags read back from Slicer's DICOM database for a volume loaded from DICOM.
_DICOM_TAGS = {
    "modality": "0008,0060",
    "patient_id": "0010,0020",
    "study_instance_uid": "0020,000D",
    "series_instance_uid": "0020,000E",
    "frame_of_reference_uid": "0020,0052",
    "series_description": "0008,103E",
}


def _vtk_matrix(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    return slicer.util.vtkMatrixFromArray(np.asarray(matrix, dtype=float))


def _name(node) -> str:
    return node.GetName() if node is not None else "(no node)"


def _new_or_renamed(class_name: str, name: str, node=None):
    """A new node of ``class_name`` called ``name``, or ``node`` renamed to it."""
    if node is None:
        return slicer.mrmlScene.AddNewNodeByClass(class_name, name)
    node.SetName(name)
    return node


# -- volumes ------------------------------------------------------------------------------------------------------

def _world_ijk_to_ras(node) -> np.ndarray:
    """The node's IJK-to-RAS in world coordinates (its linear parent transforms applied)."""
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    parent = node.GetParentTransformNode()
    parent_to_world = None
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise InputError(_name(node), "is under a non-linear transform; harden the transform "
                                          "(Data module, right-click > Harden transform) before running RadAssist")
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        parent_to_world = slicer.util.arrayFromVTKMatrix(to_world)
    return conversions.world_ijk_to_ras(slicer.util.arrayFromVTKMatrix(matrix), parent_to_world)


def geometry_from_node(node) -> Geometry:
    """The LPS geometry of a volume node's voxel grid in world coordinates."""
    image = node.GetImageData() if node is not None else None
    if image is None or image.GetNumberOfPoints() == 0:
        raise InputError(_name(node), "the volume has no voxels")
    shape = conversions.shape_from_vtk_dimensions(image.GetDimensions())
    try:
        return conversions.geometry_from_ijk_to_ras(_world_ijk_to_ras(node), shape)
    except ValueError as error:
        raise InputError(_name(node), str(error)) from error


def _source_of(node) -> SourceInfo:
    """What Slicer knows about where the volume came from: its file, and DICOM identifiers when loaded from DICOM."""
    source = SourceInfo(series_description=node.GetName())
    storage = node.GetStorageNode()
    if storage is not None and storage.GetFileName():
        source.path = storage.GetFileName()
    uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split()
    database = getattr(slicer, "dicomDatabase", None)
    if uids:
        source.sop_instance_uids = uids
        if database is not None and database.isOpen:
            for field_name, tag in _DICOM_TAGS.items():
                value = database.instanceValue(uids[0], tag)
                if value:
                    setattr(source, field_name, value.strip())
    return source


def volume_from_node(node) -> Volume:
    """Copy a scalar volume node (or a grey image stored as a vector volume) into a Volume in LPS."""
    if node is None:
        raise InputError(None, "no input volume is selected")
    class_name = node.GetClassName()
    is_vector = node.IsA("vtkMRMLVectorVolumeNode")
    if class_name not in SCALAR_VOLUME_CLASSES and not is_vector:
        raise InputError(_name(node), f"is a {class_name}; RadAssist needs a scalar volume")
    geometry = geometry_from_node(node)
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)
    try:
        conversions.check_array_layout(array.shape, conversions.vtk_dimensions(geometry.shape))
        voxels = conversions.scalar_voxels(array, is_vector)
    except ValueError as error:
        raise InputError(_name(node), str(error)) from error
    return Volume.from_geometry(voxels, geometry, _source_of(node))


def volume_to_node(volume: Volume, name: str, node=None):
    """Put a Volume into a (new or given) vtkMRMLScalarVolumeNode with the matching IJK-to-RAS."""
    node = _new_or_renamed("vtkMRMLScalarVolumeNode", name, node)
    node.SetIJKToRASMatrix(_vtk_matrix(volume.geometry.ijk_to_ras))
    slicer.util.updateVolumeFromArray(node, conversions.slicer_compatible_array(volume.array))
    node.CreateDefaultDisplayNodes()
    return node


# -- segmentations ------------------------------------------------------------------------------------------------

def mask_to_oriented_image(mask: np.ndarray, geometry: Geometry):
    """A (z, y, x) mask on ``geometry``'s grid as the (uint8) vtkOrientedImageData the Segment Editor writes into
    segments."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(*conversions.vtk_dimensions(mask.shape))
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(mask.shape)[:] = mask
    image.SetImageToWorldMatrix(_vtk_matrix(geometry.ijk_to_ras))
    return image


def labelmap_to_segmentation_node(labelmap: LabelMap, reference_volume_node, name: str, node=None):
    """One segment per :class:`Segment` (name, colour, terminology, review status), overlaps kept.

    Each segment is added from its own mask, so overlapping segments stay whole (Slicer stores them in separate
    layers). The segmentation's reference geometry is the reference volume's, so Segment Editor edits on its grid.
    """
    node = _new_or_renamed("vtkMRMLSegmentationNode", name, node)
    node.GetSegmentation().RemoveAllSegments()
    node.CreateDefaultDisplayNodes()
    if reference_volume_node is not None:
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
    segmentation_logic = slicer.vtkSlicerSegmentationsModuleLogic
    for segment in labelmap.segments:
        spec = conversions.segment_spec(segment)
        image = mask_to_oriented_image(labelmap.mask(segment), labelmap.geometry)
        segment_id = node.AddSegmentFromBinaryLabelmapRepresentation(image, spec.name, list(spec.color),
                                                                     spec.segment_id)
        vtk_segment = node.GetSegmentation().GetSegment(segment_id)
        if spec.terminology_entry:
            vtk_segment.SetTerminology(spec.terminology_entry)
        segmentation_logic.SetSegmentStatus(vtk_segment, spec.status)
    return node


def segmentation_node_to_labelmap(node, reference_volume_node) -> LabelMap:
    """The (possibly user-corrected) segments of a segmentation node, resampled on the reference volume's grid.

    Label values follow segment order (1, 2, ...); overlapping segments go to extra layers.
    """
    if node is None:
        raise InputError(None, "no segmentation is selected")
    if reference_volume_node is None:
        raise InputError(_name(node), "a reference volume is needed to export the segmentation")
    geometry = geometry_from_node(reference_volume_node)
    segmentation = node.GetSegmentation()
    segment_ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    if not segment_ids:
        raise InputError(_name(node), "the segmentation has no segments")
    segmentation_logic = slicer.vtkSlicerSegmentationsModuleLogic
    masks, segments = [], []
    for index, segment_id in enumerate(segment_ids):
        vtk_segment = segmentation.GetSegment(segment_id)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, reference_volume_node)
        try:
            conversions.check_array_layout(mask.shape, conversions.vtk_dimensions(geometry.shape))
        except ValueError as error:
            raise InputError(_name(node), f"segment {vtk_segment.GetName()!r}: {error}") from error
        masks.append(mask > 0)
        segments.append(conversions.segment_from_slicer(
            segment_id, vtk_segment.GetName(), vtk_segment.GetColor(), vtk_segment.GetTerminology(),
            segmentation_logic.GetSegmentStatus(vtk_segment), index + 1))
    return LabelMap.from_masks(masks, segments, geometry, _source_of(reference_volume_node))


# -- boxes --------------------------------------------------------------------------------------------------------

def detections_to_roi_nodes(detections: Detections, name_prefix: str) -> list:
    """One Markups ROI per detection, named ``<prefix><n>``, with its description and RadAssist attributes."""
    nodes = []
    for index, detection in enumerate(detections.items):
        box = conversions.detection_to_roi(detection, f"{name_prefix}{index + 1}")
        roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", box.name)
        roi.CreateDefaultDisplayNodes()
        roi.SetCenter(*box.center_ras)
        roi.SetSize(*box.size)
        roi.SetDescription(box.description)
        if roi.GetNumberOfControlPoints() > 0:
            roi.SetNthControlPointDescription(0, box.description)
        for key, value in box.attributes.items():
            roi.SetAttribute(key, value)
        nodes.append(roi)
    return nodes


def roi_nodes_to_detections(nodes: Iterable) -> Detections:
    """Detections (LPS) from ROI nodes, hand-drawn or edited ones included; best first."""
    items = []
    for node in nodes:
        if node is None or not node.IsA("vtkMRMLMarkupsROINode"):
            raise InputError(_name(node), "is not a Markups ROI")
        center, size = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
        node.GetCenterWorld(center)
        node.GetSizeWorld(size)
        axes = []
        for axis_index in range(3):
            axis = [0.0, 0.0, 0.0]
            node.GetAxisWorld(axis_index, axis)
            axes.append(axis)
        attributes = {key: node.GetAttribute(key) for key in ROI_ATTRIBUTES if node.GetAttribute(key) is not None}
        try:
            items.append(conversions.roi_to_detection(center, size, np.column_stack(axes), attributes))
        except ValueError as error:
            raise InputError(_name(node), str(error)) from error
    return Detections(items).sorted()


# -- transforms ---------------------------------------------------------------------------------------------------

def displacement_to_transform_node(field: DisplacementField, name: str):
    """A vtkMRMLGridTransformNode equal to what Slicer builds when loading the same field from an ITK .h5 file."""
    spec = conversions.displacement_to_grid_transform(field)
    grid = vtk.vtkImageData()
    grid.SetOrigin(*spec.origin_ras)
    grid.SetSpacing(*spec.spacing)
    grid.SetDimensions(*spec.dimensions)
    vectors = numpy_support.numpy_to_vtk(spec.vectors_ras.reshape(-1, 3), deep=True, array_type=vtk.VTK_DOUBLE)
    grid.GetPointData().SetScalars(vectors)
    transform = slicer.vtkOrientedGridTransform()
    transform.SetGridDirectionMatrix(_vtk_matrix(spec.grid_direction_4x4))
    transform.SetDisplacementGridData(grid)
    transform.SetInterpolationModeToCubic()
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLGridTransformNode", name)
    getattr(node, spec.set_as)(transform)
    return node


# -- tables -------------------------------------------------------------------------------------------------------

def _add_column(node, column: conversions.TableColumn) -> None:
    """Append ``column`` to a table node; integers too large for a vtkIntArray go to a vtkDoubleArray."""
    if column.value_type == "int" and all(abs(int(text)) < 2**31 for text in column.values):
        array, value = vtk.vtkIntArray(), int
    elif column.value_type in ("int", "double"):
        array, value = vtk.vtkDoubleArray(), float
    else:
        array, value = vtk.vtkStringArray(), str
    for text in column.values:
        array.InsertNextValue(value(text))
    array.SetName(column.name)
    node.AddColumn(array)
    if column.unit:
        node.SetColumnUnitLabel(column.name, column.unit)
    if column.description:
        node.SetColumnDescription(column.name, column.description)


def columns_to_table_node(columns: Sequence[conversions.TableColumn], name: str, node=None):
    """A vtkMRMLTableNode (new or emptied) holding ``columns`` with their units and descriptions."""
    node = _new_or_renamed("vtkMRMLTableNode", name, node)
    node.RemoveAllColumns()
    for column in columns:
        _add_column(node, column)
    node.Modified()
    return node


def set_table_column(node, name: str, values: Sequence[float | None], unit: str = "", description: str = ""):
    """Put (or replace) the number column ``name`` in a table, one value per row (None: empty, shown as nan)."""
    if len(values) != node.GetNumberOfRows():
        raise ValueError(f"{len(values)} values for the {node.GetNumberOfRows()} rows of {_name(node)}")
    index = node.GetColumnIndex(name)
    if index >= 0:
        node.RemoveColumn(index)
    texts = [conversions.cell_text(value, "double") for value in values]
    _add_column(node, conversions.TableColumn(name, "double", texts, unit, description))
    node.Modified()


def report_to_table_node(report: Report, name: str, node=None):
    """The report's rows as a table (one row per finding or structure)."""
    return columns_to_table_node(conversions.report_table_columns(report), name, node)


def report_summary_to_table_node(report: Report, name: str, node=None):
    """The report's summary values (quantity, value, unit) as a table."""
    return columns_to_table_node(conversions.report_summary_columns(report), name, node)


def classification_to_table_node(classification: Classification, name: str, node=None):
    """Per-image then per-group class probabilities as a table."""
    return columns_to_table_node(conversions.classification_table_columns(classification), name, node)
