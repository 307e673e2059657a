"""Slicer markups: ROI boxes for detections and point lists, validated against Slicer's own JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from radassist.errors import InputError
from radassist.results import (Detection, Detections, ReviewStatus, read_point_markups, read_roi_markups,
                               write_point_markups, write_roi_markups)
from radassist.results.markups import AXIS_ALIGNED_LPS_ORIENTATION, parse_description


def _detections() -> Detections:
    return Detections([
        Detection(center=(-12.5, 40.25, -101.0), size=(8.0, 9.0, 10.0), probability=0.93, diameter_mm=8.7),
        Detection(center=(60.0, -5.0, -80.5), size=(4.0, 4.0, 5.0), probability=0.41, label="mass",
                  status=ReviewStatus.FLAGGED),
    ])


def test_roi_file_is_valid_and_slicer_shaped(tmp_path: Path, markups_schema: dict) -> None:
    path = write_roi_markups(_detections(), tmp_path / "nodules.mrk.json")
    document = json.loads(path.read_text())
    jsonschema.validate(document, markups_schema)
    assert document["@schema"].endswith("markups-schema-v1.0.3.json#")
    first, second = document["markups"]
    assert first["type"] == "ROI" and first["roiType"] == "Box" and first["coordinateSystem"] == "LPS"
    assert first["orientation"] == AXIS_ALIGNED_LPS_ORIENTATION
    assert first["center"] == [-12.5, 40.25, -101.0] and first["size"] == [8.0, 9.0, 10.0]
    [point] = first["controlPoints"]
    assert point["position"] == first["center"]
    fields = parse_description(point["description"])
    assert fields == {"probability": "0.93", "diameter_mm": "8.7", "label": "nodule", "status": "notstarted"}
    assert {m["name"]: m["value"] for m in first["measurements"]} == {"probability": 0.93, "diameter": 8.7}
    assert parse_description(second["controlPoints"][0]["description"])["status"] == "flagged"
    assert second["name"] == "mass 2"


def test_roi_round_trip(tmp_path: Path) -> None:
    original = _detections()
    again = read_roi_markups(write_roi_markups(original, tmp_path / "boxes.mrk.json"))
    assert len(again) == 2
    for a, b in zip(original.items, again.items):
        assert np.allclose(a.center, b.center) and np.allclose(a.size, b.size)
        assert (a.probability, a.diameter_mm, a.label, a.status) == (b.probability, b.diameter_mm, b.label,
                                                                     b.status)


def test_roi_written_by_slicer_in_ras_is_read_as_lps(tmp_path: Path, markups_schema: dict) -> None:
    # What Slicer writes for an axis-aligned box when asked for RAS: identity orientation, R/A signs flipped.
    document = {"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
                           "Resources/Schema/markups-schema-v1.0.3.json#",
                "markups": [{"type": "ROI", "coordinateSystem": "RAS", "name": "R", "roiType": "Box",
                             "center": [10.0, -20.0, 30.0], "orientation": [1, 0, 0, 0, 1, 0, 0, 0, 1],
                             "size": [5.0, 6.0, 7.0], "controlPoints": []}]}
    jsonschema.validate(document, markups_schema)
    path = tmp_path / "ras.mrk.json"
    path.write_text(json.dumps(document))
    [detection] = read_roi_markups(path).items
    assert detection.center == (-10.0, 20.0, 30.0) and detection.size == (5.0, 6.0, 7.0)
    assert detection.probability == 1.0 and detection.status is ReviewStatus.NOT_STARTED


def test_rotated_roi_and_bad_files_are_input_errors(tmp_path: Path) -> None:
    path = write_roi_markups(_detections(), tmp_path / "boxes.mrk.json")
    document = json.loads(path.read_text())
    document["markups"][0]["orientation"] = [0.8, -0.6, 0, 0.6, 0.8, 0, 0, 0, 1]
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match="rotated"):
        read_roi_markups(path)
    broken = tmp_path / "broken.mrk.json"
    broken.write_text("{not json")
    with pytest.raises(InputError, match="JSON"):
        read_roi_markups(broken)
    document["markups"][0]["center"] = [1, 2]
    path.write_text(json.dumps(document))
    with pytest.raises(InputError, match="center"):
        read_roi_markups(path)


def test_empty_detections_write_a_valid_empty_file(tmp_path: Path, markups_schema: dict) -> None:
    path = write_roi_markups(Detections([]), tmp_path / "none.mrk.json")
    jsonschema.validate(json.loads(path.read_text()), markups_schema)
    assert len(read_roi_markups(path)) == 0


def test_point_markups(tmp_path: Path, markups_schema: dict) -> None:
    points = np.array([[1.0, 2.0, 3.0], [-4.5, 5.5, -6.25]])
    path = write_point_markups(points, tmp_path / "landmarks.mrk.json", labels=["AC", "PC"],
                               descriptions=["anterior commissure", ""])
    document = json.loads(path.read_text())
    jsonschema.validate(document, markups_schema)
    assert document["markups"][0]["type"] == "Fiducial"
    positions, labels = read_point_markups(path)
    assert np.allclose(positions, points) and labels == ["AC", "PC"]
    with pytest.raises(ValueError):
        write_point_markups(points, tmp_path / "bad.mrk.json", labels=["only one"])
    assert not (tmp_path / "bad.mrk.json").exists()
