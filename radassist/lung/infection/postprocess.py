"""From predicted class labels to what the radiologist reads: a label map with one segment per class and a report.

The report gives each class's volume in mL and, for each lung, the share of the lung that is infected. Infected
means any finding inside the lung parenchyma; pleural effusion lies outside the lung (in the pleural space) and is
therefore reported by volume only. A finding that the lung mask left out (dense consolidation is often not in an
intensity-based lung mask) is counted to the nearer lung and added to that lung's size, so 100 % is a lung that is
wholly infected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from radassist.lung.infection.preprocess import LungMasks
from radassist.results.labelmap import LabelMap
from radassist.results.segments import Segment
from radassist.results.tables import Report
from radassist.volume import Geometry, SourceInfo

PLEURAL_EFFUSION_CODE = ("SCT", "60046008")  # outside the lung parenchyma: not part of the infected share
NOT_IN_LUNG_CODES = {PLEURAL_EFFUSION_CODE}


def infection_labelmap(labels: np.ndarray, geometry: Geometry, segments: Sequence[Segment],
                       source: SourceInfo | None = None, metadata: Mapping[str, Any] | None = None) -> LabelMap:
    """One layer, one segment per class (label value = class value), ready for ``write_seg_nrrd``.

    Label values without a segment (a network with more outputs than the table names) are cleared.
    """
    labels = np.asarray(labels, dtype=np.uint8)
    known = np.zeros(256, dtype=bool)
    known[[0] + [segment.label_value for segment in segments]] = True
    cleaned = np.where(known[labels], labels, 0).astype(np.uint8)
    return LabelMap(cleaned, geometry, [Segment(s.name, s.label_value, s.color, s.terminology, s.status, 0,
                                                extra=dict(s.extra)) for s in segments],
                    source or SourceInfo(), dict(metadata or {}))


def is_parenchymal(segment: Segment) -> bool:
    """Whether a finding lies in the lung tissue (counted in the infected share); by terminology code."""
    if segment.terminology is None:
        return True
    code = (segment.terminology.type.scheme, segment.terminology.type.value)
    return code not in NOT_IN_LUNG_CODES


def assign_to_lungs(findings: np.ndarray, lungs: LungMasks) -> tuple[np.ndarray, np.ndarray]:
    """Split a finding mask between the right and left lung: inside a lung it belongs there; outside, to the
    lung nearest in its slice (or in the volume when the slice has no lung)."""
    right = findings & lungs.right
    left = findings & lungs.left
    outside = findings & ~lungs.both
    if not outside.any():
        return right, left
    for z in np.nonzero(outside.any(axis=(1, 2)))[0]:
        nearest_z = z if lungs.both[z].any() else _nearest_lung_slice(lungs, int(z))
        if nearest_z is None:
            continue
        lung_slice = lungs.right[nearest_z].astype(np.uint8) + 2 * lungs.left[nearest_z].astype(np.uint8)
        _, (iy, ix) = ndimage.distance_transform_edt(lung_slice == 0, return_indices=True)
        side = lung_slice[iy, ix]
        right[z] |= outside[z] & (side == 1)
        left[z] |= outside[z] & (side == 2)
    return right, left


def _nearest_lung_slice(lungs: LungMasks, z: int) -> int | None:
    with_lung = np.nonzero(lungs.both.any(axis=(1, 2)))[0]
    if with_lung.size == 0:
        return None
    return int(with_lung[np.argmin(np.abs(with_lung - z))])


def infection_report(labelmap: LabelMap, lungs: LungMasks | None, model_name: str = "") -> Report:
    """Per-class volume (mL) and voxels, and per lung: its volume and the infected share in percent."""
    voxel_ml = labelmap.geometry.voxel_volume_mm3 / 1000.0
    rows: list[dict[str, Any]] = []
    parenchymal = np.zeros(labelmap.geometry.shape, dtype=bool)
    for segment in labelmap.segments:
        mask = labelmap.mask(segment)
        rows.append({"structure": segment.name, "kind": "finding", "label_value": segment.label_value,
                     "voxels": int(mask.sum()), "volume_ml": round(float(mask.sum()) * voxel_ml, 3)})
        if is_parenchymal(segment):
            parenchymal |= mask
    summary: dict[str, Any] = {
        "total_finding_volume_ml": round(sum(r["volume_ml"] for r in rows), 3),
        "infected_volume_ml": round(float(parenchymal.sum()) * voxel_ml, 3),
    }
    notes: list[str] = []
    if lungs is not None:
        right, left = assign_to_lungs(parenchymal, lungs)
        for side, lung, infected in (("right", lungs.right, right), ("left", lungs.left, left)):
            extent = lung | infected
            lung_ml = float(extent.sum()) * voxel_ml
            share = 100.0 * float(infected.sum()) / float(extent.sum()) if extent.any() else None
            rows.append({"structure": f"{side} lung", "kind": "lung", "voxels": int(extent.sum()),
                         "volume_ml": round(lung_ml, 3), "infected_ml": round(float(infected.sum()) * voxel_ml, 3),
                         "infected_percent": None if share is None else round(share, 2)})
            summary[f"{side}_lung_infected_percent"] = None if share is None else round(share, 2)
            if not lung.any():
                notes.append(f"no {side} lung was found in the image: its infected share is not reported")
        both = lungs.both | parenchymal
        summary["lungs_infected_percent"] = round(100.0 * float(parenchymal.sum()) / float(both.sum()), 2) \
            if both.any() else None
    else:
        notes.append("no lung mask: infected shares of the lungs are not reported")
    if notes:
        summary["notes"] = notes
    return Report(title="Lung infection segmentation", rows=rows, summary=summary,
                  units={"volume_ml": "mL", "infected_ml": "mL", "infected_percent": "%",
                         "total_finding_volume_ml": "mL", "infected_volume_ml": "mL"},
                  metadata={"model": model_name, "voxel_volume_ml": voxel_ml,
                            "infected_means": "findings inside the lung parenchyma (pleural effusion excluded)"})
