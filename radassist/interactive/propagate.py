"""From one 3-D box to a 3-D mask, slice by slice (the LiteMedSAM authors' 3-D inference, with a stop rule).

The box's middle slice is segmented first with the box itself (every section of an axis-aligned box is the
same, so it is the largest section; the middle is where an object drawn around is widest most often). Then
the slices are walked towards both ends of the box: each one is prompted with the box of its neighbour's mask,
grown by a few pixels (6 in the 256-pixel frame; the authors' code adds 3, see PropagationConfig) and kept
inside the user's box, and its mask is clipped to the user's box. A direction stops where the object ends: when the neighbour's mask, or the
new one, has fewer than ``min_pixels`` pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from radassist.interactive.boxes import VoxelBox
from radassist.interactive.postprocess import clip_to_box, tightened_box
from radassist.runtime.progress import Progress

SegmentSlice = Callable[[int, np.ndarray, list[int]], tuple[np.ndarray, float]]
"""(slice index, pixel box x0, y0, x1, y1, slices likely next) -> (mask of the slice, predicted IoU)."""


@dataclass(frozen=True)
class PropagationConfig:
    """How a 3-D box is followed through its slices."""

    # pixels of the 256 frame around the neighbour's mask: the authors' get_bbox256 adds 3; 6 followed growing
    # organs better on the real samples (spleen Dice 0.71 -> 0.86) at the same BraTS Dice (benchmarks/INTERACTIVE.md)
    tighten_margin: float = 6.0
    min_pixels: int = 1  # a mask smaller than this ends the object in that direction
    clip_to_box: bool = True  # nothing outside the user's box


@dataclass
class Propagation:
    """A box's canonical mask (slices, rows, columns of the box's slices only), per-slice IoU predictions."""

    first_slice: int
    masks: np.ndarray
    iou: dict[int, float] = field(default_factory=dict)
    start_slice: int = 0
    stopped: dict[str, int | None] = field(default_factory=dict)


def propagate_box(box: VoxelBox, segment: SegmentSlice, frame_scale: float,
                  config: PropagationConfig = PropagationConfig(), progress: Progress | None = None) -> Propagation:
    """Segment the slices of ``box``; ``frame_scale`` converts the 256-frame margin to slice pixels (it is
    ``max(rows, columns) / 256``)."""
    progress = progress or Progress()
    limit = box.pixel_box()
    count = len(box.slices)
    start = box.middle_slice
    result = Propagation(first_slice=box.z0, masks=np.zeros((count, 0, 0), dtype=bool), start_slice=start)
    masks: dict[int, np.ndarray] = {}
    done = 0

    def run(index: int, prompt: np.ndarray, ahead: list[int]) -> np.ndarray:
        nonlocal done
        progress.check_cancelled()
        mask, iou = segment(index, prompt, ahead)
        if config.clip_to_box:
            mask = clip_to_box(mask, limit)
        result.iou[index] = iou
        done += 1
        progress.update(min(done / count, 1.0), f"slice {done} of at most {count}")
        return mask

    first = run(start, limit, [start + 1, start - 1])
    if first.sum() < config.min_pixels:
        result.stopped = {"up": start, "down": start}
    else:
        masks[start] = first
        for name, step in (("up", 1), ("down", -1)):
            previous, index, stopped = first, start + step, None
            while box.z0 <= index <= box.z1:
                prompt = tightened_box(previous, limit, config.tighten_margin * frame_scale)
                if prompt is None:
                    stopped = index
                    break
                ahead = [index + step * k for k in range(1, 4) if box.z0 <= index + step * k <= box.z1]
                mask = run(index, prompt, ahead)
                if mask.sum() < config.min_pixels:
                    stopped = index
                    break
                masks[index] = mask
                previous, index = mask, index + step
            result.stopped[name] = stopped
    shape = first.shape
    stack = np.zeros((count, *shape), dtype=bool)
    for index, mask in masks.items():
        stack[index - box.z0] = mask
    result.masks = stack
    return result
