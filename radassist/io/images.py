"""Volume files in and out: NIfTI, NRRD, MetaImage (.mha/.mhd) through SimpleITK; folders go to the DICOM reader.

SimpleITK already speaks LPS, so geometry only has to be copied. What this module adds is the checking a user
needs: the format is chosen by extension (a mislabelled file is refused, not guessed), truncated files are caught
(ITK's NIfTI reader silently pads a short file with zeros), NaN/inf voxels and vector images are refused, and
writes are atomic, including the two-file formats (.mhd + data, .nhdr + data).
"""

from __future__ import annotations

import gzip
import shutil
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radassist.errors import InputError, OutputError
from radassist.io.atomic import atomic_path, full_suffix, make_temp_dir
from radassist.io.dicom import is_dicom_file, read_dicom_series, read_header
from radassist.io.sitk_bridge import sitk_to_volume, volume_to_sitk
from radassist.runtime.progress import Progress
from radassist.volume import SourceInfo, Volume

# extension -> (ITK ImageIO name, name for people)
VOLUME_FORMATS: dict[str, tuple[str, str]] = {
    ".nii": ("NiftiImageIO", "NIfTI"),
    ".nii.gz": ("NiftiImageIO", "NIfTI"),
    ".nrrd": ("NrrdImageIO", "NRRD"),
    ".nhdr": ("NrrdImageIO", "NRRD"),
    ".mha": ("MetaImageIO", "MetaImage"),
    ".mhd": ("MetaImageIO", "MetaImage"),
}
# The MetaImage header's own "Modality" field (ITK reads it into the metadata dictionary).
_META_MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR", "MET_MOD_NM": "NM", "MET_MOD_US": "US"}
_CHUNK = 1 << 20


def volume_suffix(path: str | Path) -> str:
    """The lower-case extension that names the format ('.nii.gz', '.nrrd', ...), or '' when unknown."""
    suffix = full_suffix(Path(path)).lower()
    if suffix == ".seg.nrrd":
        return ".nrrd"
    return suffix if suffix in VOLUME_FORMATS else ""


# -- reading ---------------------------------------------------------------------------------------------------
def read_volume(path: str | Path, require_3d: bool = True, series_uid: str | None = None,
                progress: Progress | None = None) -> Volume:
    """Read a volume file (NIfTI, NRRD, MetaImage) or DICOM (a folder, or one file of the series) into LPS.

    ``require_3d`` refuses 2-D images and single-slice volumes, which no 3-D pipeline can use.
    ``series_uid`` and ``progress`` are passed to the DICOM reader.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    if path.is_dir():
        volume = read_dicom_series(path, series_uid=series_uid, progress=progress)
    elif is_dicom_file(path) or path.suffix.lower() == ".dcm":
        volume = _read_dicom_file_series(path, series_uid, progress)
    else:
        volume = _read_volume_file(path)
    _check_finite(path, volume)
    if require_3d:
        _check_3d(path, volume)
    return volume


def _read_dicom_file_series(path: Path, series_uid: str | None, progress: Progress | None) -> Volume:
    """One DICOM file stands for its whole series: read that series from the file's folder."""
    dataset = read_header(path)
    if dataset is None:
        raise InputError(path, "is not a readable DICOM file")
    own_uid = str(dataset.get("SeriesInstanceUID", "") or "").strip()
    return read_dicom_series(path.parent, series_uid=own_uid if series_uid is None else series_uid,
                             progress=progress)


def _read_volume_file(path: Path) -> Volume:
    suffix = volume_suffix(path)
    if not suffix:
        raise InputError(path, f"unknown file type '{path.suffix or path.name}'; RadAssist reads "
                               f"{', '.join(VOLUME_FORMATS)}, a DICOM file or a DICOM folder")
    io_name, format_name = VOLUME_FORMATS[suffix]
    if not path.is_file():
        raise InputError(path, "is not a regular file")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO(io_name)
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(path, f"is not a readable {format_name} file ({_itk_reason(exc)})") from None
    _check_layout(path, reader)
    if io_name == "NiftiImageIO":
        _scan_nifti(path)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(path, f"is truncated or corrupt: the {format_name} voxel data cannot be read "
                               f"({_itk_reason(exc)})") from None
    return sitk_to_volume(image, SourceInfo(path=str(path), modality=_modality_of(image)))


def _check_layout(path: Path, reader: sitk.ImageFileReader) -> None:
    dimension = reader.GetDimension()
    if dimension not in (2, 3):
        raise InputError(path, f"is a {dimension}-D image; RadAssist reads 2-D and 3-D scalar images")
    components = reader.GetNumberOfComponents()
    if components != 1:
        raise InputError(path, f"has {components} values per voxel (a colour or vector image); "
                               "RadAssist needs one value per voxel")


def _itk_reason(exc: RuntimeError) -> str:
    """The informative part of an ITK exception (drop source-file lines and generic trailers)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception thrown", "/", "Reason:"))
              and not line.endswith(".cxx:")]
    text = useful[-1] if useful else (lines[-1] if lines else "unknown error")
    return text.split("): ", 1)[-1][:300]


def _modality_of(image: sitk.Image) -> str | None:
    if image.HasMetaDataKey("Modality"):
        return _META_MODALITIES.get(image.GetMetaData("Modality").strip())
    return None


def _nifti_header(path: Path):
    """The file's NIfTI-1 or NIfTI-2 header, read by nibabel (either byte order)."""
    import nibabel

    try:
        return nibabel.load(path).header
    except (nibabel.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise InputError(path, f"is not a readable NIfTI file ({exc})") from None


def _scan_nifti(path: Path) -> None:
    """Check the voxel bytes ourselves: ITK pads a short NIfTI file with zeros and reads NaN as 0."""
    header = _nifti_header(path)
    dtype = header.get_data_dtype()
    data_start = max(int(header.get_data_offset()), header.sizeof_hdr)  # an offset of 0 means right after it
    data_end = data_start + int(np.prod(header.get_data_shape(), dtype=np.int64)) * dtype.itemsize
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    bad = 0
    try:
        with opener(path, "rb") as handle:
            chunk = handle.read(_CHUNK)
            present, pending = 0, b""
            while chunk:
                if dtype.kind == "f":  # floating-point voxels may hold NaN/inf
                    # Keep only the voxel bytes of this chunk; carry a partial value over to the next one.
                    pending += chunk[max(data_start - present, 0):max(data_end - present, 0)]
                    usable = len(pending) - len(pending) % dtype.itemsize
                    values = np.frombuffer(pending[:usable], dtype=dtype)
                    bad += int(np.count_nonzero(~np.isfinite(values)))
                    pending = pending[usable:]
                present += len(chunk)
                chunk = handle.read(_CHUNK)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(path, f"is truncated or corrupt: the compressed data cannot be read ({exc})") from None
    if present < data_end:
        raise InputError(path, f"is truncated: the header promises {data_end} bytes but the file holds {present}")
    if bad:
        raise InputError(path, f"contains {bad} NaN or infinite voxel values")


def _check_finite(path: Path, volume: Volume) -> None:
    if np.issubdtype(volume.array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(volume.array)))
        if bad:
            raise InputError(path, f"contains {bad} NaN or infinite voxel values")


def _check_3d(path: Path, volume: Volume) -> None:
    z, y, x = volume.shape
    if min(volume.shape) < 2:
        raise InputError(path, f"is a 2-D image or a single slice ({x} x {y} x {z} voxels); a 3-D volume is "
                               "needed here")


# -- writing ---------------------------------------------------------------------------------------------------
def write_volume(volume: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write ``volume`` to a NIfTI, NRRD or MetaImage file chosen by extension; nothing appears unless it all worked."""
    path = Path(path)
    suffix = volume_suffix(path)
    if path.name.lower().endswith(".seg.nrrd"):
        raise OutputError(path, "a .seg.nrrd file is a Slicer segmentation; write segmentations with the "
                                "segmentation writer, volumes as .nrrd")
    if not suffix:
        raise OutputError(path, f"unknown volume file type '{path.suffix or path.name}'; use one of "
                                f"{', '.join(VOLUME_FORMATS)}")
    image = volume_to_sitk(volume)
    io_name = VOLUME_FORMATS[suffix][0]
    if suffix in (".mhd", ".nhdr"):
        _write_detached(image, path, io_name, compress)
    else:
        with atomic_path(path) as temp:
            _sitk_write(image, temp, io_name, compress, path)
    return path


def _sitk_write(image: sitk.Image, target: Path, io_name: str, compress: bool, final: Path) -> None:
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(target))
    writer.SetImageIO(io_name)
    writer.SetUseCompression(compress)
    try:
        writer.Execute(image)
    except RuntimeError as exc:
        raise OutputError(final, f"cannot be written ({_itk_reason(exc)})") from None


def _write_detached(image: sitk.Image, path: Path, io_name: str, compress: bool) -> None:
    """Header + data file: write both under their final names in a scratch folder, then publish data, then header.

    The header names its data file, so both must carry their final names before they are moved beside each other.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = make_temp_dir(path.parent)
    except OSError as exc:
        raise OutputError(path.parent, f"cannot write here ({exc.strerror or exc})") from None
    try:
        staged_header = scratch / path.name
        _sitk_write(image, staged_header, io_name, compress, path)
        data_name = _data_file_name(staged_header)
        with atomic_path(path) as header_temp, atomic_path(path.parent / data_name) as data_temp:
            shutil.move(str(scratch / data_name), data_temp)
            shutil.move(str(staged_header), header_temp)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _data_file_name(header: Path) -> str:
    for line in header.read_text(errors="replace").splitlines():
        key, separator, value = line.partition("=" if header.suffix.lower() == ".mhd" else ":")
        if separator and key.strip().lower() in ("elementdatafile", "data file", "datafile"):
            return value.strip()
    raise OutputError(header, "the writer did not name a data file in the header")
