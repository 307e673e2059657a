"""Segment descriptions shared by every segmentation result: name, label value, colour, terminology, review status."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ReviewStatus(str, Enum):
    """Review state of a result, with the values Slicer stores in the ``Segmentation.Status`` tag."""

    NOT_STARTED = "notstarted"
    IN_PROGRESS = "inprogress"
    COMPLETED = "completed"
    FLAGGED = "flagged"


@dataclass(frozen=True)
class Code:
    """A coded concept (DICOM/SNOMED CT): scheme designator, code value, code meaning."""

    scheme: str
    value: str
    meaning: str


@dataclass(frozen=True)
class Terminology:
    """What a segment is, as DICOM and Slicer's terminology module code it."""

    category: Code
    type: Code
    type_modifier: Code | None = None
    anatomic_region: Code | None = None
    anatomic_region_modifier: Code | None = None


@dataclass
class Segment:
    """One segment of a label map: ``label_value`` in layer ``layer`` of the array."""

    name: str
    label_value: int
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    terminology: Terminology | None = None
    status: ReviewStatus = ReviewStatus.NOT_STARTED
    layer: int = 0
    segment_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if int(self.label_value) <= 0:
            raise ValueError(f"segment {self.name!r}: label value must be positive, got {self.label_value}")
        self.label_value = int(self.label_value)
        self.color = tuple(float(c) for c in self.color)
        if any(c < 0 or c > 1 for c in self.color):
            raise ValueError(f"segment {self.name!r}: colour components are 0..1, got {self.color}")
        self.status = ReviewStatus(self.status)
        if self.segment_id is None:
            self.segment_id = f"Segment_{self.label_value}" if self.layer == 0 else \
                f"Segment_{self.layer}_{self.label_value}"
