"""LUNA16 FROC/CPM against hand-computed cases: hit radius, excluded findings, one hit per nodule, the curve, the
seven operating points, the candidate limit, the bootstrap interval, and the PNG plot."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from radassist.metrics.froc import (FP_RATES, bootstrap_froc, evaluate_froc, froc_from_marks, keep_most_probable,
                                    match_candidates, sensitivity_at)
from radassist.metrics.plots import BAND_COLOUR, CURVE_COLOUR, draw_froc, write_froc_png
from radassist.results.detections import Detection


def cand(x: float, y: float, z: float, probability: float) -> Detection:
    return Detection(center=(x, y, z), size=(0.0, 0.0, 0.0), probability=probability)


def nodule(x: float, y: float, z: float, diameter: float) -> Detection:
    return Detection(center=(x, y, z), size=(max(diameter, 0.0),) * 3, probability=1.0, diameter_mm=diameter)


# Three scans. A: nodules n1 (10 mm) and n2 (6 mm), an excluded finding of unknown size (-1 -> 10 mm);
# B: nodule n3 (8 mm); C: no nodule. Candidates (probability):
#   A: 0.9 and 0.6 both on n1 (one hit, scored 0.9), 0.8 on the excluded finding (ignored), 0.7 far away (FP),
#      0.95 exactly 3 mm from n2's centre = its radius (not strictly inside: FP); n2 is missed.
#   B: 0.4 at 3.9 mm from n3 (hit), 0.5 far away (FP).   C: 0.3 and 0.2 (FPs).   Z (not evaluated): ignored.
SCANS = ["A", "B", "C"]
NODULES = {"A": [nodule(0, 0, 0, 10.0), nodule(50, 0, 0, 6.0)], "B": [nodule(0, 0, 0, 8.0)]}
EXCLUDED = {"A": [nodule(100, 0, 0, -1.0)]}
CANDIDATES = {"A": [cand(1, 0, 0, 0.9), cand(0, 2, 0, 0.6), cand(101, 0, 0, 0.8), cand(200, 0, 0, 0.7),
                    cand(53, 0, 0, 0.95)],
              "B": [cand(0, 0, 3.9, 0.4), cand(30, 30, 30, 0.5)],
              "C": [cand(0, 0, 0, 0.3), cand(9, 9, 9, 0.2)],
              "Z": [cand(0, 0, 0, 0.5)]}
# Ranked: 0.95 FP, 0.9 TP, 0.7 FP, 0.5 FP, 0.4 TP, 0.3 FP, 0.2 FP; 3 scans, 3 nodules (n2 missed).
EXPECTED_FPS = [0, 1 / 3, 1 / 3, 2 / 3, 1, 1, 4 / 3, 5 / 3]
EXPECTED_SENSITIVITY = [0, 0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3]
# at 1/8 and 1/4: between (0, 0) and (1/3, 0) -> 0; at 1/2: on the flat 1/3; at 1: the step up to 2/3 at
# exactly 1 FP/scan; beyond 5/3: flat at 2/3.
EXPECTED_AT_RATES = [0, 0, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3]


def hand_case(**kwargs):
    return evaluate_froc(SCANS, NODULES, CANDIDATES, EXCLUDED, **kwargs)


def test_hand_computed_froc_curve_operating_points_and_cpm():
    result = hand_case(bootstrap_samples=0)
    assert result.fps == pytest.approx(EXPECTED_FPS)
    assert result.sensitivity_curve == pytest.approx(EXPECTED_SENSITIVITY)
    assert result.thresholds == pytest.approx([0.95, 0.9, 0.7, 0.5, 0.4, 0.3, 0.2])
    assert result.rates == list(FP_RATES) == [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    assert result.sensitivities == pytest.approx(EXPECTED_AT_RATES)
    assert result.cpm == pytest.approx(3 / 7)
    assert result.bootstrap is None


def test_hand_computed_counts_follow_the_luna16_rules():
    counts = hand_case(bootstrap_samples=0).counts
    assert counts == {"scans": 3, "nodules": 3, "excluded_annotations": 1, "candidates": 9,
                      "candidates_over_limit": 0, "candidates_outside_scans": 1, "hits": 2, "missed": 1,
                      "false_positives": 5, "double_hits_ignored": 1, "ignored_on_excluded": 1}


def test_hit_radius_is_strict_and_unknown_excluded_diameter_is_10_mm():
    nodules = {"A": [nodule(0, 0, 0, 6.0)]}
    excluded = {"A": [nodule(40, 0, 0, -1.0)]}
    inside = {"A": [cand(2.999, 0, 0, 0.9), cand(44.9, 0, 0, 0.5)]}
    border = {"A": [cand(3.0, 0, 0, 0.9), cand(45.1, 0, 0, 0.5)]}
    marks = match_candidates(["A"], nodules, inside, excluded)
    assert (marks.counts["hits"], marks.counts["ignored_on_excluded"], marks.counts["false_positives"]) == (1, 1, 0)
    marks = match_candidates(["A"], nodules, border, excluded)
    assert (marks.counts["hits"], marks.counts["ignored_on_excluded"], marks.counts["false_positives"]) == (0, 0, 2)


def test_two_candidates_on_one_nodule_count_once_with_the_higher_probability():
    # one scan, one nodule hit at 0.3 and 0.8, one FP at 0.5: ranked 0.8 TP, 0.5 FP -> sensitivity 1 everywhere.
    # Had the nodule been scored 0.3 (or the second hit counted as an FP) the low rates would read 0.
    result = evaluate_froc(["A"], {"A": [nodule(0, 0, 0, 10.0)]},
                           {"A": [cand(0, 0, 1, 0.3), cand(1, 0, 0, 0.8), cand(90, 0, 0, 0.5)]}, bootstrap_samples=0)
    assert result.counts["hits"] == 1 and result.counts["double_hits_ignored"] == 1
    assert result.counts["false_positives"] == 1
    assert result.fps == pytest.approx([0, 0, 1]) and result.sensitivity_curve == pytest.approx([0, 1, 1])
    assert result.cpm == pytest.approx(1.0)


def test_a_candidate_on_a_nodule_and_an_excluded_finding_is_a_hit():
    result = evaluate_froc(["A"], {"A": [nodule(0, 0, 0, 10.0)]}, {"A": [cand(1, 0, 0, 0.7)]},
                           {"A": [nodule(2, 0, 0, -1.0)]}, bootstrap_samples=0)
    assert result.counts["hits"] == 1 and result.counts["ignored_on_excluded"] == 0
    assert result.cpm == pytest.approx(1.0)


def test_tied_probabilities_form_one_curve_point():
    # a hit and an FP both at 0.5 on one scan: the curve jumps from (0, 0) to (1, 1) in one step, whatever the
    # order of the rows, so sensitivity at 1/2 FP/scan is the midpoint 0.5.
    for rows in ([cand(0, 0, 0, 0.5), cand(60, 0, 0, 0.5)], [cand(60, 0, 0, 0.5), cand(0, 0, 0, 0.5)]):
        result = evaluate_froc(["A"], {"A": [nodule(0, 0, 0, 10.0)]}, {"A": rows}, bootstrap_samples=0)
        assert result.fps == pytest.approx([0, 1]) and result.sensitivity_curve == pytest.approx([0, 1])
        assert result.sensitivity_by_rate["0.5"] == pytest.approx(0.5)
        assert result.sensitivity_by_rate["0.25"] == pytest.approx(0.25)


def test_a_system_without_false_positives_has_its_hit_rate_everywhere():
    result = evaluate_froc(["A", "B"], {"A": [nodule(0, 0, 0, 10.0), nodule(40, 0, 0, 10.0)]},
                           {"A": [cand(0, 0, 0, 0.2)]}, bootstrap_samples=0)
    assert result.sensitivities == pytest.approx([0.5] * 7)
    assert result.cpm == pytest.approx(0.5)


def test_sensitivity_at_takes_the_top_of_a_vertical_step_and_stays_flat_after_the_curve():
    fps = np.array([0.0, 1.0, 1.0, 1.0, 2.0])
    sensitivity = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    assert sensitivity_at(fps, sensitivity, [0.5, 1.0, 1.5, 2.0, 8.0]) == pytest.approx([0.05, 0.3, 0.35, 0.4, 0.4])


def test_at_most_100_marks_per_scan_and_ties_at_the_cut_are_dropped():
    given = [cand(0, 0, 0, 0.9), cand(0, 0, 0, 0.8), cand(0, 0, 0, 0.8), cand(0, 0, 0, 0.1)]
    assert [c.probability for c in keep_most_probable(given, 2)] == [0.9]  # 0.8 ties with the 3rd: dropped
    assert len(keep_most_probable(given, 4)) == 4
    many = {"A": [cand(100 + i, 0, 0, (i + 1) / 200) for i in range(150)]}
    marks = match_candidates(["A"], {"A": [nodule(0, 0, 0, 10.0)]}, many)
    assert marks.counts["candidates"] == 100 and marks.counts["candidates_over_limit"] == 50
    assert marks.counts["false_positives"] == 100 and marks.counts["missed"] == 1


def test_no_reference_nodule_is_an_error():
    with pytest.raises(ValueError, match="no reference nodule"):
        evaluate_froc(["A"], {}, {"A": [cand(0, 0, 0, 0.5)]}, bootstrap_samples=0)


def test_bootstrap_is_deterministic_with_a_seed_and_contains_the_point_estimate():
    first = hand_case(bootstrap_samples=300, seed=5)
    again = hand_case(bootstrap_samples=300, seed=5)
    other = hand_case(bootstrap_samples=300, seed=6)
    assert first.bootstrap == again.bootstrap
    assert (first.bootstrap.cpm_mean, first.bootstrap.sensitivity_mean) != \
        (other.bootstrap.cpm_mean, other.bootstrap.sensitivity_mean)
    b = first.bootstrap
    assert b.requested == 300 and 250 < b.samples <= 300  # samples drawing only scan C have no nodule: left out
    assert b.cpm_low <= first.cpm <= b.cpm_high and b.cpm_low < b.cpm_high
    for low, value, high in zip(b.sensitivity_low, first.sensitivities, b.sensitivity_high):
        assert low <= value + 1e-12 and value <= high + 1e-12
    assert all(lo <= hi for lo, hi in zip(b.curve_low, b.curve_high))
    assert first.to_dict()["bootstrap"]["cpm_ci"] == [b.cpm_low, b.cpm_high]


def test_bootstrap_of_a_single_scan_reproduces_the_point_estimate():
    # resampling one scan always gives that scan back: every bound equals the point estimate
    marks = match_candidates(["A"], NODULES, CANDIDATES, EXCLUDED)
    result = froc_from_marks(marks, bootstrap_samples=50, seed=0)
    b = result.bootstrap
    assert b.samples == 50
    assert b.cpm_low == pytest.approx(result.cpm) and b.cpm_high == pytest.approx(result.cpm)
    assert b.sensitivity_mean == pytest.approx(result.sensitivities)
    assert bootstrap_froc(marks, samples=0) is None


def test_froc_png_shows_the_curve_its_points_and_the_band(tmp_path):
    result = hand_case(bootstrap_samples=200, seed=1)
    plot = draw_froc(result, "hand case")
    path = write_froc_png(result, tmp_path / "froc.png", "hand case")
    image = Image.open(path).convert("RGB")
    assert image.size == plot.image.size
    pixels = np.asarray(image)

    def colour_near(fp: float, sensitivity: float, radius: int = 2) -> set[tuple[int, int, int]]:
        x, y = (int(round(v)) for v in plot.to_pixel(fp, sensitivity))
        patch = pixels[y - radius:y + radius + 1, x - radius:x + radius + 1].reshape(-1, 3)
        return {tuple(int(c) for c in p) for p in patch}

    for rate, value in zip(result.rates, result.sensitivities):  # the seven operating points are on the image
        assert CURVE_COLOUR in colour_near(rate, value)
    assert CURVE_COLOUR in colour_near(1.5, 2 / 3)  # the curve between points
    assert CURVE_COLOUR not in colour_near(0.5, 0.9, radius=4)  # nothing drawn where the curve is not
    assert CURVE_COLOUR not in colour_near(0.125, 1 / 3, radius=4)
    band = np.all(pixels == BAND_COLOUR, axis=2)
    assert band.sum() > 1000
    left, top, right, bottom = plot.area
    assert not band[:top].any() and not band[bottom + 1:].any()  # the band stays inside the axes
    assert not any(f.name.startswith(".radassist-tmp-") for f in tmp_path.iterdir())


def test_cpm_is_the_mean_of_the_seven_operating_points():
    result = hand_case(bootstrap_samples=0)
    assert result.cpm == pytest.approx(math.fsum(result.sensitivities) / 7)
