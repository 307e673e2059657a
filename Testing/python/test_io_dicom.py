"""DICOM series: the real CT series, series selection, slice order, rescale, and folders that hold no usable series."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from radassist.errors import InputError
from radassist.io import MultipleSeriesError, SeriesInfo, list_series, read_dicom_series, read_volume
from radassist.runtime.progress import Cancelled, Progress

REAL_SERIES = "ct/chest_abdomen_example/dicom"


@pytest.fixture(scope="module")
def real_series(test_data: Path) -> Path:
    return test_data / REAL_SERIES


def simpleitk_reference(folder: Path, files: list[str] | None = None) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files or reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


# -- the real series -----------------------------------------------------------------------------------------------
def test_real_series_is_listed(real_series: Path) -> None:
    series = list_series(real_series)
    assert len(series) == 1
    info = series[0]
    assert isinstance(info, SeriesInfo)
    assert info.slice_count == 20 and len(info.files) == 20
    assert info.modality == "CT" and info.series_description == "CT Body 3.0"
    positions = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in info.files]
    assert positions == sorted(positions)


def test_real_series_matches_simpleitk_geometry_and_voxels(real_series: Path) -> None:
    volume = read_dicom_series(real_series)
    reference = simpleitk_reference(real_series)
    assert volume.shape == (20, 512, 512)
    np.testing.assert_allclose(volume.spacing, reference.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(volume.spacing, (0.9765625, 0.9765625, 2.0), atol=1e-6)
    np.testing.assert_allclose(volume.origin, reference.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(volume.direction, reference.GetDirection(), atol=1e-9)
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(reference))


def test_real_series_is_in_hounsfield_units(real_series: Path) -> None:
    array = read_dicom_series(real_series).array
    assert array.min() >= -1100 and array.max() < 4000
    assert array.min() <= -1000  # the stored 0 with intercept -1024: outside the scan field / air
    assert np.mean(array < -900) > 0.2  # air around and inside the patient
    assert np.mean((array > -100) & (array < 100)) > 0.1  # soft tissue


def test_real_series_metadata(real_series: Path) -> None:
    source = read_dicom_series(real_series).source
    assert source.modality == "CT"
    assert source.series_description == "CT Body 3.0"
    assert source.frame_of_reference_uid == "1.3.12.2.1107.5.1.4.60064.30000022120807274275100000041"
    assert source.path == str(real_series)
    assert source.extra["patient_position"] == "HFS"


def test_non_dicom_files_beside_the_series_are_ignored(real_series: Path, tmp_path: Path) -> None:
    shutil.copytree(real_series, tmp_path / "exam")
    (tmp_path / "exam" / "notes.txt").write_text("acquired on Tuesday")
    (tmp_path / "exam" / "DICOMDIR").write_bytes(b"\0" * 200)
    assert read_dicom_series(tmp_path / "exam").shape == (20, 512, 512)


# -- several series ------------------------------------------------------------------------------------------------
@pytest.fixture
def two_series(real_series: Path, tmp_path: Path) -> tuple[Path, str]:
    """The real slices copied, the lower ten re-labelled (via pydicom) as a new series."""
    folder = tmp_path / "two"
    folder.mkdir()
    new_uid = generate_uid()
    files = list_series(real_series)[0].files
    for index, source in enumerate(files):
        dataset = pydicom.dcmread(source)
        if index < 10:
            dataset.SeriesInstanceUID = new_uid
            dataset.SeriesDescription = "lower half"
        dataset.save_as(folder / f"slice{index:02d}.dcm")
    return folder, new_uid


def test_two_series_are_listed(two_series: tuple[Path, str]) -> None:
    folder, new_uid = two_series
    series = list_series(folder)
    assert sorted(s.slice_count for s in series) == [10, 10]
    assert {s.series_instance_uid for s in series} == {new_uid, ""}


def test_two_series_without_a_choice_raise_with_the_list(two_series: tuple[Path, str]) -> None:
    folder, new_uid = two_series
    with pytest.raises(MultipleSeriesError) as error:
        read_dicom_series(folder)
    assert isinstance(error.value, InputError)
    assert error.value.path == str(folder)
    assert len(error.value.series) == 2
    message = str(error.value)
    assert new_uid in message and "lower half" in message and "(10 slices)" in message


def test_chosen_series_is_read_with_its_own_geometry(two_series: tuple[Path, str], real_series: Path) -> None:
    folder, new_uid = two_series
    volume = read_dicom_series(folder, series_uid=new_uid)
    full = read_dicom_series(real_series)
    assert volume.shape == (10, 512, 512)
    assert volume.source.series_instance_uid == new_uid
    assert volume.source.series_description == "lower half"
    np.testing.assert_allclose(volume.origin, full.origin)
    np.testing.assert_array_equal(volume.array, full.array[:10])
    upper = read_dicom_series(folder, series_uid="")
    np.testing.assert_allclose(upper.origin, full.ijk_to_world(np.array([0.0, 0.0, 10.0])))
    np.testing.assert_array_equal(upper.array, full.array[10:])


def test_read_volume_passes_the_series_choice(two_series: tuple[Path, str]) -> None:
    folder, new_uid = two_series
    assert read_volume(folder, series_uid=new_uid).shape == (10, 512, 512)
    with pytest.raises(MultipleSeriesError):
        read_volume(folder)
    # One file stands for its own series.
    assert read_volume(folder / "slice03.dcm").source.series_instance_uid == new_uid


def test_unknown_series_uid(two_series: tuple[Path, str]) -> None:
    folder, _ = two_series
    with pytest.raises(InputError, match="no DICOM series with Series Instance UID '1.2.3'"):
        read_dicom_series(folder, series_uid="1.2.3")


# -- folders with nothing to read ----------------------------------------------------------------------------------
def test_empty_folder(tmp_path: Path) -> None:
    assert list_series(tmp_path) == []
    with pytest.raises(InputError, match="contains no DICOM images") as error:
        read_dicom_series(tmp_path)
    assert error.value.path == str(tmp_path)


def test_folder_of_non_dicom_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("text")
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    (tmp_path / "c.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 20)  # magic, then garbage
    assert list_series(tmp_path) == []
    with pytest.raises(InputError, match="contains no DICOM images"):
        read_dicom_series(tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_dicom_series(tmp_path / "nowhere")


# -- synthetic series: order, orientation, rescale -----------------------------------------------------------------
def write_slice(path: Path, pixels: np.ndarray, position: list[float], orientation: list[float], series_uid: str,
                instance: int, slope: float = 1.0, intercept: float = -1024.0) -> str:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = CTImageStorage, sop_uid
    dataset.Modality = "CT"
    dataset.PatientID = "PHANTOM-1"
    dataset.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    dataset.SeriesInstanceUID = series_uid
    dataset.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.2"
    dataset.InstanceNumber = instance
    dataset.ImagePositionPatient = position
    dataset.ImageOrientationPatient = orientation
    dataset.PixelSpacing = [0.8, 0.6]  # row spacing (y), column spacing (x)
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
    dataset.RescaleSlope, dataset.RescaleIntercept = slope, intercept
    dataset.PixelData = pixels.astype(np.uint16).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return sop_uid


ROW = np.array([np.cos(0.3), np.sin(0.3), 0.0])  # rotated 0.3 rad about the patient's z axis, then tilted
COLUMN = np.array([-np.sin(0.3) * np.cos(0.2), np.cos(0.3) * np.cos(0.2), np.sin(0.2)])
NORMAL = np.cross(ROW, COLUMN)
ORIGIN = np.array([-40.0, 12.0, 300.0])


def synthetic_series(folder: Path, count: int = 5, spacing: float = 2.5, slopes: list[float] | None = None,
                     distances: list[float] | None = None, shear: float = 0.0) -> tuple[str, list[str]]:
    """Slices written in reverse file order with scrambled instance numbers; slice k holds 100*k + column."""
    folder.mkdir(exist_ok=True)
    uid = generate_uid()
    distances = distances or [k * spacing for k in range(count)]
    sop_uids = []
    for k, distance in enumerate(distances):
        pixels = np.tile(np.arange(4, dtype=np.uint16), (3, 1)) + 100 * k + 1024
        position = list(ORIGIN + distance * NORMAL + k * shear * ROW)
        sop_uids.append(write_slice(folder / f"file{len(distances) - k:03d}.dcm", pixels, position,
                                    [*ROW, *COLUMN], uid, instance=(7 * k) % len(distances) + 1,
                                    slope=(slopes or [1.0] * len(distances))[k]))
    return uid, sop_uids


def test_slices_are_ordered_by_position_along_the_normal(tmp_path: Path) -> None:
    uid, sop_uids = synthetic_series(tmp_path / "s")
    volume = read_dicom_series(tmp_path / "s")
    assert volume.shape == (5, 3, 4)
    for k in range(5):
        np.testing.assert_array_equal(volume.array[k], np.tile(np.arange(4), (3, 1)) + 100 * k)
    assert volume.source.sop_instance_uids == sop_uids
    assert volume.source.series_instance_uid == uid
    assert volume.source.patient_id == "PHANTOM-1"
    assert volume.source.study_instance_uid == "1.2.826.0.1.3680043.8.498.1"
    np.testing.assert_allclose(volume.spacing, (0.6, 0.8, 2.5), atol=1e-6)
    np.testing.assert_allclose(volume.origin, ORIGIN, atol=1e-6)
    np.testing.assert_allclose(volume.geometry.direction_matrix, np.column_stack([ROW, COLUMN, NORMAL]), atol=1e-6)


def test_rescale_slope_and_intercept_give_hounsfield_units(tmp_path: Path) -> None:
    synthetic_series(tmp_path / "s", count=3, slopes=[2.0, 2.0, 2.0])
    volume = read_dicom_series(tmp_path / "s")
    stored = np.tile(np.arange(4), (3, 1)) + 1024
    np.testing.assert_array_equal(volume.array[0], stored * 2 - 1024)


def test_per_slice_rescale_is_applied_slice_by_slice(tmp_path: Path) -> None:
    synthetic_series(tmp_path / "s", count=3, slopes=[1.0, 0.5, 1.0])
    volume = read_dicom_series(tmp_path / "s")
    assert np.issubdtype(volume.array.dtype, np.floating)
    stored = np.tile(np.arange(4), (3, 1)) + 1024
    np.testing.assert_allclose(volume.array[1], (stored + 100) * 0.5 - 1024)
    np.testing.assert_allclose(volume.array[2], stored + 200 - 1024)


def test_duplicate_positions_are_refused(tmp_path: Path) -> None:
    synthetic_series(tmp_path / "s", distances=[0.0, 2.5, 2.5, 5.0])
    with pytest.raises(InputError, match="share one position"):
        read_dicom_series(tmp_path / "s")


def test_missing_slice_is_refused(tmp_path: Path) -> None:
    synthetic_series(tmp_path / "s", distances=[0.0, 2.5, 5.0, 10.0])
    with pytest.raises(InputError, match="not uniform"):
        read_dicom_series(tmp_path / "s")


def test_gantry_tilt_is_refused(tmp_path: Path) -> None:
    synthetic_series(tmp_path / "s", shear=0.5)
    with pytest.raises(InputError, match="sheared"):
        read_dicom_series(tmp_path / "s")


# -- progress and cancel -------------------------------------------------------------------------------------------
def test_progress_reaches_the_end(real_series: Path) -> None:
    reports: list[float] = []
    read_dicom_series(real_series, progress=Progress(lambda fraction, message: reports.append(fraction)))
    assert reports[-1] == pytest.approx(1.0)
    assert reports == sorted(reports)
    assert any(0.2 < r < 1.0 for r in reports)  # pixel decoding reports too, not only the headers


def test_cancel_stops_the_read(real_series: Path) -> None:
    cancel = threading.Event()

    def cancel_when_decoding(fraction: float, message: str) -> None:
        if "slices" in message:
            cancel.set()  # what the Cancel button does, from the GUI thread

    with pytest.raises(Cancelled):
        read_dicom_series(real_series, progress=Progress(cancel_when_decoding, cancel_event=cancel))
