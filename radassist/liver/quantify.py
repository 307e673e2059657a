"""Measure any liver/tumour segmentation, the model's or one drawn by hand: the numbers a report needs.

* liver volume (mL): the whole organ, tumours included; parenchyma volume = liver without tumours;
* tumours: each 26-connected component of the tumour segments, with its volume, its longest axial diameter
  (RECIST-style: the longest distance across the lesion within one axial slice, pixels counted as squares) and
  its centre in LPS mm; count, total volume, and tumour burden = total tumour volume / liver volume x 100;
* with the CT: mean HU of the parenchyma and of each tumour.

Volumes are voxel counts times the voxel volume: nothing is smoothed or interpolated. Segments are recognised by
their terminology codes (SNOMED CT Liver; a morphologically altered structure or neoplasm in the liver) or their
names ("liver", "tumour"/"tumor"/"lesion"/...); a bare label map with values 1 and 2 is read as LiTS labels; any
other layout needs the label values said explicitly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import numpy as np
from scipy import ndimage

from radassist.errors import InputError
from radassist.liver.model import LIVER_LABEL, TUMOUR_LABEL
from radassist.liver.postprocess import FULL_CONNECTIVITY, organ_box
from radassist.results.labelmap import LabelMap
from radassist.results.segments import Segment
from radassist.results.tables import Report
from radassist.metrics.shape import longest_axial_diameter
from radassist.runtime.orientation import AxialReorientation
from radassist.volume import Geometry, Volume

LIVER_CODE = "10200004"  # SNOMED CT Liver
TUMOUR_TYPE_CODES = {"108369006", "4147007", "52988006", "27925004"}  # Neoplasm, Mass, Lesion, Nodule
ALTERED_STRUCTURE = "49755003"  # SNOMED CT Morphologically Altered Structure
_TUMOUR_WORDS = re.compile(r"tumou?r|lesion|neoplasm|metasta|cancer|carcinoma|hcc|mass|nodule", re.IGNORECASE)
_GENERIC_NAME = re.compile(r"^segment[_ ]?\d+$", re.IGNORECASE)


@dataclass
class TumourMeasure:
    """One tumour: size, longest axial diameter (mm) on axial slice ``axial_slice`` (0 = most inferior)."""

    number: int
    voxels: int
    volume_ml: float
    longest_axial_diameter_mm: float
    axial_slice: int
    center_lps: tuple[float, float, float]
    mean_hu: float | None = None


@dataclass
class LiverQuantification:
    """The measures of one segmentation; :meth:`report` turns them into the table."""

    liver_voxels: int
    tumour_voxels: int
    voxel_volume_mm3: float
    tumours: list[TumourMeasure]
    liver_center_lps: tuple[float, float, float] | None = None
    parenchyma_mean_hu: float | None = None
    liver_segments: list[str] = field(default_factory=list)
    tumour_segments: list[str] = field(default_factory=list)

    @property
    def liver_volume_ml(self) -> float:
        return self.liver_voxels * self.voxel_volume_mm3 / 1000.0

    @property
    def total_tumour_volume_ml(self) -> float:
        return self.tumour_voxels * self.voxel_volume_mm3 / 1000.0

    @property
    def parenchyma_volume_ml(self) -> float:
        return self.liver_volume_ml - self.total_tumour_volume_ml

    @property
    def tumour_burden_percent(self) -> float:
        return 100.0 * self.tumour_voxels / self.liver_voxels if self.liver_voxels else math.nan

    def summary(self) -> dict[str, Any]:
        largest = max((t.longest_axial_diameter_mm for t in self.tumours), default=None)
        return {"liver_volume_ml": round(self.liver_volume_ml, 3),
                "parenchyma_volume_ml": round(self.parenchyma_volume_ml, 3),
                "tumour_count": len(self.tumours),
                "total_tumour_volume_ml": round(self.total_tumour_volume_ml, 3),
                "tumour_burden_percent": round(self.tumour_burden_percent, 4) if self.liver_voxels else None,
                "largest_tumour_diameter_mm": None if largest is None else round(largest, 2),
                "liver_voxels": self.liver_voxels, "tumour_voxels": self.tumour_voxels,
                "voxel_volume_mm3": self.voxel_volume_mm3, "parenchyma_mean_hu": self.parenchyma_mean_hu}

    def rows(self) -> list[dict[str, Any]]:
        """One row for the liver, then one per tumour (largest first)."""
        centre = self.liver_center_lps or (None, None, None)
        rows = [{"structure": "liver", "voxels": self.liver_voxels, "volume_ml": round(self.liver_volume_ml, 3),
                 "longest_axial_diameter_mm": None, "axial_slice": None, "center_x": centre[0],
                 "center_y": centre[1], "center_z": centre[2], "mean_hu": self.parenchyma_mean_hu}]
        for tumour in self.tumours:
            rows.append({"structure": f"tumour {tumour.number}", "voxels": tumour.voxels,
                         "volume_ml": round(tumour.volume_ml, 4),
                         "longest_axial_diameter_mm": round(tumour.longest_axial_diameter_mm, 2),
                         "axial_slice": tumour.axial_slice, "center_x": round(tumour.center_lps[0], 2),
                         "center_y": round(tumour.center_lps[1], 2), "center_z": round(tumour.center_lps[2], 2),
                         "mean_hu": tumour.mean_hu})
        return rows

    def report(self, title: str = "Liver and liver tumour quantification") -> Report:
        units = {"volume_ml": "mL", "longest_axial_diameter_mm": "mm", "center_x": "mm (LPS)",
                 "center_y": "mm (LPS)", "center_z": "mm (LPS)", "mean_hu": "HU", "liver_volume_ml": "mL",
                 "parenchyma_volume_ml": "mL", "total_tumour_volume_ml": "mL", "tumour_burden_percent": "%",
                 "largest_tumour_diameter_mm": "mm", "voxel_volume_mm3": "mm^3"}
        metadata = {"liver_segments": self.liver_segments, "tumour_segments": self.tumour_segments,
                    "definitions": {"liver_volume_ml": "whole liver, tumours included",
                                    "tumour_burden_percent": "total tumour volume / liver volume x 100",
                                    "longest_axial_diameter_mm": "longest distance across the tumour within one "
                                                                 "axial slice, pixels counted as squares"}}
        return Report(title=title, rows=self.rows(), summary=self.summary(), units=units, metadata=metadata)


# ------------------------------------------------------------------------------------------------ segments


def _is_liver(segment: Segment) -> bool:
    term = segment.terminology
    if term is not None:
        return term.type.value == LIVER_CODE
    name = segment.name.strip().lower()
    return "liver" in name and not _TUMOUR_WORDS.search(name)


def _is_tumour(segment: Segment) -> bool:
    term = segment.terminology
    if term is not None:
        in_liver = term.anatomic_region is not None and term.anatomic_region.value == LIVER_CODE
        return term.type.value in TUMOUR_TYPE_CODES or (term.category.value == ALTERED_STRUCTURE and in_liver)
    return bool(_TUMOUR_WORDS.search(segment.name))


def _by_label(labelmap: LabelMap, values: Sequence[int], what: str, where: Any) -> list[Segment]:
    chosen = [s for s in labelmap.segments if s.label_value in set(values)]
    missing = sorted(set(values) - {s.label_value for s in chosen})
    if missing:
        present = sorted({s.label_value for s in labelmap.segments})
        raise InputError(where, f"has no {what} label {missing}; its labels are {present}")
    return chosen


def liver_and_tumour_segments(labelmap: LabelMap, liver_labels: Sequence[int] | None = None,
                              tumour_labels: Sequence[int] | None = None) -> tuple[list[Segment], list[Segment]]:
    """Which segments are liver and which are tumours (see the module docstring for the rules)."""
    where = labelmap.source.path
    liver = (_by_label(labelmap, liver_labels, "liver", where) if liver_labels
             else [s for s in labelmap.segments if _is_liver(s)])
    tumours = (_by_label(labelmap, tumour_labels, "tumour", where) if tumour_labels
               else [s for s in labelmap.segments if s not in liver and _is_tumour(s)])
    if not liver and all(_GENERIC_NAME.match(s.name) and s.terminology is None for s in labelmap.segments) \
            and {s.label_value for s in labelmap.segments} <= {LIVER_LABEL, TUMOUR_LABEL}:
        liver = [s for s in labelmap.segments if s.label_value == LIVER_LABEL]  # LiTS: 1 liver, 2 tumour
        tumours = tumours or [s for s in labelmap.segments if s.label_value == TUMOUR_LABEL]
    both = sorted({s.label_value for s in liver if s in tumours})
    if both:
        raise InputError(where, f"label(s) {both} are given as both liver and tumour")
    if not liver:
        names = ", ".join(f"{s.name!r} (label {s.label_value})" for s in labelmap.segments) or "none"
        raise InputError(where, f"no liver segment found among its segments: {names}; name one 'Liver' or give "
                                f"its label value (--liver-label)")
    return liver, tumours


# ------------------------------------------------------------------------------------------------ measures


def mask_centroid(mask: np.ndarray) -> np.ndarray:
    """The mean (z, y, x) index of a non-empty mask's voxels, from one sum per axis (what
    ``ndimage.center_of_mass`` gives, without building an index grid the size of the volume)."""
    mask = np.asarray(mask, dtype=bool)
    total = np.count_nonzero(mask)
    if total == 0:
        raise ValueError("an empty mask has no centroid")
    centre = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        counts = np.count_nonzero(mask, axis=others)
        centre.append(float(np.dot(counts, np.arange(mask.shape[axis], dtype=np.float64))) / total)
    return np.array(centre)


def tumour_components(tumours: np.ndarray) -> list[tuple[tuple[slice, ...], np.ndarray]]:
    """Each 26-connected tumour as (its bounding box in the volume, its mask within that box), found within the
    tumours' own bounding box (no pass over the whole volume when there are none or they are small)."""
    outer = organ_box(tumours, margin=0)
    if outer is None:
        return []
    components, _ = ndimage.label(tumours[outer], structure=FULL_CONNECTIVITY)
    return [(tuple(slice(r.start + o.start, r.stop + o.start) for r, o in zip(region, outer)),
             components[region] == index)
            for index, region in enumerate(ndimage.find_objects(components), start=1)]  # labels 1..n, none missing


def quantify_masks(liver: np.ndarray, tumours: np.ndarray, geometry: Geometry, image: Volume | None = None,
                   liver_segments: Sequence[str] = (), tumour_segments: Sequence[str] = ()) -> LiverQuantification:
    """Measures of a liver mask and a tumour mask on ``geometry``; tumours outside the liver still count as
    tumours and make part of the liver organ."""
    tumours = np.asarray(tumours, dtype=bool)
    organ = np.asarray(liver, dtype=bool) | tumours
    if image is not None and not image.geometry.same_grid(geometry):
        raise InputError(image.source.path, "the CT is not on the segmentation's grid")
    values = None if image is None else image.array
    measures = []
    for region, component in tumour_components(tumours):
        voxels = int(component.sum())
        diameter, axial_slice = longest_axial_diameter(component, _sub_geometry(geometry, region))
        offset = np.array([s.start for s in region], dtype=float)
        centre = geometry.zyx_to_world(mask_centroid(component) + offset)
        mean_hu = None if values is None else round(float(values[region][component].mean()), 2)
        measures.append(TumourMeasure(0, voxels, voxels * geometry.voxel_volume_mm3 / 1000.0, diameter,
                                      axial_slice + _axial_offset(geometry, region), tuple(float(c) for c in centre),
                                      mean_hu))
    measures.sort(key=lambda t: -t.voxels)
    for number, measure in enumerate(measures, start=1):
        measure.number = number
    parenchyma = organ & ~tumours
    centre = tuple(float(c) for c in geometry.zyx_to_world(mask_centroid(organ))) if organ.any() else None
    mean_hu = round(float(values[parenchyma].mean()), 2) if values is not None and parenchyma.any() else None
    return LiverQuantification(int(organ.sum()), int(tumours.sum()), geometry.voxel_volume_mm3, measures,
                               tuple(round(c, 2) for c in centre) if centre else None, mean_hu,
                               list(liver_segments), list(tumour_segments))


def _sub_geometry(geometry: Geometry, region: tuple[slice, slice, slice]) -> Geometry:
    start = np.array([s.start for s in region], dtype=float)
    shape = tuple(s.stop - s.start for s in region)
    return Geometry(shape=shape, spacing=geometry.spacing, origin=tuple(geometry.zyx_to_world(start)),
                    direction=geometry.direction)


def _axial_offset(geometry: Geometry, region: tuple[slice, slice, slice]) -> int:
    """Index of the region's first canonical axial slice within the whole grid's canonical slices."""
    reorientation = AxialReorientation.of(geometry)
    axis = reorientation.axes[0]
    length = geometry.shape[axis]
    span = region[axis]
    return (length - span.stop) if reorientation.flips[0] else span.start


def liver_tumour_labelmap(labelmap: LabelMap, liver_labels: Sequence[int] | None = None,
                          tumour_labels: Sequence[int] | None = None) -> LabelMap:
    """The segmentation as LiTS labels (1 liver, 2 tumour) with the coded "Liver"/"Liver tumour" segments."""
    from radassist.liver.model import liver_segments

    liver_found, tumour_found = liver_and_tumour_segments(labelmap, liver_labels, tumour_labels)
    labels = np.zeros(labelmap.geometry.shape, dtype=np.uint8)
    for segment in liver_found:
        labels[labelmap.mask(segment)] = LIVER_LABEL
    for segment in tumour_found:
        labels[labelmap.mask(segment)] = TUMOUR_LABEL
    return LabelMap(labels=labels, geometry=labelmap.geometry, segments=liver_segments(), source=labelmap.source)


def quantify_labelmap(labelmap: LabelMap, image: Volume | None = None, liver_labels: Sequence[int] | None = None,
                      tumour_labels: Sequence[int] | None = None) -> LiverQuantification:
    """Find the liver and tumour segments of ``labelmap`` and measure them (``image`` on the same grid)."""
    liver_segments, tumour_segments = liver_and_tumour_segments(labelmap, liver_labels, tumour_labels)
    shape = labelmap.geometry.shape
    liver = reduce(np.logical_or, (labelmap.mask(segment) for segment in liver_segments), np.zeros(shape, bool))
    tumours = reduce(np.logical_or, (labelmap.mask(segment) for segment in tumour_segments), np.zeros(shape, bool))
    return quantify_masks(liver, tumours, labelmap.geometry, image, [s.name for s in liver_segments],
                          [s.name for s in tumour_segments])


def summary_line(summary: dict) -> str:
    """One line of a quantification summary (the CLI prints it, the Slicer panel shows it)."""
    burden = summary.get("tumour_burden_percent")
    return (f"liver {summary['liver_volume_ml']:.1f} mL, {summary['tumour_count']} tumour(s), "
            f"{summary['total_tumour_volume_ml']:.2f} mL of tumour"
            + (f", tumour burden {burden:.2f} %" if burden is not None else ""))
