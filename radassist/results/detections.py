"""Detection results: axis-aligned boxes in LPS world millimetres, one per finding.

Every finding has a number 0..1 that ranks it (the field ``probability``) and says what that number is
(``score_name``): "probability" for a trained model's output, "score" for a heuristic ranking that is not a
probability (the classical nodule candidate detector's). Writers name the number after it, so a reader never
takes a heuristic for a probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radassist.results.segments import ReviewStatus
from radassist.volume import Geometry, SourceInfo


SCORE_NAMES = ("probability", "score")


@dataclass
class Detection:
    """One finding: box centre and size (x, y, z) in LPS mm, its 0..1 ranking value and what that value is
    (``score_name``: a model's "probability" or a heuristic "score"), and what the finding is."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    probability: float
    label: str = "nodule"
    diameter_mm: float | None = None
    status: ReviewStatus = ReviewStatus.NOT_STARTED
    extra: dict[str, Any] = field(default_factory=dict)
    score_name: str = "probability"

    def __post_init__(self) -> None:
        self.center = tuple(float(c) for c in self.center)
        self.size = tuple(float(s) for s in self.size)
        self.probability = float(self.probability)
        self.status = ReviewStatus(self.status)
        if len(self.center) != 3 or len(self.size) != 3:
            raise ValueError("a detection needs a 3-D centre and size")
        if not np.all(np.isfinite(self.center)) or not np.all(np.isfinite(self.size)):
            raise ValueError(f"detection centre/size must be finite, got {self.center} / {self.size}")
        if min(self.size) < 0:
            raise ValueError(f"detection size must be non-negative, got {self.size}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"{self.score_name} must be within 0..1, got {self.probability}")
        if self.score_name not in SCORE_NAMES:
            raise ValueError(f"score_name must be one of {SCORE_NAMES}, got {self.score_name!r}")
        if self.diameter_mm is not None:
            self.diameter_mm = float(self.diameter_mm)

    @property
    def box_min(self) -> np.ndarray:
        return np.asarray(self.center) - np.asarray(self.size) / 2

    @property
    def box_max(self) -> np.ndarray:
        return np.asarray(self.center) + np.asarray(self.size) / 2


@dataclass
class Detections:
    """All findings for one image, best first, with the grid and series they refer to."""

    items: list[Detection]
    geometry: Geometry | None = None
    source: SourceInfo = field(default_factory=SourceInfo)
    engine: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def sorted(self) -> "Detections":
        items = sorted(self.items, key=lambda d: d.probability, reverse=True)
        return Detections(items, self.geometry, self.source, self.engine, dict(self.metadata))

    def above(self, threshold: float) -> "Detections":
        kept = [d for d in self.items if d.probability >= threshold]
        return Detections(kept, self.geometry, self.source, self.engine, dict(self.metadata))

    @property
    def score_name(self) -> str:
        """What the findings' 0..1 number is: "probability" (a model's) or "score" (a heuristic ranking)."""
        name = self.metadata.get("score_name")
        if name in SCORE_NAMES:
            return name
        return self.items[0].score_name if self.items else "probability"

    @property
    def series_uid(self) -> str:
        """The LUNA16 ``seriesuid``: the DICOM series UID, else the file's stem."""
        if self.source.series_instance_uid:
            return self.source.series_instance_uid
        if self.source.path:
            name = self.source.path.rstrip("/").split("/")[-1]
            for suffix in (".nii.gz", ".seg.nrrd", ".mhd", ".mha", ".nrrd", ".nii"):
                if name.endswith(suffix):
                    return name[: -len(suffix)]
            return name
        return "unknown"

    def __len__(self) -> int:
        return len(self.items)
