"""Lung-DETR training augmentation on MIP slabs: flips, rotation within +-15 degrees, brightness +-15 %, noise.

The augmentations of Ramezani et al. (Lung-DETR, arXiv:2409.05200), each a pure function of a slab image
(H, W) float32 in 0..1 and its nodule boxes (N, 4) in continuous pixel coordinates (x0, y0, x1, y1; x = 0 is the
left edge of column 0, as in :mod:`radassist.lung.preprocess`). Boxes always move with the image.

Rotation keeps the box of the nodule rather than the box of the rotated box: nodules are round, and the
axis-aligned box of a rotated circle is the circle's own box, while the hull of a rotated square box grows by up to
cos 15 deg + sin 15 deg = 1.22 times. We therefore rotate the ellipse inscribed in each box (exact for a round
nodule, tight for an oval one) and take its axis-aligned extent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run and how strongly; probabilities are per slab."""

    horizontal_flip_probability: float = 0.5  # Lung-DETR paper: flips
    vertical_flip_probability: float = 0.5  # Lung-DETR paper: flips
    rotation_probability: float = 0.5  # our choice: half the slabs keep their orientation
    max_rotation_deg: float = 15.0  # Lung-DETR paper: rotation within +-15 degrees
    brightness_probability: float = 0.5  # our choice
    max_brightness: float = 0.15  # Lung-DETR paper: brightness +-15 %
    noise_probability: float = 0.5  # our choice
    noise_std: float = 0.02  # Lung-DETR paper: Gaussian noise (its strength is ours: 2 % of the 0..1 range)
    min_box_px: float = 1.0  # boxes narrower than this after a transform are dropped

    def __post_init__(self) -> None:
        for name in ("horizontal_flip_probability", "vertical_flip_probability", "rotation_probability",
                     "brightness_probability", "noise_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if not 0.0 <= self.max_rotation_deg < 90.0:
            raise ValueError(f"max_rotation_deg must be within [0, 90), got {self.max_rotation_deg}")
        if not 0.0 <= self.max_brightness < 1.0:
            raise ValueError(f"max_brightness must be within [0, 1), got {self.max_brightness}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")

    @classmethod
    def none(cls) -> "AugmentConfig":
        """No augmentation at all (validation, or a run that should see the slabs as they are)."""
        return cls(horizontal_flip_probability=0.0, vertical_flip_probability=0.0, rotation_probability=0.0,
                   brightness_probability=0.0, noise_probability=0.0)


def _boxes(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def flip_horizontal(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: column c goes to W - 1 - c, a box edge x goes to W - x."""
    width = image.shape[-1]
    boxes = _boxes(boxes)
    flipped = np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=-1)
    return np.ascontiguousarray(image[..., ::-1]), flipped.astype(np.float32)


def flip_vertical(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror top-bottom: row r goes to H - 1 - r, a box edge y goes to H - y."""
    height = image.shape[-2]
    boxes = _boxes(boxes)
    flipped = np.stack([boxes[:, 0], height - boxes[:, 3], boxes[:, 2], height - boxes[:, 1]], axis=-1)
    return np.ascontiguousarray(image[..., ::-1, :]), flipped.astype(np.float32)


def rotation_matrix(angle_deg: float) -> np.ndarray:
    """2x2 matrix turning (x, y) pixel vectors by ``angle_deg``; positive turns from +x towards +y (clockwise on
    screen, where y runs down)."""
    angle = np.deg2rad(angle_deg)
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def rotate_boxes(boxes: np.ndarray, angle_deg: float, image_size: tuple[int, int]) -> np.ndarray:
    """Boxes after turning the image by ``angle_deg`` about its centre: the extent of each box's rotated
    inscribed ellipse, clipped to the image (H, W)."""
    height, width = image_size
    boxes = _boxes(boxes).astype(np.float64)
    centre = np.array([width / 2.0, height / 2.0])
    matrix = rotation_matrix(angle_deg)
    middles = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    moved = (middles - centre) @ matrix.T + centre
    half_w, half_h = (boxes[:, 2] - boxes[:, 0]) / 2.0, (boxes[:, 3] - boxes[:, 1]) / 2.0
    cos, sin = abs(matrix[0, 0]), abs(matrix[1, 0])
    extent_x = np.sqrt((half_w * cos) ** 2 + (half_h * sin) ** 2)
    extent_y = np.sqrt((half_w * sin) ** 2 + (half_h * cos) ** 2)
    rotated = np.stack([moved[:, 0] - extent_x, moved[:, 1] - extent_y, moved[:, 0] + extent_x,
                        moved[:, 1] + extent_y], axis=-1)
    rotated[:, [0, 2]] = np.clip(rotated[:, [0, 2]], 0.0, width)
    rotated[:, [1, 3]] = np.clip(rotated[:, [1, 3]], 0.0, height)
    return rotated.astype(np.float32)


def rotate_image(image: np.ndarray, angle_deg: float, fill: float = 0.0) -> np.ndarray:
    """The image turned by ``angle_deg`` about its centre (bilinear), same size; corners outside get ``fill``."""
    height, width = image.shape
    # array index (row, col) = (y - 0.5, x - 0.5); the image centre in index units is ((H - 1) / 2, (W - 1) / 2)
    centre = np.array([(height - 1) / 2.0, (width - 1) / 2.0])
    # in (row, col) order the (x, y) matrix [[a, b], [c, d]] reads [[d, c], [b, a]]
    matrix = rotation_matrix(-angle_deg)[::-1, ::-1]
    offset = centre - matrix @ centre
    rotated = ndimage.affine_transform(np.asarray(image, dtype=np.float32), matrix, offset=offset, order=1,
                                       mode="constant", cval=float(fill))
    return rotated.astype(np.float32)


def rotate(image: np.ndarray, boxes: np.ndarray, angle_deg: float,
           fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Turn the slab and its boxes together by ``angle_deg`` about the image centre."""
    return rotate_image(image, angle_deg, fill), rotate_boxes(boxes, angle_deg, image.shape)


def scale_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Intensities times ``factor`` (1.15 = 15 % brighter), kept in 0..1."""
    return np.clip(np.asarray(image, dtype=np.float32) * np.float32(factor), 0.0, 1.0)


def add_gaussian_noise(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean Gaussian noise of standard deviation ``std``, kept in 0..1."""
    noise = rng.normal(0.0, std, size=image.shape).astype(np.float32)
    return np.clip(np.asarray(image, dtype=np.float32) + noise, 0.0, 1.0)


def drop_small_boxes(boxes: np.ndarray, min_size: float) -> np.ndarray:
    """Boxes at least ``min_size`` pixels wide and high (a rotation can push a border nodule out of view)."""
    boxes = _boxes(boxes)
    keep = (boxes[:, 2] - boxes[:, 0] >= min_size) & (boxes[:, 3] - boxes[:, 1] >= min_size)
    return boxes[keep]


def random_augment(image: np.ndarray, boxes: np.ndarray, config: AugmentConfig,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random draw of every augmentation (each with its probability), boxes transformed with the image.

    The same ``rng`` state gives the same result, so a training epoch seeded by (seed, epoch, slab) is repeatable.
    """
    image = np.asarray(image, dtype=np.float32)
    boxes = _boxes(boxes)
    draws = rng.random(5)  # one draw per augmentation, always taken, so later draws do not shift
    angle = rng.uniform(-config.max_rotation_deg, config.max_rotation_deg)
    factor = 1.0 + rng.uniform(-config.max_brightness, config.max_brightness)
    if draws[0] < config.horizontal_flip_probability:
        image, boxes = flip_horizontal(image, boxes)
    if draws[1] < config.vertical_flip_probability:
        image, boxes = flip_vertical(image, boxes)
    if draws[2] < config.rotation_probability and angle != 0.0:
        image, boxes = rotate(image, boxes, angle)
    if draws[3] < config.brightness_probability:
        image = scale_brightness(image, factor)
    if draws[4] < config.noise_probability and config.noise_std > 0:
        image = add_gaussian_noise(image, config.noise_std, rng)
    return image, drop_small_boxes(boxes, config.min_box_px)


__all__ = ["AugmentConfig", "add_gaussian_noise", "drop_small_boxes", "flip_horizontal", "flip_vertical",
           "random_augment", "rotate", "rotate_boxes", "rotate_image", "rotation_matrix", "scale_brightness"]
