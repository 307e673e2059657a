"""Detection precision, recall, F1 and AP at a 3-D box IoU threshold, overall and by nodule size (Lung-DETR's table).

Boxes are axis-aligned in LPS world millimetres (:class:`Detection` ``center`` and ``size``); reference nodules and
predictions that only give a diameter are cubes of that side (that is how ``read_detections_csv`` reads them).

Matching, per scan: predictions in falling probability order (ties keep their input order) each take the
still-unmatched reference box with the highest IoU, if that IoU is at least the threshold (0.5 in the paper);
otherwise the prediction is a false positive, unless its centre lies within an ignored annotation's LUNA16 radius
(``annotations_excluded.csv``), in which case it counts for nothing. Greedy matching in score order means the
matches of the predictions above any score cut are the matches those predictions alone would get, so one
matching serves every threshold.

* Precision, recall and F1 are taken at one score threshold (predictions with probability >= threshold).
* AP is VOC's all-point interpolated average precision: the area under the precision-recall curve made monotone
  (precision at recall r = best precision at any recall >= r). Tied probabilities form one step of the curve, so
  AP does not depend on the order of tied rows.
* Size bands follow the paper: < 7 mm, 7-15 mm (both ends included), > 15 mm. A reference nodule (and the
  prediction that matched it) belongs to the band of its annotated diameter. A false positive has no annotated
  size, so it goes to the band of its own predicted size (``diameter_mm``, else the cube root of its box volume):
  a band's precision then answers "how often is a mark of this size right?", and the bands' false positives add up
  to the overall ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from radassist.metrics.froc import Findings, as_list, hit_radius_mm
from radassist.results.detections import Detection

IOU_THRESHOLD = 0.5  # Lung-DETR paper's evaluation
SCORE_THRESHOLD = 0.5
ALL = "all"
SIZE_BANDS: tuple[tuple[str, float, float], ...] = (("<7 mm", 0.0, 7.0), ("7-15 mm", 7.0, 15.0),
                                                    (">15 mm", 15.0, math.inf))


def size_band(diameter_mm: float) -> str:
    """'<7 mm', '7-15 mm' (7 and 15 included) or '>15 mm'."""
    if diameter_mm < 7.0:
        return SIZE_BANDS[0][0]
    if diameter_mm <= 15.0:
        return SIZE_BANDS[1][0]
    return SIZE_BANDS[2][0]


def diameter_of(finding: Detection) -> float:
    """The finding's diameter: ``diameter_mm`` when given, else the side of the cube of the same volume."""
    if finding.diameter_mm is not None and finding.diameter_mm > 0:
        return float(finding.diameter_mm)
    return float(np.prod(finding.size) ** (1.0 / 3.0))


def box_iou_matrix(a_min: np.ndarray, a_max: np.ndarray, b_min: np.ndarray, b_max: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 3) against every box in b (M, 3), corners in mm; 0 where a union is empty."""
    a_min, a_max = np.asarray(a_min, float).reshape(-1, 3), np.asarray(a_max, float).reshape(-1, 3)
    b_min, b_max = np.asarray(b_min, float).reshape(-1, 3), np.asarray(b_max, float).reshape(-1, 3)
    low = np.maximum(a_min[:, None, :], b_min[None, :, :])
    high = np.minimum(a_max[:, None, :], b_max[None, :, :])
    intersection = np.prod(np.clip(high - low, 0.0, None), axis=2)
    volume_a = np.prod(a_max - a_min, axis=1)[:, None]
    volume_b = np.prod(b_max - b_min, axis=1)[None, :]
    union = volume_a + volume_b - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1.0), 0.0)


def box_iou(a: Detection, b: Detection) -> float:
    """3-D IoU of two axis-aligned boxes in world mm."""
    return float(box_iou_matrix(a.box_min, a.box_max, b.box_min, b.box_max)[0, 0])


@dataclass
class DetectionMatches:
    """The outcome of matching, as flat arrays: one row per counted prediction, one per reference nodule."""

    scores: np.ndarray  # prediction probability
    true_positive: np.ndarray  # bool
    prediction_band: list[str]  # band the prediction counts in (its reference's band when matched)
    reference_band: list[str]
    reference_score: np.ndarray  # probability of the prediction that matched each reference (-inf: missed)
    ignored: int  # predictions inside an ignored annotation
    predictions_outside_scans: int


def match_detections(scans: Sequence[str], references: Mapping[str, Findings], predictions: Mapping[str, Findings],
                     ignore: Mapping[str, Findings] | None = None,
                     iou_threshold: float = IOU_THRESHOLD) -> DetectionMatches:
    """Greedy IoU matching of predictions to reference boxes on each scan (see the module text)."""
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"the IoU threshold must be within (0, 1], got {iou_threshold}")
    ignore = ignore or {}
    scores: list[float] = []
    true_positive: list[bool] = []
    prediction_band: list[str] = []
    reference_band: list[str] = []
    reference_score: list[float] = []
    ignored = 0
    scan_set = set(scans)
    outside = sum(len(as_list(v)) for k, v in predictions.items() if k not in scan_set)
    for uid in dict.fromkeys(scans):
        refs = as_list(references.get(uid))
        preds = sorted(as_list(predictions.get(uid)), key=lambda d: -d.probability)
        others = as_list(ignore.get(uid))
        bands = [size_band(diameter_of(r)) for r in refs]
        reference_band += bands
        matched_score = [-math.inf] * len(refs)
        iou = box_iou_matrix(np.array([p.box_min for p in preds]), np.array([p.box_max for p in preds]),
                             np.array([r.box_min for r in refs]), np.array([r.box_max for r in refs]))
        taken = np.zeros(len(refs), dtype=bool)
        for row, prediction in enumerate(preds):
            candidates = np.where(taken, -1.0, iou[row])
            best = int(np.argmax(candidates)) if len(refs) else -1
            hit = best >= 0 and bool(candidates[best] >= iou_threshold)
            if hit:
                taken[best] = True
                matched_score[best] = prediction.probability
            elif _inside_any(prediction, others):
                ignored += 1
                continue
            scores.append(prediction.probability)
            true_positive.append(hit)
            prediction_band.append(bands[best] if hit else size_band(diameter_of(prediction)))
        reference_score += matched_score
    return DetectionMatches(scores=np.array(scores, dtype=float), true_positive=np.array(true_positive, dtype=bool),
                            prediction_band=prediction_band, reference_band=reference_band,
                            reference_score=np.array(reference_score, dtype=float), ignored=ignored,
                            predictions_outside_scans=outside)


def _inside_any(prediction: Detection, annotations: list[Detection]) -> bool:
    centre = np.asarray(prediction.center, dtype=float)
    return any(np.sum((centre - np.asarray(a.center)) ** 2) < hit_radius_mm(a) ** 2 for a in annotations)


def precision_recall_curve(scores: np.ndarray, true_positive: np.ndarray,
                           references: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and threshold at each distinct probability, from the highest down."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    ranked = np.asarray(scores, dtype=float)[order]
    hits = np.asarray(true_positive, dtype=bool)[order]
    if ranked.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    tp = np.cumsum(hits)[ends]
    fp = np.cumsum(~hits)[ends]
    precision = tp / (tp + fp)
    recall = tp / references if references else np.zeros_like(precision, dtype=float)
    return precision, recall, ranked[ends]


def average_precision(scores: np.ndarray, true_positive: np.ndarray, references: int) -> float | None:
    """VOC all-point interpolated AP; None without references (undefined), 0 with references but no hit."""
    if references <= 0:
        return None
    precision, recall, _ = precision_recall_curve(scores, true_positive, references)
    if precision.size == 0:
        return 0.0
    recall = np.concatenate(([0.0], recall))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this recall or beyond
    return float(np.sum((recall[1:] - recall[:-1]) * envelope))


@dataclass
class DetectionScores:
    """One row of the detection table."""

    band: str
    references: int
    predictions: int  # predictions at or above the score threshold that count in this row
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float | None  # None when there is no prediction
    recall: float | None  # None when there is no reference nodule
    f1: float | None  # 2 TP / (2 TP + FP + FN); None only with neither predictions nor references
    average_precision: float | None


def _row(band: str, matches: DetectionMatches, prediction_rows: np.ndarray, reference_rows: np.ndarray,
         score_threshold: float) -> DetectionScores:
    scores = matches.scores[prediction_rows]
    hits = matches.true_positive[prediction_rows]
    references = int(reference_rows.sum())
    above = scores >= score_threshold
    tp = int(np.sum(hits & above))
    fp = int(np.sum(~hits & above))
    detected = int(np.sum(matches.reference_score[reference_rows] >= score_threshold))
    assert detected == tp, "every true positive matches exactly one reference"
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / references if references else None
    errors = fp + references - tp
    f1 = 2 * tp / (2 * tp + errors) if tp or errors else None  # = harmonic mean of precision and recall
    return DetectionScores(band=band, references=references, predictions=tp + fp, true_positives=tp,
                           false_positives=fp, false_negatives=references - tp, precision=precision,
                           recall=recall, f1=f1, average_precision=average_precision(scores, hits, references))


def detection_table(matches: DetectionMatches, score_threshold: float = SCORE_THRESHOLD) -> list[DetectionScores]:
    """Rows for all nodules and for each size band."""
    prediction_bands = np.array(matches.prediction_band, dtype=object)
    reference_bands = np.array(matches.reference_band, dtype=object)
    rows = [_row(ALL, matches, np.ones(len(prediction_bands), dtype=bool), np.ones(len(reference_bands), dtype=bool),
                 score_threshold)]
    for band, _, _ in SIZE_BANDS:
        rows.append(_row(band, matches, prediction_bands == band, reference_bands == band, score_threshold))
    return rows


@dataclass
class DetectionEvaluation:
    """Precision, recall, F1 and AP at one IoU threshold and score threshold, overall and by size band."""

    iou_threshold: float
    score_threshold: float
    rows: list[DetectionScores]
    ignored_predictions: int
    predictions_outside_scans: int

    def row(self, band: str = ALL) -> DetectionScores:
        return next(r for r in self.rows if r.band == band)

    def to_dict(self) -> dict:
        return {"iou_threshold": self.iou_threshold, "score_threshold": self.score_threshold,
                "false_positive_band": "predicted size", "size_bands_mm": [[n, lo, hi] for n, lo, hi in SIZE_BANDS],
                "ignored_predictions": self.ignored_predictions,
                "predictions_outside_scans": self.predictions_outside_scans,
                "rows": {r.band: {k: v for k, v in vars(r).items() if k != "band"} for r in self.rows}}


def evaluate_detections(scans: Sequence[str], references: Mapping[str, Findings],
                        predictions: Mapping[str, Findings], ignore: Mapping[str, Findings] | None = None, *,
                        iou_threshold: float = IOU_THRESHOLD,
                        score_threshold: float = SCORE_THRESHOLD) -> DetectionEvaluation:
    """The paper's detection table for ``predictions`` against ``references`` on ``scans`` (keyed by seriesuid)."""
    matches = match_detections(scans, references, predictions, ignore, iou_threshold)
    return DetectionEvaluation(iou_threshold=iou_threshold, score_threshold=score_threshold,
                               rows=detection_table(matches, score_threshold), ignored_predictions=matches.ignored,
                               predictions_outside_scans=matches.predictions_outside_scans)
