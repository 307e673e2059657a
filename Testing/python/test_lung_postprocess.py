"""2-D slab boxes -> 3-D nodule candidates: NMS, linking across slabs, world geometry, duplicates, cap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radassist.lung import postprocess as post
from radassist.lung.preprocess import SlabStack, nodule_boxes_on_slabs, slab_ranges
from radassist.results import Detection
from radassist.volume import Geometry


@dataclass
class Found:
    boxes: np.ndarray
    scores: np.ndarray


def stack(slices: int = 60, thickness: float = 7.5, stride: float = 7.5) -> SlabStack:
    """An empty slab stack on a 0.7 x 0.7 x 1.25 mm grid of 200 x 256 pixels."""
    geometry = Geometry(shape=(slices, 200, 256), spacing=(0.7, 0.7, 1.25), origin=(-90.0, -70.0, -300.0))
    ranges = np.asarray(slab_ranges(slices, 1.25, thickness, stride))
    return SlabStack(images=np.zeros((len(ranges), 200, 256), np.float32), z_ranges=ranges, geometry=geometry)


def per_slab(count: int, boxes: dict[int, list[tuple[list[float], float]]]) -> list[Found]:
    out = []
    for slab in range(count):
        items = boxes.get(slab, [])
        out.append(Found(np.array([b for b, _ in items], float).reshape(-1, 4),
                         np.array([s for _, s in items], float)))
    return out


def test_duplicates_within_a_slab_are_suppressed_best_first():
    boxes = [([0, 0, 10, 10], 0.6), ([1, 1, 10, 10], 0.9), ([20, 20, 30, 30], 0.5), ([0, 0, 10, 10], 0.01),
             ([5, 5, 5, 9], 0.8)]  # IoU 0.81 with the best box; a second, separate box; below min_score; empty
    kept = post.collect_slab_boxes(per_slab(1, {0: boxes}), post.LinkConfig(min_score=0.05))
    assert [(b.box.tolist(), b.score) for b in kept] == [([1, 1, 10, 10], 0.9), ([20, 20, 30, 30], 0.5)]


def test_boxes_on_neighbouring_slabs_become_one_nodule_in_world_mm():
    slabs = stack()
    box = [100.0, 80.0, 114.0, 94.0]  # 14 px = 9.8 mm wide
    found = per_slab(len(slabs), {3: [(box, 0.6)], 4: [(box, 0.9)], 5: [([101.0, 80.0, 115.0, 94.0], 0.5)]})
    detections = post.slab_boxes_to_detections(found, slabs)
    assert len(detections) == 1
    nodule = detections[0]
    assert nodule.probability == 0.9 and np.isclose(nodule.diameter_mm, 9.8)
    expected_xy = slabs.geometry.ijk_to_world(np.array([107.0 - 0.5, 87.0 - 0.5, 0.0]))[:2]
    assert np.allclose(nodule.center[:2], expected_xy, atol=0.3)
    z_low, z_high = slabs.z_extent_mm(3)[0], slabs.z_extent_mm(5)[1]
    assert nodule.extra["z_extent_mm"] == [round(z_low, 3), round(z_high, 3)]
    assert nodule.extra["slabs"] == [3, 4, 5]
    assert z_low < nodule.center[2] < z_high
    assert np.isclose(nodule.size[2], 9.8)  # the chain covers 22.5 mm; the nodule is no taller than it is wide


def test_separate_places_and_distant_slabs_stay_separate():
    slabs = stack()
    found = per_slab(len(slabs), {2: [([10, 10, 20, 20], 0.8), ([150, 150, 160, 160], 0.7)],
                                  5: [([10, 10, 20, 20], 0.6)]})
    detections = post.slab_boxes_to_detections(found, slabs)
    assert len(detections) == 3
    assert [d.probability for d in detections] == sorted((d.probability for d in detections), reverse=True)


def test_duplicates_within_a_slab_and_in_3d_are_suppressed():
    slabs = stack()
    found = per_slab(len(slabs), {1: [([50, 50, 70, 70], 0.9), ([51, 51, 70, 70], 0.8)]})
    assert len(post.slab_boxes_to_detections(found, slabs)) == 1
    a = Detection(center=(0, 0, 0), size=(10, 10, 10), probability=0.9, diameter_mm=10.0)
    b = Detection(center=(3, 0, 0), size=(8, 8, 8), probability=0.7, diameter_mm=8.0)
    c = Detection(center=(30, 0, 0), size=(8, 8, 8), probability=0.8, diameter_mm=8.0)
    kept = post.suppress_duplicates([b, a, c])
    assert [d.probability for d in kept] == [0.9, 0.8]


def test_cap_and_score_floor():
    slabs = stack()
    boxes = {s: [([10.0 * i, 0.0, 10.0 * i + 8, 8.0], 0.1 + 0.01 * i) for i in range(20)] for s in (0, 2, 4)}
    capped = post.slab_boxes_to_detections(per_slab(len(slabs), boxes), slabs,
                                           post.LinkConfig(max_candidates=7, min_score=0.2))
    assert len(capped) == 7 and min(d.probability for d in capped) >= 0.2
    assert post.cap_candidates(capped, 0) == []


def test_annotated_nodules_survive_the_round_trip_through_slab_boxes():
    """World nodules -> slab pixel boxes (the training targets) -> linked 3-D candidates: same places and sizes."""
    slabs = stack(slices=80, stride=3.75)
    nodules = [Detection(center=(-40.0, -20.0, -250.0), size=(12.0, 12.0, 12.0), probability=1.0, diameter_mm=12.0),
               Detection(center=(30.0, 40.0, -220.0), size=(5.0, 5.0, 5.0), probability=1.0, diameter_mm=5.0)]
    boxes = nodule_boxes_on_slabs(slabs, nodules)
    found = [Found(b, np.full(len(b), 0.8)) for b in boxes]
    detections = post.slab_boxes_to_detections(found, slabs)
    assert len(detections) == 2
    for nodule in nodules:
        match = min(detections, key=lambda d: np.linalg.norm(np.subtract(d.center, nodule.center)))
        assert np.allclose(match.center[:2], nodule.center[:2], atol=0.5)
        assert abs(match.center[2] - nodule.center[2]) <= 3.75
        assert abs(match.diameter_mm - nodule.diameter_mm) <= 1.0
        assert match.extra["z_extent_mm"][0] <= nodule.box_min[2] + 3.75
