"""Lung-DETR over a scan's slabs: what the network sees of each slab, batched, and the boxes back in slab pixels.

One loop for inference (:func:`radassist.lung.pipeline.run_detr`, torch or ONNX Runtime) and for the scan-level
validation of training (:func:`radassist.lung.train.scan_cpm`), so both see the slabs the same way: each slab's lung
window (the whole slab without windows), zero-padded bottom/right to a multiple of the backbone's coarsest stride,
slabs of equal window size batched together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from radassist.lung.model import ImageDetections, postprocess_outputs
from radassist.lung.preprocess import SlabStack
from radassist.runtime.progress import Progress

SIZE_MULTIPLE = 32  # the backbone's coarsest stride: padded slabs keep every feature level aligned

RunBatch = Callable[[np.ndarray], Mapping[str, Any]]  # (B, C, H, W) float32 -> pred_logits, pred_boxes


def window_batches(stack: SlabStack, batch_size: int) -> list[list[int]]:
    """Slab indices in batches of at most ``batch_size`` whose windows have one size, in slab order within a size."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for index in range(len(stack)):
        y0, x0, y1, x1 = stack.window(index)
        by_size.setdefault((y1 - y0, x1 - x0), []).append(index)
    return [indices[start:start + batch_size] for indices in by_size.values()
            for start in range(0, len(indices), batch_size)]


def padded_size(height: int, width: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """(H, W) rounded up to multiples of ``multiple``."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def padded_batch(images: list[np.ndarray], channels: int, multiple: int = SIZE_MULTIPLE) -> np.ndarray:
    """Equal-size (H, W) images -> (B, C, H', W'), H' and W' rounded up to ``multiple`` (zero padding bottom/right,
    so pixel coordinates are unchanged)."""
    height, width = images[0].shape
    padded = np.zeros((len(images), channels, *padded_size(height, width, multiple)), dtype=np.float32)
    for index, image in enumerate(images):
        padded[index, :, :height, :width] = image[None]
    return padded


def detect_on_slabs(stack: SlabStack, run_batch: RunBatch, channels: int = 1, batch_size: int = 4,
                    box_threshold: float = 0.05, boxes_per_slab: int = 100,
                    progress: Progress | None = None) -> list[ImageDetections]:
    """Per slab (in slab order), the boxes scoring at least ``box_threshold`` (at most ``boxes_per_slab``) as pixel
    (x0, y0, x1, y1) on the whole slab image, clipped to the slab's window."""
    progress = progress or Progress()
    found: list[ImageDetections | None] = [None] * len(stack)
    batches = window_batches(stack, batch_size)
    for number, indices in enumerate(batches):
        progress.update(number / max(len(batches), 1), f"Lung-DETR on {len(indices)} slab(s), batch {number + 1} "
                                                       f"of {len(batches)}")
        batch = padded_batch([stack.window_image(index) for index in indices], channels)
        detections = postprocess_outputs(run_batch(batch), batch.shape[-2:], box_threshold, boxes_per_slab)
        for index, image in zip(indices, detections):
            y0, x0, y1, x1 = stack.window(index)
            image.boxes[:, [0, 2]] = np.clip(image.boxes[:, [0, 2]], 0, x1 - x0) + x0
            image.boxes[:, [1, 3]] = np.clip(image.boxes[:, [1, 3]], 0, y1 - y0) + y0
            found[index] = image
    progress.update(1.0, "slabs done")
    return [image for image in found if image is not None]


__all__ = ["SIZE_MULTIPLE", "detect_on_slabs", "padded_batch", "padded_size", "window_batches"]
