"""Per-image scores of a binary finding (Dice, sensitivity, specificity), two ways of counting them.

* :func:`binary_image_scores`: the standard definitions on a hard mask. An image whose reference is empty has no
  Dice and no sensitivity (NaN: nothing to find, so neither a perfect nor a zero score); its false positives still
  lower its specificity. Means over images leave NaN out and say how many images they cover.
* :func:`infnet_threshold_scores`: the protocol of the Inf-Net authors' evaluation tool (Fan et al., IEEE TMI 2020;
  ``EvaluationTool/main.m`` and ``Fmeasure_calu.m`` of DengPingFan/Inf-Net), by which the published COVID-SemiSeg
  tables were measured. Each image's score map (8-bit, as the PNG it would be saved as) is min-max normalised to
  0..1 and cut at the 256 thresholds 1, 254/255, ..., 0 (a pixel is positive when its value is >= the threshold);
  at every threshold an image with no true positive scores 0 in Dice, sensitivity **and** specificity, so an image
  with an empty reference always counts 0. The published "mean Dice" is the mean over thresholds of the mean over
  images. A constant map is taken as all 0 here (the tool's ``mapminmax`` of a constant row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INFNET_THRESHOLDS = np.linspace(1.0, 0.0, 256)  # MATLAB 1:-1/255:0


@dataclass(frozen=True)
class BinaryImageScores:
    """One image's hard-mask scores and counts; NaN where a score is undefined (see the module docstring)."""

    dice: float
    sensitivity: float
    specificity: float
    reference_pixels: int
    predicted_pixels: int
    true_positives: int

    @property
    def empty_reference(self) -> bool:
        return self.reference_pixels == 0


def binary_image_scores(truth: np.ndarray, prediction: np.ndarray) -> BinaryImageScores:
    """Dice 2TP/(|T|+|P|), sensitivity TP/|T|, specificity TN/(TN+FP) of two same-shaped masks."""
    truth, prediction = np.asarray(truth, dtype=bool), np.asarray(prediction, dtype=bool)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    reference, predicted = int(truth.sum()), int(prediction.sum())
    tp = int(np.count_nonzero(truth & prediction))
    negatives = truth.size - reference
    tn = negatives - (predicted - tp)
    return BinaryImageScores(
        dice=2.0 * tp / (reference + predicted) if reference else math.nan,
        sensitivity=tp / reference if reference else math.nan,
        specificity=tn / negatives if negatives else math.nan,
        reference_pixels=reference, predicted_pixels=predicted, true_positives=tp)


@dataclass(frozen=True)
class ThresholdScores:
    """One image's Dice, sensitivity and specificity at each of the Inf-Net tool's 256 thresholds."""

    dice: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray


def infnet_threshold_scores(score_map: np.ndarray, truth: np.ndarray) -> ThresholdScores:
    """The Inf-Net tool's per-threshold scores of one image: ``score_map`` uint8 (0..255) or float, ``truth`` a mask."""
    values = np.asarray(score_map, dtype=np.float64).ravel()
    truth = np.asarray(truth, dtype=bool).ravel()
    if values.shape != truth.shape:
        raise ValueError(f"score map {np.shape(score_map)} and truth differ in size")
    low, high = float(values.min()), float(values.max())
    normalised = (values - low) / (high - low) if high > low else np.zeros_like(values)
    order = np.argsort(normalised, kind="stable")
    ranked, ranked_truth = normalised[order], truth[order]
    # positives at threshold t: the pixels from the first one >= t to the end of the sorted values
    start = np.searchsorted(ranked, INFNET_THRESHOLDS, side="left")
    truth_from = np.concatenate([np.cumsum(ranked_truth[::-1])[::-1], [0]])
    predicted = ranked.size - start
    tp = truth_from[start]
    reference = int(truth.sum())
    fp = predicted - tp
    tn = (ranked.size - reference) - fp
    hit = tp > 0
    dice = np.where(hit, 2.0 * tp / np.maximum(reference + predicted, 1), 0.0)
    sensitivity = np.where(hit, tp / max(reference, 1), 0.0)
    specificity = np.where(hit, tn / np.maximum(tn + fp, 1), 0.0)
    return ThresholdScores(dice, sensitivity, specificity)


def infnet_mean(scores: list[ThresholdScores]) -> dict[str, float]:
    """The tool's summary of a data set: mean over thresholds of the mean over images (meanDic, meanSen, meanSpe)."""
    if not scores:
        return {"dice": math.nan, "sensitivity": math.nan, "specificity": math.nan}
    return {name: float(np.mean(np.stack([getattr(s, name) for s in scores]).mean(axis=0)))
            for name in ("dice", "sensitivity", "specificity")}
