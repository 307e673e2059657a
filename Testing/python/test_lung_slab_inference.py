"""Lung-DETR over a scan's slabs: windows batched by size, padded, and boxes brought back to whole-slab pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radassist.lung.model import LungDetrConfig, build_lung_detr
from radassist.lung.preprocess import SlabStack
from radassist.lung.slab_inference import detect_on_slabs, padded_batch, window_batches
from radassist.volume import Geometry

WINDOWS = np.array([[10, 20, 42, 84],  # 32 x 64
                    [0, 0, 64, 96],  # 64 x 96
                    [30, 8, 62, 72],  # 32 x 64 again
                    [4, 50, 36, 96]])  # 32 x 46: the window meets the image's right edge


def _stack_with_dots() -> tuple[SlabStack, list[tuple[int, int]]]:
    """Four 64x96 slabs, each with one bright pixel inside its window, at (row, column)."""
    dots = [(25, 30), (50, 90), (40, 60), (20, 93)]
    images = np.zeros((4, 64, 96), np.float32)
    for index, (row, col) in enumerate(dots):
        images[index, row, col] = 1.0
    stack = SlabStack(images=images, z_ranges=np.array([[0, 6], [6, 12], [12, 18], [18, 24]]),
                      geometry=Geometry(shape=(24, 64, 96)), windows=WINDOWS)
    return stack, dots


def _box_on_brightest_pixel(batch: np.ndarray) -> dict[str, np.ndarray]:
    """A detector whose one confident query puts a 4x4-pixel box on each image's brightest pixel (normalised to the
    padded batch), and whose second query is an unlikely box in the corner."""
    count, _, height, width = batch.shape
    logits = np.tile(np.array([[[4.0], [-4.0]]], np.float32), (count, 1, 1))
    boxes = np.zeros((count, 2, 4), np.float32)
    for index in range(count):
        row, col = np.unravel_index(np.argmax(batch[index, 0]), (height, width))
        boxes[index, 0] = [(col + 0.5) / width, (row + 0.5) / height, 4 / width, 4 / height]
        boxes[index, 1] = [0.05, 0.05, 0.1, 0.1]
    return {"pred_logits": logits, "pred_boxes": boxes}


def test_batches_hold_windows_of_one_size_and_every_slab_once():
    stack, _ = _stack_with_dots()
    batches = window_batches(stack, batch_size=4)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]
    for indices in batches:
        assert len({tuple(WINDOWS[i, 2:] - WINDOWS[i, :2]) for i in indices}) == 1
    assert [0, 2] in batches
    assert all(len(b) <= 1 for b in window_batches(stack, batch_size=1))


def test_boxes_come_back_on_the_whole_slab_where_the_window_saw_them():
    stack, dots = _stack_with_dots()
    shapes = []

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        shapes.append(batch.shape)
        return _box_on_brightest_pixel(batch)

    found = detect_on_slabs(stack, run, channels=1, batch_size=4, box_threshold=0.5)
    assert len(found) == 4
    assert all(h % 32 == 0 and w % 32 == 0 for _, _, h, w in shapes)  # padded to the backbone's stride
    assert (2, 1, 32, 64) in shapes and (1, 1, 32, 64) in shapes  # the 32x46 window is padded to 32x64
    for image, (row, col) in zip(found, dots):
        assert len(image) == 1 and image.scores[0] == pytest.approx(1 / (1 + np.exp(-4.0)))
        x0, y0, x1, y1 = image.boxes[0]
        assert (x0 + x1) / 2 == pytest.approx(col + 0.5) and (y0 + y1) / 2 == pytest.approx(row + 0.5)


def test_boxes_are_clipped_to_their_window():
    stack, _ = _stack_with_dots()

    def wide(batch: np.ndarray) -> dict[str, np.ndarray]:  # one box covering the whole padded canvas and more
        count = batch.shape[0]
        return {"pred_logits": np.full((count, 1, 1), 4.0, np.float32),
                "pred_boxes": np.tile(np.array([[[0.5, 0.5, 1.5, 1.5]]], np.float32), (count, 1, 1))}

    for image, (y0, x0, y1, x1) in zip(detect_on_slabs(stack, wide, box_threshold=0.5), WINDOWS):
        np.testing.assert_allclose(image.boxes[0], [x0, y0, x1, y1])


def test_a_real_detector_sees_each_window_as_if_it_ran_alone():
    """Batching windows of one size (and padding) gives each slab the outputs it gets by itself."""
    torch.manual_seed(0)
    config = LungDetrConfig(backbone="resnet18", backbone_base_width=8, hidden_dim=32, num_heads=2,
                            encoder_layers=1, decoder_layers=1, dim_feedforward=32, num_queries=10,
                            group_norm_groups=8)
    network = build_lung_detr(config).eval()
    stack, _ = _stack_with_dots()
    stack.images += np.random.default_rng(0).random(stack.images.shape, dtype=np.float32) * 0.5

    def run(batch: np.ndarray) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return network(torch.from_numpy(batch))

    together = detect_on_slabs(stack, run, batch_size=4, box_threshold=0.0, boxes_per_slab=10)
    for index in range(len(stack)):
        alone = detect_on_slabs(SlabStack(stack.images[index:index + 1], stack.z_ranges[index:index + 1],
                                          stack.geometry, windows=WINDOWS[index:index + 1]),
                                run, box_threshold=0.0, boxes_per_slab=10)[0]
        np.testing.assert_allclose(together[index].scores, alone.scores, atol=1e-5)
        np.testing.assert_allclose(together[index].boxes, alone.boxes, atol=1e-3)


def test_padded_batch_keeps_pixels_where_they_are():
    images = [np.full((33, 40), 0.5, np.float32), np.full((33, 40), 0.25, np.float32)]
    batch = padded_batch(images, channels=3)
    assert batch.shape == (2, 3, 64, 64)
    assert (batch[0, :, :33, :40] == 0.5).all() and (batch[1, :, :33, :40] == 0.25).all()
    assert batch[:, :, 33:].sum() == 0 and batch[:, :, :, 40:].sum() == 0
