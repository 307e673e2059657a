"""CSV and JSON tables: LUNA16 detections, classifications, reports; plain JSON only; all-or-nothing writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from radassist.errors import InputError
from radassist.results import (Classification, ClassifiedImage, Detection, Detections, Report, plain_json,
                               read_detections_csv, write_classification, write_detections_csv, write_report)
from radassist.volume import SourceInfo

SERIES = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860"


def test_luna16_columns_and_world_coordinates(tmp_path: Path) -> None:
    detections = Detections(
        [Detection(center=(-71.25, 161.0, -199.875), size=(6, 6, 6), probability=0.875, diameter_mm=6.0),
         Detection(center=(10.0, -20.0, 30.0), size=(0, 0, 0), probability=0.1)],
        source=SourceInfo(series_instance_uid=SERIES))
    path = write_detections_csv(detections, tmp_path / "submission.csv")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["seriesuid", "coordX", "coordY", "coordZ", "probability", "diameter_mm"]
    assert rows[1] == [SERIES, "-71.25", "161.0", "-199.875", "0.875", "6.0"]
    assert rows[2][-1] == ""
    again = read_detections_csv(path)[SERIES]
    assert [d.center for d in again.items] == [d.center for d in detections.items]
    assert [d.probability for d in again.items] == [0.875, 0.1]
    assert again.items[0].size == (6.0, 6.0, 6.0) and again.items[1].diameter_mm is None


def test_several_series_and_luna16_annotations(tmp_path: Path) -> None:
    a = Detections([Detection((1, 2, 3), (1, 1, 1), 0.5)], source=SourceInfo(path="/data/scan_a.mhd"))
    b = Detections([Detection((4, 5, 6), (1, 1, 1), 0.6)], source=SourceInfo(series_instance_uid="1.2.3"))
    groups = read_detections_csv(write_detections_csv([a, b], tmp_path / "all.csv"))
    assert set(groups) == {"scan_a", "1.2.3"}
    annotations = tmp_path / "annotations.csv"
    annotations.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,-1.5,2.5,-3.5,5.25\n")
    [finding] = read_detections_csv(annotations)["1.2.3"].items
    assert finding.probability == 1.0 and finding.diameter_mm == 5.25 and finding.center == (-1.5, 2.5, -3.5)


def test_bad_detection_csv(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("seriesuid,coordX,coordY\nx,1,2\n")
    with pytest.raises(InputError, match="coordZ"):
        read_detections_csv(path)
    path.write_text("seriesuid,coordX,coordY,coordZ,probability\nx,1,2,abc,0.5\n")
    with pytest.raises(InputError, match="line 2"):
        read_detections_csv(path)
    path.write_text("seriesuid,coordX,coordY,coordZ,probability\nx,1,2,3,1.5\n")
    with pytest.raises(InputError, match="probability"):
        read_detections_csv(path)


def test_classification_json_and_csv(tmp_path: Path) -> None:
    classification = Classification(
        images=[ClassifiedImage("R-CC", {"benign": 0.8929, "malignant": 0.3259}, {"view": "CC", "flip": True}),
                ClassifiedImage("L-CC", {"benign": 0.1356, "malignant": 0.0081}, {"view": "CC", "flip": False})],
        groups=[ClassifiedImage("right", {"benign": 0.92, "malignant": 0.25})],
        model="gmic", metadata={"threshold": np.float32(0.5), "shape": np.array([2944, 1920])})
    write_classification(classification, tmp_path / "c.json", tmp_path / "c.csv")
    document = json.loads((tmp_path / "c.json").read_text())
    assert document["model"] == "gmic"
    assert document["metadata"] == {"threshold": 0.5, "shape": [2944, 1920]}
    assert document["images"][0]["probabilities"]["benign"] == 0.8929
    with (tmp_path / "c.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["level"], r["id"]) for r in rows] == [("image", "R-CC"), ("image", "L-CC"), ("group", "right")]
    assert rows[1]["malignant"] == "0.0081" and rows[0]["flip"] == "True" and rows[2]["view"] == ""


def test_report_json_and_csv(tmp_path: Path) -> None:
    report = Report("Liver", summary={"liver_ml": np.float64(1520.25), "tumour_burden": 0.031},
                    units={"liver_ml": "ml"}, rows=[{"name": "tumour 1", "volume_ml": np.float32(12.5)},
                                                    {"name": "tumour 2", "volume_ml": 3.0, "segment": 4}])
    write_report(report, tmp_path / "r.json", tmp_path / "r.csv")
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["summary"] == {"liver_ml": 1520.25, "tumour_burden": 0.031}
    with (tmp_path / "r.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"name": "tumour 1", "volume_ml": "12.5", "segment": ""},
                    {"name": "tumour 2", "volume_ml": "3.0", "segment": "4"}]
    write_report(Report("Only summary", summary={"a": 1}), tmp_path / "s.json", tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text().splitlines() == ["a", "1"]


def test_plain_json_conversions_and_atomic_pair(tmp_path: Path) -> None:
    assert plain_json({"n": np.int64(3), "nan": float("nan"), "t": (1, 2), "b": np.bool_(True)}) == \
        {"n": 3, "nan": None, "t": [1, 2], "b": True}
    report = Report("bad", summary={"thing": object()})
    with pytest.raises(TypeError):
        write_report(report, tmp_path / "bad.json", tmp_path / "bad.csv")
    assert list(tmp_path.iterdir()) == []
