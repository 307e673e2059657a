"""ROC AUC with confidence intervals, from scipy's mid-ranks and scipy's bootstrap (no scikit-learn).

* :func:`roc_auc`: the area under the ROC curve as the Mann-Whitney statistic, ties counted one half (MONAI's
  ``compute_roc_auc`` gives the same number in a Python loop; ranks let the bootstrap run vectorised).
* :func:`delong_interval`: DeLong, DeLong & Clarke-Pearson (Biometrics 44:837, 1988) variance from the
  structural components (placement values), computed with mid-ranks as in Sun & Xu (IEEE SPL 21:1389, 2014);
  the interval is AUC +- z * SE, clipped to [0, 1]. No well-kept Python library has it.
* :func:`bootstrap_interval`: ``scipy.stats.bootstrap``'s percentile interval, each class resampled with
  replacement on its own (stratified, so every resample has both classes).
* :func:`roc_curve`: the curve's points, for plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.stats import bootstrap, rankdata

METHODS = ("delong", "bootstrap")


@dataclass(frozen=True)
class AucResult:
    """An AUC with its confidence interval and the counts it rests on."""

    auc: float
    low: float
    high: float
    confidence: float
    method: str
    positives: int
    negatives: int
    standard_error: float | None = None  # DeLong only

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {"auc": self.auc, "ci_low": self.low, "ci_high": self.high, "confidence": self.confidence,
                "method": self.method, "positives": self.positives, "negatives": self.negatives,
                "standard_error": self.standard_error}


def _split(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=float).ravel()
    scores = np.asarray(scores, dtype=float).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels for {scores.size} scores")
    if not np.all(np.isin(labels, (0.0, 1.0))):
        raise ValueError("labels must be 0 or 1")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite numbers")
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if not len(positives) or not len(negatives):
        raise ValueError(f"an AUC needs both classes; got {len(positives)} positive and {len(negatives)} "
                         f"negative case(s)")
    return positives, negatives


def _auc_of(positives: np.ndarray, negatives: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Mann-Whitney U / (m n) along ``axis`` (scipy's mid-ranks: ties count one half)."""
    m, n = positives.shape[axis], negatives.shape[axis]
    ranks = rankdata(np.concatenate([positives, negatives], axis=axis), axis=axis)
    return (np.take(ranks, np.arange(m), axis=axis).sum(axis=axis) - m * (m + 1) / 2) / (m * n)


def roc_auc(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """P(score of a random positive > score of a random negative) + P(tie) / 2."""
    return float(_auc_of(*_split(labels, scores)))


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def delong_interval(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray,
                    confidence: float = 0.95) -> AucResult:
    """AUC with DeLong's asymptotic interval."""
    positives, negatives = _split(labels, scores)
    m, n = len(positives), len(negatives)
    z = _z(confidence)
    all_ranks = rankdata(np.concatenate([positives, negatives]))
    auc = float((all_ranks[:m].sum() - m * (m + 1) / 2) / (m * n))
    v10 = (all_ranks[:m] - rankdata(positives)) / n  # share of negatives each positive beats
    v01 = 1.0 - (all_ranks[m:] - rankdata(negatives)) / m  # share of positives that beat each negative
    s10 = float(np.var(v10, ddof=1)) if m > 1 else 0.0
    s01 = float(np.var(v01, ddof=1)) if n > 1 else 0.0
    se = float(np.sqrt(s10 / m + s01 / n))
    return AucResult(auc, max(auc - z * se, 0.0), min(auc + z * se, 1.0), confidence, "delong", m, n, se)


def bootstrap_interval(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray,
                       confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> AucResult:
    """AUC with a stratified percentile bootstrap interval (``resamples`` draws, seeded); at least two cases of
    each class."""
    positives, negatives = _split(labels, scores)
    _z(confidence)
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if min(len(positives), len(negatives)) < 2:
        raise ValueError(f"a bootstrap interval needs at least two cases of each class; got {len(positives)} "
                         f"positive and {len(negatives)} negative")
    interval = bootstrap((positives, negatives), _auc_of, n_resamples=resamples, confidence_level=confidence,
                         method="percentile", vectorized=True, rng=np.random.default_rng(seed)).confidence_interval
    return AucResult(float(_auc_of(positives, negatives)), float(interval.low), float(interval.high), confidence,
                     "bootstrap", len(positives), len(negatives))


def auc_interval(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray,
                 method: str = "delong", confidence: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> AucResult:
    """AUC with the interval of ``method`` ("delong" or "bootstrap")."""
    if method == "delong":
        return delong_interval(labels, scores, confidence)
    if method == "bootstrap":
        return bootstrap_interval(labels, scores, confidence, resamples, seed)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def roc_curve(labels: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates, thresholds), from (0, 0) at +inf down to (1, 1)."""
    positives, negatives = _split(labels, scores)
    thresholds = np.unique(np.concatenate([positives, negatives]))[::-1]
    tpr = np.array([0.0] + [float(np.mean(positives >= t)) for t in thresholds])
    fpr = np.array([0.0] + [float(np.mean(negatives >= t)) for t in thresholds])
    return fpr, tpr, np.concatenate([[np.inf], thresholds])
