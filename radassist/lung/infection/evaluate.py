"""Score infection segmentations against ground-truth masks: per-class Dice and IoU, pixel accuracy and the
confusion matrix over the whole set (as JSON), plus the confusion matrix as a PNG for people.

Predictions come either from networks run on the data set's slices (:mod:`radassist.lung.infection.predict`) or
from prediction masks on disk; scores add up the confusion matrices of all slices (global scores), and the binary
"any finding vs background" scores of the study are given beside the multi-class ones.

Per-image scores (:func:`score_columns`) are what the COVID-SemiSeg literature publishes: for "infection" (any
finding vs none) and each finding class, every slice's Dice, sensitivity and specificity, averaged over slices,
both with the standard definitions (an empty reference is left out of Dice and sensitivity) and with the Inf-Net
authors' evaluation protocol (an empty reference counts 0), the one the published table used
(:mod:`radassist.metrics.per_image`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.lung.infection.predict import SlicePredictions
from radassist.lung.infection.published import INFECTION, PUBLISHED_DICE, SOURCE
from radassist.metrics.curves import pyplot, rendered
from radassist.metrics.per_image import (BinaryImageScores, binary_image_scores, infnet_mean,
                                         infnet_threshold_scores)
from radassist.metrics.segmentation import SegmentationScores, confusion_matrix, nan_mean


def score_slices(truth: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
                 class_names: Sequence[str], names: Sequence[str] | None = None) -> SegmentationScores:
    """Global scores of paired label slices (confusion matrices added over the set)."""
    if len(truth) != len(predictions):
        raise ValueError(f"{len(truth)} truth slices but {len(predictions)} predictions")
    total = np.zeros((len(class_names), len(class_names)), dtype=np.int64)
    for index, (t, p) in enumerate(zip(truth, predictions)):
        if t.shape != p.shape:
            where = names[index] if names else str(index)
            raise InputError(where, f"prediction is {p.shape[::-1]} pixels, the ground truth {t.shape[::-1]}")
        total += confusion_matrix(t, p, len(class_names))
    return SegmentationScores(list(class_names), total)


# ------------------------------------------------------------------------------------------------ per image


@dataclass
class ColumnScores:
    """Per-image scores of one finding ("infection" or a class) over a data set."""

    name: str
    images: list[BinaryImageScores]
    infnet_label_map: dict[str, float]  # Inf-Net protocol on the label map written as a 0/255 PNG
    infnet_probability_map: dict[str, float] | None  # ... on the probability map (None without one)

    def mean(self, score: str) -> float:
        """Mean of ``score`` over the images where it is defined (NaN left out)."""
        return nan_mean([getattr(image, score) for image in self.images])

    @property
    def empty_references(self) -> int:
        return sum(image.empty_reference for image in self.images)

    def to_dict(self) -> dict[str, Any]:
        return {"mean_dice": _rounded(self.mean("dice")), "mean_sensitivity": _rounded(self.mean("sensitivity")),
                "mean_specificity": _rounded(self.mean("specificity")), "images": len(self.images),
                "images_with_empty_reference": self.empty_references,
                "infnet_protocol": {
                    "label_map": {k: _rounded(v) for k, v in self.infnet_label_map.items()},
                    "probability_map": None if self.infnet_probability_map is None else
                    {k: _rounded(v) for k, v in self.infnet_probability_map.items()}}}


def _rounded(value: float) -> float | None:
    """A score for the JSON and CSV: 6 decimals, None where it is undefined (NaN)."""
    return None if np.isnan(value) else round(float(value), 6)


def column_names(class_names: Sequence[str]) -> list[str]:
    """"infection" (any class but background), then each finding class when there is more than one."""
    findings = list(class_names[1:])
    return [INFECTION] + (findings if len(findings) > 1 else [])


def _column_masks(column: str, class_names: Sequence[str], labels: np.ndarray,
                  probabilities: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    if column == INFECTION:
        return labels > 0, None if probabilities is None else 255 - probabilities[0]
    index = list(class_names).index(column)
    return labels == index, None if probabilities is None else probabilities[index]


def score_columns(truth: Sequence[np.ndarray], predictions: SlicePredictions | Sequence[np.ndarray],
                  class_names: Sequence[str]) -> list[ColumnScores]:
    """Per-image scores of every column (:func:`column_names`) for paired truth and predicted label slices."""
    if isinstance(predictions, SlicePredictions):
        labels, probabilities = predictions.labels, predictions.probabilities or None
    else:
        labels, probabilities = list(predictions), None
    if len(truth) != len(labels):
        raise ValueError(f"{len(truth)} truth slices but {len(labels)} predictions")
    columns = []
    for column in column_names(class_names):
        images, on_labels, on_probability = [], [], []
        for index, (t, p) in enumerate(zip(truth, labels)):
            reference, _ = _column_masks(column, class_names, np.asarray(t), None)
            predicted, score = _column_masks(column, class_names, np.asarray(p),
                                             None if probabilities is None else probabilities[index])
            images.append(binary_image_scores(reference, predicted))
            on_labels.append(infnet_threshold_scores(predicted.astype(np.uint8) * 255, reference))
            if score is not None:
                on_probability.append(infnet_threshold_scores(score, reference))
        columns.append(ColumnScores(column, images, infnet_mean(on_labels),
                                    infnet_mean(on_probability) if on_probability else None))
    return columns


SHORT_NAMES = {"ground-glass opacity": "ground glass"}


def comparison_lines(columns: Sequence[ColumnScores], model: str, published: bool) -> list[str]:
    """The table ``radassist evaluate`` prints: published rows (when ``published``), then ours, then our standard
    per-image scores."""
    names = [c.name for c in columns]
    shown = list(dict.fromkeys(([INFECTION, "ground-glass opacity", "consolidation"] if published else []) + names))
    labels = [f"published: {r.model}" for r in PUBLISHED_DICE] if published else []
    labels += [f"ours: {model}, label map", f"ours: {model}, probability map"]
    width = max(len(label) for label in labels) + 2

    def row(label: str, values: dict[str, float]) -> str:
        cells = "".join(f"{values[n]:>15.3f}" if n in values and not np.isnan(values[n]) else f"{'':>15}"
                        for n in shown)
        return f"{label:<{width}}{cells}"

    lines = ["Mean per-image Dice, Inf-Net evaluation protocol (an image with an empty reference counts 0)"]
    lines.append(f"{'model':<{width}}" + "".join(f"{SHORT_NAMES.get(n, n)[:14]:>15}" for n in shown))
    if published:
        lines += [row(f"published: {r.model}", r.dice) for r in PUBLISHED_DICE]
    lines.append(row(f"ours: {model}, label map", {c.name: c.infnet_label_map["dice"] for c in columns}))
    if all(c.infnet_probability_map is not None for c in columns):
        lines.append(row(f"ours: {model}, probability map",
                         {c.name: c.infnet_probability_map["dice"] for c in columns}))
    if published:
        lines.append(f"(published rows: {SOURCE})")
    lines += ["", "Our label map, standard per-image scores (mean over images; an image with an empty reference has "
              "no Dice or sensitivity and is left out of those means)",
              f"{'finding':<24}{'Dice':>10}{'sensitivity':>14}{'specificity':>14}{'images':>9}{'empty ref.':>12}"]
    lines += [f"{c.name:<24}{c.mean('dice'):>10.3f}{c.mean('sensitivity'):>14.3f}"
              f"{c.mean('specificity'):>14.3f}{len(c.images):>9}{c.empty_references:>12}" for c in columns]
    return lines


def per_image_rows(columns: Sequence[ColumnScores], names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per slice and column (for per_image.csv and the JSON)."""
    return [{"slice": name, "finding": column.name, "dice": _rounded(image.dice),
             "sensitivity": _rounded(image.sensitivity), "specificity": _rounded(image.specificity),
             "reference_pixels": image.reference_pixels, "predicted_pixels": image.predicted_pixels}
            for column in columns for name, image in zip(names, column.images)]


def evaluation_document(scores: SegmentationScores, names: Sequence[str], model: str = "",
                        columns: Sequence[ColumnScores] | None = None, published: bool = False) -> dict[str, Any]:
    """The JSON written by ``radassist evaluate lung-infection``."""
    document: dict[str, Any] = {"task": "lung-infection-segmentation", "model": model, "slices": len(names),
                                "multiclass": scores.to_dict(), "binary": scores.binary().to_dict()}
    if columns is not None:
        document["per_image"] = {
            "conventions": "standard: Dice 2TP/(|T|+|P|), sensitivity TP/|T|, specificity TN/(TN+FP) per image, "
                           "averaged over images; an empty reference has no Dice or sensitivity and is left out. "
                           "infnet_protocol: the Inf-Net evaluation tool (score map min-max normalised, 256 "
                           "thresholds, an image without a true positive scores 0 in all three), mean over "
                           "thresholds of the mean over images.",
            "findings": {c.name: c.to_dict() for c in columns},
            "slices": per_image_rows(columns, names)}
    if published:
        document["published"] = {"source": SOURCE, "metric": "mean per-image Dice, Inf-Net protocol",
                                 "rows": [{"model": r.model, "dice": r.dice} for r in PUBLISHED_DICE]}
    return document


def confusion_png(scores: SegmentationScores, title: str = "Lung infection: confusion matrix") -> Image.Image:
    """A row-normalised confusion matrix (rows = truth) with counts and percentages in every cell."""
    names, counts = scores.class_names, scores.confusion
    rows = counts.astype(np.float64)
    totals = rows.sum(axis=1, keepdims=True)
    shares = np.divide(rows, totals, out=np.zeros_like(rows), where=totals > 0)
    size = 2.0 + 1.0 * len(names)
    figure, axes = pyplot().subplots(figsize=(size + 1.0, size), dpi=100)
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (t, p), share in np.ndenumerate(shares):
        axes.text(p, t, f"{int(counts[t, p])}\n{100 * share:.1f} %", ha="center", va="center", fontsize=8,
                  color="white" if share > 0.5 else "black")
    ticks = np.arange(len(names))
    axes.set_xticks(ticks, [name[:15] for name in names], rotation=30, ha="right")
    axes.set_yticks(ticks, [name[:22] for name in names])
    axes.set(xlabel="predicted class", ylabel="true class", title=title)
    figure.tight_layout()
    return rendered(figure)


def write_evaluation(document: dict[str, Any], scores: SegmentationScores, json_path: str | Path,
                     png_path: str | Path) -> None:
    """Write the metrics JSON and the confusion-matrix PNG, each atomically."""
    text = json.dumps(document, indent=2) + "\n"
    with atomic_path(json_path) as temp:
        temp.write_text(text, encoding="utf-8")
    with atomic_path(png_path) as temp:
        confusion_png(scores).save(temp, format="PNG")


PER_IMAGE_COLUMNS = ("slice", "finding", "dice", "sensitivity", "specificity", "reference_pixels", "predicted_pixels")


def write_per_image_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Every slice's scores as CSV (empty cells where a score is undefined), written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PER_IMAGE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in PER_IMAGE_COLUMNS})
    with atomic_path(path) as temp:
        temp.write_text(buffer.getvalue(), encoding="utf-8")
