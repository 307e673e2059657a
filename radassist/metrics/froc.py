"""LUNA16 FROC and CPM with the challenge's own rules, so our numbers can stand beside published ones.

Ours, not MONAI's FROC: that one scores hits on a labelled mask (CAMELYON16's rules), not LUNA16's distance rule.

The rules follow the official LUNA16 evaluation script (noduleCADEvaluationLUNA16.py), re-implemented here:

* Only scans in the evaluated list count; candidates on other scans are ignored. Each scan keeps at most its
  100 most probable candidates (candidates tied with the 101st are dropped too, as the script does).
* A candidate hits a reference nodule when its centre lies strictly within the nodule's radius of the nodule's
  centre (squared distance < (diameter / 2)^2). An annotation with a negative diameter (``annotations_excluded.csv``
  marks non-nodules with -1) gets the script's 10 mm diameter.
* A nodule is detected once, with the highest probability of the candidates that hit it; the other hits are
  neither true nor false positives ("double detections"). A candidate that hits two nodules counts for both.
* A candidate that hits no reference nodule but lies within an excluded annotation (``annotations_excluded.csv``:
  nodules < 3 mm, non-nodules, nodules accepted by fewer than 3 of 4 radiologists) is ignored: neither a hit nor a
  false positive. Every other candidate is a false positive.
* A missed nodule still counts in the sensitivity's denominator. The FROC curve has a point per distinct
  probability threshold: (false positives / number of scans, detected nodules / all nodules), starting at (0, 0).
* Sensitivity at an FP rate is the linear interpolation of that curve, as the script's ``np.interp`` (on a
  vertical step exactly at the rate, the highest sensitivity reached there; flat past the last point). CPM is
  the mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per scan.
* Confidence intervals: bootstrap over scans (resample the scan list with replacement, recompute the curve), the
  bounds taken from the sorted bootstrap values at indices floor(a * n) and floor((1 - a) * n), a = (1 - confidence)
  / 2, as the script does. A bootstrap sample that happens to hold no nodule has no sensitivity and is left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from radassist.results.detections import Detection, Detections

FP_RATES: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # LUNA16 CPM operating points
MAX_MARKS_PER_SCAN = 100  # LUNA16 script: maxNumberOfCADMarks
UNKNOWN_DIAMETER_MM = 10.0  # LUNA16 script: diameter used for annotations with a negative diameter
BOOTSTRAP_SAMPLES = 1000  # LUNA16 script: bNumberOfBootstrapSamples
CONFIDENCE = 0.95  # LUNA16 script: bConfidence
PLOT_FP_RANGE = (0.1, 10.0)  # x range of the curves kept for plotting (FP per scan)

Findings = Union[Detections, Sequence[Detection]]


def as_list(findings: Findings | None) -> list[Detection]:
    """The findings of a Detections, a sequence of Detection or None, as a list."""
    if findings is None:
        return []
    return list(findings.items) if isinstance(findings, Detections) else list(findings)


def hit_radius_mm(annotation: Detection) -> float:
    """The LUNA16 hit radius of an annotation: half its diameter (10 mm diameter when unknown or negative)."""
    diameter = annotation.diameter_mm
    if diameter is None or diameter < 0:
        diameter = UNKNOWN_DIAMETER_MM
    return diameter / 2.0


def keep_most_probable(candidates: Sequence[Detection], limit: int = MAX_MARKS_PER_SCAN) -> list[Detection]:
    """At most ``limit`` candidates: those more probable than the (limit+1)-th (ties with it are dropped)."""
    if limit <= 0 or len(candidates) <= limit:
        return list(candidates)
    threshold = sorted((c.probability for c in candidates), reverse=True)[limit]
    return [c for c in candidates if c.probability > threshold]


@dataclass
class FrocMarks:
    """The scored list the FROC is drawn from: one entry per nodule (its best hit) and per false positive.

    Missed nodules are entries with ``detected`` False: they count as nodules but never enter the ranking.
    """

    scores: np.ndarray  # float, probability of the entry (-inf for a missed nodule)
    is_nodule: np.ndarray  # bool: True for a reference nodule, False for a false positive
    detected: np.ndarray  # bool: False only for missed nodules
    scan_index: np.ndarray  # int: index of the entry's scan in ``scans``
    scans: list[str]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def scan_count(self) -> int:
        return len(self.scans)


def match_candidates(scans: Sequence[str], nodules: Mapping[str, Findings], candidates: Mapping[str, Findings],
                     excluded: Mapping[str, Findings] | None = None,
                     max_marks_per_scan: int = MAX_MARKS_PER_SCAN) -> FrocMarks:
    """Apply the LUNA16 hit rules scan by scan and return the scored entries of the FROC analysis."""
    scans = list(dict.fromkeys(str(s) for s in scans))
    excluded = excluded or {}
    scores: list[float] = []
    is_nodule: list[bool] = []
    detected: list[bool] = []
    scan_index: list[int] = []
    counts = {"scans": len(scans), "nodules": 0, "excluded_annotations": 0, "candidates": 0,
              "candidates_over_limit": 0, "candidates_outside_scans": 0, "hits": 0, "missed": 0,
              "false_positives": 0, "double_hits_ignored": 0, "ignored_on_excluded": 0}
    scan_set = set(scans)
    counts["candidates_outside_scans"] = sum(len(as_list(v)) for k, v in candidates.items() if k not in scan_set)

    for index, uid in enumerate(scans):
        given = as_list(candidates.get(uid))
        kept = keep_most_probable(given, max_marks_per_scan)
        counts["candidates"] += len(kept)
        counts["candidates_over_limit"] += len(given) - len(kept)
        references = as_list(nodules.get(uid))
        others = as_list(excluded.get(uid))
        counts["nodules"] += len(references)
        counts["excluded_annotations"] += len(others)

        centres = np.array([c.center for c in kept], dtype=float).reshape(-1, 3)
        probabilities = np.array([c.probability for c in kept], dtype=float)
        free = np.ones(len(kept), dtype=bool)  # not yet a hit, nor ignored
        for nodule in references:
            inside = _inside(centres, nodule)
            if inside.any():
                scores.append(float(probabilities[inside].max()))
                detected.append(True)
                counts["hits"] += 1
                counts["double_hits_ignored"] += int(inside.sum()) - 1
            else:
                scores.append(-math.inf)
                detected.append(False)
                counts["missed"] += 1
            is_nodule.append(True)
            scan_index.append(index)
            free &= ~inside
        for annotation in others:
            inside = _inside(centres, annotation) & free
            counts["ignored_on_excluded"] += int(inside.sum())
            free &= ~inside
        for probability in probabilities[free]:
            scores.append(float(probability))
            is_nodule.append(False)
            detected.append(True)
            scan_index.append(index)
            counts["false_positives"] += 1

    return FrocMarks(scores=np.array(scores, dtype=float), is_nodule=np.array(is_nodule, dtype=bool),
                     detected=np.array(detected, dtype=bool), scan_index=np.array(scan_index, dtype=int),
                     scans=scans, counts=counts)


def _inside(centres: np.ndarray, annotation: Detection) -> np.ndarray:
    radius = hit_radius_mm(annotation)
    squared = np.sum((centres - np.asarray(annotation.center, dtype=float)) ** 2, axis=1)
    return squared < radius * radius


class _Ranking:
    """The detected entries sorted once by falling score, with the ends of tied-score groups, so that every
    bootstrap sample reuses the order and only re-weights entries."""

    def __init__(self, marks: FrocMarks) -> None:
        ranked = np.flatnonzero(marks.detected)
        order = ranked[np.argsort(-marks.scores[ranked], kind="stable")]
        self.positive = marks.is_nodule[order].astype(float)
        self.ranked_scan = marks.scan_index[order]
        sorted_scores = marks.scores[order]
        self.group_ends = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True)) \
            if len(order) else np.zeros(0, dtype=int)
        self.thresholds = sorted_scores[self.group_ends]
        self.nodule_scan = marks.scan_index[marks.is_nodule]
        self.scan_count = marks.scan_count

    def curve(self, scan_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """FP-per-scan and sensitivity points (starting at 0, 0); None when there is no nodule to find."""
        if scan_weights is None:
            scan_weights = np.ones(self.scan_count)
        nodules = float(scan_weights[self.nodule_scan].sum())
        if nodules <= 0 or self.scan_count == 0:
            return None
        weights = scan_weights[self.ranked_scan]
        true_hits = np.cumsum(weights * self.positive)[self.group_ends]
        false_hits = np.cumsum(weights * (1.0 - self.positive))[self.group_ends]
        fps = np.concatenate(([0.0], false_hits / self.scan_count))
        sensitivity = np.concatenate(([0.0], true_hits / nodules))
        return fps, sensitivity


def sensitivity_at(fps: np.ndarray, sensitivity: np.ndarray, rates: Sequence[float] = FP_RATES) -> np.ndarray:
    """Sensitivity of a FROC curve at the given FP-per-scan rates, by linear interpolation between its points.

    Where the curve steps up vertically at exactly a rate (several points share that FP value) the highest
    sensitivity reached there is taken; past the last point the curve stays flat. This is what the LUNA16
    script's ``np.interp`` does, written out so it does not rest on how ``np.interp`` treats repeated x values.
    """
    fps = np.asarray(fps, dtype=float)
    sensitivity = np.asarray(sensitivity, dtype=float)
    rates = np.asarray(rates, dtype=float)
    left = np.clip(np.searchsorted(fps, rates, side="right") - 1, 0, len(fps) - 1)
    right = np.minimum(left + 1, len(fps) - 1)
    span = fps[right] - fps[left]
    step = np.where(span > 0, (rates - fps[left]) / np.where(span > 0, span, 1.0), 0.0)
    step = np.clip(step, 0.0, 1.0)
    return sensitivity[left] + step * (sensitivity[right] - sensitivity[left])


def plot_grid(points: int = 241) -> np.ndarray:
    """FP-per-scan values evenly spaced on a log axis over PLOT_FP_RANGE, for drawing curves."""
    low, high = PLOT_FP_RANGE
    return np.logspace(np.log10(low), np.log10(high), points)


def _bounds(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """LUNA16's percentile rule on sorted bootstrap values (axis 0): indices floor(a*n) and floor((1-a)*n)."""
    ordered = np.sort(values, axis=0)
    n = ordered.shape[0]
    alpha = (1.0 - confidence) / 2.0
    low = min(int(math.floor(alpha * n)), n - 1)
    high = min(int(math.floor((1.0 - alpha) * n)), n - 1)
    return ordered[low], ordered[high]


@dataclass
class FrocBootstrap:
    """Bootstrap over scans: confidence bounds of the CPM, of each operating point and of the whole curve."""

    samples: int  # bootstrap samples that had at least one nodule (the ones used)
    requested: int
    confidence: float
    seed: int
    cpm_mean: float
    cpm_low: float
    cpm_high: float
    sensitivity_mean: list[float]
    sensitivity_low: list[float]
    sensitivity_high: list[float]
    curve_fps: list[float]  # the plot grid
    curve_mean: list[float]
    curve_low: list[float]
    curve_high: list[float]


def bootstrap_froc(marks: FrocMarks, samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE,
                   seed: int = 0, rates: Sequence[float] = FP_RATES) -> FrocBootstrap | None:
    """Resample scans with replacement ``samples`` times (NumPy generator seeded with ``seed``: deterministic).

    Returns None when no sample could be scored (no nodules at all, or ``samples`` is 0).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    ranking = _Ranking(marks)
    n = marks.scan_count
    if samples <= 0 or n == 0:
        return None
    rng = np.random.default_rng(seed)
    grid = plot_grid()
    at_rates, on_grid = [], []
    for _ in range(samples):
        weights = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(float)
        curve = ranking.curve(weights)
        if curve is None:
            continue
        at_rates.append(sensitivity_at(*curve, rates))
        on_grid.append(sensitivity_at(*curve, grid))
    if not at_rates:
        return None
    rate_values = np.array(at_rates)
    grid_values = np.array(on_grid)
    cpms = rate_values.mean(axis=1)
    cpm_low, cpm_high = _bounds(cpms, confidence)
    rate_low, rate_high = _bounds(rate_values, confidence)
    grid_low, grid_high = _bounds(grid_values, confidence)
    return FrocBootstrap(samples=len(at_rates), requested=samples, confidence=confidence, seed=seed,
                         cpm_mean=float(cpms.mean()), cpm_low=float(cpm_low), cpm_high=float(cpm_high),
                         sensitivity_mean=rate_values.mean(axis=0).tolist(), sensitivity_low=rate_low.tolist(),
                         sensitivity_high=rate_high.tolist(), curve_fps=grid.tolist(),
                         curve_mean=grid_values.mean(axis=0).tolist(), curve_low=grid_low.tolist(),
                         curve_high=grid_high.tolist())


@dataclass
class FrocResult:
    """The FROC analysis of one set of candidates: operating points, CPM, the curve and its bootstrap bounds."""

    rates: list[float]
    sensitivities: list[float]
    cpm: float
    fps: list[float]  # curve points (FP per scan), from (0, 0)
    sensitivity_curve: list[float]
    thresholds: list[float]  # probability threshold of each curve point after the first
    counts: dict[str, int]
    bootstrap: FrocBootstrap | None = None

    @property
    def sensitivity_by_rate(self) -> dict[str, float]:
        return {_rate_name(r): s for r, s in zip(self.rates, self.sensitivities)}

    def to_dict(self) -> dict:
        """Plain JSON-ready summary (the full bootstrap curves are left to the plot)."""
        document = {"cpm": self.cpm, "sensitivity_at_fp_per_scan": self.sensitivity_by_rate,
                    "counts": dict(self.counts),
                    "curve": {"fp_per_scan": self.fps, "sensitivity": self.sensitivity_curve,
                              "threshold": [None] + self.thresholds}}
        if self.bootstrap is not None:
            b = self.bootstrap
            document["bootstrap"] = {
                "samples": b.samples, "requested": b.requested, "confidence": b.confidence, "seed": b.seed,
                "cpm_mean": b.cpm_mean, "cpm_ci": [b.cpm_low, b.cpm_high],
                "sensitivity_ci_at_fp_per_scan": {_rate_name(r): [lo, hi] for r, lo, hi in
                                                  zip(self.rates, b.sensitivity_low, b.sensitivity_high)}}
        return document


def _rate_name(rate: float) -> str:
    return f"{rate:g}"


def froc_from_marks(marks: FrocMarks, *, bootstrap_samples: int = BOOTSTRAP_SAMPLES,
                    confidence: float = CONFIDENCE, seed: int = 0,
                    rates: Sequence[float] = FP_RATES) -> FrocResult:
    """The FROC of already matched entries; raises ValueError when there is no reference nodule."""
    ranking = _Ranking(marks)
    curve = ranking.curve()
    if curve is None:
        raise ValueError("no reference nodule in the evaluated scans: sensitivity is undefined")
    fps, sensitivity = curve
    at_rates = sensitivity_at(fps, sensitivity, rates)
    return FrocResult(rates=[float(r) for r in rates], sensitivities=at_rates.tolist(),
                      cpm=float(at_rates.mean()), fps=fps.tolist(), sensitivity_curve=sensitivity.tolist(),
                      thresholds=ranking.thresholds.tolist(), counts=dict(marks.counts),
                      bootstrap=bootstrap_froc(marks, bootstrap_samples, confidence, seed, rates))


def evaluate_froc(scans: Sequence[str], nodules: Mapping[str, Findings], candidates: Mapping[str, Findings],
                  excluded: Mapping[str, Findings] | None = None, *, max_marks_per_scan: int = MAX_MARKS_PER_SCAN,
                  bootstrap_samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE,
                  seed: int = 0) -> FrocResult:
    """LUNA16 FROC of ``candidates`` against ``nodules`` on ``scans`` (all mappings keyed by seriesuid)."""
    marks = match_candidates(scans, nodules, candidates, excluded, max_marks_per_scan)
    return froc_from_marks(marks, bootstrap_samples=bootstrap_samples, confidence=confidence, seed=seed)
