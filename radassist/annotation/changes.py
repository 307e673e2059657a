"""How much an annotator changed an AI result: per segment, per box, per landmark and per image-level label.

These numbers go into each exported case's provenance and are what ``radassist dataset stats`` adds up, so a
research group can see which labels and which model versions needed the most correction.

* Segments are paired by name (case-insensitive), then by terminology; a segment only in the correction was
  added, one only in the AI result removed. Per pair: Dice, volumes (ml) and their change, and the surface
  distances (ASSD and the symmetric Hausdorff distance, mm) of :mod:`radassist.metrics.surface`.
* Boxes are paired one-to-one, closest centres first (Hungarian assignment on centre distance). Two boxes may
  pair only when their centres are at most ``max(r_ai, r_corrected)`` apart, r being half the largest side of a
  box (the LUNA16 hit rule: a mark counts when it lies within the nodule's radius). A pair whose centre moved, or
  any side of which changed, by more than ``tolerance_mm`` was moved (or resized); unpaired AI boxes were
  deleted, unpaired corrected boxes added.
* Landmarks: target registration error before (fixed vs moving landmark) and after (fixed landmark carried into
  the moving image by the displacement field, fixed -> moving) registration.
* Image-level labels: the AI's call (probability >= threshold) against the confirmed label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from radassist.io.sitk_bridge import array_to_sitk, reference_image
from radassist.metrics.surface import symmetric_surface_distances
from radassist.results.detections import Detections
from radassist.results.displacement import DisplacementField
from radassist.results.labelmap import LabelMap
from radassist.results.segments import Segment
from radassist.volume import Geometry


def _number(value: float | None, digits: int = 6) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), digits)


# -- segments -------------------------------------------------------------------------------------------------

def resample_labels(labelmap: LabelMap, geometry: Geometry) -> LabelMap:
    """``labelmap`` on ``geometry`` (nearest neighbour; exact when only the extent differs, as when Slicer saved a
    cropped segmentation). The same object is returned when the grids already agree."""
    if labelmap.geometry.same_grid(geometry):
        return labelmap
    reference = reference_image(geometry)
    layers = []
    for layer in labelmap.labels:
        image = array_to_sitk(layer.astype(np.uint16), labelmap.geometry)
        resampled = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        layers.append(sitk.GetArrayFromImage(resampled))
    return LabelMap(labels=np.stack(layers).astype(labelmap.labels.dtype), geometry=geometry,
                    segments=list(labelmap.segments), source=labelmap.source, metadata=dict(labelmap.metadata))


@dataclass(frozen=True)
class SegmentChange:
    """One segment of the AI result against the same segment after correction."""

    name: str
    change: str  # "edited", "unchanged", "added" or "removed"
    dice: float | None
    ai_volume_ml: float
    corrected_volume_ml: float
    volume_change_ml: float
    volume_change_percent: float | None  # None when the AI segment was empty
    assd_mm: float | None  # None when either mask is empty
    hausdorff_mm: float | None
    changed_voxels: int
    status: str  # the corrected segment's review status ("" when it was removed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _terminology_key(segment: Segment) -> tuple | None:
    term = segment.terminology
    if term is None:
        return None
    modifier = term.type_modifier.value if term.type_modifier else ""
    return (term.category.value, term.type.value, modifier)


def pair_segments(ai: LabelMap, corrected: LabelMap) -> list[tuple[Segment | None, Segment | None]]:
    """(AI segment, corrected segment) pairs: by name first, then by terminology; unpaired ones with None."""
    pairs: list[tuple[Segment | None, Segment | None]] = []
    left = list(ai.segments)
    right = list(corrected.segments)
    for key in (lambda s: s.name.strip().lower(), _terminology_key):
        for segment in list(left):
            wanted = key(segment)
            match = next((c for c in right if wanted is not None and key(c) == wanted), None)
            if match is not None:
                pairs.append((segment, match))
                left.remove(segment)
                right.remove(match)
    pairs += [(segment, None) for segment in left] + [(None, segment) for segment in right]
    return pairs


def segment_change(name: str, ai_mask: np.ndarray, corrected_mask: np.ndarray, geometry: Geometry,
                   change: str | None = None, status: str = "") -> SegmentChange:
    """Dice, volume change and surface distances of two masks on ``geometry``."""
    ai_mask, corrected_mask = np.asarray(ai_mask, dtype=bool), np.asarray(corrected_mask, dtype=bool)
    voxel_ml = geometry.voxel_volume_mm3 / 1000.0
    ai_voxels, corrected_voxels = int(ai_mask.sum()), int(corrected_mask.sum())
    both = int(np.count_nonzero(ai_mask & corrected_mask))
    differing = int(np.count_nonzero(ai_mask ^ corrected_mask))
    dice = 2.0 * both / (ai_voxels + corrected_voxels) if ai_voxels + corrected_voxels else None
    assd, hausdorff = symmetric_surface_distances(ai_mask, corrected_mask, geometry.spacing_zyx)
    if change is None:
        change = "unchanged" if differing == 0 else "edited"
    ai_ml, corrected_ml = ai_voxels * voxel_ml, corrected_voxels * voxel_ml
    return SegmentChange(
        name=name, change=change, dice=_number(dice), ai_volume_ml=_number(ai_ml),
        corrected_volume_ml=_number(corrected_ml), volume_change_ml=_number(corrected_ml - ai_ml),
        volume_change_percent=_number(100.0 * (corrected_voxels - ai_voxels) / ai_voxels) if ai_voxels else None,
        assd_mm=_number(assd), hausdorff_mm=_number(hausdorff), changed_voxels=differing, status=status)


def segment_changes(ai: LabelMap, corrected: LabelMap) -> list[SegmentChange]:
    """Every segment's change from ``ai`` to ``corrected`` (the correction is brought onto the AI grid first)."""
    corrected = resample_labels(corrected, ai.geometry)
    empty = np.zeros(ai.geometry.shape, dtype=bool)
    changes = []
    for before, after in pair_segments(ai, corrected):
        ai_mask = ai.mask(before) if before is not None else empty
        corrected_mask = corrected.mask(after) if after is not None else empty
        kind = "added" if before is None else "removed" if after is None else None
        name = (after or before).name
        changes.append(segment_change(name, ai_mask, corrected_mask, ai.geometry, kind,
                                      after.status.value if after is not None else ""))
    return changes


# -- boxes ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoxPair:
    """An AI box and the corrected box it became: centre shift and the largest change of a side, in mm."""

    ai_index: int
    corrected_index: int
    shift_mm: float
    size_change_mm: float


@dataclass
class BoxChanges:
    """What happened to the AI's boxes: kept as they were, moved or resized, deleted; and boxes added."""

    unchanged: list[BoxPair] = field(default_factory=list)
    moved: list[BoxPair] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)   # AI box indices
    added: list[int] = field(default_factory=list)     # corrected box indices
    tolerance_mm: float = 1.0

    def counts(self) -> dict[str, int]:
        return {"unchanged": len(self.unchanged), "moved": len(self.moved), "deleted": len(self.deleted),
                "added": len(self.added)}

    def to_dict(self) -> dict[str, Any]:
        return {**self.counts(), "tolerance_mm": self.tolerance_mm,
                "pairs": [{**asdict(p), "moved": p in self.moved} for p in self.unchanged + self.moved],
                "deleted_ai_boxes": list(self.deleted), "added_corrected_boxes": list(self.added)}


def match_boxes(ai: Detections, corrected: Detections, tolerance_mm: float = 1.0) -> BoxChanges:
    """Pair the AI's boxes with the corrected ones (rule in the module docstring) and sort them into changes."""
    from scipy.optimize import linear_sum_assignment

    if tolerance_mm < 0:
        raise ValueError(f"tolerance_mm must be non-negative, got {tolerance_mm}")
    changes = BoxChanges(tolerance_mm=float(tolerance_mm))
    a, c = ai.items, corrected.items
    if a and c:
        centres_a = np.array([d.center for d in a])
        centres_c = np.array([d.center for d in c])
        distance = np.linalg.norm(centres_a[:, None] - centres_c[None], axis=-1)
        radius_a, radius_c = (np.array([max(float(s) for s in d.size) for d in boxes]) / 2.0 for boxes in (a, c))
        reach = np.maximum.outer(radius_a, radius_c)
        allowed = distance <= reach + 1e-9
        cost = np.where(allowed, distance, distance.max() * 10 + 1e6)
        for i, j in zip(*linear_sum_assignment(cost)):  # rows come sorted: the pairs are in AI box order
            if not allowed[i, j]:
                continue
            size_change = float(np.max(np.abs(np.subtract(a[i].size, c[j].size))))
            pair = BoxPair(int(i), int(j), round(float(distance[i, j]), 6), round(size_change, 6))
            moved = pair.shift_mm > tolerance_mm or size_change > tolerance_mm
            (changes.moved if moved else changes.unchanged).append(pair)
    paired_a = {p.ai_index for p in changes.unchanged + changes.moved}
    paired_c = {p.corrected_index for p in changes.unchanged + changes.moved}
    changes.deleted = [i for i in range(len(a)) if i not in paired_a]
    changes.added = [j for j in range(len(c)) if j not in paired_c]
    return changes


# -- landmarks ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LandmarkErrors:
    """Target registration error per landmark pair, before and after registration (mm)."""

    labels: list[str]
    before_mm: list[float]
    after_mm: list[float] | None

    def to_dict(self) -> dict[str, Any]:
        def summary(values: list[float] | None) -> dict[str, float] | None:
            if not values:
                return None
            return {"mean": round(float(np.mean(values)), 6), "max": round(float(np.max(values)), 6)}

        return {"pairs": len(self.labels), "labels": list(self.labels), "before_mm": list(self.before_mm),
                "after_mm": None if self.after_mm is None else list(self.after_mm),
                "before": summary(self.before_mm), "after": summary(self.after_mm)}


def target_registration_error(fixed_points: np.ndarray, moving_points: np.ndarray,
                              field: DisplacementField | None = None,
                              labels: Sequence[str] | None = None) -> LandmarkErrors:
    """TRE of landmark pairs (N, 3) LPS mm: before = |fixed - moving|; after = |fixed + u(fixed) - moving|, u the
    fixed -> moving displacement (None: only the error before registration is known)."""
    fixed = np.asarray(fixed_points, dtype=float).reshape(-1, 3)
    moving = np.asarray(moving_points, dtype=float).reshape(-1, 3)
    if fixed.shape != moving.shape:
        raise ValueError(f"{len(fixed)} fixed and {len(moving)} moving landmarks: they must pair up one to one")
    names = list(labels) if labels is not None else [str(i + 1) for i in range(len(fixed))]
    before = np.linalg.norm(fixed - moving, axis=1)
    after = None
    if field is not None and len(fixed):
        after = np.linalg.norm(field.transform_points(fixed) - moving, axis=1)
    return LandmarkErrors(names, [round(float(v), 6) for v in before],
                          None if after is None else [round(float(v), 6) for v in after])


# -- image-level labels ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelChange:
    """One image-level class of one image or breast: the AI's probability and call against the confirmed label."""

    item: str
    name: str
    ai_probability: float | None
    ai_call: int | None
    confirmed: int

    @property
    def changed(self) -> bool:
        return self.ai_call is not None and self.ai_call != self.confirmed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


def label_changes(ai: Mapping[str, Mapping[str, float]], confirmed: Mapping[str, Mapping[str, int]],
                  threshold: float = 0.5) -> list[LabelChange]:
    """Per item (a breast "L"/"R" or a view) and class: the AI's call at ``threshold`` against the confirmation.
    Items or classes the AI did not score are reported with no call."""
    out = []
    for item in sorted(confirmed):
        for name in sorted(confirmed[item]):
            value = int(confirmed[item][name])
            probability = ai.get(item, {}).get(name)
            call = None if probability is None else int(float(probability) >= threshold)
            out.append(LabelChange(item, name, None if probability is None else round(float(probability), 6),
                                   call, value))
    return out
