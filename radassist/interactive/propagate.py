"""From one 3-D box to a 3-D mask, slice by slice (the LiteMedSAM authors' 3-D inference, with a stop rule).

The box's middle slice is segmented first with the box itself (every section of an axis-aligned box is the
same, so it is the largest section; the middle is where an object drawn around is widest most often). Then
the slices are walked towards both ends of the box: each one is prompted with the box of its neighbour's mask,
grown by a few pixels (6 in the 256-pixel frame; the authors' code adds 3, see PropagationConfig) and kept
inside the user's box, and its mask is clipped to the user's box. A direction stops where the object ends: when
the neighbour's mask, or the new one, has fewer than ``min_pixels`` pixels.

With ``step_mm`` the walk takes slices that far apart (thin MR slices change little from one to the next) and
fills the slices between by shape-based interpolation; where the object ends between two such slices, the slices
between are segmented one by one, so the end is found as without the step. Only the slices segmented are
encoded: the encoder is the expensive half.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from radassist.extent import nonzero_extent
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
    # ... and so does a slice whose mask the model itself rates below this IoU (its IoU head): past a kidney's pole
    # the model keeps outlining 20-40 pixels of whatever is there, rated 0.43-0.67, while kidney slices rate 0.85+
    min_iou: float = 0.7
    clip_to_box: bool = True  # nothing outside the user's box
    # segment slices about this far apart and interpolate the masks between (0: every slice, as the authors do);
    # on 1 mm BraTS slices 3 mm encodes a third of the slices for 0.006 of Dice (benchmarks/INTERACTIVE.md), on
    # slices 2 mm or thicker it changes nothing
    step_mm: float = 3.0


@dataclass
class Propagation:
    """A box's canonical mask (slices, rows, columns of the box's slices only), per-slice IoU predictions."""

    first_slice: int
    masks: np.ndarray
    iou: dict[int, float] = field(default_factory=dict)
    start_slice: int = 0
    stopped: dict[str, int | None] = field(default_factory=dict)


def propagate_box(box: VoxelBox, segment: SegmentSlice, frame_scale: float,
                  config: PropagationConfig = PropagationConfig(), progress: Progress | None = None,
                  slice_mm: float = 1.0) -> Propagation:
    """Segment the slices of ``box``; ``frame_scale`` converts the 256-frame margin to slice pixels (it is
    ``max(rows, columns) / 256``), ``slice_mm`` is the slice spacing (for ``config.step_mm``)."""
    progress = progress or Progress()
    limit = box.pixel_box()
    count = len(box.slices)
    step = max(int(round(config.step_mm / slice_mm)), 1) if config.step_mm > 0 else 1
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
        progress.update(min(done * step / count, 1.0), f"slice {done} of at most {count}")
        return mask

    def follow(previous: np.ndarray, index: int, direction: int, stride: int) -> tuple[np.ndarray, int | None]:
        """Segment slice ``index`` from its neighbour's mask; (mask, None), or (.., index) when the object ended."""
        prompt = tightened_box(previous, limit, config.tighten_margin * frame_scale)
        if prompt is None:
            return previous, index
        ahead = [index + direction * stride * k for k in (1, 2)
                 if box.z0 <= index + direction * stride * k <= box.z1]
        mask = run(index, prompt, ahead)
        ended = mask.sum() < config.min_pixels or result.iou[index] < config.min_iou
        return mask, (index if ended else None)

    first = run(start, limit, [start + step, start - step])
    if first.sum() < config.min_pixels:
        result.stopped = {"up": start, "down": start}
    else:
        masks[start] = first
        for name, direction in (("up", 1), ("down", -1)):
            previous, index, stopped = first, start, None
            end = box.z1 if direction > 0 else box.z0
            while index != end and stopped is None:
                target = index + direction * step
                target = min(target, end) if direction > 0 else max(target, end)
                mask, stopped = follow(previous, target, direction, step)
                if stopped is None:
                    masks[target] = mask
                    for between in range(index + direction, target, direction):  # skipped slices
                        masks[between] = interpolate(previous, mask, (between - index) / (target - index))
                    previous, index = mask, target
                    continue
                stopped = None  # the object ends between index and target: walk there slice by slice
                for between in range(index + direction, target, direction):
                    mask, stopped = follow(previous, between, direction, 1)
                    if stopped is not None:
                        break
                    masks[between] = previous = mask
                stopped = target if stopped is None else stopped
            result.stopped[name] = stopped
    result.masks = np.zeros((count, *first.shape), dtype=bool)
    for index, mask in masks.items():
        result.masks[index - box.z0] = mask
    return result


def interpolate(below: np.ndarray, above: np.ndarray, share: float) -> np.ndarray:
    """The mask ``share`` (0..1) of the way from ``below`` to ``above``: shape-based interpolation of their signed
    distance maps (positive inside), within the box both masks span."""
    from scipy import ndimage

    region = tuple(slice(max(first - 2, 0), stop + 2) for first, stop in nonzero_extent(below | above))

    def signed(mask: np.ndarray) -> np.ndarray:
        return ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)

    blended = (1 - share) * signed(below[region]) + share * signed(above[region])
    out = np.zeros_like(below)
    out[region] = blended > 0
    return out
