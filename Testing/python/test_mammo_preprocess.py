"""GMIC preprocessing: breast crop, flip, the window on the breast and standardisation, on GMIC's real sample
exam (whose lesion masks are drawn in the published model-input frame), on phantoms and on DICOM files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

from radassist.errors import InputError
from radassist.io import read_mammogram
from radassist.io.mammogram import Mammogram
from radassist.mammo.preprocess import (PreprocessConfig, WindowMap, augmented_windows, breast_mask, prepare_view,
                                        standardise)
from radassist.synthetic.mammo import MammoPhantomConfig, make_mammogram
from radassist.volume import SourceInfo

SMALL = MammoPhantomConfig(shape=(384, 256), pixel_spacing_mm=0.6)


def exam_view(test_data: Path, name: str) -> Mammogram:
    return read_mammogram(test_data / "mammo" / "gmic_exam0" / f"0_{name}.png")


def lesion_mask(test_data: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(test_data / "mammo" / "gmic_exam0" / "lesion_masks" / f"0_{name}_benign.png")) > 0


def phantom_view(laterality: str = "L", view: str = "CC", seed: int = 1, config=SMALL) -> Mammogram:
    phantom = make_mammogram(seed, laterality, view, findings=["benign_mass"], config=config)
    return Mammogram(phantom.pixels, (config.pixel_spacing_mm,) * 2, laterality, view, path=f"{phantom.name}.png",
                     source=SourceInfo(modality="MG"))


# -- the real exam ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, row_offset, col_offset, flipped", [
    ("L-CC", -460, 0, False),  # 2023 rows: CC views are padded equally above and below (921 rows)
    ("R-CC", -400, 800, True),  # 2144 rows, stored unflipped: mirrored, 400 rows of padding above
    ("L-MLO", 0, 0, False),  # MLO views are padded below only
    ("R-MLO", 0, 1005, True),
])
def test_windows_of_the_sample_exam_follow_the_published_rules(test_data, name, row_offset, col_offset, flipped):
    """The sample images are already cropped by GMIC's pipeline (their breast reaches 50 px from the edges) and
    smaller than 2944 x 1920, so the published window is the flipped image padded with zeros: these offsets."""
    prepared = prepare_view(exam_view(test_data, name))
    window = prepared.window
    assert (window.row_offset, window.col_offset, window.flipped) == (row_offset, col_offset, flipped)
    assert window.input_shape == (2944, 1920) and not window.upside_down
    assert prepared.breast_box == (0, window.image_shape[0], 0, window.image_shape[1])
    model_input = prepared.model_input()
    assert model_input.shape == (2944, 1920) and model_input.dtype == np.float32
    assert abs(float(model_input.mean())) < 1e-3 and float(model_input.std()) == pytest.approx(1.0, abs=1e-3)
    raw = window.to_input(prepared.mammogram.pixels)
    assert raw[:, :40].mean() > 10 * raw[:, -40:].mean()  # chest wall on the left, padding on the right


@pytest.mark.parametrize("name", ["R-CC", "R-MLO"])
def test_published_lesion_masks_lie_on_breast_tissue_in_our_window(test_data, name):
    prepared = prepare_view(exam_view(test_data, name))
    mask = lesion_mask(test_data, name)
    assert mask.shape == prepared.window.input_shape
    raw = prepared.window.to_input(prepared.mammogram.pixels)
    assert np.all(raw[mask] > 0), "every lesion pixel must fall on the breast, none on padding or background"
    on_image = prepared.window.to_image(mask, fill=False)
    assert on_image.sum() == mask.sum()  # the whole lesion maps back onto the stored image
    assert prepared.mammogram.pixels[on_image].mean() > 1000


def test_calcification_cluster_of_r_mlo_is_inside_its_mask_only_in_our_frame(test_data):
    """The R-MLO lesion holds bright calcifications: with our window the mask covers them; moved by 150 px, or
    without the mirroring, it does not."""
    prepared = prepare_view(exam_view(test_data, "R-MLO"))
    mask = lesion_mask(test_data, "R-MLO")

    def specks(window: WindowMap, shift=(0, 0)) -> int:
        tophat = ndimage.white_tophat(window.to_input(prepared.mammogram.pixels), size=9)
        return int((tophat[np.roll(mask, shift, axis=(0, 1))] > 1200).sum())

    ours = specks(prepared.window)
    assert ours > 30
    unmirrored = dataclasses.replace(prepared.window, col_offset=0, col_sign=1)
    others = [specks(prepared.window, s) for s in ((150, 0), (-150, 0), (0, 150), (0, -150))]
    assert max(others + [specks(unmirrored)]) < ours / 5


# -- window geometry -------------------------------------------------------------------------------------------------

def test_window_map_round_trips_pixels_and_points():
    image = np.arange(20 * 12, dtype=np.float32).reshape(20, 12) + 1
    window = WindowMap((20, 12), (16, 16), row_offset=-3, col_offset=11, row_sign=1, col_sign=-1)
    framed = window.to_input(image)
    assert framed[3, 0] == image[0, 11] and framed[0].sum() == 0 and framed[:, 12:].sum() == 0
    back = window.to_image(framed)
    covered = np.zeros_like(image, dtype=bool)
    covered[:13, :] = True  # input rows 0..15 are image rows -3..12
    assert np.array_equal(back[covered], image[covered]) and back[~covered].sum() == 0
    rows, cols = window.input_to_image([3, 10], [0, 5])
    assert np.array_equal(window.image_to_input(rows, cols)[0], [3, 10])
    flipped = window.shifted(2, -1, upside_down=True)  # moved 2 rows down, 1 column left, then upside down
    r, c = flipped.input_to_image([0, 15], [0, 0])
    assert list(r) == [window.row_offset + 2 + 15, window.row_offset + 2] and list(c) == [12.0, 12.0]
    np.testing.assert_array_equal(flipped.to_input(image), np.flipud(window.shifted(2, -1).to_input(image)))
    assert flipped.box_to_image(0, 0, 4, 3) == (11.0, 10.0, 4.0, 3.0)


def test_a_mirrored_copy_of_a_view_gives_the_same_model_input():
    left = phantom_view("L", "CC")
    mirrored = dataclasses.replace(left, pixels=np.ascontiguousarray(left.pixels[:, ::-1]))
    a, b = prepare_view(left, PreprocessConfig(input_size=(448, 320)), (64, 64)), \
        prepare_view(mirrored, PreprocessConfig(input_size=(448, 320)), (64, 64))
    assert not a.window.flipped and b.window.flipped
    assert "stored mirrored" in " ".join(b.notes)
    np.testing.assert_array_equal(a.model_input(), b.model_input())


@pytest.mark.parametrize("view", ["CC", "MLO"])
def test_window_smaller_than_the_image_sits_on_the_nipple_and_the_breast(view):
    """Image larger than the window: its last column is the nipple (right-most breast column below the top third
    of the crop); MLO windows end at the breast's bottom row; CC windows hold as much tissue as any other."""
    mammogram = phantom_view("R", view, seed=2)
    config = PreprocessConfig(input_size=(256, 160))
    prepared = prepare_view(mammogram, config, (64, 64))
    window = prepared.window
    assert window.flipped  # a right breast stored unflipped
    top, bottom, _, _ = prepared.breast_box
    mask = breast_mask(mammogram.pixels, prepared.tissue_threshold, config.erosion_px)
    lower = mask[top + int((bottom - top) / 3):bottom]
    nipple = np.flatnonzero(lower.any(axis=0))[0]  # chest wall on the right: the nipple is the left-most column
    assert window.input_to_image([0], [159])[1][0] == nipple
    framed = window.to_input(mask.astype(np.uint8)).astype(bool)
    tissue = window.to_input((mammogram.pixels > prepared.tissue_threshold).astype(np.uint8))
    if view == "MLO":
        assert np.flatnonzero(framed.any(axis=1))[-1] == 255
    else:
        all_tissue = (mammogram.pixels > prepared.tissue_threshold)
        columns = window.input_to_image([0], [159, 0])[1].astype(int)
        band = all_tissue[:, columns.min():columns.max() + 1]
        best = max(band[r:r + 256].sum() for r in range(band.shape[0] - 255))
        assert tissue.sum() == best


def test_standardise_and_augmented_windows():
    x = standardise(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-6) and float(x.std()) == pytest.approx(1.0, abs=1e-6)
    assert np.array_equal(standardise(np.full((3, 3), 7.0)), np.zeros((3, 3)))
    base = WindowMap((100, 80), (64, 48), 10, 70, 1, -1)
    config = PreprocessConfig(max_shift_px=5, flip_probability=0.5)
    windows = augmented_windows(base, 40, np.random.default_rng(0), config)
    assert windows == augmented_windows(base, 40, np.random.default_rng(0), config)
    assert any(w.upside_down for w in windows) and any(not w.upside_down for w in windows)
    for w in windows:
        assert w.flipped and abs(w.col_offset - base.col_offset) <= 5
        top = w.row_offset - (w.input_shape[0] - 1 if w.upside_down else 0)
        assert abs(top - base.row_offset) <= 5


# -- DICOM -----------------------------------------------------------------------------------------------------------

def write_dicom(path: Path, pixels: np.ndarray, photometric: str, laterality: str, view: str,
                modality: str = "MG") -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2.1"  # digital mammography, for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.ImageLaterality, ds.ViewPosition = modality, laterality, view
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "P1", generate_uid(), generate_uid()
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = [0.6, 0.6]
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def test_monochrome1_dicom_names_its_view_and_gives_the_monochrome2_input(tmp_path):
    phantom = phantom_view("R", "MLO", seed=3)
    stored = np.clip(phantom.pixels, 0, 4095).astype(np.uint16)
    mono2 = read_mammogram(write_dicom(tmp_path / "a.dcm", stored, "MONOCHROME2", "R", "MLO"))
    mono1 = read_mammogram(write_dicom(tmp_path / "b.dcm", 4095 - stored, "MONOCHROME1", "R", "MLO"))
    assert mono1.name == mono2.name == "R-MLO"
    config = PreprocessConfig(input_size=(448, 320))
    a, b = prepare_view(mono2, config, (64, 64)), prepare_view(mono1, config, (64, 64))
    assert a.window == b.window and a.window.flipped
    np.testing.assert_allclose(a.model_input(), b.model_input(), atol=1e-3)


def test_ct_dicom_is_refused_as_not_a_mammogram(tmp_path):
    ct = read_mammogram(write_dicom(tmp_path / "ct.dcm", phantom_view().pixels, "MONOCHROME2", "L", "CC", "CT"))
    with pytest.raises(InputError, match="CT image, not a mammogram"):
        prepare_view(ct)


# -- bad input -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"laterality": None}, "--laterality L|R and --view CC|MLO"),
    ({"view": None}, "view of this mammogram is unknown"),
    ({"view": "XCCL"}, "CC and MLO only"),
    ({"pixels": np.zeros((200, 300))}, "smaller than one GMIC patch"),
    ({"pixels": np.full((400, 300), 7.0)}, "blank"),
    ({"pixels": np.random.default_rng(0).uniform(1000, 3000, (400, 300))}, "no dark background"),
])
def test_bad_views_get_a_clear_message_naming_the_file(change, message):
    mammogram = dataclasses.replace(phantom_view(), **change)
    with pytest.raises(InputError, match=message) as error:
        prepare_view(mammogram)
    assert str(error.value.path).endswith("L-CC.png")
