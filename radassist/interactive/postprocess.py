"""From the decoder's 256 x 256 logits back to a mask on the slice, and the box of a mask for the next slice.

As the LiteMedSAM authors' inference: the logits are cropped to the resized (unpadded) part of the frame,
resized bilinearly to the slice's size, and thresholded at probability 0.5 (logit 0).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from radassist.interactive.preprocess import resized_shape


def logits_to_mask(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """(256, 256) logits in the network frame -> (height, width) boolean mask on the slice."""
    new_h, new_w = resized_shape(height, width, logits.shape[-1])
    cropped = torch.from_numpy(np.ascontiguousarray(logits[:new_h, :new_w], dtype=np.float32))[None, None]
    resized = F.interpolate(cropped, size=(height, width), mode="bilinear", align_corners=False)
    return resized[0, 0].numpy() > 0


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """x0, y0, x1, y1 (inclusive pixel indices) of a 2-D mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float64)


def tightened_box(previous: np.ndarray, limit: np.ndarray, margin_px: float) -> np.ndarray | None:
    """The box of the neighbouring slice's mask grown by ``margin_px`` and kept inside the user's box ``limit``
    (both x0, y0, x1, y1); None when the neighbour's mask is empty."""
    box = mask_box(previous)
    if box is None:
        return None
    grown = box + np.array([-margin_px, -margin_px, margin_px, margin_px])
    low = np.maximum(grown[:2], limit[:2])
    high = np.minimum(grown[2:], limit[2:])
    if np.any(high < low):
        return None
    return np.concatenate([low, high])


def clip_to_box(mask: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``mask`` with everything outside the pixel box x0, y0, x1, y1 (inclusive) removed."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    clipped = np.zeros_like(mask)
    clipped[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = mask[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1]
    return clipped
