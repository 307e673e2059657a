"""BraTS tumour label conventions: which value means what in each edition, as named segments with terminology, and
as the joint network's classes.

* 2015 (BraTS 2012-2016): 1 necrosis, 2 oedema, 3 non-enhancing tumour, 4 enhancing tumour;
* 2017 (BraTS 2017-2020): 1 necrotic and non-enhancing tumour core (NCR/NET), 2 oedema (ED), 4 enhancing (ET);
* 2021 (BraTS 2021-2023): 1 necrotic tumour core (NCR), 2 oedema (ED), 3 enhancing tumour (ET).

A file keeps its own values in the segmentation RadAssist writes (label 3 of a 2015 file stays 3, named
non-enhancing tumour); only the joint network, which has three tumour classes (Estienne et al. 2020: core,
oedema, enhancing), sees them merged. ``auto`` tells the editions apart by the values present: 3 and 4 together
only exist in 2015 files, 4 alone in 2017-2020, 3 without 4 in 2021 and later; a file with only 1 and 2 reads as
2017-2020, whose names fit every later edition too.
"""

from __future__ import annotations

import numpy as np

from radassist.results.labelmap import LabelMap
from radassist.results.segments import ReviewStatus, Segment
from radassist.results.terminology import CATALOGUE
from radassist.volume import Geometry, SourceInfo

CONVENTIONS: dict[str, dict[int, str]] = {
    "brats2015": {1: "tumour necrosis", 2: "oedema", 3: "non-enhancing tumour", 4: "enhancing tumour"},
    "brats2017": {1: "necrotic and non-enhancing tumour core", 2: "oedema", 4: "enhancing tumour"},
    "brats2021": {1: "necrotic tumour core", 2: "oedema", 3: "enhancing tumour"},
}
"""Label value -> segment name (a key of the terminology catalogue) per edition."""

NETWORK_CLASS = {"tumour necrosis": 1, "non-enhancing tumour": 1, "necrotic and non-enhancing tumour core": 1,
                 "necrotic tumour core": 1, "oedema": 2, "enhancing tumour": 3}
"""Segment name -> the joint network's class (1 core, 2 oedema, 3 enhancing)."""

CHOICES = ("auto", *CONVENTIONS)


def detect_convention(values: np.ndarray) -> str:
    """The edition a label volume follows, from the values it holds; ValueError for values no edition uses."""
    present = {int(v) for v in np.unique(values)} - {0}
    unknown = sorted(present - {1, 2, 3, 4})
    if unknown:
        raise ValueError(f"label values {unknown} are not BraTS labels (0, 1, 2, 3, 4)")
    if {3, 4} <= present:
        return "brats2015"
    if 3 in present:
        return "brats2021"
    return "brats2017"


def _convention(values: np.ndarray, convention: str) -> tuple[str, dict[int, str]]:
    """The edition's name and its value -> name table; ValueError for values it does not use."""
    if convention not in CHOICES:
        raise ValueError(f"label convention must be one of {CHOICES}, got {convention!r}")
    name = detect_convention(values) if convention == "auto" else convention
    table = CONVENTIONS[name]
    stray = sorted({int(v) for v in np.unique(values)} - {0} - set(table))
    if stray:
        raise ValueError(f"label values {stray} have no meaning in the {name} convention (it uses "
                         f"{sorted(table)})")
    return name, table


def brats_labelmap(values: np.ndarray, geometry: Geometry, convention: str = "auto",
                   source: SourceInfo | None = None) -> LabelMap:
    """A BraTS label volume as a LabelMap that keeps its values, one named, coded segment per value present."""
    values = np.rint(np.asarray(values)).astype(np.int64)
    name, table = _convention(values, convention)
    present = {int(v) for v in np.unique(values)}
    segments = [Segment(name=segment, label_value=value, color=CATALOGUE[segment].color,
                        terminology=CATALOGUE[segment].terminology, status=ReviewStatus.NOT_STARTED)
                for value, segment in table.items() if value in present]
    return LabelMap(labels=values.astype(np.uint8), geometry=geometry, segments=segments,
                    source=source or SourceInfo(), metadata={"convention": name})


def brats_classes(values: np.ndarray, convention: str = "auto") -> np.ndarray:
    """BraTS label values -> the joint network's classes (0 background, 1 core, 2 oedema, 3 enhancing)."""
    values = np.rint(np.asarray(values)).astype(np.int64)
    _, table = _convention(values, convention)
    lookup = np.zeros(5, dtype=np.uint8)
    for value, name in table.items():
        lookup[value] = NETWORK_CLASS[name]
    return lookup[values]
