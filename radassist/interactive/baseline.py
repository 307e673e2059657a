"""A non-learned segmenter given the same box, to show what the model adds: Otsu's threshold inside the box.

The image is windowed as the model sees it (0..255). Whether the object is the bright or the dark side is
decided once, from the box's centre (the object is what the box is drawn around): the side of the box-wide Otsu
threshold that most of the 5 x 5 pixels at the centre of the middle slice fall on. Each slice of the box is then
split by its own Otsu threshold, its holes are filled, and the largest 3-D connected part is kept. Thresholding
slice by slice was the stronger of the two rules we tried on the BraTS samples (one threshold for the whole box
lost most of the end slices, where the box is much wider than the tumour).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from radassist.interactive.boxes import VoxelBox

CENTRE_PX = 5  # side of the patch at the box's centre that decides bright or dark


def otsu_in_box(windowed: np.ndarray, box: VoxelBox) -> np.ndarray:
    """Canonical (slices, rows, columns) boolean mask of the object in ``box`` of the windowed image."""
    region = (slice(box.z0, box.z1 + 1), slice(box.y0, box.y1 + 1), slice(box.x0, box.x1 + 1))
    values = windowed[region].astype(np.float32)
    out = np.zeros(windowed.shape, dtype=bool)
    if values.size == 0 or values.min() == values.max():
        return out
    threshold = threshold_otsu(values)
    middle, rows, cols = (size // 2 for size in values.shape)
    half = CENTRE_PX // 2
    centre = values[middle, max(rows - half, 0):rows + half + 1, max(cols - half, 0):cols + half + 1]
    bright = (centre > threshold).mean() >= 0.5
    found = np.zeros(values.shape, dtype=bool)
    for index, plane in enumerate(values):
        if plane.min() == plane.max():
            continue
        side = plane > threshold_otsu(plane)
        found[index] = ndimage.binary_fill_holes(side if bright else ~side)
    labels, count = ndimage.label(found)
    if count:
        sizes = ndimage.sum_labels(found, labels, index=np.arange(1, count + 1))
        out[region] = labels == int(np.argmax(sizes)) + 1
    return out
