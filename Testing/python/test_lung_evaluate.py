"""`radassist evaluate lung` end to end on a synthetic LUNA16 folder: predictions equal to the ground truth score
1.0 everywhere, a perturbed copy scores the hand-derived lower numbers, bad input fails cleanly."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radassist.cli import _Formatter
from radassist.commands import lung_evaluate, train_evaluate
from radassist.errors import InputError, RadAssistError
from radassist.lung.evaluate import LungEvaluationConfig, evaluate_lung, read_annotations, read_luna16_reference
from radassist.metrics.plots import CURVE_COLOUR, FrocPlot
from radassist.results.csv_json import read_detections_csv
from radassist.synthetic.chest import ChestPhantomConfig
from radassist.synthetic.datasets import write_dataset

CHEST = ChestPhantomConfig(shape=(40, 96, 128), spacing=(1.6, 1.6, 3.0), nodule_count=(2, 3),
                           nodule_diameter_mm=(5.0, 20.0))
FAR_AWAY = (0.0, 900.0, 0.0)  # outside every phantom: a false positive anywhere


def radassist(*argv: str) -> int:
    """The `radassist` command as cli.main runs it, with this task module registered for `evaluate`."""
    parser = argparse.ArgumentParser(prog="radassist", formatter_class=_Formatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train_evaluate.register_all(commands, _Formatter, (lung_evaluate,))
    args = parser.parse_args([str(a) for a in argv])
    try:
        return int(args.handler(args) or 0)
    except RadAssistError as error:
        print(f"radassist {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code


@pytest.fixture(scope="module")
def luna(tmp_path_factory) -> Path:
    folder = write_dataset("lung", tmp_path_factory.mktemp("luna") / "luna", cases=3, seed=21, config=CHEST)
    return folder


@pytest.fixture(scope="module")
def truth(luna) -> list[dict]:
    with open(luna / "annotations.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def write_predictions(path: Path, rows: list[tuple], with_diameter: bool = True) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "probability"]
                        + (["diameter_mm"] if with_diameter else []))
        for row in rows:
            writer.writerow(row if with_diameter else row[:5])
    return path


def truth_rows(truth: list[dict], probability: float = 0.9) -> list[tuple]:
    return [(r["seriesuid"], r["coordX"], r["coordY"], r["coordZ"], probability, r["diameter_mm"]) for r in truth]


def test_synthetic_folder_reads_as_luna16(luna, truth):
    reference = read_luna16_reference(luna)
    assert len(reference.scans) == 3 and reference.excluded == {}
    assert sorted(reference.scans) == sorted({r["seriesuid"] for r in truth})
    assert sum(len(v) for v in reference.nodules.values()) == len(truth) >= 6
    first = reference.nodules[truth[0]["seriesuid"]][0]
    assert first.diameter_mm == float(truth[0]["diameter_mm"]) and first.size == (first.diameter_mm,) * 3


def test_ground_truth_as_predictions_scores_one(luna, truth, tmp_path, capsys):
    predictions = write_predictions(tmp_path / "nodules.csv", truth_rows(truth))
    out = tmp_path / "out"
    assert radassist("evaluate", "lung", "--data", luna, "--predictions", predictions, "--out", out,
                     "--bootstrap", "200") == 0
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.json", "froc.png", "result.json"]
    document = json.loads((out / "evaluation.json").read_text())
    froc = document["froc"]
    assert froc["cpm"] == 1.0 and set(froc["sensitivity_at_fp_per_scan"].values()) == {1.0}
    assert froc["counts"]["hits"] == len(truth) and froc["counts"]["false_positives"] == 0
    assert froc["bootstrap"]["cpm_ci"] == [1.0, 1.0]
    rows = document["detection"]["rows"]
    for band, row in rows.items():
        expected = sum(1 for r in truth if band == "all" or _band(float(r["diameter_mm"])) == band)
        assert row["references"] == expected
        if expected:
            assert (row["precision"], row["recall"], row["f1"], row["average_precision"]) == (1.0, 1.0, 1.0, 1.0)
    record = json.loads((out / "result.json").read_text())
    assert record["command"] == "evaluate lung" and record["summary"]["cpm"] == 1.0
    assert record["summary"]["f1"] == 1.0 and "evaluation.json" in record["outputs"]
    assert "CPM: 1.000" in capsys.readouterr().out

    image = np.asarray(Image.open(out / "froc.png").convert("RGB"))
    plot = FrocPlot(Image.fromarray(image))
    for rate in (0.125, 1.0, 8.0):  # the curve runs along sensitivity 1.0
        x, y = (int(round(v)) for v in plot.to_pixel(rate, 1.0))
        patch = image[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3)
        assert any(tuple(p) == CURVE_COLOUR for p in patch)
    x, y = (int(round(v)) for v in plot.to_pixel(1.0, 0.5))
    assert not any(tuple(p) == CURVE_COLOUR for p in image[y - 4:y + 5, x - 4:x + 5].reshape(-1, 3))


def _band(diameter: float) -> str:
    return "<7 mm" if diameter < 7 else ("7-15 mm" if diameter <= 15 else ">15 mm")


def test_perturbed_predictions_score_the_hand_derived_numbers(luna, truth, tmp_path):
    # The first nodule is missed; the others are found at 0.9; two false positives at 0.95 and 0.6; a 0.99 mark
    # on an excluded finding is ignored. With n nodules on 3 scans:
    #   FROC points (0, 0), (1/3, 0), (1/3, (n-1)/n), (2/3, (n-1)/n): sensitivity 0 at 1/8 and 1/4, (n-1)/n from
    #   1/2 on, so CPM = 5 (n-1) / (7 n).
    #   Table at probability >= 0.5: TP n-1, FP 2, FN 1; AP = ((n-1)/n)^2 (the 0.95 false positive comes first).
    data = tmp_path / "luna"
    shutil.copytree(luna, data)
    uid = truth[1]["seriesuid"]
    with open(data / "annotations_excluded.csv", "w", newline="") as handle:
        handle.write(f"seriesuid,coordX,coordY,coordZ,diameter_mm\n{uid},0.0,-400.0,0.0,-1\n")
    rows = truth_rows(truth)[1:]
    rows += [(truth[0]["seriesuid"], *FAR_AWAY, 0.95, 8.0), (truth[-1]["seriesuid"], *FAR_AWAY, 0.6, 8.0),
             (uid, 3.0, -400.0, 0.0, 0.99, 6.0)]
    predictions = write_predictions(tmp_path / "nodules.csv", rows)
    out = tmp_path / "out"
    assert radassist("evaluate", "lung", "--data", data, "--predictions", predictions, "--out", out,
                     "--bootstrap", "300", "--seed", "3") == 0
    document = json.loads((out / "evaluation.json").read_text())
    n = len(truth)
    froc = document["froc"]
    assert froc["counts"]["ignored_on_excluded"] == 1
    assert (froc["counts"]["hits"], froc["counts"]["missed"], froc["counts"]["false_positives"]) == (n - 1, 1, 2)
    assert list(froc["sensitivity_at_fp_per_scan"].values()) == pytest.approx([0, 0] + [(n - 1) / n] * 5)
    assert froc["cpm"] == pytest.approx(5 * (n - 1) / (7 * n))
    low, high = froc["bootstrap"]["cpm_ci"]
    assert low <= froc["cpm"] <= high and low < high
    assert document["reference"]["annotations_excluded"].endswith("annotations_excluded.csv")

    overall = document["detection"]["rows"]["all"]
    assert (overall["true_positives"], overall["false_positives"], overall["false_negatives"]) == (n - 1, 2, 1)
    assert overall["precision"] == pytest.approx((n - 1) / (n + 1))
    assert overall["recall"] == pytest.approx((n - 1) / n)
    assert overall["average_precision"] == pytest.approx(((n - 1) / n) ** 2)
    assert document["detection"]["ignored_predictions"] == 1
    # the two 8 mm false positives fall in the 7-15 mm band (their predicted size)
    middle = document["detection"]["rows"]["7-15 mm"]
    assert middle["false_positives"] == 2

    again = tmp_path / "again"
    assert radassist("evaluate", "lung", "--data", data, "--predictions", predictions, "--out", again,
                     "--bootstrap", "300", "--seed", "3") == 0
    assert json.loads((again / "evaluation.json").read_text())["froc"]["bootstrap"] == froc["bootstrap"]


def test_predictions_without_diameter_get_the_froc_but_no_detection_table(luna, truth, tmp_path):
    predictions = write_predictions(tmp_path / "submission.csv", truth_rows(truth), with_diameter=False)
    evaluation = evaluate_lung(read_luna16_reference(luna), read_detections_csv(predictions),
                               LungEvaluationConfig(bootstrap_samples=0))
    assert evaluation.froc.cpm == 1.0
    assert evaluation.detection is None and "diameter_mm" in evaluation.detection_skipped
    assert evaluation.to_dict()["detection"] is None


def test_subset_and_series_list_choose_the_scans(luna, truth, tmp_path):
    data = tmp_path / "luna"
    shutil.copytree(luna, data)
    uids = sorted({r["seriesuid"] for r in truth})
    (data / "seriesuids.csv").write_text("\n".join(uids[:2] + ["1.2.3.4.extra-scan-without-nodules"]) + "\n")
    reference = read_luna16_reference(data)
    assert reference.scans == uids[:2] + ["1.2.3.4.extra-scan-without-nodules"]
    assert set(reference.nodules) == set(uids[:2])
    assert read_luna16_reference(data, ["subset0"]).scans == uids
    with pytest.raises(InputError, match="subset folder not found"):
        read_luna16_reference(data, ["subset9"])


def test_bad_input_fails_with_the_file_named_and_nothing_written(luna, truth, tmp_path, capsys):
    out = tmp_path / "out"
    bad = tmp_path / "bad.csv"
    bad.write_text("seriesuid,coordX,coordY,probability\n1.2.3,0,0,0.5\n")
    assert radassist("evaluate", "lung", "--data", luna, "--predictions", bad, "--out", out) == 2
    assert "bad.csv: missing column(s) ['coordZ']" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())

    empty = tmp_path / "empty"
    empty.mkdir()
    predictions = write_predictions(tmp_path / "nodules.csv", truth_rows(truth))
    assert radassist("evaluate", "lung", "--data", empty, "--predictions", predictions, "--out", out) == 2
    assert "no scans found" in capsys.readouterr().err

    no_annotations = tmp_path / "no-annotations"
    shutil.copytree(luna / "subset0", no_annotations / "subset0")
    assert radassist("evaluate", "lung", "--data", no_annotations, "--predictions", predictions, "--out", out) == 2
    assert f"{no_annotations / 'annotations.csv'}: file not found" in capsys.readouterr().err

    assert radassist("evaluate", "lung", "--data", luna, "--predictions", predictions, "--out", out,
                     "--confidence", "1.5") == 2
    assert "confidence" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_annotation_reader_checks_diameters(tmp_path):
    annotations = tmp_path / "annotations.csv"
    annotations.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,1,2,3,-1\n")
    with pytest.raises(InputError, match="line 2: diameter_mm must be positive"):
        read_annotations(annotations)
    excluded = read_annotations(annotations, excluded=True)
    assert excluded["1.2.3"][0].diameter_mm == -1.0 and excluded["1.2.3"][0].center == (1.0, 2.0, 3.0)
    annotations.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,1,two,3,5\n")
    with pytest.raises(InputError, match="coordY is not a number"):
        read_annotations(annotations)
