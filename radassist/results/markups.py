"""Detections <-> Slicer markups ``.mrk.json``: one ROI per finding, and point lists for landmarks.

ROI orientation, as Slicer's ``vtkMRMLMarkupsROIJsonStorageNode`` writes and reads it: ``orientation`` is the
ROI's object-to-node 3x3 matrix flattened row by row (so ``[o[0], o[3], o[6]]`` is the ROI's x axis). Slicer keeps
that matrix in RAS; for a file whose ``coordinateSystem`` is LPS it negates the first six numbers (the R and A
rows), exactly as it negates the first two coordinates of ``center``. An ROI aligned with the patient axes has the
identity matrix in RAS, so in an LPS file it is ``[-1, 0, 0, 0, -1, 0, 0, 0, 1]``. ``size`` is measured along the
ROI's own axes, which for an axis-aligned box are the patient axes, so a Detection's (x, y, z) size is written
unchanged. A ``Box`` ROI as Slicer saves it carries one control point, at its centre.

What Slicer keeps of a finding: its reader ignores extra keys on a markup, but keeps each control point's
``description`` (shown and editable in the Markups module's control point table) and the ``measurements`` list.
So the ranking value, diameter, label and review status go into the control point description as ``key=value;
...`` (the part :func:`read_roi_markups` reads back), and the ranking value and diameter are also stored as
measurements. The ranking value is keyed by what it is: ``probability`` for a model, ``score`` for a heuristic
(the classical nodule candidate detector), as the Detection's ``score_name`` says.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.io.json_files import read_json
from radassist.results.detections import Detection, Detections
from radassist.results.segments import ReviewStatus
from radassist.volume import SourceInfo

MARKUPS_SCHEMA_URL = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
                      "Schema/markups-schema-v1.0.3.json#")
AXIS_ALIGNED_LPS_ORIENTATION = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]
_STATUS_COLOURS = {  # ROI colour tells the reviewer at a glance what is left to do.
    ReviewStatus.NOT_STARTED: [1.0, 0.84, 0.0],
    ReviewStatus.IN_PROGRESS: [1.0, 0.5, 0.0],
    ReviewStatus.COMPLETED: [0.2, 0.8, 0.2],
    ReviewStatus.FLAGGED: [1.0, 0.1, 0.1],
}


def describe_detection(detection: Detection) -> str:
    """The control point description: ``key=value`` pairs that people read and :func:`parse_description` parses."""
    parts = [f"{detection.score_name}={detection.probability:.6g}"]
    if detection.diameter_mm is not None:
        parts.append(f"diameter_mm={detection.diameter_mm:.6g}")
    parts += [f"label={detection.label}", f"status={detection.status.value}"]
    return "; ".join(parts)


def parse_description(text: str) -> dict[str, str]:
    """Inverse of :func:`describe_detection` (unknown keys are kept, malformed parts ignored)."""
    fields = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _roi_markup(detection: Detection, index: int) -> dict[str, Any]:
    name = f"{detection.label} {index}"
    meaning = "model probability 0..1" if detection.score_name == "probability" else \
        "heuristic score 0..1 (a ranking, not a probability)"
    measurements = [{"name": detection.score_name, "enabled": True, "value": detection.probability, "units": "",
                     "description": meaning, "printFormat": "%.3f"}]
    if detection.diameter_mm is not None:
        measurements.append({"name": "diameter", "enabled": True, "value": detection.diameter_mm, "units": "mm",
                             "description": "estimated diameter", "printFormat": "%.1f %s"})
    return {
        "type": "ROI",
        "coordinateSystem": "LPS",
        "coordinateUnits": "mm",
        "name": name,
        "locked": False,
        "fixedNumberOfControlPoints": False,
        "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": 1,
        "roiType": "Box",
        "insideOut": False,
        "center": list(detection.center),
        "orientation": list(AXIS_ALIGNED_LPS_ORIENTATION),
        "size": list(detection.size),
        "controlPoints": [{
            "id": "1", "label": name, "description": describe_detection(detection), "associatedNodeID": "",
            "position": list(detection.center), "orientation": list(AXIS_ALIGNED_LPS_ORIENTATION),
            "selected": True, "locked": False, "visibility": True, "positionStatus": "defined"}],
        "measurements": measurements,
        "display": {"visibility": True, "opacity": 1.0, "color": _STATUS_COLOURS[detection.status],
                    "selectedColor": _STATUS_COLOURS[detection.status], "propertiesLabelVisibility": True,
                    "pointLabelsVisibility": False},
    }


def _write_json(document: dict[str, Any], path: Path) -> Path:
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")
    return path


def write_roi_markups(detections: Detections, path: str | Path) -> Path:
    """One ROI markup per detection in one ``.mrk.json`` (Slicer loads each as its own ROI node)."""
    markups = [_roi_markup(d, i + 1) for i, d in enumerate(detections.items)]
    return _write_json({"@schema": MARKUPS_SCHEMA_URL, "markups": markups}, Path(path))


def write_point_markups(points_lps: np.ndarray, path: str | Path, labels: Sequence[str] | None = None,
                        name: str = "landmarks", descriptions: Sequence[str] | None = None) -> Path:
    """A point list (``Fiducial`` markup) of world points (N, 3) in LPS mm, e.g. registration landmarks."""
    points = np.asarray(points_lps, dtype=float).reshape(-1, 3)
    if not np.all(np.isfinite(points)):
        raise ValueError("landmark positions must be finite")
    labels = list(labels) if labels is not None else [f"{name}-{i + 1}" for i in range(len(points))]
    descriptions = list(descriptions) if descriptions is not None else [""] * len(points)
    if len(labels) != len(points) or len(descriptions) != len(points):
        raise ValueError(f"{len(points)} points need as many labels and descriptions")
    control_points = [{"id": str(i + 1), "label": str(label), "description": str(text), "associatedNodeID": "",
                       "position": p.tolist(), "orientation": list(AXIS_ALIGNED_LPS_ORIENTATION),
                       "selected": True, "locked": False, "visibility": True, "positionStatus": "defined"}
                      for i, (p, label, text) in enumerate(zip(points, labels, descriptions))]
    markup = {"type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "name": name,
              "locked": False, "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d",
              "lastUsedControlPointNumber": len(points), "controlPoints": control_points,
              "measurements": [], "display": {"visibility": True, "pointLabelsVisibility": True}}
    return _write_json({"@schema": MARKUPS_SCHEMA_URL, "markups": [markup]}, Path(path))


def _load_markups(path: Path) -> list[dict[str, Any]]:
    document = read_json(path, "markups file")
    markups = document.get("markups") if isinstance(document, dict) else None
    if not isinstance(markups, list):
        raise InputError(path, "not a Slicer markups file: no 'markups' list")
    return markups


def _vector(markup: dict, key: str, length: int, path: Path, default: list[float] | None = None) -> np.ndarray:
    value = markup.get(key, default)
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        array = np.empty(0)
    if array.shape != (length,) or not np.all(np.isfinite(array)):
        raise InputError(path, f"markup {markup.get('name', '')!r}: {key!r} must be {length} finite numbers")
    return array


def _lps(vector: np.ndarray, markup: dict, path: Path) -> np.ndarray:
    system = markup.get("coordinateSystem", "LPS")
    if system not in ("LPS", "RAS"):
        raise InputError(path, f"markup {markup.get('name', '')!r}: unknown coordinateSystem {system!r}")
    return vector * np.array([-1.0, -1.0, 1.0]) if system == "RAS" else vector


def _detection_from_roi(markup: dict, path: Path) -> Detection:
    name = markup.get("name", "")
    center = _lps(_vector(markup, "center", 3, path), markup, path)
    size = _vector(markup, "size", 3, path)
    orientation = _vector(markup, "orientation", 9, path, default=AXIS_ALIGNED_LPS_ORIENTATION).reshape(3, 3)
    if markup.get("coordinateSystem", "LPS") == "RAS":
        orientation = np.diag([-1.0, -1.0, 1.0]) @ orientation
    # Only boxes aligned with the patient axes are Detections; a rotated ROI would need an oriented box.
    if not np.allclose(np.abs(orientation), np.eye(3), atol=1e-3):
        raise InputError(path, f"ROI {name!r} is rotated; only axis-aligned ROIs can be read as detections")
    points = markup.get("controlPoints") or []
    fields = parse_description(points[0].get("description", "")) if points else {}
    score_name = "score" if "score" in fields and "probability" not in fields else "probability"
    try:
        probability = float(fields.get(score_name, 1.0))
        diameter = float(fields["diameter_mm"]) if "diameter_mm" in fields else None
        status = ReviewStatus(fields.get("status", ReviewStatus.NOT_STARTED.value))
        label = fields.get("label") or name.rsplit(" ", 1)[0] or "finding"
        return Detection(center=tuple(center), size=tuple(size), probability=probability, label=label,
                         diameter_mm=diameter if diameter is None or math.isfinite(diameter) else None,
                         status=status, extra={"name": name}, score_name=score_name)
    except ValueError as exc:
        raise InputError(path, f"ROI {name!r}: {exc}") from None


def read_roi_markups(path: str | Path) -> Detections:
    """Read every ROI markup of a ``.mrk.json`` back into Detections (LPS mm), in file order."""
    path = Path(path)
    markups = _load_markups(path)
    items = [_detection_from_roi(m, path) for m in markups if isinstance(m, dict) and m.get("type") == "ROI"]
    if not items and markups:
        raise InputError(path, "the file holds no ROI markups")
    names = {d.score_name for d in items}
    metadata = {"score_name": names.pop()} if len(names) == 1 else {}
    return Detections(items=items, source=SourceInfo(path=str(path)), metadata=metadata)


def read_point_markups(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """The control points of every point list (``Fiducial``) in the file: (N, 3) LPS mm and their labels."""
    path = Path(path)
    positions, labels = [], []
    for markup in _load_markups(path):
        if not isinstance(markup, dict) or markup.get("type") != "Fiducial":
            continue
        for point in markup.get("controlPoints") or []:
            positions.append(_lps(_vector(point, "position", 3, path), markup, path))
            labels.append(str(point.get("label", "")))
    return np.asarray(positions, dtype=float).reshape(-1, 3), labels
