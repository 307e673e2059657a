"""From 2-D boxes on MIP slabs to 3-D nodule candidates in world millimetres.

Lung-DETR sees a nodule on every slab that holds (most of) it, so one nodule gives a short run of boxes on
neighbouring slabs. This module

1. removes duplicate boxes within a slab (MONAI's ``non_max_suppression``),
2. links boxes of neighbouring slabs that overlap in-plane into chains (:func:`link_boxes`, connected components),
3. turns each chain into a :class:`Detection`: centre from the score-weighted box centres and slab heights,
   diameter from the best box (a MIP shows the nodule's widest cross-section), the z-extent covered by the chain's
   slabs, and the chain's best score as probability (:func:`chain_to_detection`),
4. suppresses 3-D duplicates (:func:`suppress_duplicates`) and caps the list (:func:`cap_candidates`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from monai.data.box_utils import box_iou, non_max_suppression
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from radassist.lung.preprocess import SlabStack
from radassist.results.detections import Detection


class BoxesAndScores(Protocol):
    """What a detector gives per slab: pixel boxes (N, 4: x0, y0, x1, y1) and scores (N,), e.g. the model's
    ``ImageDetections``."""

    boxes: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class LinkConfig:
    """How slab boxes become 3-D candidates."""

    nms_iou: float = 0.5  # boxes on one slab overlapping more than this are one finding (DETR's own duplicates)
    link_iou: float = 0.2  # boxes on neighbouring slabs overlapping at least this much are one nodule
    max_slab_gap: int = 1  # slabs apart that may still be linked (1: only adjacent slabs)
    duplicate_distance: float = 0.5  # 3-D: a centre closer than this x the larger diameter is a duplicate
    max_candidates: int = 100  # candidates kept per scan, best first (LUNA16 scores at most 100)
    min_score: float = 0.0  # boxes below this score are ignored


@dataclass
class SlabBox:
    """One 2-D box: which slab, pixel (x0, y0, x1, y1), score."""

    slab: int
    box: np.ndarray
    score: float


def collect_slab_boxes(per_slab: Sequence[BoxesAndScores], config: LinkConfig = LinkConfig()) -> list[SlabBox]:
    """Every slab's boxes above ``min_score``, de-duplicated within the slab."""
    collected = []
    for slab, found in enumerate(per_slab):
        boxes = np.asarray(found.boxes, dtype=float).reshape(-1, 4)
        scores = np.asarray(found.scores, dtype=float).reshape(-1)
        valid = (scores >= config.min_score) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = boxes[valid], scores[valid]
        for index in non_max_suppression(boxes, scores, config.nms_iou):
            collected.append(SlabBox(slab, boxes[index], float(scores[index])))
    return collected


def link_boxes(boxes: Sequence[SlabBox], config: LinkConfig = LinkConfig()) -> list[list[SlabBox]]:
    """Chains of boxes on neighbouring slabs that overlap in-plane (connected components), each sorted by slab;
    chains are in the order of their first box."""
    by_slab: dict[int, list[int]] = {}
    for index, box in enumerate(boxes):
        by_slab.setdefault(box.slab, []).append(index)
    links: list[tuple[int, int]] = []
    for slab, members in by_slab.items():
        mine = np.array([boxes[i].box for i in members])
        for gap in range(1, config.max_slab_gap + 1):
            if others := by_slab.get(slab + gap):
                overlap = box_iou(mine, np.array([boxes[j].box for j in others]))
                links += [(members[a], others[b]) for a, b in zip(*np.nonzero(overlap >= config.link_iou))]
    rows, columns = np.array(links, dtype=np.int64).reshape(-1, 2).T
    graph = coo_matrix((np.ones(len(links)), (rows, columns)), shape=(len(boxes), len(boxes)))
    chains: dict[int, list[SlabBox]] = {}
    for label, box in zip(connected_components(graph, directed=False)[1], boxes):  # labels by their first box
        chains.setdefault(int(label), []).append(box)
    return [sorted(chain, key=lambda b: b.slab) for chain in chains.values()]


def chain_to_detection(chain: Sequence[SlabBox], stack: SlabStack, label: str = "nodule") -> Detection:
    """One 3-D candidate from a chain of slab boxes (world LPS mm)."""
    scores = np.array([b.score for b in chain], dtype=float)
    weights = np.maximum(scores, 1e-6)
    centres = np.array([stack.pixel_to_world(b.slab, (b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2)[0]
                        for b in chain])
    centre = (centres * weights[:, None]).sum(axis=0) / weights.sum()
    best = chain[int(np.argmax(scores))]
    corner_low, corner_high = stack.pixel_to_world(best.slab, best.box[[0, 2]], best.box[[1, 3]])
    width, height = np.abs(corner_high[:2] - corner_low[:2])
    diameter = float((width + height) / 2)
    z_low = min(stack.z_extent_mm(b.slab)[0] for b in chain)
    z_high = max(stack.z_extent_mm(b.slab)[1] for b in chain)
    # a MIP hides where in its slab a nodule sits: the z size is the chain's extent, at most the diameter
    size_z = min(z_high - z_low, diameter)
    return Detection(center=tuple(centre), size=(float(width), float(height), float(size_z)),
                     probability=float(np.clip(scores.max(), 0.0, 1.0)), label=label, diameter_mm=diameter,
                     extra={"z_extent_mm": [round(z_low, 3), round(z_high, 3)],
                            "slabs": [int(b.slab) for b in chain]})


def suppress_duplicates(detections: Sequence[Detection], distance_factor: float = 0.5) -> list[Detection]:
    """Best first; a detection whose centre is within ``distance_factor`` x the larger diameter (or the larger
    box side when a diameter is unknown) of a kept one is dropped."""
    def extent(d: Detection) -> float:
        return d.diameter_mm if d.diameter_mm is not None else max(d.size)

    kept: list[Detection] = []
    for detection in sorted(detections, key=lambda d: d.probability, reverse=True):
        centre = np.asarray(detection.center)
        if all(np.linalg.norm(centre - np.asarray(other.center)) > distance_factor * max(extent(detection),
                                                                                        extent(other))
               for other in kept):
            kept.append(detection)
    return kept


def cap_candidates(detections: Sequence[Detection], max_candidates: int) -> list[Detection]:
    """The ``max_candidates`` most probable detections."""
    return sorted(detections, key=lambda d: d.probability, reverse=True)[:max(int(max_candidates), 0)]


def slab_boxes_to_detections(per_slab: Sequence[BoxesAndScores], stack: SlabStack,
                             config: LinkConfig = LinkConfig(), label: str = "nodule") -> list[Detection]:
    """The whole step: per-slab boxes -> linked 3-D candidates, duplicates removed, capped, best first."""
    if len(per_slab) != len(stack):
        raise ValueError(f"got boxes for {len(per_slab)} slabs, the stack has {len(stack)}")
    chains = link_boxes(collect_slab_boxes(per_slab, config), config)
    detections = [chain_to_detection(chain, stack, label) for chain in chains]
    return cap_candidates(suppress_duplicates(detections, config.duplicate_distance), config.max_candidates)
