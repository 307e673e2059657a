"""From network classes and displacement fields to what a reader checks: tumour label maps with Slicer terminology,
the Jacobian determinant of the transform, the share of folded voxels, and tumour volumes per class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from radassist.metrics.registration import non_positive_jacobian_percent as folding_percentage
from radassist.results.displacement import DisplacementField
from radassist.results.labelmap import LabelMap
from radassist.results.segments import ReviewStatus, Segment
from radassist.results.tables import Report
from radassist.results.terminology import CATALOGUE
from radassist.volume import Geometry, SourceInfo

TUMOUR_CLASSES = {1: "tumour necrosis", 2: "oedema", 3: "enhancing tumour"}
"""Network class -> catalogue key (the label value in the written segmentations is the class)."""


def tumour_segments() -> list[Segment]:
    """One segment per tumour class, named, coloured and coded as the terminology catalogue says."""
    return [Segment(name=key, label_value=value, color=CATALOGUE[key].color, terminology=CATALOGUE[key].terminology,
                    status=ReviewStatus.NOT_STARTED) for value, key in TUMOUR_CLASSES.items()]


def tumour_labelmap(classes: np.ndarray, geometry: Geometry, source: SourceInfo | None = None,
                    origin: str = "") -> LabelMap:
    """A label map of network classes (0 background, 1 necrosis/non-enhancing, 2 oedema, 3 enhancing)."""
    classes = np.asarray(classes)
    if classes.max(initial=0) > max(TUMOUR_CLASSES) or classes.min(initial=0) < 0:
        raise ValueError(f"tumour classes must be within 0..{max(TUMOUR_CLASSES)}")
    return LabelMap(labels=classes.astype(np.uint8), geometry=geometry, segments=tumour_segments(),
                    source=source or SourceInfo(), metadata={"origin": origin} if origin else {})


def tumour_volumes_ml(labelmap: LabelMap) -> dict[str, float]:
    """Volume of each tumour class and of the whole tumour, in millilitres."""
    volumes = {segment.name: labelmap.volume_ml(segment.name) for segment in labelmap.segments}
    volumes["whole tumour"] = float(sum(volumes.values()))
    return volumes


def jacobian_determinant(field: DisplacementField) -> np.ndarray:
    """det(I + du/dp) at every grid point (z, y, x), derivatives in world mm (central differences inside).

    Below 0 the transform folds space there; near 1 it preserves volume; 0.5 halves it.

    With G = du/d(i, j, k) (what the grid gives) and A = D diag(spacing) (voxels -> mm), du/dp = G A^-1, so
    det(I + G A^-1) = det(A + G) / det(A): the constant A is added where it is non-zero (three entries on an
    axis-aligned grid) instead of multiplying nine derivative arrays by A^-1.
    """
    geometry = field.geometry
    to_world = geometry.direction_matrix @ np.diag(geometry.spacing)  # A: (i, j, k) voxels -> LPS mm
    m = [[np.empty(0)] * 3 for _ in range(3)]  # m[c][a] = A[c, a] + d u_c / d index_a
    for component in range(3):
        values = np.ascontiguousarray(field.vectors[..., component])
        for a in range(3):
            axis = 2 - a  # index i runs along the array's last axis
            m[component][a] = np.gradient(values, axis=axis) if geometry.shape[axis] > 1 else np.zeros_like(values)
            if to_world[component, a] != 0.0:
                m[component][a] += to_world[component, a]
    determinant = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                   - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                   + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))
    determinant /= np.linalg.det(to_world)
    return determinant


def registration_report(field: DisplacementField, determinant: np.ndarray, engine: str,
                        fixed_tumour: LabelMap | None, moving_tumour: LabelMap | None,
                        brain: np.ndarray | None = None, extra: Mapping[str, Any] | None = None) -> Report:
    """The registration's report: folding, Jacobian and displacement statistics, tumour volumes per class."""
    inside = np.ones(field.geometry.shape, dtype=bool) if brain is None else np.asarray(brain, dtype=bool)
    magnitude = field.magnitude[inside] if inside.any() else field.magnitude.ravel()
    jacobian = determinant[inside] if inside.any() else determinant.ravel()
    summary: dict[str, Any] = {
        "engine": engine,
        "folding_percent": folding_percentage(determinant, inside if inside.any() else None),
        "jacobian_min": float(jacobian.min()), "jacobian_max": float(jacobian.max()),
        "jacobian_mean": float(jacobian.mean()),
        "displacement_mean_mm": float(magnitude.mean()), "displacement_max_mm": float(magnitude.max()),
    }
    rows = []
    for role, labelmap in (("fixed", fixed_tumour), ("moving", moving_tumour)):
        if labelmap is None:
            continue
        for name, volume in tumour_volumes_ml(labelmap).items():
            rows.append({"image": role, "region": name, "volume_ml": volume})
            summary[f"{role} {name} ml"] = volume
    summary.update(dict(extra or {}))
    units = {"folding_percent": "%", "displacement_mean_mm": "mm", "displacement_max_mm": "mm", "volume_ml": "ml"}
    units.update({key: "ml" for key in summary if key.endswith(" ml")})
    return Report(title="Brain registration and tumour segmentation", rows=rows, summary=summary, units=units,
                  metadata={"direction": "fixed->moving", "voxels_in_statistics": int(inside.sum())})
