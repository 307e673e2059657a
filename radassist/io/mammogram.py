"""Mammograms in: a DICOM "for presentation" image or a greyscale PNG, as float32 pixels where dense tissue is bright.

DICOM pixels go through the display pipeline a radiologist sees: Modality LUT (or rescale), then the VOI LUT or
window, then MONOCHROME1 inversion, so the model receives the image as it is read. PNGs (the GMIC sample data) are
taken as they are. Laterality and view come from the header or the file name; the caller's arguments win.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.errors import InvalidDicomError

try:  # pydicom >= 3
    from pydicom.pixels import apply_modality_lut, apply_voi_lut
except ImportError:  # pydicom 2.4
    from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

from radassist.errors import InputError
from radassist.io.dicom import header_source, is_dicom_file
from radassist.volume import SourceInfo, Volume

LATERALITIES = ("L", "R")
# DICOM ViewPosition values used for mammography (PS3.3 C.8.11.7): the standard and the supplementary views.
VIEWS = ("CC", "MLO", "ML", "LM", "LMO", "FB", "SIO", "XCCL", "XCCM", "AT", "CV")
_VIEW_CODE_MEANINGS = {"cranio-caudal": "CC", "medio-lateral oblique": "MLO", "medio-lateral": "ML",
                       "latero-medial": "LM", "latero-medial oblique": "LMO", "caudo-cranial (from below)": "FB",
                       "superolateral to inferomedial oblique": "SIO", "cleavage": "CV", "axillary tail": "AT",
                       "cranio-caudal exaggerated laterally": "XCCL", "cranio-caudal exaggerated medially": "XCCM"}
_LATERALITY_WORDS = {"l": "L", "left": "L", "r": "R", "right": "R"}
_PNG_SUFFIXES = (".png",)


@dataclass
class Mammogram:
    """One mammography view: pixels (rows, cols) float32, dense tissue bright, plus what is known about it."""

    pixels: np.ndarray
    pixel_spacing: tuple[float, float] | None = None  # (row, column) mm
    laterality: str | None = None  # 'L' or 'R'
    view: str | None = None  # 'CC', 'MLO', ...
    path: str | None = None
    photometric: str = "MONOCHROME2"  # as stored; the pixels are always bright = dense
    bits_stored: int | None = None
    source: SourceInfo = field(default_factory=SourceInfo)

    def __post_init__(self) -> None:
        self.pixels = np.asarray(self.pixels, dtype=np.float32)
        if self.pixels.ndim != 2:
            raise ValueError(f"a Mammogram holds a 2-D (rows, cols) image, got shape {self.pixels.shape}")

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.pixels.shape)

    @property
    def name(self) -> str:
        """'L-CC', 'R-MLO', ... (GMIC's view names); '?' for what is unknown."""
        return f"{self.laterality or '?'}-{self.view or '?'}"

    def to_volume(self) -> Volume:
        """A one-slice Volume (1, rows, cols); spacing 1 mm where the file gave none."""
        row_mm, column_mm = self.pixel_spacing or (1.0, 1.0)
        return Volume(array=self.pixels[np.newaxis], spacing=(column_mm, row_mm, 1.0), source=self.source)


def read_mammogram(path: str | Path, laterality: str | None = None, view: str | None = None,
                   require_view: bool = False) -> Mammogram:
    """Read a mammogram from DICOM or PNG; ``laterality``/``view`` override what the file says.

    ``require_view`` refuses an image whose laterality or view stays unknown (GMIC needs both).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    if not path.is_file():
        raise InputError(path, "is not a file; a mammogram is one DICOM or PNG image")
    laterality = _normalise_laterality(path, laterality)
    view = _normalise_view(path, view)
    if is_dicom_file(path) or path.suffix.lower() == ".dcm":
        mammogram = _read_dicom(path)
    elif path.suffix.lower() in _PNG_SUFFIXES:
        mammogram = _read_png(path)
    else:
        raise InputError(path, f"unknown mammogram file type '{path.suffix or path.name}'; give a DICOM or a "
                               "greyscale PNG image")
    mammogram.laterality = laterality or mammogram.laterality
    mammogram.view = view or mammogram.view
    mammogram.source.extra.update({"laterality": mammogram.laterality, "view": mammogram.view})
    if require_view and (mammogram.laterality is None or mammogram.view is None):
        missing = " and ".join(name for name, value in (("laterality", mammogram.laterality),
                                                         ("view", mammogram.view)) if value is None)
        raise InputError(path, f"the {missing} of this mammogram is unknown (not in the file or its name); give it "
                               "with --laterality L|R and --view CC|MLO")
    return mammogram


# -- laterality and view ---------------------------------------------------------------------------------------
def _normalise_laterality(path: Path, value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return None
    laterality = _LATERALITY_WORDS.get(str(value).strip().lower())
    if laterality is None:
        raise InputError(path, f"laterality must be L or R, got {value!r}")
    return laterality


def _normalise_view(path: Path, value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return None
    view = str(value).strip().upper()
    if view not in VIEWS:
        raise InputError(path, f"view must be one of {', '.join(VIEWS)}, got {value!r}")
    return view


def parse_view_from_name(name: str) -> tuple[str | None, str | None]:
    """(laterality, view) from a file name such as '0_L-CC.png', 'R_MLO.png', 'left_cc.png' or 'RMLO.dcm'.

    Anything ambiguous (two lateralities, two views) stays None rather than guessed.
    """
    tokens = [token for token in re.split(r"[^a-z0-9]+", Path(name).name.lower()) if token]
    lateralities, views = set(), set()
    view_words = {v.lower() for v in VIEWS}
    for token in tokens:
        if token in _LATERALITY_WORDS:
            lateralities.add(_LATERALITY_WORDS[token])
        elif token in view_words:
            views.add(token.upper())
        elif token[:1] in ("l", "r") and token[1:] in view_words:
            lateralities.add(_LATERALITY_WORDS[token[0]])
            views.add(token[1:].upper())
    laterality = lateralities.pop() if len(lateralities) == 1 else None
    view = views.pop() if len(views) == 1 else None
    return laterality, view


# -- PNG ---------------------------------------------------------------------------------------------------------
def _read_png(path: Path) -> Mammogram:
    try:
        with Image.open(path) as image:
            image.load()
            mode, array = image.mode, np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"is not a readable PNG image ({exc})") from None
    if array.ndim != 2 or mode not in ("L", "I", "I;16", "I;16B", "I;16L"):
        raise InputError(path, f"is not a greyscale image (PNG mode {mode}, a colour or palette image); a "
                               "mammogram must be a single-channel 8- or 16-bit greyscale image")
    bits = 8 if mode == "L" else 16
    laterality, view = parse_view_from_name(path.name)
    return Mammogram(pixels=array.astype(np.float32), pixel_spacing=None, laterality=laterality, view=view,
                     path=str(path), photometric="MONOCHROME2", bits_stored=bits,
                     source=SourceInfo(path=str(path), modality="MG"))


# -- DICOM -------------------------------------------------------------------------------------------------------
def _read_dicom(path: Path) -> Mammogram:
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        raise InputError(path, f"is not a readable DICOM file ({exc})") from None
    if "PixelData" not in dataset:
        raise InputError(path, "is a DICOM file without an image (no Pixel Data)")
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip().upper()
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(path, f"is a colour image ({photometric or 'unknown photometric'}, {samples} samples per "
                               "pixel); a mammogram must be greyscale")
    if frames > 1:
        raise InputError(path, f"holds {frames} frames (a 3-D image such as tomosynthesis); RadAssist needs one "
                               "2-D mammogram per file")
    stored = _decode(path, dataset)
    pixels = _display_values(path, dataset, stored)
    file_laterality, file_view = parse_view_from_name(path.name)
    return Mammogram(
        pixels=pixels,
        pixel_spacing=_pixel_spacing(dataset),
        laterality=_dicom_laterality(dataset) or file_laterality,
        view=_dicom_view(dataset) or file_view,
        path=str(path),
        photometric=photometric,
        bits_stored=int(dataset.get("BitsStored", 0) or 0) or None,
        source=header_source(path, dataset, [str(dataset.get("SOPInstanceUID", "") or "").strip()], {
            "presentation_intent": "PresentationIntentType", "manufacturer": "Manufacturer",
            "study_date": "StudyDate"}),
    )


def _decode(path: Path, dataset: pydicom.Dataset) -> np.ndarray:
    try:
        array = dataset.pixel_array
    except Exception as exc:  # pydicom raises many types for missing decoders and damaged data
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        raise InputError(path, f"its pixel data ({name}) cannot be decoded: {exc}") from None
    if array.ndim != 2:
        raise InputError(path, f"has pixel data of shape {array.shape}; a mammogram is one 2-D greyscale image")
    return array


def _display_values(path: Path, dataset: pydicom.Dataset, stored: np.ndarray) -> np.ndarray:
    """Modality LUT, then VOI LUT or window, then MONOCHROME1 inversion: what the reading room shows."""
    try:
        values = apply_modality_lut(stored, dataset)
        if np.issubdtype(values.dtype, np.floating) and np.array_equal(values, np.round(values)):
            values = values.astype(np.int64)  # a VOI LUT indexes by integer value
        low, high = _output_range(dataset)
        values = apply_voi_lut(values, dataset, index=0, prefer_lut=True)
    except (ValueError, NotImplementedError, AttributeError, IndexError) as exc:
        raise InputError(path, f"its Modality/VOI LUT cannot be applied ({exc})") from None
    values = np.asarray(values, dtype=np.float64)
    if str(dataset.PhotometricInterpretation).strip().upper() == "MONOCHROME1":
        values = (low + high) - values  # MONOCHROME1: the lowest value is displayed white
    return values.astype(np.float32)


def _output_range(dataset: pydicom.Dataset) -> tuple[float, float]:
    """The range of values the display pipeline can output; MONOCHROME1 is inverted within it."""
    voi_sequence = dataset.get("VOILUTSequence")
    if voi_sequence and "LUTDescriptor" in voi_sequence[0] and "LUTData" in voi_sequence[0]:
        entries, first = int(voi_sequence[0].LUTDescriptor[0]) or 65536, int(voi_sequence[0].LUTDescriptor[1])
        table = apply_voi_lut(np.arange(first, first + entries, dtype=np.int64), dataset, index=0, prefer_lut=True)
        return float(np.min(table)), float(np.max(table))
    if "WindowCenter" in dataset and "WindowWidth" in dataset:
        with np.errstate(over="ignore"):
            probe = apply_voi_lut(np.array([-1e12, 1e12]), dataset, index=0, prefer_lut=False)
        return float(np.min(probe)), float(np.max(probe))
    bits = int(dataset.get("BitsStored", 16) or 16)
    signed = int(dataset.get("PixelRepresentation", 0) or 0) == 1
    extremes = np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] if signed else [0, 2 ** bits - 1], dtype=np.int64)
    mapped = np.asarray(apply_modality_lut(extremes, dataset), dtype=np.float64)
    return float(mapped.min()), float(mapped.max())


def _pixel_spacing(dataset: pydicom.Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dataset.get(keyword)
        try:
            row, column = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and column > 0:
            return row, column
    return None


def _dicom_laterality(dataset: pydicom.Dataset) -> str | None:
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(dataset.get(keyword, "") or "").strip().upper()
        if value in LATERALITIES:
            return value
    return None


def _dicom_view(dataset: pydicom.Dataset) -> str | None:
    value = str(dataset.get("ViewPosition", "") or "").strip().upper()
    if value in VIEWS:
        return value
    for item in dataset.get("ViewCodeSequence", []) or []:
        meaning = str(item.get("CodeMeaning", "")).strip().lower()
        if meaning in _VIEW_CODE_MEANINGS:
            return _VIEW_CODE_MEANINGS[meaning]
    return None
