"""The LiTS volume and surface metrics of a binary segmentation against its reference, in millimetres.

* VOE, volumetric overlap error: 1 - |A n B| / |A u B| (0 is perfect);
* RVD, relative volume difference: (|B| - |A|) / |A|, signed (positive = the prediction is too big);
* ASSD, average symmetric surface distance: the mean of the distances from every surface voxel of one mask to the
  other mask's surface, both directions pooled;
* MSD, maximum symmetric surface distance: the largest of those distances (the symmetric Hausdorff distance of
  the surfaces).

A (reference), B (prediction). Surfaces and distances are MONAI's (``get_mask_edges``, ``get_surface_distance``):
the mask voxels with a 6-neighbour outside the mask (the object's border voxels, as in the LiTS evaluation's
reference implementation), and exact Euclidean distances between voxel centres scaled by the voxel spacing, so
anisotropic CT is measured in mm. Empty masks: VOE is 0 when both are empty; RVD is NaN
when the reference is empty; surface distances are NaN when either mask is empty (there is no surface to
measure from), never a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from monai.metrics.utils import get_mask_edges, get_surface_distance


def _pair(reference: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference, prediction = np.asarray(reference, dtype=bool), np.asarray(prediction, dtype=bool)
    if reference.shape != prediction.shape:
        raise ValueError(f"reference {reference.shape} and prediction {prediction.shape} differ in shape")
    return reference, prediction


def volumetric_overlap_error(reference: np.ndarray, prediction: np.ndarray) -> float:
    """1 - Jaccard index; 0 when both masks are empty."""
    reference, prediction = _pair(reference, prediction)
    union = int(np.count_nonzero(reference | prediction))
    return 1.0 - np.count_nonzero(reference & prediction) / union if union else 0.0


def relative_volume_difference(reference: np.ndarray, prediction: np.ndarray) -> float:
    """(|prediction| - |reference|) / |reference|; NaN for an empty reference."""
    reference, prediction = _pair(reference, prediction)
    size = int(np.count_nonzero(reference))
    return (int(np.count_nonzero(prediction)) - size) / size if size else math.nan


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """The mask's border voxels: in the mask, with a face neighbour outside it (the array edge counts as outside)."""
    mask = np.asarray(mask, dtype=bool)
    return get_mask_edges(mask, mask, crop=False)[0]


def surface_distances(reference: np.ndarray, prediction: np.ndarray,
                      spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each prediction surface voxel to the reference surface, and the other way round; both
    empty when either mask is (MONAI would give inf there). MONAI searches only the box of both masks."""
    reference, prediction = _pair(reference, prediction)
    if not reference.any() or not prediction.any():
        return np.empty(0), np.empty(0)
    pred_surface, ref_surface = get_mask_edges(prediction, reference)
    spacing = [float(s) for s in spacing_zyx]
    return (np.asarray(get_surface_distance(pred_surface, ref_surface, spacing=spacing), dtype=np.float64),
            np.asarray(get_surface_distance(ref_surface, pred_surface, spacing=spacing), dtype=np.float64))


def symmetric_surface_distances(reference: np.ndarray, prediction: np.ndarray,
                                spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> tuple[float, float]:
    """(ASSD, MSD) in mm: the mean of both directions' distances pooled, and their largest; NaN when either mask
    is empty."""
    forward, backward = surface_distances(reference, prediction, spacing_zyx)
    if forward.size == 0 or backward.size == 0:
        return math.nan, math.nan
    return float(np.concatenate([forward, backward]).mean()), float(max(forward.max(), backward.max()))


def average_symmetric_surface_distance(reference: np.ndarray, prediction: np.ndarray,
                                       spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """ASSD in mm; NaN when either mask is empty."""
    return symmetric_surface_distances(reference, prediction, spacing_zyx)[0]


def maximum_symmetric_surface_distance(reference: np.ndarray, prediction: np.ndarray,
                                       spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """MSD (symmetric surface Hausdorff distance) in mm; NaN when either mask is empty."""
    return symmetric_surface_distances(reference, prediction, spacing_zyx)[1]


@dataclass(frozen=True)
class LitsScores:
    """Dice, VOE, RVD, ASSD and MSD of one structure in one case (mm for distances)."""

    dice: float
    voe: float
    rvd: float
    assd_mm: float
    msd_mm: float
    reference_voxels: int
    predicted_voxels: int
    intersection_voxels: int

    def to_dict(self) -> dict:
        return {key: (None if isinstance(value, float) and math.isnan(value) else value)
                for key, value in asdict(self).items()}


def lits_scores(reference: np.ndarray, prediction: np.ndarray,
                spacing_zyx: Sequence[float] = (1.0, 1.0, 1.0)) -> LitsScores:
    """Every LiTS per-case metric of one structure; Dice is NaN when both masks are empty."""
    reference, prediction = _pair(reference, prediction)
    both = int(np.count_nonzero(reference & prediction))
    sizes = int(np.count_nonzero(reference)), int(np.count_nonzero(prediction))
    dice = 2.0 * both / sum(sizes) if sum(sizes) else math.nan
    assd, msd = symmetric_surface_distances(reference, prediction, spacing_zyx)
    return LitsScores(dice, volumetric_overlap_error(reference, prediction),
                      relative_volume_difference(reference, prediction), assd, msd, sizes[0], sizes[1], both)
