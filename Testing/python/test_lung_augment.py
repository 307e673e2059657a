"""Lung-DETR augmentation: every transform moves the boxes exactly as it moves the nodule in the image."""

from __future__ import annotations

import numpy as np
import pytest

from radassist.lung.augment import (AugmentConfig, add_gaussian_noise, drop_small_boxes, flip_horizontal,
                                    flip_vertical, random_augment, rotate, rotate_boxes, rotate_image,
                                    scale_brightness)

HEIGHT, WIDTH = 64, 96


def disc_image(cx: float, cy: float, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A dark slab with one bright disc (continuous pixel coordinates: pixel centres at index + 0.5) and its box."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5
    image = np.full((HEIGHT, WIDTH), 0.1, dtype=np.float32)
    image[(cols - cx) ** 2 + (rows - cy) ** 2 <= radius ** 2] = 0.9
    return image, np.array([[cx - radius, cy - radius, cx + radius, cy + radius]], dtype=np.float32)


def bright_centre(image: np.ndarray) -> np.ndarray:
    """(x, y) centroid of the bright pixels, in continuous pixel coordinates."""
    rows, cols = np.nonzero(image > 0.5)
    return np.array([cols.mean() + 0.5, rows.mean() + 0.5])


def box_centre(boxes: np.ndarray) -> np.ndarray:
    return np.array([(boxes[0, 0] + boxes[0, 2]) / 2, (boxes[0, 1] + boxes[0, 3]) / 2])


def test_horizontal_flip_moves_the_box_with_the_disc_and_twice_is_identity():
    image, boxes = disc_image(20.0, 30.0, 6.0)
    flipped, moved = flip_horizontal(image, boxes)
    np.testing.assert_allclose(moved, [[WIDTH - 26.0, 24.0, WIDTH - 14.0, 36.0]])
    np.testing.assert_allclose(bright_centre(flipped), box_centre(moved), atol=1e-6)
    again, back = flip_horizontal(flipped, moved)
    np.testing.assert_array_equal(again, image)
    np.testing.assert_allclose(back, boxes)


def test_vertical_flip_moves_the_box_with_the_disc():
    image, boxes = disc_image(40.0, 15.0, 5.0)
    flipped, moved = flip_vertical(image, boxes)
    np.testing.assert_allclose(moved, [[35.0, HEIGHT - 20.0, 45.0, HEIGHT - 10.0]])
    np.testing.assert_allclose(bright_centre(flipped), box_centre(moved), atol=1e-6)


@pytest.mark.parametrize("angle", [-15.0, -7.0, 9.0, 15.0])
def test_rotation_moves_the_box_centre_with_the_disc_and_keeps_a_round_nodule_box(angle):
    image, boxes = disc_image(66.0, 20.0, 7.0)
    turned, moved = rotate(image, boxes, angle)
    assert turned.shape == image.shape and turned.dtype == np.float32
    np.testing.assert_allclose(bright_centre(turned), box_centre(moved), atol=0.35)
    # a disc's box keeps its size under rotation (the rotated-corner hull would grow it by up to 22 %)
    np.testing.assert_allclose(moved[0, 2] - moved[0, 0], 14.0, atol=1e-4)
    np.testing.assert_allclose(moved[0, 3] - moved[0, 1], 14.0, atol=1e-4)
    # and the disc itself stays that size in the image
    rows, cols = np.nonzero(turned > 0.5)
    assert abs((cols.max() - cols.min() + 1) - 14) <= 2 and abs((rows.max() - rows.min() + 1) - 14) <= 2


def test_rotation_direction_matches_between_image_and_boxes():
    """+15 deg turns +x towards +y: a disc right of the centre moves down (larger y)."""
    image, boxes = disc_image(WIDTH / 2 + 30.0, HEIGHT / 2, 5.0)
    turned, moved = rotate(image, boxes, 15.0)
    assert box_centre(moved)[1] > HEIGHT / 2 + 5 and bright_centre(turned)[1] > HEIGHT / 2 + 5


def test_rotating_an_elongated_box_swaps_its_extent_at_90_degrees_and_round_trips():
    boxes = np.array([[40.0, 28.0, 60.0, 36.0]], dtype=np.float32)  # 20 x 8, centred at (50, 32)
    quarter = rotate_boxes(boxes, 90.0 - 1e-9, (HEIGHT, WIDTH))
    np.testing.assert_allclose(quarter[0, 2] - quarter[0, 0], 8.0, atol=1e-3)
    np.testing.assert_allclose(quarter[0, 3] - quarter[0, 1], 20.0, atol=1e-3)
    there = rotate_boxes(boxes, 12.0, (HEIGHT, WIDTH))
    back = rotate_boxes(there, -12.0, (HEIGHT, WIDTH))
    np.testing.assert_allclose(box_centre(back), box_centre(boxes), atol=1e-4)


def test_zero_rotation_is_identity_and_boxes_are_clipped_to_the_image():
    image, boxes = disc_image(30.0, 30.0, 4.0)
    np.testing.assert_allclose(rotate_image(image, 0.0), image, atol=1e-6)
    edge = np.array([[WIDTH - 4.0, 2.0, WIDTH + 4.0, 10.0]], dtype=np.float32)
    clipped = rotate_boxes(edge, 0.0, (HEIGHT, WIDTH))
    assert clipped[0, 2] == WIDTH


def test_brightness_scales_and_clips_to_the_unit_range():
    image = np.array([[0.0, 0.5, 0.95]], dtype=np.float32)
    np.testing.assert_allclose(scale_brightness(image, 1.15), [[0.0, 0.575, 1.0]], atol=1e-6)
    np.testing.assert_allclose(scale_brightness(image, 0.85), [[0.0, 0.425, 0.8075]], atol=1e-6)


def test_noise_has_the_requested_strength_is_seeded_and_stays_in_range():
    image = np.full((128, 128), 0.5, dtype=np.float32)
    noisy = add_gaussian_noise(image, 0.05, np.random.default_rng(1))
    assert abs(float(np.std(noisy - image)) - 0.05) < 0.005
    np.testing.assert_array_equal(noisy, add_gaussian_noise(image, 0.05, np.random.default_rng(1)))
    assert add_gaussian_noise(np.zeros((8, 8), np.float32), 0.5, np.random.default_rng(0)).min() >= 0.0


def test_random_augment_is_repeatable_and_keeps_boxes_on_the_nodule():
    config = AugmentConfig(horizontal_flip_probability=0.5, vertical_flip_probability=0.5, rotation_probability=1.0,
                           brightness_probability=1.0, noise_probability=0.0)
    image, boxes = disc_image(25.0, 40.0, 6.0)
    for seed in range(12):
        first = random_augment(image, boxes, config, np.random.default_rng(seed))
        second = random_augment(image, boxes, config, np.random.default_rng(seed))
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])
        out_image, out_boxes = first
        assert out_boxes.shape == (1, 4)
        np.testing.assert_allclose(bright_centre(out_image), box_centre(out_boxes), atol=0.5)


def test_random_augment_draws_brightness_within_15_percent():
    config = AugmentConfig(horizontal_flip_probability=0, vertical_flip_probability=0, rotation_probability=0,
                           brightness_probability=1.0, noise_probability=0)
    image = np.full((4, 4), 0.5, dtype=np.float32)
    values = [float(random_augment(image, np.zeros((0, 4)), config, np.random.default_rng(s))[0][0, 0])
              for s in range(200)]
    assert 0.5 * 0.85 - 1e-6 <= min(values) < 0.46 and 0.54 < max(values) <= 0.5 * 1.15 + 1e-6


def test_no_augmentation_returns_the_slab_unchanged():
    image, boxes = disc_image(25.0, 40.0, 6.0)
    out_image, out_boxes = random_augment(image, boxes, AugmentConfig.none(), np.random.default_rng(0))
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_boxes, boxes)


def test_boxes_pushed_out_of_view_are_dropped():
    boxes = np.array([[10, 10, 20, 20], [5, 5, 5.5, 9]], dtype=np.float32)
    np.testing.assert_array_equal(drop_small_boxes(boxes, 1.0), boxes[:1])


@pytest.mark.parametrize("field,value", [("max_rotation_deg", 95.0), ("max_brightness", 1.5),
                                         ("noise_std", -0.1), ("rotation_probability", 1.5)])
def test_bad_augment_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})
