"""A non-learned segmenter given the same box, to show what the model adds: Otsu's threshold inside the box.

The image is windowed as the model sees it (0..255). Inside the 3-D box (or the 2-D box of a one-slice image)
Otsu's threshold splits the voxels in two; the object is the side that touches the box's outer faces less
(the box is drawn around the object, so its border is mostly background), its largest connected part is kept and
holes are filled on each slice. This is the strongest simple rule we found that needs nothing but the box.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from radassist.interactive.boxes import VoxelBox


def otsu_in_box(windowed: np.ndarray, box: VoxelBox) -> np.ndarray:
    """Canonical (slices, rows, columns) boolean mask of the object in ``box`` of the windowed image."""
    region = (slice(box.z0, box.z1 + 1), slice(box.y0, box.y1 + 1), slice(box.x0, box.x1 + 1))
    values = windowed[region].astype(np.float32)
    out = np.zeros(windowed.shape, dtype=bool)
    if values.size == 0 or values.min() == values.max():
        return out
    bright = values > threshold_otsu(values)
    border = np.ones(values.shape, dtype=bool)
    border[:, 1:-1, 1:-1] = False  # in-plane border of every slice of the box
    object_mask = bright if bright[border].mean() <= (~bright)[border].mean() else ~bright
    labels, count = ndimage.label(object_mask)
    if count == 0:
        return out
    sizes = ndimage.sum_labels(object_mask, labels, index=np.arange(1, count + 1))
    largest = labels == int(np.argmax(sizes)) + 1
    filled = np.stack([ndimage.binary_fill_holes(plane) for plane in largest])
    out[region] = filled
    return out
