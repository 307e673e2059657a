"""The PNG a person looks at after a box segmentation: the slice (2-D image) or three views through the largest
segment (volume), each segment filled in its colour, and for 2-D images the boxes drawn as given."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from radassist.interactive.pipeline import BoxSegmentation
from radassist.results.preview import CT_SOFT_TISSUE, PixelCanvas, preview_labelmap
from radassist.volume import Volume

LONG_SIDE_PX = 768  # a 2-D preview is scaled so its long side has this many pixels
FILL_OPACITY = 0.35


def write_preview(volume: Volume, result: BoxSegmentation, path: str | Path) -> Path:
    """``segmentation.png`` for a box segmentation (see the module docstring)."""
    path = Path(path)
    if volume.shape[0] > 1:
        window = CT_SOFT_TISSUE if result.modality == "CT" else None
        largest = max(result.boxes, key=lambda box: int(box.mask.sum()))
        centre = largest.box.center_lps if not largest.mask.any() else None
        preview_labelmap(volume, result.labelmap, path, window, centre_lps=centre)
        return path
    return _preview_2d(volume, result, path)


def _preview_2d(volume: Volume, result: BoxSegmentation, path: Path) -> Path:
    image = volume.array[0].astype(np.float64)
    low, high = np.percentile(image, [1, 99.5])
    scale = LONG_SIDE_PX / max(image.shape)
    width, height = max(int(image.shape[1] * scale), 1), max(int(image.shape[0] * scale), 1)
    canvas = PixelCanvas(width, height)
    canvas.image(np.round(np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8),
                 (0, width, height, 0))
    for box in result.boxes:
        colour = tuple(round(c * 255) for c in box.segment.color)
        fill = np.zeros((*box.mask[0].shape, 4))
        fill[box.mask[0]] = (*box.segment.color[:3], FILL_OPACITY)
        canvas.image(fill, (0, width, height, 0), "nearest")
        where = box.voxel_box
        canvas.rectangle(where.x0 * scale, where.y0 * scale, (where.x1 + 1) * scale, (where.y1 + 1) * scale,
                         edge=colour, width_px=2)
        canvas.text(where.x0 * scale + 3, max(where.y0 * scale - 14, 0), box.segment.name, colour)
    return canvas.save(path, []).path
