"""Segmentation results: a label array on a known grid plus the description of each segment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radassist.results.segments import Segment
from radassist.volume import Geometry, SourceInfo, Volume


@dataclass
class LabelMap:
    """Labels on ``geometry``: ``labels`` is (z, y, x) for one layer or (layers, z, y, x) for overlapping segments.

    Each :class:`Segment` names a label value in one layer, so overlapping segments are never flattened.
    """

    labels: np.ndarray
    geometry: Geometry
    segments: list[Segment]
    source: SourceInfo = field(default_factory=SourceInfo)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels)
        if self.labels.ndim == 3:
            self.labels = self.labels[np.newaxis]
        if self.labels.ndim != 4:
            raise ValueError(f"labels must be (z, y, x) or (layers, z, y, x), got {self.labels.shape}")
        if tuple(self.labels.shape[1:]) != self.geometry.shape:
            raise ValueError(f"labels {self.labels.shape[1:]} do not match the geometry {self.geometry.shape}")
        if not np.issubdtype(self.labels.dtype, np.integer):
            self.labels = self.labels.astype(np.uint16 if self.labels.max(initial=0) > 255 else np.uint8)
        seen: set[tuple[int, int]] = set()
        for segment in self.segments:
            key = (segment.layer, segment.label_value)
            if key in seen:
                raise ValueError(f"two segments share label {segment.label_value} in layer {segment.layer}")
            if segment.layer >= self.labels.shape[0]:
                raise ValueError(f"segment {segment.name!r} is in layer {segment.layer}, "
                                 f"but the label map has {self.labels.shape[0]} layer(s)")
            seen.add(key)

    @property
    def layer_count(self) -> int:
        return int(self.labels.shape[0])

    def segment(self, name: str) -> Segment:
        for segment in self.segments:
            if segment.name == name:
                return segment
        raise KeyError(f"no segment named {name!r}; have {[s.name for s in self.segments]}")

    def mask(self, name_or_segment: str | Segment) -> np.ndarray:
        """Boolean (z, y, x) mask of one segment."""
        segment = self.segment(name_or_segment) if isinstance(name_or_segment, str) else name_or_segment
        return self.labels[segment.layer] == segment.label_value

    def volume_ml(self, name: str) -> float:
        return float(self.mask(name).sum()) * self.geometry.voxel_volume_mm3 / 1000.0

    def flattened(self) -> np.ndarray:
        """One (z, y, x) array; refuses when segments overlap, so overlap is never lost silently."""
        if self.layer_count == 1:
            return self.labels[0]
        occupied = (self.labels > 0).sum(axis=0)
        if occupied.max(initial=0) > 1:
            raise ValueError("segments overlap: write one file per layer instead of flattening")
        return self.labels.max(axis=0)

    def as_volume(self, layer: int = 0) -> Volume:
        return Volume.from_geometry(self.labels[layer], self.geometry, self.source)

    @classmethod
    def from_masks(cls, masks: Sequence[np.ndarray], segments: Sequence[Segment], geometry: Geometry,
                   source: SourceInfo | None = None) -> "LabelMap":
        """Build a label map from one boolean mask per segment; overlapping masks go to extra layers.

        The segments' ``layer`` and ``label_value`` are reassigned where needed to keep every mask intact.
        """
        layers: list[np.ndarray] = []
        placed: list[Segment] = []
        for mask, segment in zip(masks, segments, strict=True):
            mask = np.asarray(mask, dtype=bool)
            for index, layer in enumerate(layers):
                if not np.any(layer[mask]):
                    break
            else:
                layers.append(np.zeros(geometry.shape, dtype=np.uint8))
                index = len(layers) - 1
            used = {s.label_value for s in placed if s.layer == index}
            value = segment.label_value if segment.label_value not in used else max(used) + 1
            layers[index][mask] = value
            placed.append(Segment(name=segment.name, label_value=value, color=segment.color,
                                  terminology=segment.terminology, status=segment.status, layer=index,
                                  extra=dict(segment.extra)))
        if not layers:
            layers.append(np.zeros(geometry.shape, dtype=np.uint8))
        return cls(labels=np.stack(layers), geometry=geometry, segments=placed, source=source or SourceInfo())
