"""Augmentation for training the infection networks on a few dozen real slices (COVID-SemiSeg has 50).

With so few slices a network memorises them within minutes; what it can still learn from is variety that real
slices have and these lack. Every draw therefore changes:

* geometry: any rotation (the crops come in any orientation: some slices are turned by 90 degrees), left-right and
  up-down flips, scaling, an elastic deformation (Simard et al., ICDAR 2003, via
  :func:`radassist.liver.augment.elastic_displacement`), and a training window (``crop_size``) that is centred on a
  labelled pixel half the time (nnU-Net oversamples foreground the same way) so small findings are seen often;
* intensity: gamma, contrast, brightness and noise, because the slices were exported in different display windows.

Image and mask are sampled at the same positions (the image linearly, the mask by nearest neighbour, so labels
stay labels). Inputs are network-ready slices (0..1); outside the slice the image is 0 (air) and the mask 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from radassist.liver.augment import elastic_displacement


@dataclass(frozen=True)
class SliceAugment:
    """Ranges and probabilities of one draw; every default is ours (chosen for the 50 COVID-SemiSeg slices)."""

    crop_size: tuple[int, int] | None = None  # training window (None: the whole slice)
    foreground_probability: float = 0.5  # window centred on a labelled pixel (nnU-Net: 1/3 of its patches)
    rotation_degrees: float = 180.0  # uniform in [-r, r]: any orientation
    flip_probability: float = 0.5  # each of left-right and up-down
    scale_range: tuple[float, float] = (0.8, 1.25)  # > 1 zooms in
    elastic_probability: float = 0.2
    elastic_alpha: float = 30.0  # pixels
    elastic_sigma: float = 6.0  # pixels
    gamma_range: tuple[float, float] = (0.7, 1.5)
    contrast_range: tuple[float, float] = (0.75, 1.25)
    brightness: float = 0.1  # added offset, uniform in [-b, b]
    noise_std: float = 0.03  # largest Gaussian noise standard deviation

    def __post_init__(self) -> None:
        for name in ("foreground_probability", "flip_probability", "elastic_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {getattr(self, name)}")
        for name in ("scale_range", "gamma_range", "contrast_range"):
            low, high = getattr(self, name)
            if low <= 0 or high < low:
                raise ValueError(f"{name} must be 0 < low <= high, got {(low, high)}")
        if self.crop_size is not None and min(self.crop_size) < 1:
            raise ValueError(f"crop_size must be positive, got {self.crop_size}")

    def with_intensity(self, preset: str) -> "SliceAugment":
        """The same geometry with the intensity changes of ``preset`` (:data:`INTENSITY_PRESETS`)."""
        if preset not in INTENSITY_PRESETS:
            raise ValueError(f"intensity preset must be one of {', '.join(INTENSITY_PRESETS)}, got {preset!r}")
        return replace(self, **INTENSITY_PRESETS[preset])

    def to_dict(self) -> dict:
        return {name: (list(value) if isinstance(value, tuple) else value) for name, value in vars(self).items()}


def _window_centre(mask: np.ndarray, rng: np.random.Generator, config: SliceAugment) -> np.ndarray:
    """Where in the slice the window is centred: a labelled pixel, a random point, or the middle (no crop)."""
    height, width = mask.shape
    if config.crop_size is None:
        return np.array([(height - 1) / 2.0, (width - 1) / 2.0])
    if rng.uniform() < config.foreground_probability:
        labelled = np.flatnonzero(mask)
        if labelled.size:
            row, col = divmod(int(labelled[rng.integers(labelled.size)]), width)
            return np.array([row, col], dtype=np.float64)
    return np.array([rng.uniform(0, height - 1), rng.uniform(0, width - 1)])


def sampling_positions(mask: np.ndarray, rng: np.random.Generator, config: SliceAugment) -> np.ndarray:
    """(2, h, w) input positions (rows, columns) of every output pixel of one draw."""
    out_h, out_w = config.crop_size or mask.shape
    rows, cols = np.meshgrid(np.arange(out_h, dtype=np.float64) - (out_h - 1) / 2.0,
                             np.arange(out_w, dtype=np.float64) - (out_w - 1) / 2.0, indexing="ij")
    if rng.uniform() < config.flip_probability:
        rows = -rows
    if rng.uniform() < config.flip_probability:
        cols = -cols
    angle = np.deg2rad(rng.uniform(-config.rotation_degrees, config.rotation_degrees))
    scale = rng.uniform(*config.scale_range)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    centre = _window_centre(mask, rng, config)
    positions = np.stack([centre[0] + cos * rows - sin * cols, centre[1] + sin * rows + cos * cols])
    if rng.uniform() < config.elastic_probability:
        positions += elastic_displacement(rng, (out_h, out_w), config.elastic_alpha, config.elastic_sigma)
    return positions


def vary_intensity(image: np.ndarray, rng: np.random.Generator, config: SliceAugment) -> np.ndarray:
    """Gamma, contrast about the mean, brightness and Gaussian noise on a 0..1 slice."""
    image = np.clip(image, 0.0, None) ** rng.uniform(*config.gamma_range)
    mean = float(image.mean())
    image = (image - mean) * rng.uniform(*config.contrast_range) + mean + rng.uniform(-config.brightness,
                                                                                     config.brightness)
    if config.noise_std > 0:
        image = image + rng.normal(0.0, rng.uniform(0.0, config.noise_std), image.shape)
    return image.astype(np.float32)


def augment_slice(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                  config: SliceAugment) -> tuple[np.ndarray, np.ndarray]:
    """One draw of a (y, x) slice and its (y, x) class mask: (crop_size or y, x) float32 image and uint8 mask."""
    image = np.asarray(image, dtype=np.float32)
    mask = np.asarray(mask)
    if image.shape != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} differ in size")
    positions = sampling_positions(mask, rng, config)
    out_image = ndimage.map_coordinates(image, positions, order=1, mode="constant", cval=0.0)
    out_mask = ndimage.map_coordinates(mask.astype(np.uint8), positions, order=0, mode="constant", cval=0)
    return vary_intensity(out_image, rng, config), out_mask.astype(np.uint8)


def augment_batch(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
                  config: SliceAugment) -> tuple[np.ndarray, np.ndarray]:
    """Draws for a batch of (n, 1, y, x) images and (n, y, x) masks."""
    drawn_images, drawn_masks = zip(*(augment_slice(image[0], mask, rng, config) for image, mask in zip(images, masks)))
    return np.stack(drawn_images)[:, np.newaxis].astype(np.float32), np.stack(drawn_masks).astype(np.uint8)


# How strongly intensities vary: "full" is the default above; "mild" keeps more of the grey-value difference between
# ground glass and consolidation; "off" changes geometry only.
INTENSITY_PRESETS: dict[str, dict] = {
    "full": {"gamma_range": (0.7, 1.5), "contrast_range": (0.75, 1.25), "brightness": 0.1, "noise_std": 0.03},
    "mild": {"gamma_range": (0.85, 1.2), "contrast_range": (0.9, 1.1), "brightness": 0.03, "noise_std": 0.02},
    "off": {"gamma_range": (1.0, 1.0), "contrast_range": (1.0, 1.0), "brightness": 0.0, "noise_std": 0.0},
}
