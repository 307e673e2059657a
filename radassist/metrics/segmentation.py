"""Overlap metrics for label maps: confusion matrix, per-class Dice and IoU, pixel accuracy.

Everything is computed from one confusion matrix, so the numbers agree with each other and a data set is scored by
adding the matrices of its images (the "global" scores of the SegNet paper) rather than averaging per image.
Conventions: rows are the true class, columns the predicted class. A class that is absent from both the truth and
the prediction has no Dice or IoU (NaN, left out of means) instead of a perfect or a zero score.
Ours, not MONAI's DiceMetric: that one scores one-hot tensors per batch, while a data set's global score needs
the summed confusion matrix of label maps (a few counts, no one-hot volume in memory).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def confusion_matrix(truth: np.ndarray, prediction: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: entry [t, p] = voxels of true class t predicted as p.

    Raises ValueError when the arrays differ in shape or hold labels outside 0..num_classes-1.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    for name, labels in (("truth", truth), ("prediction", prediction)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} holds labels {int(labels.min())}..{int(labels.max())}, outside "
                             f"0..{num_classes - 1}")
    pairs = truth.astype(np.int64).ravel() * num_classes + prediction.astype(np.int64).ravel()
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def dice_from_confusion(matrix: np.ndarray) -> np.ndarray:
    """Per-class Dice 2TP / (2TP + FP + FN); NaN where the class is in neither truth nor prediction."""
    tp, fp, fn = _counts(matrix)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def iou_from_confusion(matrix: np.ndarray) -> np.ndarray:
    """Per-class intersection over union (Jaccard) TP / (TP + FP + FN); NaN where the class is absent from both."""
    tp, fp, fn = _counts(matrix)
    return _ratio(tp, tp + fp + fn)


def pixel_accuracy_from_confusion(matrix: np.ndarray) -> float:
    """Fraction of voxels whose predicted class is right (NaN for an empty matrix)."""
    total = float(np.asarray(matrix).sum())
    return float(np.trace(matrix)) / total if total else math.nan


def class_accuracy_from_confusion(matrix: np.ndarray) -> np.ndarray:
    """Per-class recall TP / (TP + FN) (the SegNet paper's "class average accuracy" averages these)."""
    tp, _, fn = _counts(matrix)
    return _ratio(tp, tp + fn)


def dice(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Dice of two binary masks; NaN when both are empty."""
    truth, prediction = np.asarray(truth, dtype=bool), np.asarray(prediction, dtype=bool)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    both = int(np.count_nonzero(truth & prediction))
    total = int(np.count_nonzero(truth)) + int(np.count_nonzero(prediction))
    return 2.0 * both / total if total else math.nan


def nan_mean(values: Sequence[float] | np.ndarray) -> float:
    """Mean of the defined values (NaN when none is)."""
    values = np.asarray(values, dtype=float)
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else math.nan


@dataclass
class SegmentationScores:
    """The overlap scores of a prediction against the truth, per class and overall, from one confusion matrix."""

    class_names: list[str]
    confusion: np.ndarray
    dice: list[float] = field(init=False)
    iou: list[float] = field(init=False)
    class_accuracy: list[float] = field(init=False)
    pixel_accuracy: float = field(init=False)

    def __post_init__(self) -> None:
        self.confusion = np.asarray(self.confusion, dtype=np.int64)
        if self.confusion.shape != (len(self.class_names), len(self.class_names)):
            raise ValueError(f"confusion matrix {self.confusion.shape} does not fit {len(self.class_names)} classes")
        self.dice = dice_from_confusion(self.confusion).tolist()
        self.iou = iou_from_confusion(self.confusion).tolist()
        self.class_accuracy = class_accuracy_from_confusion(self.confusion).tolist()
        self.pixel_accuracy = pixel_accuracy_from_confusion(self.confusion)

    @classmethod
    def from_labels(cls, truth: np.ndarray, prediction: np.ndarray, class_names: Sequence[str]) -> "SegmentationScores":
        return cls(list(class_names), confusion_matrix(truth, prediction, len(class_names)))

    def __add__(self, other: "SegmentationScores") -> "SegmentationScores":
        """Scores of two sets together (their confusion matrices added)."""
        if self.class_names != other.class_names:
            raise ValueError(f"cannot add scores of different classes: {self.class_names} and {other.class_names}")
        return SegmentationScores(list(self.class_names), self.confusion + other.confusion)

    def mean_dice(self, include_background: bool = False) -> float:
        """Mean Dice over the classes that occur; class 0 (background) left out unless asked for."""
        return nan_mean(self.dice if include_background else self.dice[1:])

    def mean_iou(self, include_background: bool = False) -> float:
        return nan_mean(self.iou if include_background else self.iou[1:])

    def binary(self, background: int = 0) -> "SegmentationScores":
        """The same prediction scored as "background vs any other class" (the paper's binary task)."""
        keep = [c for c in range(len(self.class_names)) if c != background]
        m = self.confusion
        matrix = np.array([[m[background, background], m[background, keep].sum()],
                           [m[np.ix_(keep, [background])].sum(), m[np.ix_(keep, keep)].sum()]], dtype=np.int64)
        return SegmentationScores([self.class_names[background], "any finding"], matrix)

    def to_dict(self) -> dict:
        """Plain JSON: per-class rows, means, pixel accuracy and the confusion matrix (rows = truth)."""
        def number(value: float) -> float | None:
            return None if math.isnan(value) else round(float(value), 6)

        per_class = [{"class": name, "value": index, "dice": number(self.dice[index]), "iou": number(self.iou[index]),
                      "accuracy": number(self.class_accuracy[index]),
                      "true_voxels": int(self.confusion[index].sum()),
                      "predicted_voxels": int(self.confusion[:, index].sum())}
                     for index, name in enumerate(self.class_names)]
        return {"classes": per_class, "mean_dice_foreground": number(self.mean_dice()),
                "mean_iou_foreground": number(self.mean_iou()), "pixel_accuracy": number(self.pixel_accuracy),
                "confusion_matrix": {"rows": "truth", "columns": "prediction", "labels": list(self.class_names),
                                     "counts": self.confusion.tolist()}}


def _counts(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix is square, got shape {matrix.shape}")
    tp = np.diag(matrix)
    return tp, matrix.sum(axis=0) - tp, matrix.sum(axis=1) - tp


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)
