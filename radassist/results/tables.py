"""Classification and report results: the numbers a clinician reads, as JSON and CSV."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClassifiedImage:
    """Class probabilities for one image (a mammogram view, say) and what identifies it."""

    image_id: str
    probabilities: dict[str, float]
    attributes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.probabilities.items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{self.image_id}: probability of {name!r} must be within 0..1, got {value}")
        self.probabilities = {k: float(v) for k, v in self.probabilities.items()}


@dataclass
class Classification:
    """Per-image results plus aggregated groups (per breast, per study)."""

    images: list[ClassifiedImage]
    groups: list[ClassifiedImage] = field(default_factory=list)
    model: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    """A table of rows (one per finding/structure) plus scalar summary values, e.g. liver volume and burden."""

    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
