"""From a mammogram as read (DICOM or PNG, see :mod:`radassist.io.mammogram`) to GMIC's model input.

The published GMIC pipeline (nyukat/GMIC: ``src/cropping``, ``src/optimal_centers``, ``src/data_loading``) is
followed step by step, re-implemented here:

1. **Breast region.** Tissue is what is brighter than the background; a 100-pixel erosion removes thin lines and
   labels, the largest connected part is kept and dilated back. The image is cropped to its bounding box plus a
   50-pixel margin, above and below and on the nipple side (never beyond the chest wall).
2. **Flip.** Every view is turned so the chest wall is on the left and the nipple points right. The published
   code flips right-breast views of exams stored unflipped; we decide from the image itself (which side the
   breast touches), so images stored either way are handled, and record what was done.
3. **Window.** A 2944 x 1920 window (rows x columns) is placed on the breast. Its right edge is the nipple (the
   right-most breast pixel below the top third). On CC views the window's row is the one holding the most tissue
   (nearest the image centre on ties); on MLO views its bottom is the breast's bottom row. An image smaller than
   the window is padded with zeros: CC views equally above and below, MLO views below, all views on the right.
   Two one-pixel conventions of the published code are not copied (it ends the window one column before the
   nipple, and one row above the MLO bottom); they matter only for images larger than the window.
4. **Standardise** the window, zero padding included: ``(x - mean) / max(std, 1e-5)``.

The window is a pure translation of the (flipped) image: no resampling. :class:`WindowMap` says where each model
input pixel comes from, so saliency maps and patches go back onto the input grid exactly. GMIC's sample lesion
masks (``sample_data/segmentation``) are drawn in this window frame: flipped, padded, 2944 x 1920.

Test-time augmentation shifts the window by up to ``max_shift_px`` (the published training crop noise, 100 px)
and flips it upside down with ``flip_probability`` (the chest wall stays on the left).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import ndimage

from radassist.errors import InputError
from radassist.extent import nonzero_extent
from radassist.io.mammogram import Mammogram

GMIC_VIEWS = ("CC", "MLO")
EXAM_VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a view becomes a model input; defaults are the published pipeline's."""

    input_size: tuple[int, int] = (2944, 1920)  # window (rows, columns), published INPUT_SIZE_DICT
    tissue_threshold: float = 0.01  # noisy background: tissue is above min + this share of the min..99th
    #                                 percentile range (an exact-zero background uses the published "> 0")
    erosion_px: int = 100  # published crop_mammogram --num-iterations
    buffer_px: int = 50  # published --buffer-size
    nipple_search_from: float = 1 / 3  # published find_rightmost_from_ratio: ignore the top third (axilla)
    max_tissue_fraction: float = 0.97  # more tissue than this: no background, not a mammogram
    min_breast_fraction: float = 0.02  # less breast than this: no breast found
    max_shift_px: int = 100  # test-time augmentation: window shift (published max_crop_noise)
    flip_probability: float = 0.5  # test-time augmentation: chance of an upside-down window

    def __post_init__(self) -> None:
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(f"input_size must be two positive sizes, got {self.input_size}")
        if not 0.0 <= self.tissue_threshold < 1.0:
            raise ValueError(f"tissue_threshold must be within 0..1, got {self.tissue_threshold}")
        if self.erosion_px < 0 or self.buffer_px < 0 or self.max_shift_px < 0:
            raise ValueError("erosion_px, buffer_px and max_shift_px must not be negative")
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be within 0..1, got {self.flip_probability}")


@dataclass(frozen=True)
class WindowMap:
    """Model input pixel (r, c) <- image pixel (row_offset + row_sign * r, col_offset + col_sign * c).

    ``image_shape`` is the mammogram's (rows, columns), ``input_shape`` the window's. Input pixels that fall
    outside the image are zero padding.
    """

    image_shape: tuple[int, int]
    input_shape: tuple[int, int]
    row_offset: int
    col_offset: int
    row_sign: int = 1
    col_sign: int = 1

    @property
    def flipped(self) -> bool:
        """Left-right mirrored (the image's chest wall was on the right)."""
        return self.col_sign < 0

    @property
    def upside_down(self) -> bool:
        return self.row_sign < 0

    def input_to_image(self, rows: Any, cols: Any) -> tuple[np.ndarray, np.ndarray]:
        """Image (row, column) of input pixels (continuous values allowed)."""
        return (self.row_offset + self.row_sign * np.asarray(rows, dtype=float),
                self.col_offset + self.col_sign * np.asarray(cols, dtype=float))

    def image_to_input(self, rows: Any, cols: Any) -> tuple[np.ndarray, np.ndarray]:
        """Input (row, column) of image pixels."""
        return ((np.asarray(rows, dtype=float) - self.row_offset) * self.row_sign,
                (np.asarray(cols, dtype=float) - self.col_offset) * self.col_sign)

    def _transfer(self, array: np.ndarray, fill: float, to_input: bool) -> np.ndarray:
        """``array`` (..., rows, cols) moved from the image frame into the window (``to_input``) or back."""
        array = np.asarray(array)
        source_shape, target_shape = ((self.image_shape, self.input_shape) if to_input else
                                      (self.input_shape, self.image_shape))
        out = np.full(array.shape[:-2] + tuple(target_shape), fill, dtype=array.dtype)
        pairs = []  # per axis, the (target, source) indices that both lie inside their arrays
        for axis, (offset, sign) in enumerate(((self.row_offset, self.row_sign), (self.col_offset, self.col_sign))):
            target = np.arange(target_shape[axis])
            source = offset + sign * target if to_input else (target - offset) * sign
            inside = (source >= 0) & (source < source_shape[axis])
            pairs.append((target[inside], source[inside]))
        (rt, rs), (ct, cs) = pairs
        if len(rt) and len(ct):
            out[..., rt[0]:rt[-1] + 1, ct[0]:ct[-1] + 1] = array[..., rs, :][..., cs]
        return out

    def to_input(self, image: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """The window of ``image`` (..., rows, cols): (..., H, W), ``fill`` outside the image."""
        return self._transfer(image, fill, True)

    def to_image(self, window: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Input-frame values (..., H, W) put back on the image grid (..., rows, cols), ``fill`` where the window
        does not reach."""
        return self._transfer(window, fill, False)

    def box_to_image(self, top: float, left: float, height: float, width: float) -> tuple[float, float, float, float]:
        """An input-frame box (upper-left corner, size in pixels) as the image-frame box (top, left, height,
        width) it covers; pixel (r, c) covers [r, r + 1) x [c, c + 1)."""
        rows, cols = self.input_to_image([top, top + height - 1], [left, left + width - 1])
        return float(rows.min()), float(cols.min()), float(height), float(width)

    def shifted(self, rows: int, cols: int, upside_down: bool = False) -> WindowMap:
        """The same window moved by (rows, cols) input pixels, and optionally turned upside down."""
        row_offset = self.row_offset + self.row_sign * rows
        row_sign = self.row_sign
        if upside_down:
            row_offset, row_sign = row_offset + row_sign * (self.input_shape[0] - 1), -row_sign
        return replace(self, row_offset=row_offset, col_offset=self.col_offset + self.col_sign * cols,
                       row_sign=row_sign)


@dataclass
class PreparedView:
    """A view ready for GMIC: its pixels, its name and the window the model reads."""

    mammogram: Mammogram
    window: WindowMap
    breast_box: tuple[int, int, int, int]  # (top, bottom, left, right) of the crop, image pixels, end exclusive
    tissue_threshold: float
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.mammogram.name

    @property
    def laterality(self) -> str:
        return str(self.mammogram.laterality)

    @property
    def view(self) -> str:
        return str(self.mammogram.view)

    def model_input(self, window: WindowMap | None = None) -> np.ndarray:
        """The standardised (H, W) float32 window (the published one, or an augmented ``window``)."""
        return standardise(window_pixels(self.mammogram.pixels, window or self.window))


# -- checks ---------------------------------------------------------------------------------------------------------

def _source(mammogram: Mammogram) -> str | None:
    return mammogram.path or mammogram.source.path


def check_mammogram(mammogram: Mammogram, crop_shape: tuple[int, int] = (256, 256)) -> None:
    """Refuse, with an InputError naming the file, what GMIC cannot read: another modality, a view that is not
    named (ask for it) or not CC/MLO, an image smaller than one patch, a blank image."""
    name = _source(mammogram)
    modality = (mammogram.source.modality or "").upper()
    if modality and modality != "MG":
        raise InputError(name, f"is a {modality} image, not a mammogram (DICOM modality MG)")
    missing = [what for what, value in (("laterality", mammogram.laterality), ("view", mammogram.view))
               if value is None]
    if missing:
        raise InputError(name, f"the {' and '.join(missing)} of this mammogram is unknown (not in the file or its "
                               f"name); give it with --laterality L|R and --view CC|MLO")
    if mammogram.laterality not in ("L", "R"):
        raise InputError(name, f"laterality must be L or R, got {mammogram.laterality!r}")
    if mammogram.view not in GMIC_VIEWS:
        raise InputError(name, f"is a {mammogram.view} view; GMIC reads the screening views CC and MLO only")
    rows, cols = mammogram.shape
    if rows < crop_shape[0] or cols < crop_shape[1]:
        raise InputError(name, f"is {rows} x {cols} pixels, smaller than one GMIC patch ({crop_shape[0]} x "
                               f"{crop_shape[1]}); a mammogram is thousands of pixels across")
    pixels = mammogram.pixels
    if not np.all(np.isfinite(pixels)):
        raise InputError(name, "holds pixel values that are not finite numbers")
    if float(pixels.max()) <= float(pixels.min()):
        raise InputError(name, "is blank: every pixel has the same value")


def tissue_threshold(pixels: np.ndarray, fraction: float) -> float:
    """The grey level above which a pixel is tissue. A background stored as one exact value (a tenth of the image
    or more at the minimum, like the published PNGs) gives the published rule, ``> minimum``; a noisy background
    gives ``fraction`` of the way from the minimum to the 99th percentile."""
    sample = pixels[::4, ::4]
    low = float(pixels.min())
    if float(np.mean(sample == low)) >= 0.1:
        return low
    return low + fraction * max(float(np.percentile(sample, 99)) - low, 0.0)


def _taxicab_erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``binary_erosion(mask, iterations)`` with the 4-neighbour cross (outside counts as background), in one
    distance transform instead of ``iterations`` passes."""
    if iterations == 0:
        return mask.copy()
    distance = ndimage.distance_transform_cdt(np.pad(mask, 1), metric="taxicab")[1:-1, 1:-1]
    return distance > iterations


def _taxicab_dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``binary_dilation(mask, iterations)`` with the 4-neighbour cross, as one distance transform."""
    if iterations == 0:
        return mask.copy()
    return ndimage.distance_transform_cdt(~mask, metric="taxicab") <= iterations


def breast_mask(pixels: np.ndarray, threshold: float, erosion_px: int = 100) -> np.ndarray:
    """The breast: tissue, eroded to drop thin lines and labels, largest connected part, dilated back. An image
    too small for the erosion is eroded less."""
    tissue = pixels > threshold
    iterations = erosion_px
    while True:
        eroded = _taxicab_erode(tissue, iterations)
        labels, count = ndimage.label(eroded)
        if count or iterations == 0:
            break
        iterations //= 2
    if not count:
        return eroded
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == (int(np.argmax(sizes)) + 1)
    return _taxicab_dilate(largest, iterations)


def chest_wall_on_right(mask: np.ndarray) -> bool:
    """Whether the breast is attached to the right edge: the side whose outer columns hold more breast."""
    band = max(mask.shape[1] // 20, 1)
    return float(mask[:, -band:].mean()) > float(mask[:, :band].mean())


def crop_box(mask: np.ndarray, chest_wall_right: bool, buffer_px: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the breast plus ``buffer_px`` above, below and on the nipple side."""
    (top, bottom), (left, right) = nonzero_extent(mask)
    top, bottom = max(top - buffer_px, 0), min(bottom + buffer_px, mask.shape[0])
    if chest_wall_right:
        left = max(left - buffer_px, 0)
    else:
        right = min(right + buffer_px, mask.shape[1])
    return top, bottom, left, right


def _nipple_column(mask: np.ndarray, search_from: float) -> int:
    """Right-most breast column (chest wall on the left) below the top ``search_from`` of the rows."""
    start = int(mask.shape[0] * search_from)
    cols = np.flatnonzero(mask[start:].any(axis=0))
    return int(cols[-1]) if len(cols) else mask.shape[1] - 1


def _best_cc_top(tissue: np.ndarray, height: int) -> int:
    """Top row of the ``height``-row band holding the most tissue; ties go to the band centred nearest the
    image centre (the published optimal-centre search along rows)."""
    rows = tissue.shape[0]
    counts = np.concatenate([[0], np.cumsum(tissue.sum(axis=1))])
    sums = counts[height:] - counts[:rows - height + 1]
    best = np.flatnonzero(sums == sums.max())
    centre = rows // 2 - height // 2
    return int(best[np.argmin(np.abs(best - centre))])


def place_window(tissue: np.ndarray, mask: np.ndarray, view: str, input_size: tuple[int, int],
                 search_from: float) -> tuple[int, int]:
    """Upper-left corner (may be negative: zero padding) of the window in the cropped, chest-wall-left image."""
    rows, cols = tissue.shape
    height, width = input_size
    if cols < width:
        left = 0  # padded on the right
    else:
        left = min(max(_nipple_column(mask, search_from) + 1 - width, 0), cols - width)
    if rows < height:
        top = -((height - rows) // 2) if view == "CC" else 0  # CC: padded above and below; MLO: below
    elif view == "CC":
        top = _best_cc_top(tissue, height)
    else:
        band = tissue[:, max(cols - width, 0):]
        filled = np.flatnonzero(band.any(axis=1))
        bottom = int(np.flatnonzero(mask.any(axis=1))[-1])
        if len(filled):
            bottom = min(bottom, int(filled[-1]))
        top = min(max(bottom + 1 - height, 0), rows - height)
    return top, left


def prepare_view(mammogram: Mammogram, config: PreprocessConfig = PreprocessConfig(),
                 crop_shape: tuple[int, int] = (256, 256)) -> PreparedView:
    """Check a mammogram and find its published-style window (see the module docstring)."""
    check_mammogram(mammogram, crop_shape)
    name = _source(mammogram)
    pixels = mammogram.pixels
    threshold = tissue_threshold(pixels, config.tissue_threshold)
    tissue = pixels > threshold
    if tissue.mean() > config.max_tissue_fraction:
        raise InputError(name, f"has no dark background around a breast ({100 * tissue.mean():.0f}% of it is "
                               f"bright); it does not look like a mammogram")
    mask = breast_mask(pixels, threshold, config.erosion_px)
    if mask.mean() < config.min_breast_fraction:
        raise InputError(name, "no breast found: the bright region is too small for a mammogram")
    flip = chest_wall_on_right(mask)
    top, bottom, left, right = crop_box(mask, flip, config.buffer_px)
    crop_tissue, crop_mask = tissue[top:bottom, left:right], mask[top:bottom, left:right]
    if flip:
        crop_tissue, crop_mask = crop_tissue[:, ::-1], crop_mask[:, ::-1]
    win_top, win_left = place_window(crop_tissue, crop_mask, str(mammogram.view), config.input_size,
                                     config.nipple_search_from)
    # flipped: input column c <- cropped flipped column win_left + c <- image column right - 1 - (win_left + c)
    col_offset, col_sign = (right - 1 - win_left, -1) if flip else (left + win_left, 1)
    window = WindowMap(mammogram.shape, config.input_size, top + win_top, col_offset, 1, col_sign)
    notes = [f"chest wall on the {'right: mirrored' if flip else 'left: not mirrored'}"]
    if flip != (mammogram.laterality == "R"):
        notes.append(f"a {mammogram.laterality} breast stored with its chest wall on the "
                     f"{'right' if flip else 'left'} (stored mirrored)")
    return PreparedView(mammogram, window, (top, bottom, left, right), threshold, notes)


# -- pixels ---------------------------------------------------------------------------------------------------------

def window_pixels(pixels: np.ndarray, window: WindowMap) -> np.ndarray:
    """The raw window (zero padding outside the image), float32."""
    return window.to_input(np.asarray(pixels, dtype=np.float32), fill=0.0)


def standardise(image: np.ndarray) -> np.ndarray:
    """``(x - mean) / max(std, 1e-5)`` over the whole image (published standard_normalize_single_image)."""
    image = np.asarray(image, dtype=np.float32)
    return ((image - image.mean()) / max(float(image.std()), 1e-5)).astype(np.float32)


def augmented_windows(window: WindowMap, count: int, rng: np.random.Generator,
                      config: PreprocessConfig = PreprocessConfig()) -> list[WindowMap]:
    """``count`` random variants of ``window``: shifted by up to ``max_shift_px`` each way, turned upside down
    with ``flip_probability``."""
    variants = []
    for _ in range(count):
        rows, cols = (int(v) for v in rng.integers(-config.max_shift_px, config.max_shift_px + 1, size=2))
        variants.append(window.shifted(rows, cols, bool(rng.random() < config.flip_probability)))
    return variants
