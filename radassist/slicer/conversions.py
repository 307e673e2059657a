"""Pure arithmetic between RadAssist's LPS results and what Slicer's MRML nodes need. No slicer/vtk import here.

:mod:`radassist.slicer.nodes` is a thin layer that copies the values computed here into nodes, so every rule that
can be wrong (axis order, LPS vs RAS, transform direction, terminology strings, table types) lives in this file
and is tested in plain pytest.

Facts about Slicer relied on:

* A volume node's voxel array (``slicer.util.arrayFromVolume``) is indexed (k, j, i) -- RadAssist's (z, y, x) --
  and vtkImageData's dimensions are (i, j, k). Its geometry is one 4x4 IJK-to-RAS matrix
  (:attr:`Geometry.ijk_to_ras` and :meth:`Geometry.from_ijk_to_ras` convert it; this module validates it).
* World coordinates in Slicer are RAS; RadAssist's are LPS. The two differ by negating x and y.
* Segment review status is stored as the ``Segmentation.Status`` tag and set through
  ``vtkSlicerSegmentationsModuleLogic.SetSegmentStatus`` with the enum NotStarted, InProgress, Completed, Flagged.
* A segment's terminology is one ``TerminologyEntry`` string:
  ``context~category~type~typeModifier~regionContext~region~regionModifier``, each code ``scheme^value^meaning``
  (serialised by :mod:`radassist.results.terminology`, shared with the .seg.nrrd writer).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from radassist.results.detections import Detection
from radassist.results.displacement import DisplacementField
from radassist.results.segments import ReviewStatus, Segment
from radassist.results.tables import Classification, Report
from radassist.results.terminology import (ANATOMIC_CONTEXT_KEY, ANATOMIC_DICOM_MASTER, TERMINOLOGY_CONTEXT_KEY,
                                          from_slicer_string, to_slicer_string)
from radassist.volume import Geometry, lps_to_ras, ras_to_lps

# ---------------------------------------------------------------------------------------------------------------
# Volumes
# ---------------------------------------------------------------------------------------------------------------


def vtk_dimensions(shape_zyx: Sequence[int]) -> tuple[int, int, int]:
    """vtkImageData dimensions (i, j, k) for an array of shape (z, y, x)."""
    z, y, x = (int(n) for n in shape_zyx[:3])
    return (x, y, z)


def shape_from_vtk_dimensions(dimensions: Sequence[int]) -> tuple[int, int, int]:
    """Array shape (z, y, x) of a vtkImageData with dimensions (i, j, k)."""
    i, j, k = (int(n) for n in dimensions)
    return (k, j, i)


def check_array_layout(array_shape: Sequence[int], dimensions: Sequence[int]) -> None:
    """Raise ValueError unless an array from Slicer is (k, j, i) for vtkImageData dimensions (i, j, k)."""
    expected = shape_from_vtk_dimensions(dimensions)
    if tuple(int(n) for n in array_shape[:3]) != expected:
        raise ValueError(f"voxel array of shape {tuple(array_shape)} does not match image dimensions "
                         f"{tuple(dimensions)} (expected (k, j, i) = {expected})")


def slicer_compatible_array(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy-or-view of ``array`` with a voxel type Slicer volume nodes accept.

    Slicer refuses 64-bit integers (``updateVolumeFromArray`` rejects VTK_LONG_LONG): they become 32-bit when the
    values fit, float64 otherwise. Booleans become uint8 and float16 becomes float32.
    """
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype in (np.int64, np.uint64):
        narrow = np.int32 if array.dtype == np.int64 else np.uint32
        limits = np.iinfo(narrow)
        fits = array.size == 0 or (array.min() >= limits.min and array.max() <= limits.max)
        array = array.astype(narrow if fits else np.float64)
    return np.ascontiguousarray(array)


def scalar_voxels(array: np.ndarray, is_vector: bool) -> np.ndarray:
    """The (z, y, x) scalar voxels of a Slicer volume array; a vector volume is accepted only when its components
    are all equal (a grey image stored as RGB), because RadAssist's models take one channel."""
    array = np.asarray(array)
    if not is_vector or array.ndim == 3:
        if array.ndim != 3:
            raise ValueError(f"expected a 3-D voxel array, got shape {array.shape}")
        return array
    if array.ndim != 4:
        raise ValueError(f"expected a (z, y, x, components) array, got shape {array.shape}")
    first = array[..., 0]
    components = array.shape[-1]
    colour = array[..., :3] if components >= 3 else array
    if components == 1 or all(np.array_equal(first, colour[..., c]) for c in range(colour.shape[-1])):
        return first
    raise ValueError(f"a colour image with {components} different channels; RadAssist needs a greyscale volume")


def geometry_from_ijk_to_ras(matrix: np.ndarray, shape_zyx: Sequence[int], tolerance: float = 1e-4) -> Geometry:
    """Check a Slicer IJK-to-RAS matrix and turn it into a Geometry (through :meth:`Geometry.from_ijk_to_ras`).

    Flipped axes come out as positive spacing with the flip in the direction matrix, as in ITK; sheared or
    singular matrices are refused with a ValueError that says why.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"IJK-to-RAS must be a finite 4x4 matrix, got {matrix.tolist()}")
    if not np.allclose(matrix[3], (0.0, 0.0, 0.0, 1.0), atol=1e-9):
        raise ValueError(f"IJK-to-RAS last row must be (0, 0, 0, 1), got {matrix[3].tolist()}")
    columns = matrix[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 1e-12):
        raise ValueError(f"IJK-to-RAS has a zero-length axis (spacing {spacing.tolist()})")
    unit = columns / spacing
    if not np.allclose(unit.T @ unit, np.eye(3), atol=tolerance):
        raise ValueError("IJK-to-RAS axes are not perpendicular (a sheared grid); resample or harden it first")
    return Geometry.from_ijk_to_ras(matrix, tuple(int(n) for n in shape_zyx))


def world_ijk_to_ras(ijk_to_ras: np.ndarray, parent_to_world: np.ndarray | None) -> np.ndarray:
    """IJK-to-RAS in world coordinates for a volume under a linear parent transform (None: no transform)."""
    ijk_to_ras = np.asarray(ijk_to_ras, dtype=float)
    if parent_to_world is None:
        return ijk_to_ras
    return np.asarray(parent_to_world, dtype=float) @ ijk_to_ras


# ---------------------------------------------------------------------------------------------------------------
# Boxes: Detection (LPS) <-> Markups ROI (RAS)
# ---------------------------------------------------------------------------------------------------------------

ATTRIBUTE_PREFIX = "RadAssist."
PROBABILITY_ATTRIBUTE = ATTRIBUTE_PREFIX + "Probability"  # the 0..1 ranking value, whatever SCORE_NAME says it is
SCORE_NAME_ATTRIBUTE = ATTRIBUTE_PREFIX + "ScoreName"  # "probability" (a model's) or "score" (a heuristic's)
LABEL_ATTRIBUTE = ATTRIBUTE_PREFIX + "Label"
DIAMETER_ATTRIBUTE = ATTRIBUTE_PREFIX + "DiameterMm"
STATUS_ATTRIBUTE = ATTRIBUTE_PREFIX + "Status"


@dataclass
class RoiBox:
    """What one Markups ROI node needs: centre in RAS, size along the ROI axes, texts and node attributes."""

    center_ras: tuple[float, float, float]
    size: tuple[float, float, float]
    name: str
    description: str
    attributes: dict[str, str] = field(default_factory=dict)


def detection_description(detection: Detection) -> str:
    """The one line a reader sees on the ROI: what, how likely (a model's probability) or how it ranks (a
    heuristic score, never called a probability), how big."""
    text = f"{detection.label}, {detection.score_name} {detection.probability:.2f}"
    if detection.diameter_mm is not None:
        text += f", diameter {detection.diameter_mm:.1f} mm"
    return text


def detection_to_roi(detection: Detection, name: str) -> RoiBox:
    """An LPS axis-aligned box as a Slicer ROI. Flipping x and y moves the centre but keeps the box's extent along
    each axis, so the size is unchanged and the ROI keeps Slicer's default (RAS-aligned) orientation."""
    attributes = {
        PROBABILITY_ATTRIBUTE: repr(detection.probability),
        SCORE_NAME_ATTRIBUTE: detection.score_name,
        LABEL_ATTRIBUTE: detection.label,
        STATUS_ATTRIBUTE: detection.status.value,
    }
    if detection.diameter_mm is not None:
        attributes[DIAMETER_ATTRIBUTE] = repr(detection.diameter_mm)
    center = tuple(float(c) for c in lps_to_ras(np.asarray(detection.center)))
    return RoiBox(center_ras=center, size=tuple(detection.size), name=name,
                  description=detection_description(detection), attributes=attributes)


def roi_to_detection(center_ras: Sequence[float], size: Sequence[float], axes_ras: np.ndarray | None = None,
                     attributes: Mapping[str, str] | None = None) -> Detection:
    """A Detection (LPS) from an ROI's world centre, size and axes (columns, RAS) and its RadAssist attributes.

    ROIs drawn by hand carry no attributes: they become findings of probability 1 marked as in progress. A box the
    user rotated becomes the smallest axis-aligned box that holds it.
    """
    attributes = dict(attributes or {})
    center_lps = ras_to_lps(np.asarray(center_ras, dtype=float))
    size_world = np.asarray(size, dtype=float)
    if axes_ras is not None:
        size_world = np.abs(np.asarray(axes_ras, dtype=float)) @ size_world
    diameter = attributes.get(DIAMETER_ATTRIBUTE)
    status = attributes.get(STATUS_ATTRIBUTE, ReviewStatus.IN_PROGRESS.value)
    try:
        status = ReviewStatus(status)
    except ValueError:
        status = ReviewStatus.IN_PROGRESS
    score_name = attributes.get(SCORE_NAME_ATTRIBUTE, "probability")
    return Detection(center=tuple(center_lps), size=tuple(size_world),
                     probability=float(attributes.get(PROBABILITY_ATTRIBUTE, 1.0)),
                     label=attributes.get(LABEL_ATTRIBUTE, "finding"),
                     diameter_mm=float(diameter) if diameter not in (None, "") else None,
                     status=status, score_name=score_name if score_name in ("probability", "score") else "probability")


# ---------------------------------------------------------------------------------------------------------------
# Displacement field -> grid transform
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class GridTransformSpec:
    """Everything a ``vtkOrientedGridTransform`` in a ``vtkMRMLGridTransformNode`` needs, already in RAS.

    ``vectors_ras[z, y, x]`` = displacement in RAS mm on a grid with ``origin_ras``, ``spacing`` (i, j, k) and
    ``direction_ras`` (3x3, columns = RAS directions of the i, j, k axes). The transform maps a fixed-image (world)
    point to the moving image, which is Slicer's *TransformFromParent*: ``set_as`` names the node method to use.
    """

    vectors_ras: np.ndarray
    origin_ras: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction_ras: np.ndarray
    set_as: Literal["SetAndObserveTransformFromParent"] = "SetAndObserveTransformFromParent"

    @property
    def dimensions(self) -> tuple[int, int, int]:
        """vtkImageData dimensions (i, j, k) of the displacement grid."""
        return vtk_dimensions(self.vectors_ras.shape[:3])

    @property
    def grid_direction_4x4(self) -> np.ndarray:
        """The matrix for ``vtkOrientedGridTransform.SetGridDirectionMatrix``."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.direction_ras
        return matrix


def displacement_to_grid_transform(field: DisplacementField) -> GridTransformSpec:
    """Convert a RadAssist displacement field (LPS, fixed -> moving) into a Slicer grid transform.

    This reproduces what Slicer does when it loads the same field from an ITK displacement-field ``.h5`` file
    (vtkITKTransformConverter, vtkMRMLTransformStorageNode):

    * grid origin: x and y negated (LPS -> RAS); spacing unchanged;
    * grid direction: ``diag(-1, -1, 1) @ D_lps`` -- the x and y rows negated, so each axis keeps its voxels;
    * every vector: x and y components negated, z kept;
    * the voxel order is unchanged (x fastest), and the result is set with ``SetAndObserveTransformFromParent``:
      an ITK file holds a *resampling* transform, fixed (parent/world) point -> moving (child) point, which is
      exactly Slicer's "from parent" direction. Placing the moving volume under this node then shows it warped
      onto the fixed image, as the ITK resampler would. (Setting it as ToParent would apply the inverse warp.)

    Slicer also switches such a transform to cubic interpolation; :mod:`radassist.slicer.nodes` does the same.
    """
    geometry = field.geometry
    flip = np.diag([-1.0, -1.0, 1.0])
    vectors = np.ascontiguousarray(field.vectors * np.array([-1.0, -1.0, 1.0]), dtype=np.float64)
    return GridTransformSpec(
        vectors_ras=vectors,
        origin_ras=tuple(float(v) for v in lps_to_ras(np.asarray(geometry.origin))),
        spacing=geometry.spacing,
        direction_ras=flip @ geometry.direction_matrix,
    )


def grid_transform_to_displacement(spec: GridTransformSpec) -> DisplacementField:
    """Inverse of :func:`displacement_to_grid_transform` (for a grid transform stored as FromParent)."""
    flip = np.diag([-1.0, -1.0, 1.0])
    geometry = Geometry(shape=tuple(spec.vectors_ras.shape[:3]), spacing=spec.spacing,
                        origin=tuple(ras_to_lps(np.asarray(spec.origin_ras))),
                        direction=tuple((flip @ np.asarray(spec.direction_ras, dtype=float)).ravel()))
    return DisplacementField(vectors=np.asarray(spec.vectors_ras) * np.array([-1.0, -1.0, 1.0]), geometry=geometry)


def apply_grid_transform_from_parent(spec: GridTransformSpec, points_ras: np.ndarray) -> np.ndarray:
    """Map RAS points (N, 3) the way Slicer's FromParent grid transform does (linear interpolation, points inside
    the grid): p -> p + u(p). Used to check the conversion against ITK's own transform of the same field."""
    from scipy.ndimage import map_coordinates

    points = np.atleast_2d(np.asarray(points_ras, dtype=float))
    index_to_ras = np.asarray(spec.direction_ras, dtype=float) @ np.diag(spec.spacing)
    ijk = (points - np.asarray(spec.origin_ras)) @ np.linalg.inv(index_to_ras).T
    zyx = ijk[:, ::-1].T
    displacement = np.stack([map_coordinates(spec.vectors_ras[..., c], zyx, order=1, mode="nearest")
                             for c in range(3)], axis=-1)
    return points + displacement


# ---------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------

ValueType = Literal["string", "double", "int"]


@dataclass
class TableColumn:
    """One vtkMRMLTableNode column: name, value type (``vtkMRMLTableNode.GetValueTypeFromString``), cell texts."""

    name: str
    value_type: ValueType
    values: list[str]
    unit: str = ""
    description: str = ""


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def infer_value_type(values: Iterable[Any]) -> ValueType:
    """int when every cell is an integer, double when every cell is a number (missing ones become NaN), else
    string (booleans included, shown as true/false)."""
    values = list(values)
    present = [v for v in values if v is not None]
    if present and all(_is_integer(v) for v in values):
        return "int"
    if present and all(_is_number(v) for v in present):
        return "double"
    return "string"


def cell_text(value: Any, value_type: ValueType) -> str:
    """The text stored in a cell; numbers keep full precision (``repr``) so nothing is rounded away."""
    if value is None:
        return "nan" if value_type == "double" else ""
    if value_type == "int":
        return str(int(value))
    if value_type == "double":
        return repr(float(value))
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value)


def make_column(name: str, values: Sequence[Any], unit: str = "", description: str = "") -> TableColumn:
    value_type = infer_value_type(values)
    return TableColumn(name=name, value_type=value_type, values=[cell_text(v, value_type) for v in values],
                       unit=unit, description=description)


def _keys_in_order(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


def report_table_columns(report: Report) -> list[TableColumn]:
    """One column per key seen in the report's rows (first-seen order), with the report's units."""
    return [make_column(key, [row.get(key) for row in report.rows], unit=report.units.get(key, ""))
            for key in _keys_in_order(report.rows)]


def report_summary_columns(report: Report) -> list[TableColumn]:
    """The report's scalar summary as a three-column table: quantity, value, unit."""
    keys = list(report.summary)
    values = [report.summary[key] for key in keys]
    value_type = "double" if values and all(_is_number(v) for v in values) else "string"
    return [
        TableColumn("quantity", "string", [str(key) for key in keys]),
        TableColumn("value", value_type, [cell_text(v, value_type) for v in values]),
        TableColumn("unit", "string", [report.units.get(key, "") for key in keys]),
    ]


def classification_table_columns(classification: Classification) -> list[TableColumn]:
    """Rows = images then groups (``level`` says which); columns = id, level, attributes, one per class."""
    entries = [("image", item) for item in classification.images] + \
              [("group", item) for item in classification.groups]
    attribute_keys = _keys_in_order(item.attributes for _, item in entries)
    class_names = _keys_in_order(item.probabilities for _, item in entries)
    columns = [TableColumn("id", "string", [item.image_id for _, item in entries]),
               TableColumn("level", "string", [level for level, _ in entries])]
    columns += [make_column(key, [item.attributes.get(key) for _, item in entries]) for key in attribute_keys]
    columns += [make_column(f"{name} probability", [item.probabilities.get(name) for _, item in entries],
                            description=f"probability of {name}") for name in class_names]
    return columns


# ---------------------------------------------------------------------------------------------------------------
# Segments
# ---------------------------------------------------------------------------------------------------------------

# vtkSlicerSegmentationsModuleLogic::SegmentStatus enum order.
SLICER_STATUS_ORDER: tuple[ReviewStatus, ...] = (ReviewStatus.NOT_STARTED, ReviewStatus.IN_PROGRESS,
                                                 ReviewStatus.COMPLETED, ReviewStatus.FLAGGED)


def status_to_slicer(status: ReviewStatus | str) -> int:
    """The vtkSlicerSegmentationsModuleLogic status enum value for a review status."""
    return SLICER_STATUS_ORDER.index(ReviewStatus(status))


def status_from_slicer(value: int) -> ReviewStatus:
    """A review status from Slicer's enum value (-1, unknown, is read as not started)."""
    if 0 <= int(value) < len(SLICER_STATUS_ORDER):
        return SLICER_STATUS_ORDER[int(value)]
    return ReviewStatus.NOT_STARTED


def terminology_entry(segment: Segment) -> str:
    """The ``TerminologyEntry`` string for ``vtkSegment.SetTerminology`` ("" without terminology).

    Uses the same serialisation as the .seg.nrrd writer, including the context names remembered in
    ``Segment.extra`` when the segment was read from a Slicer file, so both paths give Slicer the same string.
    """
    if segment.terminology is None:
        return ""
    return to_slicer_string(segment.terminology, segment.extra.get(TERMINOLOGY_CONTEXT_KEY),
                            segment.extra.get(ANATOMIC_CONTEXT_KEY) or ANATOMIC_DICOM_MASTER)


@dataclass
class SegmentSpec:
    """What one vtkSegment needs: id, name, colour 0..1, terminology entry, status enum, source label."""

    segment_id: str
    name: str
    color: tuple[float, float, float]
    terminology_entry: str
    status: int
    label_value: int
    layer: int


def segment_spec(segment: Segment) -> SegmentSpec:
    return SegmentSpec(segment_id=segment.segment_id or f"Segment_{segment.label_value}", name=segment.name,
                       color=tuple(float(c) for c in segment.color), terminology_entry=terminology_entry(segment),
                       status=status_to_slicer(segment.status), label_value=segment.label_value,
                       layer=segment.layer)


def segment_from_slicer(segment_id: str, name: str, color: Sequence[float], terminology_entry: str | None,
                        status: int, label_value: int) -> Segment:
    """A Segment from what a vtkSegment holds. A terminology Slicer cannot have written (no category or type) is
    dropped; colours are clamped to 0..1; a missing or non-positive label value becomes 1."""
    color = tuple(min(max(float(c), 0.0), 1.0) for c in color[:3])
    terminology, extra = None, {}
    if terminology_entry:
        try:
            terminology, context, anatomic_context = from_slicer_string(terminology_entry)
        except ValueError:
            terminology = None
        else:
            extra[TERMINOLOGY_CONTEXT_KEY] = context
            if anatomic_context:
                extra[ANATOMIC_CONTEXT_KEY] = anatomic_context
    return Segment(name=name, label_value=label_value if label_value and label_value > 0 else 1, color=color,
                   terminology=terminology, status=status_from_slicer(status), segment_id=segment_id, extra=extra)


def nodule_table_columns(detections: Any, roi_ids: Sequence[str]) -> list[TableColumn]:
    """The LungTumorAI nodule table: rank, probability (Lung-DETR) or score (the classical detector's heuristic
    ranking), diameter, centre in RAS (for Slicer users) and the ID of each nodule's ROI node (which links a row to
    its box)."""
    from radassist.lung.pipeline import detections_table

    rows = detections_table(detections)
    name = detections.score_name
    ras = [lps_to_ras(d.center) for d in detections.items]
    meaning = "model probability 0..1" if name == "probability" else "heuristic score 0..1 (ranks, not a probability)"
    columns = [make_column("rank", [r["rank"] for r in rows]),
               make_column(name, [r[name] for r in rows], description=meaning),
               make_column("diameter", [r["diameter_mm"] for r in rows], unit="mm")]
    columns += [make_column(axis, [round(float(p[i]), 1) for p in ras], unit="mm", description="nodule centre, RAS")
                for i, axis in enumerate("RAS")]
    return columns + [make_column("roi", list(roi_ids))]
