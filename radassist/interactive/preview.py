"""The PNG a person looks at after a box segmentation: the slice (2-D image) or three views through the largest
segment (volume), each segment filled in its colour, and for 2-D images the boxes drawn as given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from radassist.interactive.pipeline import BoxSegmentation
from radassist.io.atomic import atomic_path
from radassist.results.preview import CT_SOFT_TISSUE, preview_labelmap
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
    grey = np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for box in result.boxes:
        mask = box.mask[0]
        colour = np.array([round(c * 255) for c in box.segment.color], dtype=np.float64)
        rgb[mask] = (1 - FILL_OPACITY) * rgb[mask] + FILL_OPACITY * colour
    scale = LONG_SIDE_PX / max(image.shape)
    size = (max(int(image.shape[1] * scale), 1), max(int(image.shape[0] * scale), 1))
    canvas = Image.fromarray(rgb.astype(np.uint8), "RGB").resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    for box in result.boxes:
        where = box.voxel_box
        colour = tuple(round(c * 255) for c in box.segment.color)
        draw.rectangle([where.x0 * scale, where.y0 * scale, (where.x1 + 1) * scale, (where.y1 + 1) * scale],
                       outline=colour, width=2)
        draw.text((where.x0 * scale + 3, max(where.y0 * scale - 14, 0)), box.segment.name, fill=colour)
    with atomic_path(path) as temp:
        canvas.save(temp, format="PNG")
    return path
