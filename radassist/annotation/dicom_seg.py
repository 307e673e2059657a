"""LabelMap <-> DICOM Segmentation (binary), written with highdicom and referencing the source CT/MR series.

A PACS keeps labels as DICOM SEG: one set of frames per segment, each frame pointing at the source image it
segments, with the segment's meaning coded (SNOMED CT / DCM codes of :mod:`radassist.results.terminology`).
Binary segments may overlap, so overlapping segments survive exactly as they are.

Only the headers of the source series are read (no pixels), so compressed sources are fine. The label map is
first brought onto the series' own grid (nearest neighbour; exact when only the extent differs), and every
source image must be one slice of that grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from radassist import __version__
from radassist.annotation.changes import resample_labels
from radassist.annotation.provenance import ModelInfo
from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.results.labelmap import LabelMap
from radassist.results.segments import Code, Segment, Terminology
from radassist.results.terminology import ANATOMICAL_STRUCTURE, CATALOGUE, terminology_for
from radassist.volume import Geometry, SourceInfo

TISSUE = Code("SCT", "85756007", "Tissue")  # the type used for a segment nobody coded (DICOM CID 7151)
ALGORITHM_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")


@dataclass
class SourceSeries:
    """The headers of one source series, sorted along the slice normal, and the grid they span."""

    datasets: list[pydicom.Dataset]
    geometry: Geometry
    folder: Path

    @property
    def series_instance_uid(self) -> str:
        return str(self.datasets[0].SeriesInstanceUID)

    @property
    def sop_instance_uids(self) -> list[str]:
        return [str(d.SOPInstanceUID) for d in self.datasets]


def read_source_series(folder: str | Path, series_uid: str | None = None) -> SourceSeries:
    """The image headers of one DICOM series in ``folder`` (the only one, or ``series_uid``), sorted by position.

    DICOM SEG must reference its sources by UID, so a series without Study/Series/SOP Instance UIDs or without
    positions is refused with the reason."""
    from radassist.io.dicom import list_series, read_header

    folder = Path(folder)
    series = list_series(folder)
    if not series:
        raise InputError(folder, "holds no DICOM image series")
    chosen = [s for s in series if series_uid is None or s.series_instance_uid == series_uid]
    if len(chosen) != 1:
        listing = ", ".join(s.series_instance_uid or "(no UID)" for s in series)
        raise InputError(folder, f"cannot tell which series the segmentation belongs to (series: {listing})")
    datasets = [read_header(path) for path in chosen[0].files]
    for dataset, path in zip(datasets, chosen[0].files):
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
                        "FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if not str(dataset.get(keyword, "") or "").strip():
                raise InputError(path, f"has no {keyword}; a DICOM Segmentation must reference its source images "
                                       f"by it")
    orientation = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    order = np.argsort([float(np.dot(normal, [float(v) for v in d.ImagePositionPatient])) for d in datasets])
    datasets = [datasets[i] for i in order]
    positions = np.array([[float(v) for v in d.ImagePositionPatient] for d in datasets])
    steps = np.diff(positions @ normal)
    if len(steps) and (np.min(steps) <= 1e-3 or np.ptp(steps) > 0.01 * max(abs(float(np.mean(steps))), 1e-3)):
        raise InputError(folder, "the series' slices are not evenly spaced; cannot place a segmentation on them")
    pixel_spacing = [float(v) for v in datasets[0].PixelSpacing]  # (between rows, between columns)
    slice_spacing = float(np.mean(steps)) if len(steps) else float(datasets[0].get("SliceThickness", 1.0) or 1.0)
    geometry = Geometry(shape=(len(datasets), int(datasets[0].Rows), int(datasets[0].Columns)),
                        spacing=(pixel_spacing[1], pixel_spacing[0], slice_spacing), origin=tuple(positions[0]),
                        direction=tuple(np.stack([row, column, normal], axis=1).ravel()))
    return SourceSeries(datasets=datasets, geometry=geometry, folder=folder)


def _concept(code: Code):
    import highdicom as hd

    return hd.sr.CodedConcept(value=code.value, scheme_designator=code.scheme, meaning=code.meaning)


def segment_terminology(segment: Segment) -> Terminology:
    """The segment's own terminology, else the catalogue's entry of its name, else 'Anatomical structure /
    Tissue' (DICOM SEG requires a coded category and type for every segment)."""
    if segment.terminology is not None:
        return segment.terminology
    key = segment.name.strip().lower()
    if key in CATALOGUE:
        return terminology_for(key)
    return Terminology(category=ANATOMICAL_STRUCTURE, type=TISSUE)


def _description(number: int, segment: Segment, algorithm_type: str, model: ModelInfo | None):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    term = segment_terminology(segment)
    identification = None
    if algorithm_type != "MANUAL":
        identification = hd.AlgorithmIdentificationSequence(
            name=(model.model_id if model and model.model_id else "RadAssist"),
            family=codes.cid7162.ArtificialIntelligence,
            version=(model.version if model and model.version else __version__))
    description = hd.seg.SegmentDescription(
        segment_number=number, segment_label=segment.name[:64],
        segmented_property_category=_concept(term.category), segmented_property_type=_concept(term.type),
        algorithm_type=algorithm_type, algorithm_identification=identification,
        tracking_id=segment.segment_id, tracking_uid=hd.UID(),
        anatomic_regions=[_concept(term.anatomic_region)] if term.anatomic_region else None,
        display_color=hd.color.CIELabColor.from_rgb(*(int(round(c * 255)) for c in segment.color)))
    if term.type_modifier is not None:
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
            _concept(term.type_modifier)]
    return description


def write_dicom_seg(labelmap: LabelMap, source: SourceSeries | str | Path, path: str | Path, *,
                    series_uid: str | None = None, model: ModelInfo | None = None, annotator: str = "",
                    algorithm_type: str = "SEMIAUTOMATIC", series_description: str = "RadAssist segmentation",
                    series_number: int = 901) -> Path:
    """Write ``labelmap`` as a binary DICOM Segmentation of the source series (a folder or a SourceSeries).

    ``algorithm_type``: AUTOMATIC for an AI result as is, SEMIAUTOMATIC for an AI result a person corrected
    (the default: what an export holds), MANUAL for labels drawn by hand."""
    import highdicom as hd

    if algorithm_type not in ALGORITHM_TYPES:
        raise ValueError(f"algorithm_type must be one of {ALGORITHM_TYPES}, got {algorithm_type!r}")
    if not labelmap.segments:
        raise InputError(labelmap.source.path, "the segmentation has no segments to write")
    series = source if isinstance(source, SourceSeries) else read_source_series(
        source, series_uid or labelmap.source.series_instance_uid or None)
    on_grid = resample_labels(labelmap, series.geometry)
    masks = np.stack([on_grid.mask(segment) for segment in on_grid.segments], axis=-1)
    descriptions = [_description(i + 1, s, algorithm_type, model) for i, s in enumerate(on_grid.segments)]
    # A person name without '^' is one component (the family name): keep it whole rather than guess its parts.
    creator = (annotator if "^" in annotator else f"{annotator}^") if annotator else None
    try:
        segmentation = hd.seg.Segmentation(
            source_images=series.datasets, pixel_array=masks.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
            series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
            instance_number=1, manufacturer="RadAssist", manufacturer_model_name="RadAssist",
            software_versions=__version__, device_serial_number="none",
            content_description=series_description[:64], content_creator_name=creator, content_label="RADASSIST")
    except ValueError as error:  # highdicom's checks of the source images (one series, one size, ...)
        raise InputError(series.folder, f"cannot make a DICOM Segmentation of this series ({error})") from None
    segmentation.SeriesDescription = series_description[:64]
    path = Path(path)
    with atomic_path(path) as temp:
        segmentation.save_as(str(temp))
    return path


@dataclass(frozen=True)
class SegReferences:
    """What a DICOM SEG says it segments."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uids: list[str]
    frame_of_reference_uid: str


def referenced_uids(path: str | Path) -> SegReferences:
    """The study, series, images and frame of reference a DICOM SEG references."""
    dataset = _read(Path(path))
    series = dataset.ReferencedSeriesSequence[0]
    return SegReferences(str(dataset.StudyInstanceUID), str(series.SeriesInstanceUID),
                         [str(item.ReferencedSOPInstanceUID) for item in series.ReferencedInstanceSequence],
                         str(dataset.FrameOfReferenceUID))


def _read(path: Path):
    import highdicom as hd

    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        return hd.seg.segread(str(path))
    except Exception as error:  # pydicom/highdicom raise many types on a file that is not a SEG
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(path, f"not a readable DICOM Segmentation ({reason})") from None


def _code(item) -> Code:
    return Code(str(item.CodingSchemeDesignator), str(item.CodeValue), str(item.CodeMeaning))


def _segment_from(description, fallback_id: str) -> Segment:
    category = _code(description.SegmentedPropertyCategoryCodeSequence[0])
    type_item = description.SegmentedPropertyTypeCodeSequence[0]
    modifier = type_item.get("SegmentedPropertyTypeModifierCodeSequence")
    region = description.get("AnatomicRegionSequence")
    terminology = Terminology(category=category, type=_code(type_item),
                              type_modifier=_code(modifier[0]) if modifier else None,
                              anatomic_region=_code(region[0]) if region else None)
    color = (0.5, 0.5, 0.5)
    if "RecommendedDisplayCIELabValue" in description:
        import highdicom as hd

        rgb = hd.color.CIELabColor.from_dicom_value(description.RecommendedDisplayCIELabValue).to_rgb()
        color = tuple(min(max(c / 255.0, 0.0), 1.0) for c in rgb)
    return Segment(name=str(description.SegmentLabel), label_value=1, color=color, terminology=terminology,
                   segment_id=str(description.get("TrackingID", "") or fallback_id))


def _grid_of(dataset, positions: np.ndarray) -> Geometry:
    shared = dataset.SharedFunctionalGroupsSequence[0]
    orientation = np.array([float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient])
    measures = shared.PixelMeasuresSequence[0]
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    along = positions @ normal
    spacing = float(measures.get("SpacingBetweenSlices", 0) or 0) or float(measures.SliceThickness)
    count = int(round((along.max() - along.min()) / spacing)) + 1 if len(along) else 1
    origin = positions[int(np.argmin(along))]
    pixel = [float(v) for v in measures.PixelSpacing]
    return Geometry(shape=(count, int(dataset.Rows), int(dataset.Columns)), spacing=(pixel[1], pixel[0], spacing),
                    origin=tuple(origin), direction=tuple(np.stack([row, column, normal], axis=1).ravel()))


def read_dicom_seg(path: str | Path, reference: Geometry | None = None) -> LabelMap:
    """A DICOM SEG as a LabelMap (overlapping segments in extra layers), on ``reference`` when given (the source
    series' grid), else on the grid its frames span."""
    path = Path(path)
    dataset = _read(path)
    if str(dataset.SegmentationType) != "BINARY":
        raise InputError(path, f"is a {dataset.SegmentationType} segmentation; only BINARY ones are read")
    frames = np.asarray(dataset.pixel_array)
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    shared = dataset.SharedFunctionalGroupsSequence[0]

    def group(item, keyword: str):  # a functional group is per frame, or shared when it is the same for all
        return item.get(keyword) or shared.get(keyword)

    per_frame = dataset.PerFrameFunctionalGroupsSequence
    positions = np.array([[float(v) for v in group(item, "PlanePositionSequence")[0].ImagePositionPatient]
                          for item in per_frame])
    geometry = reference or _grid_of(dataset, positions)
    numbers = [int(group(item, "SegmentIdentificationSequence")[0].ReferencedSegmentNumber) for item in per_frame]
    descriptions = {int(d.SegmentNumber): d for d in dataset.SegmentSequence}
    masks = {number: np.zeros(geometry.shape, dtype=bool) for number in descriptions}
    for frame, number, position in zip(frames, numbers, positions):
        i, j, k = geometry.world_to_ijk(position)
        slice_index = int(round(k))
        if abs(i) > 0.01 or abs(j) > 0.01 or abs(k - slice_index) > 0.01 or not 0 <= slice_index < geometry.shape[0] \
                or frame.shape != geometry.shape[1:]:
            raise InputError(path, f"frame at {np.round(position, 3).tolist()} is not a slice of the reference grid")
        masks[number][slice_index] |= frame.astype(bool)
    segments = [_segment_from(descriptions[n], f"Segment_{n}") for n in sorted(descriptions)]
    source = SourceInfo(path=str(path), modality="SEG", study_instance_uid=str(dataset.StudyInstanceUID),
                        series_instance_uid=str(dataset.SeriesInstanceUID),
                        frame_of_reference_uid=str(dataset.FrameOfReferenceUID))
    return LabelMap.from_masks([masks[n] for n in sorted(descriptions)], segments, geometry, source)


def validate_with_dciodvfy(path: str | Path) -> tuple[bool, str]:
    """Run dicom3tools' ``dciodvfy`` on a file: (no errors, its report). FileNotFoundError when it is not
    installed (Debian/Ubuntu: apt-get install dicom3tools)."""
    import shutil
    import subprocess

    program = shutil.which("dciodvfy")
    if program is None:
        raise FileNotFoundError("dciodvfy is not installed (apt-get install dicom3tools)")
    run = subprocess.run([program, str(path)], capture_output=True, text=True, timeout=120)
    report = (run.stdout + run.stderr).strip()
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    return not errors, report
