"""Registration metrics: label overlap after warping (the VoxelMorph protocol), overlap inside vs outside a region
(the tumour), error against a known displacement field, intensity error, and Jacobian folding."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from radassist.metrics.segmentation import dice, nan_mean  # noqa: F401 (dice: the one Dice, named here too)
from radassist.results.displacement import DisplacementField


def label_values(*label_maps: np.ndarray) -> list[int]:
    """Every non-zero label present in any of the maps, sorted."""
    return sorted({int(v) for labels in label_maps for v in np.unique(labels) if v != 0})


def dice_per_label(warped: np.ndarray, fixed: np.ndarray, labels: Iterable[int] | None = None,
                   region: np.ndarray | None = None) -> dict[int, float]:
    """Dice of each label between the warped moving labels and the fixed labels (within ``region`` if given)."""
    warped, fixed = np.asarray(warped), np.asarray(fixed)
    if region is not None:
        region = np.asarray(region, dtype=bool)
        warped, fixed = warped[region], fixed[region]
    labels = label_values(warped, fixed) if labels is None else list(labels)
    return {int(value): dice(warped == value, fixed == value) for value in labels}


def mean_dice(scores: dict[int, float]) -> float:
    """Mean over labels that were present (NaN scores skipped); NaN when there is none."""
    return nan_mean(list(scores.values()))


@dataclass(frozen=True)
class FieldError:
    """Distance (mm) between an estimated and the true displacement at every voxel of a mask."""

    mean_mm: float
    p95_mm: float
    max_mm: float
    voxels: int


def field_error(estimated: DisplacementField, truth: DisplacementField,
                mask: np.ndarray | None = None) -> FieldError:
    """End-point error of ``estimated`` against ``truth``, both fixed -> moving; compared on the truth's grid."""
    if estimated.geometry.same_grid(truth.geometry):
        vectors = estimated.vectors
    else:
        points = truth.geometry.zyx_to_world(np.indices(truth.geometry.shape, dtype=float).reshape(3, -1).T)
        vectors = estimated.displacement_at(points).reshape(truth.vectors.shape)
    error = np.linalg.norm(vectors - truth.vectors, axis=-1)
    values = error[np.asarray(mask, dtype=bool)] if mask is not None else error.ravel()
    if values.size == 0:
        raise ValueError("the mask selects no voxel")
    return FieldError(float(values.mean()), float(np.percentile(values, 95)), float(values.max()), int(values.size))


def intensity_error(warped: np.ndarray, fixed: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute intensity difference (within ``mask``)."""
    difference = np.abs(np.asarray(warped, dtype=np.float64) - np.asarray(fixed, dtype=np.float64))
    values = difference[np.asarray(mask, dtype=bool)] if mask is not None else difference.ravel()
    return float(values.mean()) if values.size else float("nan")


def non_positive_jacobian_percent(determinant: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Percentage of voxels (within ``mask``) where the transform folds (det J <= 0)."""
    values = determinant[np.asarray(mask, dtype=bool)] if mask is not None else np.asarray(determinant).ravel()
    return float(100.0 * np.count_nonzero(values <= 0) / values.size) if values.size else 0.0
