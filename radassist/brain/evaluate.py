"""Evaluation of brain registration (+ segmentation) on pairs of subjects, with every score before and after.

Per pair, whatever the data allow:

* anatomical labels (OASIS-style): Dice per label of the warped moving labels against the fixed ones, the
  VoxelMorph protocol, overall and separately inside and outside the tumour region;
* tumour labels (BraTS): Dice of the warped moving tumour against the fixed tumour, and the tumour Dice per class
  of the network's own segmentations against the ground truth (joint engine);
* a known deformation (RadAssist's synthetic pairs): mean and 95th-percentile end-point error in the brain;
* always: mean absolute intensity difference in the brain (inside and outside the tumour region) and the
  percentage of voxels with a non-positive Jacobian determinant.

Pairs come from ``pairs.csv`` (fixed, moving, deformation) when the folder has one, else subject i is registered to
subject i + 1. Results are a JSON document and a PNG of the scores before and after registration.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radassist.brain.datasets import SubjectFiles, load_subject, read_anatomy, read_layout
from radassist.brain.pipeline import BrainImages, BrainPipelineConfig, register_brain_pair
from radassist.brain.postprocess import TUMOUR_CLASSES
from radassist.errors import InputError
from radassist.metrics.registration import (dice, dice_per_label, field_error, intensity_error, mean_dice,
                                            non_positive_jacobian_percent)
from radassist.results.displacement import DisplacementField
from radassist.results.transforms import read_displacement, warp_volume
from radassist.runtime.progress import Progress
from radassist.volume import Volume


@dataclass
class PairScores:
    """Scores of one pair; ``None`` where the data do not allow the measurement."""

    moving: str
    fixed: str
    engine: str
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    tumour_dice: dict[str, float] = field(default_factory=dict)  # network segmentation vs ground truth
    non_positive_jacobian_percent: float = 0.0
    field_error_mean_mm: float | None = None
    field_error_p95_mm: float | None = None


@dataclass
class BrainEvaluation:
    pairs: list[PairScores]
    summary: dict[str, float]
    layout: str


@dataclass
class EvaluationPair:
    moving: SubjectFiles
    fixed: SubjectFiles
    deformation: Path | None = None


def evaluation_pairs(root: str | Path, layout: str = "auto", limit: int | None = None) -> tuple[str, list]:
    """The pairs to evaluate: pairs.csv rows when present, else consecutive subjects."""
    root = Path(root)
    layout, subjects = read_layout(root, layout)
    by_name = {s.name: s for s in subjects}
    listing = root / "pairs.csv"
    pairs: list[EvaluationPair] = []
    if listing.is_file():
        with listing.open(newline="", encoding="utf-8") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    moving, fixed = by_name[row["moving"]], by_name[row["fixed"]]
                except KeyError as error:
                    raise InputError(listing, f"line {line}: unknown subject or column {error}") from None
                deformation = root / row["deformation"] if row.get("deformation") else None
                pairs.append(EvaluationPair(moving, fixed, deformation))
    else:
        if len(subjects) < 2:
            raise InputError(root, "evaluation needs at least two subjects")
        pairs = [EvaluationPair(subjects[i + 1], subjects[i]) for i in range(len(subjects) - 1)]
    return layout, pairs[:limit] if limit else pairs


def _warp_labels(labels: np.ndarray, moving: Volume, field_: DisplacementField) -> np.ndarray:
    return warp_volume(moving.with_array(labels.astype(np.int32)), field_, interpolator="nearest").array


def score_pair(pair: EvaluationPair, moving: BrainImages, fixed: BrainImages, config: BrainPipelineConfig,
               model: Any, device: Any, progress: Progress, layout: str) -> PairScores:
    """Register one pair and measure everything the data allow, before (identity) and after."""
    result = register_brain_pair(moving, fixed, config, progress, model, device)
    scores = PairScores(pair.moving.name, pair.fixed.name, result.engine)
    fixed_volume, moving_volume = result.fixed, result.moving
    identity = DisplacementField(np.zeros_like(result.field.vectors), result.field.geometry)
    brain = fixed.brain_mask if fixed.brain_mask is not None else fixed_volume.array != 0
    fixed_tumour = None if fixed.tumour is None else fixed.tumour.flattened() > 0
    for stage, field_ in (("before", identity), ("after", result.field)):
        values = getattr(scores, stage)  # filled in place
        warped = warp_volume(moving_volume, field_).array
        moved_tumour = None if moving.tumour is None else _warp_labels(moving.tumour.flattened(),
                                                                       moving.tumour.as_volume(), field_) > 0
        region = np.zeros(brain.shape, bool)
        for mask in (fixed_tumour, moved_tumour):
            if mask is not None and mask.shape == region.shape:
                region |= mask
        values["intensity_error"] = intensity_error(warped, fixed_volume.array, brain)
        values["intensity_error_outside_tumour"] = intensity_error(warped, fixed_volume.array, brain & ~region)
        if region.any():
            values["intensity_error_inside_tumour"] = intensity_error(warped, fixed_volume.array, region)
        if fixed_tumour is not None and moved_tumour is not None:
            values["warped_tumour_dice"] = dice(moved_tumour, fixed_tumour)
        if layout == "oasis":
            fixed_labels = read_anatomy(pair.fixed, fixed_volume)
            moving_labels = read_anatomy(pair.moving, moving_volume)
            moved = _warp_labels(moving_labels, moving_volume, field_)
            values["anatomy_dice"] = mean_dice(dice_per_label(moved, fixed_labels))
            if region.any():
                values["anatomy_dice_inside_tumour"] = mean_dice(dice_per_label(moved, fixed_labels, region=region))
                values["anatomy_dice_outside_tumour"] = mean_dice(dice_per_label(moved, fixed_labels,
                                                                                 region=~region))
    scores.non_positive_jacobian_percent = non_positive_jacobian_percent(result.jacobian.array, brain)
    if result.engine == "joint":
        for role, truth, predicted in (("fixed", fixed.tumour, result.fixed_tumour),
                                       ("moving", moving.tumour, result.moving_tumour)):
            if truth is None or predicted is None:
                continue
            for value, name in TUMOUR_CLASSES.items():
                score = dice(predicted.flattened() == value, truth.flattened() == value)
                if not math.isnan(score):
                    scores.tumour_dice[f"{role} {name}"] = score
    if pair.deformation is not None:
        truth = read_displacement(pair.deformation)
        error = field_error(result.field, truth, brain)
        scores.field_error_mean_mm, scores.field_error_p95_mm = error.mean_mm, error.p95_mm
        before = field_error(identity, truth, brain)
        scores.before["field_error_mean_mm"], scores.before["field_error_p95_mm"] = before.mean_mm, before.p95_mm
        scores.after["field_error_mean_mm"], scores.after["field_error_p95_mm"] = error.mean_mm, error.p95_mm
    return scores


def _summary(pairs: Sequence[PairScores]) -> dict[str, float]:
    summary: dict[str, float] = {}
    for stage in ("before", "after"):
        for key in sorted({k for p in pairs for k in getattr(p, stage)}):
            values = [getattr(p, stage)[key] for p in pairs if key in getattr(p, stage)]
            values = [v for v in values if not math.isnan(v)]
            if values:
                summary[f"{key} {stage}"] = float(np.mean(values))
    for key in sorted({k for p in pairs for k in p.tumour_dice}):
        summary[f"tumour dice {key}"] = float(np.mean([p.tumour_dice[key] for p in pairs if key in p.tumour_dice]))
    summary["non_positive_jacobian_percent"] = float(np.mean([p.non_positive_jacobian_percent for p in pairs]))
    return summary


def evaluate_brain(root: str | Path, config: BrainPipelineConfig | None = None, model: Any = None,
                   device: Any = "cpu", progress: Progress | None = None, layout: str = "auto",
                   limit: int | None = None, channels: Sequence[str] | None = None) -> BrainEvaluation:
    """Register every evaluation pair of ``root`` and score it."""
    config = config or BrainPipelineConfig()
    progress = progress or Progress()
    layout, pairs = evaluation_pairs(root, layout, limit)
    scored = []
    for index, pair in enumerate(pairs):
        step = progress.sub(index / len(pairs), (index + 1) / len(pairs))
        scored.append(score_pair(pair, load_subject(pair.moving, channels), load_subject(pair.fixed, channels), config,
                                 model, device, step, layout))
    return BrainEvaluation(scored, _summary(scored), layout)


def write_evaluation_png(evaluation: BrainEvaluation, path: str | Path) -> Path:
    """Bars of each averaged score before (grey) and after (blue) registration, one row per score, each row
    scaled to its own largest magnitude (the scores have different units)."""
    from radassist.metrics.curves import pyplot, save_figure

    summary = evaluation.summary
    keys = sorted({k.rsplit(" ", 1)[0] for k in summary if k.endswith((" before", " after"))})
    scales = [max((abs(summary[f"{k} {when}"]) for when in ("before", "after") if summary.get(f"{k} {when}")
                   is not None), default=0.0) or 1.0 for k in keys]
    figure, axes = pyplot().subplots(figsize=(7.6, 0.8 + 0.45 * max(1, len(keys))), dpi=100)
    for offset, (when, colour) in enumerate((("before", "#a0a0a0"), ("after", "#286edc"))):
        rows = [r for r, key in enumerate(keys) if summary.get(f"{key} {when}") is not None]
        values = [summary[f"{keys[r]} {when}"] for r in rows]
        lengths, ys = [abs(v) / scales[r] for v, r in zip(values, rows)], [r + 0.2 * offset - 0.1 for r in rows]
        axes.barh(ys, lengths, height=0.2, color=colour, label=when)
        for y, length, value in zip(ys, lengths, values):
            axes.text(length + 0.01, y, f"{value:.3f}", va="center", fontsize=7)
    axes.set_yticks(range(len(keys)), keys, fontsize=8)
    axes.invert_yaxis()
    axes.set(xlim=(0, 1.45), xticks=[], title=f"Brain registration: {len(evaluation.pairs)} pair(s), mean before "
             "and after")
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
