"""Training augmentation of a 2-D slice and its label mask, together: flips, rotation, scaling, elastic
deformation and a random crop (the seed recipe's list), as MONAI's dictionary transforms.

Rotation, scaling and the elastic deformation are one ``Rand2DElasticd`` call (``RandAffined`` when the draw
skips the elastic part), so the image is interpolated once
(linear) and the mask once (nearest, so labels stay labels) on the same sampling grid: image and mask can never
drift apart. Flips and the crop move whole pixels. One seed drawn from the caller's generator drives all of it,
so a training run stays reproducible from its own seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from monai.transforms import Compose, Rand2DElasticd, RandAffined, RandFlipd, RandSpatialCropd

_KEYS = ("image", "mask")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; ``crop_size`` None keeps the slice's size."""

    flip_probability: float = 0.5  # each of left-right and up-down
    rotation_degrees: float = 15.0  # uniform in [-r, r]
    scale_range: tuple[float, float] = (0.85, 1.15)  # drawn for each axis
    elastic_probability: float = 0.5
    # Control points every 8 pixels moved by N(0, m) pixels, m in 1..2: about the displacements of Simard et al.'s
    # (ICDAR 2003) alpha 34, sigma 4 (1.4 pixels per axis, smooth over a few pixels)
    elastic_spacing: float = 8.0  # pixels
    elastic_magnitude: tuple[float, float] = (1.0, 2.0)  # pixels
    crop_size: tuple[int, int] | None = None
    background_value: float = 0.0  # image value outside the slice (the windowed value of air is 0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_probability <= 1.0 or not 0.0 <= self.elastic_probability <= 1.0:
            raise ValueError("probabilities must be within 0..1")
        if self.scale_range[0] <= 0 or self.scale_range[1] < self.scale_range[0]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {self.scale_range}")


def augment_pair(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                 config: AugmentConfig = AugmentConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Augment (channels, h, w) image and (h, w) integer mask with the same random transform."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[np.newaxis]
    mask = np.asarray(mask)
    if image.shape[1:] != mask.shape:
        raise ValueError(f"image {image.shape} and mask {mask.shape} differ in size")
    if config.crop_size is not None and (config.crop_size[0] > mask.shape[0] or config.crop_size[1] > mask.shape[1]):
        raise ValueError(f"crop {config.crop_size} is larger than the slice {mask.shape}")
    scale = tuple(s - 1.0 for s in config.scale_range)  # MONAI adds 1 to what it draws
    affine = {"prob": 1.0, "rotate_range": np.deg2rad(config.rotation_degrees), "scale_range": (scale, scale),
              "mode": ("bilinear", "nearest"), "padding_mode": "zeros"}
    geometric = (Rand2DElasticd(_KEYS, config.elastic_spacing, config.elastic_magnitude, **affine)
                 if rng.uniform() < config.elastic_probability else RandAffined(_KEYS, **affine))
    transforms = [RandFlipd(_KEYS, config.flip_probability, spatial_axis=0),
                  RandFlipd(_KEYS, config.flip_probability, spatial_axis=1), geometric]
    if config.crop_size is not None:
        transforms.append(RandSpatialCropd(_KEYS, config.crop_size, random_size=False))
    transform = Compose(transforms).set_random_state(seed=int(rng.integers(2 ** 31)))
    out = transform({"image": image - config.background_value, "mask": mask[np.newaxis].astype(np.float32)})
    out_image = np.asarray(out["image"], dtype=np.float32) + np.float32(config.background_value)
    return out_image, np.rint(np.asarray(out["mask"][0])).astype(mask.dtype)
