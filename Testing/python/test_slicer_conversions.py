"""The pure Slicer-bridge arithmetic: geometry, array layout, LPS/RAS boxes, grid transforms, tables, segments."""

from __future__ import annotations

import math
import subprocess
import sys

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from radassist.io.sitk_bridge import array_to_sitk, geometry_of
from radassist.results.detections import Detection
from radassist.results.displacement import DisplacementField
from radassist.results.segments import Code, ReviewStatus, Segment, Terminology
from radassist.results.tables import Classification, ClassifiedImage, Report
from radassist.slicer import conversions as conv
from radassist.volume import Geometry, lps_to_ras

# -- strategies ---------------------------------------------------------------------------------------------------

finite = st.floats(min_value=-500, max_value=500, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0.05, max_value=20, allow_nan=False, allow_infinity=False)


@st.composite
def rotations(draw) -> np.ndarray:
    """A random rotation (from a quaternion), possibly with one axis flipped (a left-handed grid)."""
    q = np.array([draw(st.floats(-1, 1)) for _ in range(4)])
    if np.linalg.norm(q) < 0.1:
        q = np.array([1.0, 0.0, 0.0, 0.0])
    w, x, y, z = q / np.linalg.norm(q)
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    if draw(st.booleans()):
        rotation[:, draw(st.integers(0, 2))] *= -1
    return rotation


@st.composite
def geometries(draw) -> Geometry:
    shape = tuple(draw(st.integers(1, 40)) for _ in range(3))
    return Geometry(shape=shape, spacing=tuple(draw(positive) for _ in range(3)),
                    origin=tuple(draw(finite) for _ in range(3)), direction=tuple(draw(rotations()).ravel()))


# -- imports ------------------------------------------------------------------------------------------------------

def test_pure_bridge_modules_import_without_slicer():
    code = ("import sys, radassist.slicer, radassist.slicer.conversions, radassist.slicer.dependencies, "
            "radassist.runtime.jobs; bad = {'slicer', 'vtk', 'qt', 'ctk'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- volumes ------------------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(geometries())
def test_ijk_to_ras_round_trips_through_slicer_matrix(geometry):
    back = conv.geometry_from_ijk_to_ras(geometry.ijk_to_ras, geometry.shape)
    assert back.same_grid(geometry, tolerance=1e-6)
    assert min(back.spacing) > 0


@settings(max_examples=60, deadline=None)
@given(geometries(), st.lists(st.tuples(finite, finite, finite), min_size=1, max_size=5))
def test_ijk_to_ras_places_voxels_where_lps_geometry_does(geometry, points):
    ijk = np.asarray(points)
    homogeneous = np.c_[ijk, np.ones(len(ijk))]
    ras = (geometry.ijk_to_ras @ homogeneous.T).T[:, :3]
    np.testing.assert_allclose(ras, lps_to_ras(geometry.ijk_to_world(ijk)), atol=1e-6)


def test_rotated_direction_hand_computed():
    # i points posterior (+y LPS), j points right (-x LPS), k superior; spacing 2, 3, 4 mm.
    geometry = Geometry(shape=(5, 6, 7), spacing=(2, 3, 4), origin=(10, 20, 30),
                        direction=(0, -1, 0, 1, 0, 0, 0, 0, 1))
    expected = np.array([[0, 3, 0, -10], [-2, 0, 0, -20], [0, 0, 4, 30], [0, 0, 0, 1]], dtype=float)
    np.testing.assert_allclose(geometry.ijk_to_ras, expected)
    # Voxel (1, 0, 0) is 2 mm posterior of the origin: LPS (10, 22, 30) = RAS (-10, -22, 30).
    np.testing.assert_allclose(expected @ [1, 0, 0, 1], [-10, -22, 30, 1])
    back = conv.geometry_from_ijk_to_ras(expected, (5, 6, 7))
    assert back.spacing == (2, 3, 4)
    np.testing.assert_allclose(back.direction_matrix, geometry.direction_matrix, atol=1e-12)


def test_flipped_axis_becomes_positive_spacing_with_flipped_direction():
    # Slicer matrix: i runs right (+x RAS = -x LPS), j runs posterior (-y RAS = +y LPS), k superior.
    matrix = np.diag([2.0, -3.0, 4.0, 1.0])
    geometry = conv.geometry_from_ijk_to_ras(matrix, (2, 2, 2))
    assert geometry.spacing == (2.0, 3.0, 4.0)
    np.testing.assert_allclose(geometry.direction_matrix, np.diag([-1.0, 1.0, 1.0]))
    np.testing.assert_allclose(geometry.ijk_to_ras, matrix)


def test_negative_spacing_is_refused():
    with pytest.raises(ValueError, match="spacing"):
        Geometry(shape=(2, 2, 2), spacing=(1.0, -1.0, 1.0))


@pytest.mark.parametrize("matrix, problem", [
    (np.array([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float), "perpendicular"),
    (np.diag([1.0, 0.0, 1.0, 1.0]), "zero-length"),
    (np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], dtype=float), "last row"),
    (np.full((4, 4), np.nan), "finite"),
    (np.eye(3), "4x4"),
])
def test_bad_slicer_matrices_are_refused(matrix, problem):
    with pytest.raises(ValueError, match=problem):
        conv.geometry_from_ijk_to_ras(matrix, (2, 2, 2))


def test_real_ct_matches_the_matrix_slicer_wrote_for_it(test_data):
    """Slicer stored the IJK-to-RAS of CTChest4 in the segmentation's 'Reference image geometry'."""
    image = sitk.ReadImage(str(test_data / "slicer" / "CTChest4.nrrd"))
    geometry = geometry_of(image)
    header = nrrd.read_header(str(test_data / "slicer" / "Segmentation.seg.nrrd"))
    parameters = header["Segmentation_ConversionParameters"]
    reference = parameters.split("Reference image geometry|")[1].split("|")[0]
    numbers = [float(v) for v in reference.strip(";").split(";")]
    slicer_matrix = np.array(numbers[:16]).reshape(4, 4)
    extent = [int(v) for v in numbers[16:22]]
    np.testing.assert_allclose(geometry.ijk_to_ras, slicer_matrix, atol=1e-6)
    dimensions = (extent[1] + 1, extent[3] + 1, extent[5] + 1)
    assert conv.shape_from_vtk_dimensions(dimensions) == geometry.shape
    back = conv.geometry_from_ijk_to_ras(slicer_matrix, geometry.shape)
    assert back.same_grid(geometry)


def test_array_layout_is_kji(test_data):
    image = sitk.ReadImage(str(test_data / "slicer" / "CTChest4.nrrd"))
    array = sitk.GetArrayFromImage(image)
    dimensions = image.GetSize()  # (i, j, k), like vtkImageData.GetDimensions()
    conv.check_array_layout(array.shape, dimensions)
    assert conv.vtk_dimensions(array.shape) == dimensions
    # Voxel (i=5, j=7, k=3) is array[3, 7, 5].
    assert array[3, 7, 5] == image.GetPixel(5, 7, 3)
    with pytest.raises(ValueError, match=r"\(k, j, i\)"):
        conv.check_array_layout(array.transpose(2, 1, 0).shape, dimensions)


def test_slicer_compatible_array_types():
    small = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    narrowed = conv.slicer_compatible_array(small)
    assert narrowed.dtype == np.int32 and np.array_equal(narrowed, small)
    big = small * 2**40
    widened = conv.slicer_compatible_array(big)
    assert widened.dtype == np.float64 and np.array_equal(widened, big.astype(np.float64))
    assert conv.slicer_compatible_array(small > 3).dtype == np.uint8
    assert conv.slicer_compatible_array(small.astype(np.float16)).dtype == np.float32
    strided = conv.slicer_compatible_array(small.astype(np.int16).transpose(2, 1, 0))
    assert strided.flags.c_contiguous and strided.dtype == np.int16


def test_scalar_voxels_from_vector_volumes():
    grey = np.random.default_rng(0).integers(0, 255, (1, 4, 5)).astype(np.uint8)
    rgb = np.stack([grey] * 3, axis=-1)
    np.testing.assert_array_equal(conv.scalar_voxels(rgb, is_vector=True), grey)
    np.testing.assert_array_equal(conv.scalar_voxels(grey, is_vector=False), grey)
    colour = rgb.copy()
    colour[..., 1] += 1
    with pytest.raises(ValueError, match="colour"):
        conv.scalar_voxels(colour, is_vector=True)


def test_parent_transform_moves_the_grid():
    geometry = Geometry(shape=(2, 2, 2), spacing=(1, 2, 3), origin=(5, 6, 7))
    shift = np.eye(4)
    shift[:3, 3] = (1, 2, 3)  # RAS
    moved = conv.geometry_from_ijk_to_ras(conv.world_ijk_to_ras(geometry.ijk_to_ras, shift), geometry.shape)
    np.testing.assert_allclose(moved.origin, (5 - 1, 6 - 2, 7 + 3))
    np.testing.assert_allclose(conv.world_ijk_to_ras(geometry.ijk_to_ras, None), geometry.ijk_to_ras)


# -- boxes --------------------------------------------------------------------------------------------------------

def test_detection_to_roi_hand_computed():
    detection = Detection(center=(10, -20, 30), size=(4, 5, 6), probability=0.875, label="nodule",
                          diameter_mm=5.5, status=ReviewStatus.COMPLETED)
    roi = conv.detection_to_roi(detection, "Nodule 1")
    assert roi.center_ras == (-10.0, 20.0, 30.0)
    assert roi.size == (4.0, 5.0, 6.0)
    assert roi.name == "Nodule 1"
    assert roi.description == "nodule, probability 0.88, diameter 5.5 mm"
    assert roi.attributes == {conv.PROBABILITY_ATTRIBUTE: "0.875", conv.SCORE_NAME_ATTRIBUTE: "probability",
                              conv.LABEL_ATTRIBUTE: "nodule", conv.STATUS_ATTRIBUTE: "completed",
                              conv.DIAMETER_ATTRIBUTE: "5.5"}


def test_a_heuristic_score_is_called_a_score_on_the_roi_and_stays_one():
    detection = Detection(center=(0, 0, 0), size=(6, 6, 6), probability=0.42, label="nodule candidate",
                          diameter_mm=6.0, score_name="score")
    roi = conv.detection_to_roi(detection, "Nodule 1")
    assert roi.description == "nodule candidate, score 0.42, diameter 6.0 mm"
    back = conv.roi_to_detection(roi.center_ras, roi.size, np.eye(3), roi.attributes)
    assert back.score_name == "score" and back.probability == 0.42


@settings(max_examples=60, deadline=None)
@given(st.tuples(finite, finite, finite), st.tuples(positive, positive, positive),
       st.floats(0, 1), st.one_of(st.none(), positive), st.sampled_from(list(ReviewStatus)))
def test_detection_roi_round_trip(center, size, probability, diameter, status):
    detection = Detection(center=center, size=size, probability=probability, label="lesion",
                          diameter_mm=diameter, status=status)
    roi = conv.detection_to_roi(detection, "x")
    back = conv.roi_to_detection(roi.center_ras, roi.size, np.eye(3), roi.attributes)
    np.testing.assert_allclose(back.center, detection.center)
    np.testing.assert_allclose(back.size, detection.size)
    assert back.probability == detection.probability
    assert back.label == "lesion" and back.status == status
    assert back.diameter_mm == detection.diameter_mm


def test_rotated_roi_becomes_its_bounding_box():
    quarter_turn = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    back = conv.roi_to_detection((0, 0, 0), (4, 10, 2), quarter_turn)
    np.testing.assert_allclose(back.size, (10, 4, 2))
    c = math.sqrt(0.5)
    eighth_turn = np.array([[c, -c, 0], [c, c, 0], [0, 0, 1]])
    back = conv.roi_to_detection((0, 0, 0), (4, 10, 2), eighth_turn)
    np.testing.assert_allclose(back.size, (14 * c, 14 * c, 2))


def test_hand_drawn_roi_without_attributes():
    detection = conv.roi_to_detection((1, 2, 3), (4, 5, 6))
    assert detection.center == (-1.0, -2.0, 3.0)
    assert detection.probability == 1.0
    assert detection.status == ReviewStatus.IN_PROGRESS
    assert detection.diameter_mm is None


# -- displacement fields ------------------------------------------------------------------------------------------

def _smooth_field(geometry: Geometry, seed: int = 0) -> DisplacementField:
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(0, 1, n) for n in geometry.shape], indexing="ij")
    vectors = np.stack([3 * np.sin(2 * x + rng.uniform()) + y, -2 * np.cos(3 * y) + z, 1.5 * x * z - 0.5],
                       axis=-1)
    return DisplacementField(vectors=vectors, geometry=geometry)


def test_uniform_field_hand_computed():
    geometry = Geometry(shape=(2, 3, 4), spacing=(1, 2, 3), origin=(10, 20, 30))
    field = DisplacementField(vectors=np.broadcast_to([1.0, 2.0, 3.0], (2, 3, 4, 3)), geometry=geometry)
    spec = conv.displacement_to_grid_transform(field)
    assert spec.set_as == "SetAndObserveTransformFromParent"
    assert spec.origin_ras == (-10.0, -20.0, 30.0)
    assert spec.spacing == (1.0, 2.0, 3.0)
    assert spec.dimensions == (4, 3, 2)
    np.testing.assert_allclose(spec.direction_ras, np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(spec.vectors_ras[1, 2, 3], [-1.0, -2.0, 3.0])
    np.testing.assert_allclose(spec.grid_direction_4x4[:3, :3], spec.direction_ras)
    assert spec.vectors_ras.flags.c_contiguous  # x fastest, as vtkImageData stores scalars


def test_grid_transform_maps_points_like_itk_reads_the_same_field():
    """Slicer's FromParent grid transform (RAS) must move every fixed point where ITK's transform (LPS) does."""
    direction = np.array([[0.0, -1.0, 0.0], [0.8, 0.0, -0.6], [0.6, 0.0, 0.8]])
    geometry = Geometry(shape=(6, 7, 8), spacing=(2.0, 1.5, 3.0), origin=(-12.0, 30.0, 7.0),
                        direction=tuple(direction.ravel()))
    field = _smooth_field(geometry)
    image = array_to_sitk(field.vectors, geometry, is_vector=True)
    itk_transform = sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64))
    spec = conv.displacement_to_grid_transform(field)

    rng = np.random.default_rng(1)
    zyx = rng.uniform(0.2, 1, (25, 3)) * (np.array(geometry.shape) - 1.2)
    points_lps = geometry.zyx_to_world(zyx)
    moved_itk = np.array([itk_transform.TransformPoint(tuple(p)) for p in points_lps])
    moved_slicer = conv.apply_grid_transform_from_parent(spec, lps_to_ras(points_lps))
    np.testing.assert_allclose(moved_slicer, lps_to_ras(moved_itk), atol=1e-6)
    np.testing.assert_allclose(moved_itk, field.transform_points(points_lps), atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(geometries())
def test_grid_transform_round_trip(geometry):
    geometry = geometry.with_shape(tuple(min(n, 6) for n in geometry.shape))
    field = _smooth_field(geometry)
    back = conv.grid_transform_to_displacement(conv.displacement_to_grid_transform(field))
    assert back.geometry.same_grid(geometry, tolerance=1e-6)
    np.testing.assert_allclose(back.vectors, field.vectors)


# -- tables -------------------------------------------------------------------------------------------------------

def test_report_columns():
    report = Report(title="Liver", rows=[
        {"structure": "liver", "volume_ml": 1523.25, "lesions": 3},
        {"structure": "tumour 1", "volume_ml": 12.5, "lesions": None, "enhancing": True},
    ], summary={"liver volume": 1523.25, "tumour burden": 0.0082}, units={"volume_ml": "ml", "liver volume": "ml"})
    columns = {c.name: c for c in conv.report_table_columns(report)}
    assert list(columns) == ["structure", "volume_ml", "lesions", "enhancing"]
    assert columns["structure"].value_type == "string"
    assert columns["structure"].values == ["liver", "tumour 1"]
    assert columns["volume_ml"].value_type == "double" and columns["volume_ml"].unit == "ml"
    assert [float(v) for v in columns["volume_ml"].values] == [1523.25, 12.5]
    assert columns["lesions"].value_type == "double" and columns["lesions"].values[0] == "3.0"
    assert math.isnan(float(columns["lesions"].values[1]))
    assert columns["enhancing"].value_type == "string" and columns["enhancing"].values == ["", "true"]

    summary = conv.report_summary_columns(report)
    assert [c.name for c in summary] == ["quantity", "value", "unit"]
    assert summary[0].values == ["liver volume", "tumour burden"]
    assert summary[1].value_type == "double" and [float(v) for v in summary[1].values] == [1523.25, 0.0082]
    assert summary[2].values == ["ml", ""]


def test_integer_columns_and_full_precision():
    report = Report(title="n", rows=[{"label": np.int64(5), "p": 0.1 + 0.2}, {"label": 7, "p": 1 / 3}])
    columns = {c.name: c for c in conv.report_table_columns(report)}
    assert columns["label"].value_type == "int" and columns["label"].values == ["5", "7"]
    assert float(columns["p"].values[0]) == 0.1 + 0.2 and float(columns["p"].values[1]) == 1 / 3


def test_classification_columns():
    classification = Classification(
        images=[ClassifiedImage("L-CC", {"benign": 0.1356, "malignant": 0.0081}, {"side": "L", "view": "CC"}),
                ClassifiedImage("R-CC", {"benign": 0.8929, "malignant": 0.3259}, {"side": "R", "view": "CC"})],
        groups=[ClassifiedImage("R", {"benign": 0.92, "malignant": 0.25}, {"side": "R"})])
    columns = {c.name: c for c in conv.classification_table_columns(classification)}
    assert list(columns) == ["id", "level", "side", "view", "benign probability", "malignant probability"]
    assert columns["id"].values == ["L-CC", "R-CC", "R"]
    assert columns["level"].values == ["image", "image", "group"]
    assert columns["view"].values == ["CC", "CC", ""]
    assert columns["benign probability"].value_type == "double"
    assert [float(v) for v in columns["malignant probability"].values] == [0.0081, 0.3259, 0.25]


# -- segments -----------------------------------------------------------------------------------------------------

LUNG = Terminology(category=Code("SCT", "123037004", "Anatomical Structure"), type=Code("SCT", "39607008", "Lung"),
                   type_modifier=Code("SCT", "24028007", "Right"))
RIGHT_LUNG_ENTRY = ("Segmentation category and type - 3D Slicer General Anatomy list~"
                    "SCT^123037004^Anatomical Structure~SCT^39607008^Lung~SCT^24028007^Right~"
                    "Anatomic codes - DICOM master list~^^~^^")


def _slicer_segment_tags(test_data) -> list[dict[str, str]]:
    header = nrrd.read_header(str(test_data / "slicer" / "Segmentation.seg.nrrd"))
    return [dict(tag.split(":", 1) for tag in value.split("|") if tag)
            for key, value in header.items() if key.startswith("Segment") and key.endswith("_Tags")]


def test_terminology_entry_hand_computed():
    segment = Segment(name="right lung", label_value=5, terminology=LUNG)
    assert conv.terminology_entry(segment) == RIGHT_LUNG_ENTRY
    assert conv.terminology_entry(Segment(name="unnamed", label_value=1)) == ""


def test_every_segment_slicer_wrote_comes_back_unchanged(test_data):
    """Terminology (with its context names) and status read from Slicer's file are given back identically."""
    tags = _slicer_segment_tags(test_data)
    assert len(tags) == 7
    for index, tag in enumerate(tags):
        status = conv.status_to_slicer(ReviewStatus(tag["Segmentation.Status"]))
        segment = conv.segment_from_slicer(f"Segment_{index + 1}", "s", (0.5, 0.5, 0.5), tag["TerminologyEntry"],
                                           status, index + 1)
        assert segment.terminology is not None and segment.status == ReviewStatus.IN_PROGRESS
        spec = conv.segment_spec(segment)
        assert spec.terminology_entry == tag["TerminologyEntry"]
        assert spec.status == 1  # InProgress
    assert tags[4]["TerminologyEntry"] == RIGHT_LUNG_ENTRY


def test_unusable_terminology_is_dropped():
    segment = conv.segment_from_slicer("Segment_1", "edited", (0.2, 0.2, 0.2), "a~b", 0, 1)
    assert segment.terminology is None and segment.extra == {}
    no_type = "ctx~SCT^1^a~^^~^^~actx~^^~^^"
    assert conv.segment_from_slicer("Segment_1", "x", (0, 0, 0), no_type, 0, 1).terminology is None


def test_status_matches_slicer_enum():
    # vtkSlicerSegmentationsModuleLogic: NotStarted=0, InProgress=1, Completed=2, Flagged=3.
    assert [conv.status_to_slicer(s) for s in ("notstarted", "inprogress", "completed", "flagged")] == [0, 1, 2, 3]
    assert all(conv.status_from_slicer(conv.status_to_slicer(s)) == s for s in ReviewStatus)
    assert conv.status_from_slicer(-1) == ReviewStatus.NOT_STARTED


def test_segment_spec_and_back():
    segment = Segment(name="right lung", label_value=5, color=(0.1, 0.8, 0.3), terminology=LUNG,
                      status=ReviewStatus.FLAGGED)
    spec = conv.segment_spec(segment)
    assert (spec.segment_id, spec.name, spec.label_value, spec.status) == ("Segment_5", "right lung", 5, 3)
    assert spec.color == (0.1, 0.8, 0.3)
    back = conv.segment_from_slicer(spec.segment_id, spec.name, spec.color, spec.terminology_entry, spec.status, 5)
    assert (back.name, back.label_value, back.color, back.terminology, back.status, back.segment_id) == (
        segment.name, 5, segment.color, LUNG, ReviewStatus.FLAGGED, "Segment_5")
    assert conv.segment_spec(back).terminology_entry == spec.terminology_entry
    plain = conv.segment_from_slicer("Segment_9", "edited", (1.2, 0.5, -0.1), "", -1, 0)
    assert plain.color == (1.0, 0.5, 0.0) and plain.terminology is None and plain.label_value == 1
    assert plain.status == ReviewStatus.NOT_STARTED
