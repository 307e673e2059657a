"""Mammograms: the real GMIC PNGs, DICOM display pipeline (MONOCHROME1, window, VOI LUT), laterality and view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radassist.errors import InputError
from radassist.io import Mammogram, read_mammogram
from radassist.io.mammogram import parse_view_from_name

MAMMO_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
EXAM = "mammo/gmic_exam0"


# -- the real PNG exam ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, laterality, view, shape", [
    ("0_L-CC.png", "L", "CC", (2023, 801)),
    ("0_R-CC.png", "R", "CC", (2144, 801)),
    ("0_L-MLO.png", "L", "MLO", (2730, 981)),
    ("0_R-MLO.png", "R", "MLO", (2650, 1006)),
])
def test_real_png_views(test_data: Path, name: str, laterality: str, view: str, shape: tuple[int, int]) -> None:
    mammogram = read_mammogram(test_data / EXAM / name, require_view=True)
    assert (mammogram.laterality, mammogram.view, mammogram.name) == (laterality, view, f"{laterality}-{view}")
    assert mammogram.pixels.dtype == np.float32 and mammogram.shape == shape
    assert mammogram.pixels.min() >= 0 and mammogram.pixels.max() <= 4095  # 12-bit values in a 16-bit PNG
    assert mammogram.pixels.max() > 2000 and np.mean(mammogram.pixels == 0) > 0.2  # breast on a black background
    assert mammogram.pixel_spacing is None and mammogram.bits_stored == 16
    assert mammogram.source.path == str(test_data / EXAM / name)
    with Image.open(test_data / EXAM / name) as png:
        reference = np.asarray(png)
    np.testing.assert_array_equal(mammogram.pixels, reference)


def test_callers_laterality_and_view_override_the_name(test_data: Path) -> None:
    mammogram = read_mammogram(test_data / EXAM / "0_L-CC.png", laterality="right", view="mlo")
    assert (mammogram.laterality, mammogram.view) == ("R", "MLO")


def test_to_volume_is_one_slice(test_data: Path) -> None:
    volume = read_mammogram(test_data / EXAM / "0_R-CC.png").to_volume()
    assert volume.shape == (1, 2144, 801) and volume.is_2d
    assert volume.spacing == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("name, expected", [
    ("0_L-CC.png", ("L", "CC")),
    ("R_MLO.png", ("R", "MLO")),
    ("left_cc.png", ("L", "CC")),
    ("Right-MLO.dcm", ("R", "MLO")),
    ("patient7_RMLO.png", ("R", "MLO")),
    ("lcc.png", ("L", "CC")),
    ("scan.png", (None, None)),
    ("L_scan.png", ("L", None)),
    ("exam_L_R_CC.png", (None, "CC")),  # two lateralities: ambiguous, not guessed
    ("cc_mlo.png", (None, None)),
])
def test_view_from_file_name(name: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_view_from_name(name) == expected


# -- PNGs made here ------------------------------------------------------------------------------------------------
def save_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def test_unknown_view_is_kept_unknown_or_asked_for(tmp_path: Path) -> None:
    path = save_png(tmp_path / "scan.png", np.arange(12, dtype=np.uint16).reshape(3, 4) * 300)
    mammogram = read_mammogram(path)
    assert mammogram.laterality is None and mammogram.view is None
    with pytest.raises(InputError, match="--laterality L\\|R and --view CC\\|MLO") as error:
        read_mammogram(path, require_view=True)
    assert error.value.path == str(path)
    assert read_mammogram(path, laterality="L", view="CC", require_view=True).name == "L-CC"


def test_eight_bit_png(tmp_path: Path) -> None:
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    mammogram = read_mammogram(save_png(tmp_path / "R_CC.png", pixels))
    np.testing.assert_array_equal(mammogram.pixels, pixels)
    assert mammogram.bits_stored == 8 and mammogram.name == "R-CC"


def test_colour_png_is_refused(tmp_path: Path) -> None:
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 0] = 255
    with pytest.raises(InputError, match="not a greyscale image"):
        read_mammogram(save_png(tmp_path / "L_CC.png", rgb))


def test_bad_arguments_and_paths(tmp_path: Path) -> None:
    path = save_png(tmp_path / "L_CC.png", np.zeros((3, 4), np.uint16))
    with pytest.raises(InputError, match="laterality must be L or R"):
        read_mammogram(path, laterality="both")
    with pytest.raises(InputError, match="view must be one of"):
        read_mammogram(path, view="AP")
    with pytest.raises(InputError, match="does not exist"):
        read_mammogram(tmp_path / "missing.png")
    with pytest.raises(InputError, match="is not a file"):
        read_mammogram(tmp_path)
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(InputError, match="unknown mammogram file type"):
        read_mammogram(tmp_path / "photo.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    with pytest.raises(InputError, match="not a readable PNG"):
        read_mammogram(tmp_path / "broken.png")


# -- DICOM made here -----------------------------------------------------------------------------------------------
def mammo_dicom(path: Path, stored: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int = 12,
                **attributes: object) -> Path:
    """A minimal uncompressed digital mammography image with ``stored`` pixel values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = sop_uid = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = MAMMO_FOR_PRESENTATION, sop_uid
    dataset.Modality = "MG"
    dataset.PatientID = "BREAST-1"
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.PresentationIntentType = "FOR PRESENTATION"
    frames = stored.shape[0] if stored.ndim == 3 else 1
    dataset.Rows, dataset.Columns = stored.shape[-2:]
    if frames > 1:
        dataset.NumberOfFrames = frames
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, bits_stored, bits_stored - 1
    dataset.PixelRepresentation = 0
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = stored.astype(np.uint16).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


STORED = np.array([[0, 100, 750, 1000], [1250, 2000, 4000, 4095]], dtype=np.uint16)


def linear_window(x: np.ndarray, center: float, width: float, y_min: float, y_max: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, written out independently of pydicom."""
    x = np.asarray(x, dtype=float)
    below, above = x <= center - 0.5 - (width - 1) / 2, x > center - 0.5 + (width - 1) / 2
    inside = ((x - (center - 0.5)) / (width - 1) + 0.5) * (y_max - y_min) + y_min
    return np.where(below, y_min, np.where(above, y_max, inside))


def test_monochrome2_without_luts_is_the_stored_values(tmp_path: Path) -> None:
    mammogram = read_mammogram(mammo_dicom(tmp_path / "m.dcm", STORED))
    np.testing.assert_array_equal(mammogram.pixels, STORED)
    assert mammogram.pixels.dtype == np.float32
    assert mammogram.photometric == "MONOCHROME2" and mammogram.bits_stored == 12


def test_monochrome1_is_inverted_so_dense_tissue_is_bright(tmp_path: Path) -> None:
    mammogram = read_mammogram(mammo_dicom(tmp_path / "m.dcm", STORED, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(mammogram.pixels, 4095 - STORED.astype(float))
    assert mammogram.photometric == "MONOCHROME1"


def test_rescale_then_inversion(tmp_path: Path) -> None:
    path = mammo_dicom(tmp_path / "m.dcm", STORED, photometric="MONOCHROME1", RescaleSlope=2, RescaleIntercept=10)
    # Output range of the rescale: [10, 2 * 4095 + 10]; MONOCHROME1 flips within it.
    expected = (10 + 8200) - (2.0 * STORED + 10)
    np.testing.assert_allclose(read_mammogram(path).pixels, expected)


def test_window_center_and_width_are_applied(tmp_path: Path) -> None:
    path = mammo_dicom(tmp_path / "m.dcm", STORED, WindowCenter=1000, WindowWidth=500)
    expected = linear_window(STORED, 1000, 500, 0, 4095)
    np.testing.assert_allclose(read_mammogram(path).pixels, expected, atol=1e-3)
    assert expected[0, 0] == 0 and expected[1, 3] == 4095 and 0 < expected[0, 3] < 4095


def test_window_on_monochrome1_is_inverted_after_windowing(tmp_path: Path) -> None:
    path = mammo_dicom(tmp_path / "m.dcm", STORED, photometric="MONOCHROME1", WindowCenter=[1000, 2000],
                       WindowWidth=[500, 4000])
    expected = 4095 - linear_window(STORED, 1000, 500, 0, 4095)  # the first window is the default one
    np.testing.assert_allclose(read_mammogram(path).pixels, expected, atol=1e-3)


def voi_lut_item(table: np.ndarray, first: int = 0, bits: int = 12) -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", [len(table), first, bits])  # LUT Descriptor
    item.add_new(0x00283006, "US", [int(v) for v in table])  # LUT Data
    item.LUTExplanation = "square root"
    return item


def test_voi_lut_sequence_is_applied_in_preference_to_the_window(tmp_path: Path) -> None:
    table = np.round(np.sqrt(np.arange(4096) / 4095) * 4095).astype(np.uint16)
    path = mammo_dicom(tmp_path / "m.dcm", STORED, VOILUTSequence=Sequence([voi_lut_item(table)]),
                       WindowCenter=1000, WindowWidth=500)
    np.testing.assert_array_equal(read_mammogram(path).pixels, table[STORED])


def test_voi_lut_on_monochrome1_inverts_within_the_lut_range(tmp_path: Path) -> None:
    table = (np.arange(4096) // 4 + 100).astype(np.uint16)  # outputs 100 .. 1123
    path = mammo_dicom(tmp_path / "m.dcm", STORED, photometric="MONOCHROME1",
                       VOILUTSequence=Sequence([voi_lut_item(table)]))
    np.testing.assert_array_equal(read_mammogram(path).pixels, (100 + 1123) - table[STORED].astype(float))


def test_dicom_laterality_view_and_spacing(tmp_path: Path) -> None:
    path = mammo_dicom(tmp_path / "image0001.dcm", STORED, ImageLaterality="L", ViewPosition="MLO",
                       PixelSpacing=[0.07, 0.065])
    mammogram = read_mammogram(path, require_view=True)
    assert (mammogram.laterality, mammogram.view) == ("L", "MLO")
    assert mammogram.pixel_spacing == (0.07, 0.065)
    assert mammogram.source.modality == "MG" and mammogram.source.patient_id == "BREAST-1"
    assert mammogram.source.extra["presentation_intent"] == "FOR PRESENTATION"
    volume = mammogram.to_volume()
    assert volume.shape == (1, 2, 4)
    np.testing.assert_allclose(volume.spacing, (0.065, 0.07, 1.0))  # (x = column, y = row, z)


def test_laterality_fallback_view_code_and_overrides(tmp_path: Path) -> None:
    view_code = Dataset()
    view_code.CodeValue, view_code.CodingSchemeDesignator = "399162004", "SCT"
    view_code.CodeMeaning = "cranio-caudal"
    path = mammo_dicom(tmp_path / "L_MLO.dcm", STORED, Laterality="R", ViewCodeSequence=Sequence([view_code]),
                       ImagerPixelSpacing=[0.1, 0.1])
    mammogram = read_mammogram(path)
    assert (mammogram.laterality, mammogram.view) == ("R", "CC")  # the header wins over the file name
    assert mammogram.pixel_spacing == (0.1, 0.1)
    assert read_mammogram(path, laterality="L", view="MLO").name == "L-MLO"  # the caller wins over the header


def test_name_is_used_when_the_header_is_silent(tmp_path: Path) -> None:
    mammogram = read_mammogram(mammo_dicom(tmp_path / "R-CC.dcm", STORED))
    assert mammogram.name == "R-CC"


def test_multi_frame_dicom_is_refused(tmp_path: Path) -> None:
    path = mammo_dicom(tmp_path / "tomo.dcm", np.zeros((3, 2, 4), np.uint16))
    with pytest.raises(InputError, match="3 frames"):
        read_mammogram(path)


def test_colour_dicom_is_refused(tmp_path: Path) -> None:
    path = mammo_dicom(tmp_path / "photo.dcm", STORED, photometric="RGB")
    with pytest.raises(InputError, match="colour image"):
        read_mammogram(path)


def test_dicom_without_pixels_is_refused(tmp_path: Path) -> None:
    path = mammo_dicom(tmp_path / "m.dcm", STORED)
    dataset = dcmread(path)
    del dataset.PixelData
    dataset.save_as(path)
    with pytest.raises(InputError, match="without an image"):
        read_mammogram(path)


def test_mammogram_holds_a_2d_image() -> None:
    with pytest.raises(ValueError):
        Mammogram(pixels=np.zeros((2, 3, 4)))
