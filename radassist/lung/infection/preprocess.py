"""What the infection networks see, and the checks that keep other images away from them.

* the lung window (-1350..150 HU, i.e. level -600 / width 1500, the catalogue's input window) scaled to 0..1;
* for display-windowed 8-bit pictures (the COVID-SemiSeg JPEG crops: no Hounsfield units, every slice shown in
  its own window), :func:`display_to_unit`: each picture stretched between its own 1st and 99th percentile, so
  the air in the lungs sits near 0 and soft tissue near 1 whatever window the slice was exported with;
* :func:`check_ct`: a clear refusal of images that are not CT in Hounsfield units;
* the two lungs as boolean masks (:class:`LungMasks`): from a label map the user already has, or from the lung
  preprocessing of the nodule module (:mod:`radassist.lung.preprocess`), which is imported only when needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from radassist.errors import InputError
from radassist.liver.preprocess import window_to_unit as _clip_and_scale
from radassist.results.labelmap import LabelMap
from radassist.volume import Volume

LUNG_WINDOW = (-1350.0, 150.0)  # HU (low, high): level -600, width 1500 (Resources/models.json input window)
DISPLAY_PERCENTILES = (1.0, 99.0)  # per-picture stretch of display-windowed 8-bit slices (ours, see display_to_unit)
AIR_BELOW_HU = -500.0  # a chest CT in HU has air and lung far below this
RIGHT_LUNG_CODE, LEFT_LUNG_CODE = "3341006", "44029006"  # SNOMED CT "Right lung", "Left lung"
RIGHT_CODE, LEFT_CODE = "24028007", "7771000"  # SNOMED CT laterality modifiers "Right", "Left"


def window_to_unit(values: np.ndarray, window: tuple[float, float] = LUNG_WINDOW) -> np.ndarray:
    """Clip ``values`` to the window and scale it to 0..1 (float32): the networks' input."""
    if float(window[1]) <= float(window[0]):
        raise ValueError(f"window must have low < high, got {window}")
    return _clip_and_scale(values, window)


def display_to_unit(picture: np.ndarray, percentiles: tuple[float, float] = DISPLAY_PERCENTILES) -> np.ndarray:
    """A display-windowed picture (8-bit grey values) as network input: its own ``percentiles`` mapped to 0 and 1.

    Why a per-picture stretch: the COVID-SemiSeg slices were exported in different display windows (the lung's air
    is grey value 0 in one picture and 80 in another, see benchmarks/INFECTION_REAL.md), and no Hounsfield unit can
    be recovered from them. The 1st percentile is the darkest air, the 99th the brightest tissue in nearly every
    crop, so stretching between them puts the same anatomy at similar values. Values outside are clipped. A flat
    picture (both percentiles equal) maps to zeros.
    """
    values = np.asarray(picture, dtype=np.float32)
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


NORMALIZATIONS = ("window", "display-percentile")


@dataclass(frozen=True)
class InfectionInput:
    """What a network expects: slice size (None: any size, padded to the network's step) and intensity handling.

    ``normalization`` "window": CT in Hounsfield units through ``window`` to 0..1 (the study's networks).
    "display-percentile": networks trained on display-windowed 8-bit pictures (COVID-SemiSeg); a picture goes
    through :func:`display_to_unit`; a CT in HU is first shown in the lung window as an 8-bit picture, as such
    pictures are made, then stretched the same way.
    """

    image_size: tuple[int, int] | None = (512, 512)  # full-resolution slices (Saood and Hatem 2021)
    window: tuple[float, float] = LUNG_WINDOW
    normalization: str = "window"
    percentiles: tuple[float, float] = DISPLAY_PERCENTILES

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> "InfectionInput":
        """Read a checkpoint's ``metadata["input"]`` (written by training); defaults where it is silent."""
        spec = dict((metadata or {}).get("input") or {})
        size, window, percentiles = spec.get("imageSize"), spec.get("window"), spec.get("percentiles")
        return cls(tuple(int(s) for s in size) if size else cls.image_size,
                   tuple(float(w) for w in window) if window else LUNG_WINDOW,
                   str(spec.get("normalization") or "window"),
                   tuple(float(p) for p in percentiles) if percentiles else DISPLAY_PERCENTILES)

    @property
    def takes_pictures(self) -> bool:
        """Whether the network was trained on display-windowed 8-bit pictures."""
        return self.normalization == "display-percentile"

    def prepare_picture(self, picture: np.ndarray) -> np.ndarray:
        """One (y, x) 8-bit display picture as network input."""
        if not self.takes_pictures:
            return np.asarray(picture, dtype=np.float32) / 255.0  # PNG slices already in the lung window
        return display_to_unit(picture, self.percentiles)

    def prepare_ct(self, slices: np.ndarray) -> np.ndarray:
        """(n, y, x) CT slices in HU as network input."""
        unit = window_to_unit(slices, self.window)
        if not self.takes_pictures:
            return unit
        pictures = np.round(unit * 255.0)
        return np.stack([display_to_unit(picture, self.percentiles) for picture in pictures]) if len(pictures) \
            else unit


def check_ct(volume: Volume, name: str | None = None) -> None:
    """Raise InputError unless ``volume`` looks like a CT in Hounsfield units.

    Refused: a modality other than CT in the file's metadata, and intensities with no air (a CT without its
    rescale applied, an MR image, a mask). ``name`` is the file the user gave (for the message).
    """
    where = name or volume.source.path
    modality = (volume.source.modality or "").upper()
    if modality and modality != "CT":
        raise InputError(where, f"is a {modality} image; lung infection segmentation needs a chest CT")
    array = volume.array
    if array.ndim != 3 or array.shape[0] < 1 or array.size == 0:
        raise InputError(where, "holds no image")
    sample = array[:, ::4, ::4] if array.size > 4_000_000 else array
    low = float(np.percentile(sample, 1))
    if low > AIR_BELOW_HU:
        raise InputError(where, f"does not look like a CT in Hounsfield units: no air or lung (1st percentile "
                                f"{low:.0f}, a chest CT has values near -1000 HU); give a chest CT")


@dataclass
class LungMasks:
    """The patient's right and left lung as boolean (z, y, x) masks on the CT's grid."""

    right: np.ndarray
    left: np.ndarray

    @property
    def both(self) -> np.ndarray:
        return self.right | self.left

    @classmethod
    def from_labelmap(cls, labelmap: LabelMap, source: str | None = None) -> "LungMasks":
        """Find the right and left lung segments by terminology (SNOMED CT codes), else by name."""
        found: dict[str, np.ndarray] = {}  # side -> the mask of its first segment
        for segment in labelmap.segments:
            side = _side_of(segment)
            if side is not None and side not in found:
                found[side] = labelmap.mask(segment)
        if not found:
            names = ", ".join(s.name for s in labelmap.segments) or "none"
            raise InputError(source, f"has no right or left lung segment (segments: {names})")
        missing = np.zeros(labelmap.geometry.shape, bool)  # at most one side is missing
        return cls(found.get("right", missing), found.get("left", missing))

    @classmethod
    def split(cls, mask: np.ndarray, volume: Volume) -> "LungMasks":
        """Split one two-lung mask into sides at the midline between the lungs (LPS: patient right is low x)."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return cls(mask.copy(), mask.copy())
        zyx = np.argwhere(mask)
        x = volume.geometry.zyx_to_world(zyx.astype(float))[:, 0]
        midline = 0.5 * (np.percentile(x, 5) + np.percentile(x, 95))
        right = np.zeros_like(mask)
        right[tuple(zyx[x < midline].T)] = True
        return cls(right, mask & ~right)


def _side_of(segment) -> str | None:
    terminology = segment.terminology
    if terminology is not None:
        if terminology.type.value == RIGHT_LUNG_CODE:
            return "right"
        if terminology.type.value == LEFT_LUNG_CODE:
            return "left"
        modifier = terminology.type_modifier.value if terminology.type_modifier is not None else None
        if terminology.type.value == "39607008" and modifier in (RIGHT_CODE, LEFT_CODE):
            return "right" if modifier == RIGHT_CODE else "left"
    name = segment.name.lower()
    if "lung" in name:
        if "right" in name:
            return "right"
        if "left" in name:
            return "left"
    return None


def compute_lung_masks(volume: Volume) -> LungMasks:
    """The lungs of ``volume`` from the nodule module's lung preprocessing (its Otsu two-lung mask), split into
    sides at the midline (:meth:`LungMasks.split`).

    That module is imported here, on first use, so the infection model does not depend on it otherwise.
    """
    from radassist.lung.preprocess import lung_mask

    return LungMasks.split(lung_mask(volume) > 0, volume)
