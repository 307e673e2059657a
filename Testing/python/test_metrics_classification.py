"""ROC AUC and its confidence intervals, checked against brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radassist.metrics.classification import (auc_interval, bootstrap_interval, delong_interval, roc_auc,
                                              roc_curve)


def pairwise_auc(labels, scores) -> float:
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def pairwise_delong_se(labels, scores) -> float:
    """DeLong's standard error straight from the definition of the structural components."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(np.sqrt(np.var(v10, ddof=1) / len(pos) + np.var(v01, ddof=1) / len(neg)))


labelled_scores = st.integers(2, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda ls: 2 <= sum(ls) <= len(ls) - 2),
    st.lists(st.integers(0, 6), min_size=n, max_size=n)))  # few distinct scores: many ties


@settings(max_examples=60, deadline=None)
@given(labelled_scores)
def test_auc_and_delong_match_their_definitions_with_ties(data):
    labels, scores = data
    assert roc_auc(labels, scores) == pytest.approx(pairwise_auc(labels, scores))
    result = delong_interval(labels, scores)
    assert result.auc == pytest.approx(pairwise_auc(labels, scores))
    assert result.standard_error == pytest.approx(pairwise_delong_se(labels, scores))


def test_delong_interval_is_auc_plus_minus_z_se_clipped():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(30), np.zeros(50)]
    scores = np.r_[rng.normal(1.0, 1.0, 30), rng.normal(0.0, 1.0, 50)]
    result = delong_interval(labels, scores, confidence=0.95)
    assert result.low == pytest.approx(result.auc - 1.959964 * result.standard_error, abs=1e-5)
    assert result.high == pytest.approx(result.auc + 1.959964 * result.standard_error, abs=1e-5)
    assert (result.positives, result.negatives) == (30, 50)
    wider = delong_interval(labels, scores, confidence=0.99)
    assert wider.low < result.low and wider.high > result.high


def test_perfect_separation_gives_auc_one_and_no_spread():
    result = delong_interval([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert (result.auc, result.low, result.high, result.standard_error) == (1.0, 1.0, 1.0, 0.0)
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0


def test_bootstrap_interval_is_seeded_contains_the_auc_and_shrinks_with_more_cases():
    rng = np.random.default_rng(1)

    def sample(n):
        return np.r_[np.ones(n), np.zeros(n)], np.r_[rng.normal(0.8, 1, n), rng.normal(0, 1, n)]

    labels, scores = sample(20)
    first = bootstrap_interval(labels, scores, resamples=500, seed=3)
    assert first == bootstrap_interval(labels, scores, resamples=500, seed=3)
    assert first.low <= first.auc <= first.high and first.method == "bootstrap"
    big_labels, big_scores = sample(400)
    big = bootstrap_interval(big_labels, big_scores, resamples=500, seed=3)
    assert big.high - big.low < first.high - first.low
    delong = auc_interval(big_labels, big_scores, "delong")
    assert abs((big.high - big.low) - (delong.high - delong.low)) < 0.03  # both describe the same spread


def test_roc_curve_runs_from_origin_to_one_and_its_area_is_the_auc():
    labels = [1, 0, 1, 1, 0, 0, 1, 0]
    scores = [0.9, 0.8, 0.7, 0.7, 0.5, 0.4, 0.3, 0.1]
    fpr, tpr, thresholds = roc_curve(labels, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0) and thresholds[0] == np.inf
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) == pytest.approx(roc_auc(labels, scores))


@pytest.mark.parametrize("labels, scores, message", [
    ([1, 1, 1], [0.1, 0.2, 0.3], "both classes"),
    ([0, 1, 2], [0.1, 0.2, 0.3], "0 or 1"),
    ([0, 1], [0.1, float("nan")], "finite"),
    ([0, 1, 1], [0.1, 0.2], "labels for"),
])
def test_bad_inputs_are_refused(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        roc_auc(labels, scores)
    with pytest.raises(ValueError, match="method"):
        auc_interval([0, 1], [0.1, 0.2], "jackknife")


def test_bootstrap_needs_two_cases_of_each_class():
    with pytest.raises(ValueError, match="two cases of each class"):
        bootstrap_interval([1, 0, 0], [0.9, 0.1, 0.2])
