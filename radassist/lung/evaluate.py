"""Evaluate nodule predictions on a LUNA16 folder: the LUNA16 FROC/CPM and the Lung-DETR paper's detection table.

What is read from ``--data`` (the LUNA16 layout, which ``radassist synth lung`` also writes):

* ``annotations.csv`` (seriesuid, coordX, coordY, coordZ, diameter_mm; world mm): the reference nodules.
* ``annotations_excluded.csv`` if present (beside it, or in ``evaluationScript/annotations/`` as LUNA16 ships
  it): findings that are neither hits nor false positives. A negative diameter there means "unknown".
* The scans evaluated: the ``.mhd`` files of the chosen ``subsetN/`` folders; without a choice ``seriesuids.csv``
  (one uid per line, LUNA16's list) when present, else every ``subset*/*.mhd``. The number of scans is the FP rate's
  divisor, so it must be the full list, scans without nodules or predictions included.

Predictions are a LUNA16 submission CSV (seriesuid, coordX, coordY, coordZ, probability) with an optional
``diameter_mm``; the detection table needs that diameter (a prediction's box is a cube of side ``diameter_mm``)
and is left out, with the reason in the JSON, when any prediction lacks it. The FROC needs only centres.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.metrics.detection import IOU_THRESHOLD, SCORE_THRESHOLD, DetectionEvaluation, evaluate_detections
from radassist.metrics.froc import (BOOTSTRAP_SAMPLES, CONFIDENCE, MAX_MARKS_PER_SCAN, FrocResult,
                                    froc_from_marks, match_candidates)
from radassist.metrics.plots import write_froc_png
from radassist.results.csv_json import plain_json
from radassist.results.detections import Detection, Detections
from radassist.runtime.progress import Progress

ANNOTATIONS = "annotations.csv"
EXCLUDED = "annotations_excluded.csv"
SERIES_LIST = "seriesuids.csv"
ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")

# Published LUNA16 results to read ours against (fractions).
PUBLISHED = {
    "Lung-DETR (arXiv 2409.05200), detection table": {"f1": 0.942, "recall": 0.952, "precision": 0.933},
    "MONAI RetinaNet, LUNA16": {"cpm": 0.936},
    "nnDetection, LUNA16": {"cpm": 0.930},
}


@dataclass(frozen=True)
class LungEvaluationConfig:
    """How predictions are scored; defaults are LUNA16's script and the Lung-DETR paper's table."""

    iou_threshold: float = IOU_THRESHOLD  # Lung-DETR paper: matches at 3-D IoU >= 0.5
    score_threshold: float = SCORE_THRESHOLD  # operating point of precision / recall / F1
    bootstrap_samples: int = BOOTSTRAP_SAMPLES  # LUNA16 script: 1000
    confidence: float = CONFIDENCE  # LUNA16 script: 0.95
    seed: int = 0  # bootstrap resampling seed (same seed, same interval)
    max_marks_per_scan: int = MAX_MARKS_PER_SCAN  # LUNA16 script: 100 candidates per scan

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise InputError(None, f"the IoU threshold must be within (0, 1], got {self.iou_threshold}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise InputError(None, f"the score threshold must be within 0..1, got {self.score_threshold}")
        if self.bootstrap_samples < 0:
            raise InputError(None, f"the number of bootstrap samples must be >= 0, got {self.bootstrap_samples}")
        if not 0.0 < self.confidence < 1.0:
            raise InputError(None, f"the confidence must be between 0 and 1, got {self.confidence}")
        if self.max_marks_per_scan < 1:
            raise InputError(None, f"the candidate limit per scan must be >= 1, got {self.max_marks_per_scan}")


@dataclass
class Luna16Reference:
    """The reference standard of an evaluation: which scans, their nodules and their excluded findings."""

    scans: list[str]
    nodules: dict[str, list[Detection]]
    excluded: dict[str, list[Detection]]
    files: dict[str, str] = field(default_factory=dict)  # what was read, for the record


def read_annotations(path: Path, *, excluded: bool = False) -> dict[str, list[Detection]]:
    """A LUNA16 annotations CSV as Detections (cubes of side ``diameter_mm``) per seriesuid.

    In ``annotations_excluded.csv`` (``excluded=True``) a negative or empty diameter means unknown size; in
    ``annotations.csv`` every diameter must be positive.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    nodules: dict[str, list[Detection]] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            required = ANNOTATION_COLUMNS if not excluded else ANNOTATION_COLUMNS[:4]
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(path, f"missing column(s) {missing}; expected {list(ANNOTATION_COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                uid = (row.get("seriesuid") or "").strip()
                if not uid:
                    raise InputError(path, f"line {line}: seriesuid is empty")
                center = tuple(_number(path, line, row, c) for c in ("coordX", "coordY", "coordZ"))
                text = (row.get("diameter_mm") or "").strip()
                diameter = _number(path, line, row, "diameter_mm") if text or not excluded else -1.0
                if diameter <= 0 and not excluded:
                    raise InputError(path, f"line {line}: diameter_mm must be positive, got {text}")
                size = (diameter,) * 3 if diameter > 0 else (0.0, 0.0, 0.0)
                nodules.setdefault(uid, []).append(Detection(center=center, size=size, probability=1.0,
                                                             diameter_mm=diameter))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"not a readable CSV file ({exc})") from None
    return nodules


def _number(path: Path, line: int, row: dict[str, str], column: str) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, f"line {line}: {column} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise InputError(path, f"line {line}: {column} is not finite: {text!r}")
    return value


def _read_series_list(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            uids = [row[0].strip() for row in csv.reader(handle) if row and row[0].strip()]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"not a readable CSV file ({exc})") from None
    uids = [u for u in uids if u != "seriesuid"]
    if not uids:
        raise InputError(path, "lists no series")
    return uids


def find_scans(data: Path, subsets: Sequence[str] = ()) -> tuple[list[str], str]:
    """The evaluated seriesuids and where the list came from (see the module text for the order of choice)."""
    if subsets:
        scans: list[str] = []
        for subset in subsets:
            folder = data / subset
            if not folder.is_dir():
                raise InputError(folder, "subset folder not found")
            found = sorted(p.name[:-4] for p in folder.glob("*.mhd"))
            if not found:
                raise InputError(folder, "holds no .mhd scans")
            scans += found
        return scans, ", ".join(str(data / s) for s in subsets)
    if (data / SERIES_LIST).is_file():
        return _read_series_list(data / SERIES_LIST), str(data / SERIES_LIST)
    scans = sorted(p.name[:-4] for p in data.glob("subset*/*.mhd"))
    if not scans:
        raise InputError(data, f"no scans found: expected subset*/<seriesuid>.mhd files or {SERIES_LIST}")
    return scans, str(data / "subset*")


def read_excluded(data: Path, scans: Container[str], files: dict[str, str]) -> dict[str, list[Detection]]:
    """The excluded findings of ``scans`` from ``annotations_excluded.csv`` beside ``annotations.csv`` or where
    LUNA16 ships it (``evaluationScript/annotations/``), none without it; the file read is noted in ``files``."""
    for path in (data / EXCLUDED, data / "evaluationScript" / "annotations" / EXCLUDED):
        if path.is_file():
            files["annotations_excluded"] = str(path)
            return {uid: items for uid, items in read_annotations(path, excluded=True).items() if uid in scans}
    return {}


def read_luna16_reference(data: str | Path, subsets: Sequence[str] = ()) -> Luna16Reference:
    """Scans, nodules and excluded findings of a LUNA16 folder, restricted to the evaluated scans."""
    data = Path(data)
    if not data.is_dir():
        raise InputError(data, "data folder not found")
    scans, scan_source = find_scans(data, subsets)
    wanted = set(scans)
    nodules = {uid: items for uid, items in read_annotations(data / ANNOTATIONS).items() if uid in wanted}
    files = {"annotations": str(data / ANNOTATIONS), "scans": scan_source}
    excluded = read_excluded(data, wanted, files)
    if not any(nodules.values()):
        raise InputError(data / ANNOTATIONS, "no nodule on the evaluated scans: sensitivity would be undefined")
    return Luna16Reference(scans=scans, nodules=nodules, excluded=excluded, files=files)


@dataclass
class LungEvaluation:
    """Both metric families for one predictions file."""

    froc: FrocResult
    detection: DetectionEvaluation | None
    detection_skipped: str | None
    config: LungEvaluationConfig
    reference_files: dict[str, str]
    scans: int
    predictions: int
    score_name: str = "probability"  # what the predictions' ranking column is: a probability or a heuristic score

    def to_dict(self) -> dict[str, Any]:
        return {"scans": self.scans, "predictions": self.predictions, "score_name": self.score_name,
                "reference": self.reference_files, "config": vars(self.config).copy(), "froc": self.froc.to_dict(),
                "detection": self.detection.to_dict() if self.detection is not None else None,
                "detection_skipped": self.detection_skipped, "published": PUBLISHED}


def _missing_size(predictions: Mapping[str, Detections], scans: set[str]) -> int:
    return sum(1 for uid, group in predictions.items() if uid in scans
               for d in group.items if d.diameter_mm is None and min(d.size) <= 0)


def evaluate_lung(reference: Luna16Reference, predictions: Mapping[str, Detections],
                  config: LungEvaluationConfig | None = None, progress: Progress | None = None) -> LungEvaluation:
    """FROC/CPM (LUNA16 rules) and the P/R/F1/AP table (IoU matching) of ``predictions`` against ``reference``."""
    config = config or LungEvaluationConfig()
    progress = progress or Progress()
    progress.update(0.0, "matching candidates")
    marks = match_candidates(reference.scans, reference.nodules, predictions, reference.excluded,
                             config.max_marks_per_scan)
    progress.update(0.1, f"FROC with {config.bootstrap_samples} bootstrap samples")
    froc = froc_from_marks(marks, bootstrap_samples=config.bootstrap_samples, confidence=config.confidence,
                           seed=config.seed)
    progress.update(0.9, "detection table")
    in_scans = set(reference.scans)
    missing = _missing_size(predictions, in_scans)
    detection, skipped = None, None
    if missing:
        skipped = (f"{missing} prediction(s) have no diameter_mm, so they have no box for IoU matching; "
                   "add a diameter_mm column to get precision, recall, F1 and AP")
    else:
        detection = evaluate_detections(reference.scans, reference.nodules, predictions, reference.excluded,
                                        iou_threshold=config.iou_threshold, score_threshold=config.score_threshold)
    progress.update(1.0, "done")
    names = {group.score_name for group in predictions.values()}
    return LungEvaluation(froc=froc, detection=detection, detection_skipped=skipped, config=config,
                          reference_files=dict(reference.files), scans=len(reference.scans),
                          predictions=sum(len(g.items) for uid, g in predictions.items() if uid in in_scans),
                          score_name="probability" if names <= {"probability"} else "score")


def write_evaluation(evaluation: LungEvaluation, json_path: str | Path, png_path: str | Path,
                     title: str = "LUNA16 FROC") -> tuple[Path, Path]:
    """``evaluation.json`` (every number) and the FROC plot PNG, each written atomically."""
    text = json.dumps(plain_json(evaluation.to_dict()), indent=2, allow_nan=False) + "\n"
    json_path = Path(json_path)
    with atomic_path(json_path) as temp:
        temp.write_text(text, encoding="utf-8")
    return json_path, write_froc_png(evaluation.froc, png_path, title)


def summary_lines(evaluation: LungEvaluation) -> list[str]:
    """A short human-readable table of the results, for the terminal."""
    froc = evaluation.froc
    lines = [f"scans: {evaluation.scans}   nodules: {froc.counts['nodules']}   predictions: {evaluation.predictions}",
             "FROC sensitivity at FP/scan: " + "  ".join(f"{k}: {v:.3f}"
                                                         for k, v in froc.sensitivity_by_rate.items())]
    cpm = f"CPM: {froc.cpm:.3f}"
    if froc.bootstrap is not None:
        b = froc.bootstrap
        cpm += f"  ({b.confidence:.0%} CI {b.cpm_low:.3f}-{b.cpm_high:.3f}, {b.samples} bootstrap samples)"
    lines.append(cpm)
    if evaluation.detection is None:
        lines.append(f"detection table skipped: {evaluation.detection_skipped}")
        return lines
    table = evaluation.detection
    lines.append(f"detection at IoU {table.iou_threshold:g}, {evaluation.score_name} >= {table.score_threshold:g}:")
    lines.append(f"  {'band':<8} {'nodules':>7} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7} "
                 f"{'F1':>6} {'AP':>6}")
    for row in table.rows:
        lines.append(f"  {row.band:<8} {row.references:>7} {row.true_positives:>4} {row.false_positives:>4} "
                     f"{row.false_negatives:>4} {_fraction(row.precision):>9} {_fraction(row.recall):>7} "
                     f"{_fraction(row.f1):>6} {_fraction(row.average_precision):>6}")
    return lines


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
