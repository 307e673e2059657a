"""Score box-prompted segmentation against a reference label, beside the non-learned baseline given the same box.

The box is the one an annotator would draw: the reference mask's bounding box on the canonical slices, grown by
a few pixels in-plane (``margin_px256`` in the model's 256-pixel frame; 3 is the shift the authors' inference
adds) and by ``margin_slices`` slices, so the stop rule of the propagation is exercised too.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from radassist.interactive.baseline import otsu_in_box
from radassist.interactive.boxes import box_around_mask, slice_orientation
from radassist.interactive.embedding_cache import EmbeddingCache
from radassist.interactive.engine import LiteMedSamEngine
from radassist.interactive.pipeline import BoxSegmentationConfig, segment_boxes
from radassist.interactive.preprocess import NETWORK_SIZE, window_to_uint8
from radassist.metrics.segmentation import dice
from radassist.volume import Volume


@dataclass
class BoxScore:
    """Dice of the model and of Otsu-in-the-box against the reference, with what the run cost."""

    case: str
    structure: str
    dice: float
    baseline_dice: float
    reference_voxels: int
    box_slices: int
    encoded_slices: int
    seconds: float

    def as_row(self) -> dict:
        return asdict(self) | {"dice": round(self.dice, 4), "baseline_dice": round(self.baseline_dice, 4)}


def score_box(volume: Volume, reference: np.ndarray, engine: LiteMedSamEngine, case: str, structure: str,
              config: BoxSegmentationConfig = BoxSegmentationConfig(), cache: EmbeddingCache | None = None,
              margin_px256: float = 3.0, margin_slices: int = 1) -> BoxScore:
    """Segment the reference's box with the model and with the baseline; Dice of each against ``reference``."""
    reference = np.asarray(reference, dtype=bool)
    reorientation = slice_orientation(volume.geometry)
    in_plane = max(reorientation.to_canonical(reference).shape[1:])
    box = box_around_mask(reference, volume.geometry, margin_px256 * in_plane / NETWORK_SIZE,
                          margin_slices if volume.shape[0] > 1 else 0, structure)
    started = time.perf_counter()
    result = segment_boxes(volume, [box], engine, config, cache)
    seconds = time.perf_counter() - started
    segmented = result.boxes[0]
    windowed = window_to_uint8(reorientation.to_canonical(volume.array), result.window)
    baseline = reorientation.from_canonical(otsu_in_box(windowed, segmented.voxel_box))
    return BoxScore(case, structure, dice(reference, segmented.mask), dice(reference, baseline),
                    int(reference.sum()), len(segmented.voxel_box.slices), result.stats["encoded_slices"],
                    round(seconds, 2))
