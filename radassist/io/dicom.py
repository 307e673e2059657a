"""DICOM series -> Volume: pydicom reads the headers (which series, which order), SimpleITK/GDCM reads the voxels.

Why two libraries: pydicom gives every header field exactly, and lets us group files by Series Instance UID and
sort them along the slice normal ourselves; GDCM (inside SimpleITK) decodes every common transfer syntax and
applies Rescale Slope/Intercept, so CT voxels come out in Hounsfield units.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from radassist.errors import InputError
from radassist.io.sitk_bridge import sitk_to_volume
from radassist.runtime.progress import Progress
from radassist.volume import SourceInfo, Volume

_HEADER_SHARE = 0.2  # fraction of the progress bar spent reading headers; the rest is pixel decoding
_ORIENTATION_TOLERANCE = 1e-3
_SPACING_TOLERANCE_MM = 0.01
_SPACING_TOLERANCE_RELATIVE = 0.01


@dataclass(frozen=True)
class SliceHeader:
    """What one DICOM image file says about where it belongs."""

    path: Path
    series_instance_uid: str
    rows: int
    columns: int
    frames: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    instance_number: int | None
    sop_instance_uid: str
    rescale: tuple[float, float] = (1.0, 0.0)  # (slope, intercept)


@dataclass
class SeriesInfo:
    """One series found in a folder: enough to let a user pick it (UID, description, slice count)."""

    series_instance_uid: str
    series_description: str
    modality: str
    slice_count: int
    files: list[Path]
    study_instance_uid: str
    patient_id: str
    series_number: int | None = None
    slices: list[SliceHeader] = field(default_factory=list, repr=False)

    def describe(self) -> str:
        """One line for a person choosing a series: UID, description and slice count."""
        uid = self.series_instance_uid or "(no Series Instance UID)"
        description = self.series_description or "no description"
        return f"{uid}  {self.modality or '?'} '{description}' ({self.slice_count} slices)"


class MultipleSeriesError(InputError):
    """The folder holds several series and the caller did not say which one to read."""

    def __init__(self, folder: str | Path, series: list[SeriesInfo]) -> None:
        self.series = list(series)
        listing = "\n".join(f"  {info.describe()}" for info in self.series)
        super().__init__(folder, f"holds {len(self.series)} DICOM series; choose one by its Series Instance UID:\n"
                                 f"{listing}")


def is_dicom_file(path: str | Path) -> bool:
    """True when the file starts with the DICOM Part 10 preamble and 'DICM' magic."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _text(dataset: pydicom.Dataset, keyword: str) -> str:
    value = dataset.get(keyword, "")
    return "" if value is None else str(value).strip()


def _floats(dataset: pydicom.Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    value = dataset.get(keyword)
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def _number(dataset: pydicom.Dataset, keyword: str, kind: type = int, default: float | None = None) -> float | None:
    """The field as ``kind`` (int or float); ``default`` when it is missing, empty or not a number."""
    value = dataset.get(keyword)
    try:
        return default if value in (None, "") else kind(value)
    except (TypeError, ValueError):
        return default


def read_header(path: Path) -> pydicom.Dataset | None:
    """The header of a DICOM file (no pixels), or None when the file is not DICOM."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged or foreign file is skipped, not reported
            return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError):
        return None


def _candidate_files(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.upper() != "DICOMDIR":
                yield Path(root) / name


def _slice_header(path: Path, dataset: pydicom.Dataset) -> SliceHeader | None:
    """The slice facts of an image file; None for DICOM files without an image (reports, DICOMDIR, ...)."""
    rows, columns = _number(dataset, "Rows"), _number(dataset, "Columns")
    if not rows or not columns:
        return None
    return SliceHeader(
        path=path,
        series_instance_uid=_text(dataset, "SeriesInstanceUID"),
        rows=rows,
        columns=columns,
        frames=_number(dataset, "NumberOfFrames") or 1,
        position=_floats(dataset, "ImagePositionPatient", 3),
        orientation=_floats(dataset, "ImageOrientationPatient", 6),
        instance_number=_number(dataset, "InstanceNumber"),
        sop_instance_uid=_text(dataset, "SOPInstanceUID"),
        rescale=(_number(dataset, "RescaleSlope", float, 1.0), _number(dataset, "RescaleIntercept", float, 0.0)),
    )


def _slice_normal(orientation: tuple[float, ...]) -> np.ndarray:
    return np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:]))


def _sorted_slices(slices: list[SliceHeader]) -> list[SliceHeader]:
    """Slices in the order of their position along the slice normal (instance number when positions are missing)."""
    def instance_key(header: SliceHeader) -> tuple:
        number = header.instance_number if header.instance_number is not None else 0
        return (number, str(header.path))

    if all(h.position is not None and h.orientation is not None for h in slices):
        normal = _slice_normal(slices[0].orientation)
        return sorted(slices, key=lambda h: (float(np.dot(h.position, normal)), *instance_key(h)))
    return sorted(slices, key=instance_key)


def list_series(folder: str | Path, progress: Progress | None = None) -> list[SeriesInfo]:
    """Every image series under ``folder`` (searched recursively), files in slice order; non-DICOM files are ignored."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(folder, "does not exist")
    if not folder.is_dir():
        raise InputError(folder, "is not a folder")
    candidates = list(_candidate_files(folder))
    groups: dict[str, list[SliceHeader]] = {}
    first_headers: dict[str, pydicom.Dataset] = {}
    for index, path in enumerate(candidates):
        if progress is not None:
            progress.update(index / max(len(candidates), 1), "reading DICOM headers")
        dataset = read_header(path)
        header = None if dataset is None else _slice_header(path, dataset)
        if header is None:
            continue
        groups.setdefault(header.series_instance_uid, []).append(header)
        first_headers.setdefault(header.series_instance_uid, dataset)
    if progress is not None:
        progress.update(1.0, "reading DICOM headers")

    series = []
    for uid, slices in groups.items():
        dataset = first_headers[uid]
        ordered = _sorted_slices(slices)
        series.append(SeriesInfo(
            series_instance_uid=uid,
            series_description=_text(dataset, "SeriesDescription"),
            modality=_text(dataset, "Modality"),
            slice_count=sum(h.frames for h in ordered),
            files=[h.path for h in ordered],
            study_instance_uid=_text(dataset, "StudyInstanceUID"),
            patient_id=_text(dataset, "PatientID"),
            series_number=_number(dataset, "SeriesNumber"),
            slices=ordered,
        ))
    return sorted(series, key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid))


def _choose_series(folder: Path, series: list[SeriesInfo], series_uid: str | None) -> SeriesInfo:
    if not series:
        raise InputError(folder, "contains no DICOM images")
    if series_uid is None:
        if len(series) > 1:
            raise MultipleSeriesError(folder, series)
        return series[0]
    for info in series:
        if info.series_instance_uid == series_uid.strip():
            return info
    available = ", ".join(info.series_instance_uid or "(none)" for info in series)
    raise InputError(folder, f"has no DICOM series with Series Instance UID {series_uid!r} (found: {available})")


def _check_stack(folder: Path, info: SeriesInfo) -> None:
    """Refuse series that do not form one regular grid, rather than return voxels in the wrong place."""
    slices = info.slices
    label = f"series {info.series_instance_uid or '(no UID)'}"
    if len({(h.rows, h.columns) for h in slices}) > 1:
        raise InputError(folder, f"{label}: its slices have different sizes (rows x columns)")
    if len(slices) > 1 and any(h.frames > 1 for h in slices):
        raise InputError(folder, f"{label}: mixes multi-frame files with other files; give one multi-frame file")
    if len(slices) < 2 or any(h.position is None or h.orientation is None for h in slices):
        return
    reference = np.asarray(slices[0].orientation)
    if any(np.abs(np.asarray(h.orientation) - reference).max() > _ORIENTATION_TOLERANCE for h in slices):
        raise InputError(folder, f"{label}: its slices have different orientations")
    normal = _slice_normal(slices[0].orientation)
    positions = np.asarray([h.position for h in slices])
    distances = positions @ normal
    gaps = np.diff(distances)
    if gaps.min() < _SPACING_TOLERANCE_MM:
        raise InputError(folder, f"{label}: several slices share one position (several volumes, echoes or time "
                                 "points in one series?); RadAssist needs one 3-D volume per series")
    if gaps.max() - gaps.min() > _SPACING_TOLERANCE_MM + _SPACING_TOLERANCE_RELATIVE * gaps.mean():
        raise InputError(folder, f"{label}: the slice spacing is not uniform ({gaps.min():.3f} to {gaps.max():.3f} "
                                 "mm): slices are missing or the series is irregular")
    offset = positions[-1] - positions[0]
    in_plane = offset - np.dot(offset, normal) * normal
    if np.linalg.norm(in_plane) > _SPACING_TOLERANCE_MM + 1e-3 * np.linalg.norm(offset):
        raise InputError(folder, f"{label}: the slices are sheared (gantry tilt); resample it to a regular grid "
                                 "first")


def header_source(path: Path, dataset: pydicom.Dataset, sop_instance_uids: list[str],
                  extra: dict[str, Any]) -> SourceInfo:
    """What a DICOM header says about where an image comes from. ``extra`` maps each SourceInfo.extra key to a
    DICOM keyword (a ``str``) or to its value; missing and empty ones are left out."""
    def optional(keyword: str) -> str | None:
        return _text(dataset, keyword) or None

    extra = {key: optional(value) if isinstance(value, str) else value for key, value in extra.items()}
    return SourceInfo(
        path=str(path),
        modality=optional("Modality"),
        patient_id=optional("PatientID"),
        study_instance_uid=optional("StudyInstanceUID"),
        series_instance_uid=optional("SeriesInstanceUID"),
        frame_of_reference_uid=optional("FrameOfReferenceUID"),
        series_description=optional("SeriesDescription"),
        sop_instance_uids=sop_instance_uids if any(sop_instance_uids) else [],
        extra={key: value for key, value in extra.items() if value is not None},
    )


def _source_info(folder: Path, info: SeriesInfo) -> SourceInfo:
    dataset = read_header(info.files[0])
    assert dataset is not None, "the file was read as DICOM a moment ago"
    return header_source(folder, dataset, [h.sop_instance_uid for h in info.slices], {
        "series_number": info.series_number, "study_description": "StudyDescription", "study_date": "StudyDate",
        "body_part_examined": "BodyPartExamined", "patient_position": "PatientPosition",
        "manufacturer": "Manufacturer"})


def _needs_float_output(info: SeriesInfo) -> bool:
    """Per-slice or fractional rescale parameters would be truncated in GDCM's integer output type."""
    pairs = {h.rescale for h in info.slices}
    return len(pairs) > 1 or any(not slope.is_integer() or not intercept.is_integer() for slope, intercept in pairs)


def _read_pixels(folder: Path, info: SeriesInfo, progress: Progress | None) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(path) for path in info.files])
    if _needs_float_output(info):
        reader.SetOutputPixelType(sitk.sitkFloat32)
    if progress is not None:
        def report() -> None:
            if progress.cancelled:
                reader.Abort()
            else:
                progress.update(reader.GetProgress(), "reading DICOM slices")

        reader.AddCommand(sitk.sitkProgressEvent, report)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        if progress is not None:
            progress.check_cancelled()
        reason = str(exc).strip().splitlines()[-1]
        raise InputError(folder, f"the DICOM pixel data cannot be decoded ({reason})") from None
    if progress is not None:
        progress.check_cancelled()
    return image


def read_dicom_series(folder: str | Path, series_uid: str | None = None,
                      progress: Progress | None = None) -> Volume:
    """Read one DICOM series from ``folder`` into a Volume in LPS, voxels rescaled (HU for CT).

    With several series in the folder, ``series_uid`` chooses one; without it a :class:`MultipleSeriesError`
    lists them so the user can choose.
    """
    folder = Path(folder)
    header_progress = None if progress is None else progress.sub(0.0, _HEADER_SHARE)
    info = _choose_series(folder, list_series(folder, header_progress), series_uid)
    _check_stack(folder, info)
    image = _read_pixels(folder, info, None if progress is None else progress.sub(_HEADER_SHARE, 1.0))
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(folder, f"series {info.series_instance_uid or '(no UID)'} is a colour image "
                                 f"({image.GetNumberOfComponentsPerPixel()} components per pixel); "
                                 "RadAssist needs greyscale")
    volume = sitk_to_volume(image, _source_info(folder, info))
    if progress is not None:
        progress.update(1.0, "DICOM series read")
    return volume
