"""Training augmentation of a 2-D slice and its label mask, together: flips, rotation, scaling, elastic
deformation and a random crop (the seed recipe's list).

All geometric changes are combined into one sampling map, so the image is interpolated once (linear) and the mask
once (nearest, so labels stay labels) at exactly the same positions: image and mask can never drift apart.
The elastic deformation is Simard et al.'s (ICDAR 2003): random displacements smoothed by a Gaussian of
``elastic_sigma`` pixels and scaled by ``elastic_alpha`` pixels.
Ours, not MONAI's Rand2DElasticd: that one resamples in float64 through a bicubic control grid, 1.8x (512x512) to
14x (128x128) slower per batch here (benchmarks/TRAINING_CPU.md), for the same kind of deformation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; ``crop_size`` None keeps the slice's size."""

    flip_probability: float = 0.5  # each of left-right and up-down
    rotation_degrees: float = 15.0  # uniform in [-r, r]
    scale_range: tuple[float, float] = (0.85, 1.15)
    elastic_probability: float = 0.5
    elastic_alpha: float = 34.0  # pixels (Simard et al. 2003 use alpha 34, sigma 4 on 28x28 digits)
    elastic_sigma: float = 4.0  # pixels
    crop_size: tuple[int, int] | None = None
    background_value: float = 0.0  # image value outside the slice (the windowed value of air is 0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_probability <= 1.0 or not 0.0 <= self.elastic_probability <= 1.0:
            raise ValueError("probabilities must be within 0..1")
        if self.scale_range[0] <= 0 or self.scale_range[1] < self.scale_range[0]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {self.scale_range}")


def elastic_displacement(rng: np.random.Generator, shape: tuple[int, int], alpha: float,
                         sigma: float) -> np.ndarray:
    """(2, h, w) smooth random displacement in pixels (rows, columns)."""
    noise = rng.uniform(-1.0, 1.0, size=(2, *shape))
    return alpha * np.stack([ndimage.gaussian_filter(n, sigma, mode="constant") for n in noise])


def sampling_map(rng: np.random.Generator, shape: tuple[int, int], config: AugmentConfig) -> np.ndarray:
    """(2, h, w) input positions for every output pixel: rotation and scale about the centre, flips, elastic."""
    height, width = shape
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    centre = np.array([(height - 1) / 2.0, (width - 1) / 2.0])
    angle = np.deg2rad(rng.uniform(-config.rotation_degrees, config.rotation_degrees))
    scale = rng.uniform(*config.scale_range)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    dr, dc = rows - centre[0], cols - centre[1]
    source = np.stack([centre[0] + cos * dr - sin * dc, centre[1] + sin * dr + cos * dc])
    if rng.uniform() < config.flip_probability:
        source[0] = (height - 1) - source[0]
    if rng.uniform() < config.flip_probability:
        source[1] = (width - 1) - source[1]
    if rng.uniform() < config.elastic_probability:
        source += elastic_displacement(rng, shape, config.elastic_alpha, config.elastic_sigma)
    return source


def augment_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                 config: AugmentConfig = AugmentConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Augment (channels, h, w) image and (h, w) integer mask with the same random transform."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[np.newaxis]
    mask = np.asarray(mask)
    if image.shape[1:] != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} differ in size")
    source = sampling_map(rng, mask.shape, config)
    out_image = np.stack([ndimage.map_coordinates(channel, source, order=1, mode="constant",
                                                  cval=config.background_value) for channel in image])
    out_mask = ndimage.map_coordinates(mask, source, order=0, mode="constant", cval=0).astype(mask.dtype)
    if config.crop_size is not None:
        out_image, out_mask = random_crop(out_image, out_mask, config.crop_size, rng)
    return out_image.astype(np.float32), out_mask


def random_crop(image: np.ndarray, mask: np.ndarray, size: tuple[int, int],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The same random (h, w) window of a (channels, H, W) image and its (H, W) mask (H >= h, W >= w)."""
    height, width = mask.shape
    crop_h, crop_w = int(size[0]), int(size[1])
    if crop_h > height or crop_w > width:
        raise ValueError(f"crop {size} is larger than the slice {mask.shape}")
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return image[:, top:top + crop_h, left:left + crop_w], mask[top:top + crop_h, left:left + crop_w]
