"""What the liver networks see: a CT window scaled to 0..1, one slice or a stack of neighbouring slices.

Two windows are offered: the seed recipe's plain clip to [-1024, 1024] HU, and the abdominal (liver) window of
the catalogue entries, -200..250 HU, which spends the network's input range on soft tissue. The window a network
was trained with is recorded in its checkpoint, and inference uses that one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radassist.errors import InputError
from radassist.volume import Volume

SEED_WINDOW = (-1024.0, 1024.0)  # HU clipped to [-1024, 1024] (the task's seed recipe)
ABDOMINAL_WINDOW = (-200.0, 250.0)  # HU, the liver-unet / liver-munet catalogue entries' input window
WINDOWS = {"seed": SEED_WINDOW, "abdominal": ABDOMINAL_WINDOW}
AIR_BELOW_HU = -500.0  # an abdominal CT in HU has air around the body (and in the bowel) far below this


@dataclass(frozen=True)
class LiverPreprocessing:
    """Window (low, high HU) and the number of neighbouring slices on each side given as extra channels."""

    window: tuple[float, float] = SEED_WINDOW
    context_slices: int = 0

    def __post_init__(self) -> None:
        if float(self.window[1]) <= float(self.window[0]):
            raise InputError(None, f"the CT window needs low < high, got {self.window}")
        if self.context_slices < 0:
            raise InputError(None, f"context_slices must be 0 or more, got {self.context_slices}")

    @property
    def channels(self) -> int:
        return 2 * self.context_slices + 1


def window_by_name(name: str) -> tuple[float, float]:
    """``seed`` or ``abdominal``, or ``LOW,HIGH`` in HU."""
    if name in WINDOWS:
        return WINDOWS[name]
    try:
        low, high = (float(part) for part in name.split(","))
    except ValueError:
        raise InputError(None, f"window must be {' or '.join(WINDOWS)} or LOW,HIGH in HU, got {name!r}") from None
    if high <= low:
        raise InputError(None, f"window must have LOW < HIGH, got {name!r}")
    return (low, high)


def window_to_unit(values: np.ndarray, window: tuple[float, float] = SEED_WINDOW) -> np.ndarray:
    """Clip to the window and scale to 0..1 (float32)."""
    low, high = float(window[0]), float(window[1])
    return ((np.clip(np.asarray(values, dtype=np.float32), low, high) - low) / (high - low)).astype(np.float32)


def context_indices(count: int, start: int, stop: int, context: int) -> np.ndarray:
    """(stop - start, 2 * context + 1) slice indices: each slice with its neighbours, repeated at the ends."""
    offsets = np.arange(-context, context + 1)
    return np.clip(np.arange(start, stop)[:, None] + offsets[None, :], 0, count - 1)


def stack_context(slices: np.ndarray, context: int) -> np.ndarray:
    """(n, y, x) slices of one volume -> (n, 2 * context + 1, y, x): every slice with its neighbours."""
    slices = np.asarray(slices)
    return slices[context_indices(slices.shape[0], 0, slices.shape[0], context)]


def check_ct(volume: Volume, name: str | None = None) -> None:
    """Raise InputError unless ``volume`` looks like a 3-D CT in Hounsfield units.

    Refused: a non-CT modality in the metadata, a single 2-D image, and intensities without air (an MR image, a
    CT without its rescale, a mask). ``name`` is the file the user gave (for the message).
    """
    where = name or volume.source.path
    modality = (volume.source.modality or "").upper()
    if modality and modality != "CT":
        raise InputError(where, f"is a {modality} image; liver segmentation needs an abdominal CT")
    array = volume.array
    if array.size == 0:
        raise InputError(where, "holds no image")
    if array.shape[0] < 2:
        raise InputError(where, "is a single 2-D image; liver segmentation needs a 3-D abdominal CT")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(where, f"holds {array.dtype} values, not CT numbers")
    sample = array[:, ::4, ::4] if array.size > 4_000_000 else array
    low = float(np.percentile(sample, 1))
    if low > AIR_BELOW_HU:
        raise InputError(where, f"does not look like a CT in Hounsfield units: no air (1st percentile {low:.0f}, "
                                f"an abdominal CT has air near -1000 HU); give an abdominal CT")
