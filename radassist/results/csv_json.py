"""Tables people and scripts read: detections as a LUNA16 submission CSV, classifications and reports as JSON + CSV.

LUNA16 submissions are ``seriesuid,coordX,coordY,coordZ,probability``, the coordinates being world millimetres as
the ``.mhd`` header defines them, which is ITK's LPS frame. RadAssist's Detections are already LPS mm, so the
numbers go in unchanged; ``diameter_mm`` is added as a sixth column (empty when unknown), which LUNA16's
evaluation script ignores. Findings ranked by a heuristic that is not a probability (the classical nodule candidate
detector) get a ``score`` column instead of ``probability``; the reader takes either. JSON is written with plain
JSON values only (NumPy scalars and arrays converted, NaN and infinity become null) so any JSON reader, including a
strict one, accepts it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.results.detections import Detection, Detections
from radassist.results.tables import Classification, ClassifiedImage, Report
from radassist.volume import SourceInfo

LUNA16_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
DETECTION_COLUMNS = LUNA16_COLUMNS + ["diameter_mm"]
SCORE_COLUMNS = ("probability", "score")  # the ranking column: a model's probability, or a heuristic score


def plain_json(value: Any) -> Any:
    """``value`` with every NumPy, Path, Enum, tuple and dataclass turned into plain JSON types."""
    if isinstance(value, enum.Enum):
        return plain_json(value.value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (str, type(None))):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return plain_json(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain_json(v) for v in value]
    raise TypeError(f"cannot write {type(value).__name__} as JSON: {value!r}")


def _json_text(document: Any) -> str:
    return json.dumps(plain_json(document), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def _cell(value: Any) -> str:
    value = plain_json(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _write_csv(temp: Path, columns: list[str], rows: Iterable[Mapping[str, Any]]) -> None:
    with temp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])


def detection_columns(groups: Iterable[Detections]) -> list[str]:
    """The CSV columns for ``groups``: LUNA16's with ``probability`` when every group holds probabilities, else
    with ``score`` (a heuristic ranking is never written as a probability, not even beside real ones)."""
    name = "probability" if all(group.score_name == "probability" for group in groups) else "score"
    return ["seriesuid", "coordX", "coordY", "coordZ", name, "diameter_mm"]


def write_detections_csv(detections: Detections | Iterable[Detections], path: str | Path) -> Path:
    """LUNA16 submission CSV (plus ``diameter_mm``) for one series or for many (one Detections per series); the
    ranking column is ``probability`` or ``score`` (see :func:`detection_columns`)."""
    path = Path(path)
    groups = [detections] if isinstance(detections, Detections) else list(detections)
    columns = detection_columns(groups)
    rows = [{"seriesuid": group.series_uid, "coordX": d.center[0], "coordY": d.center[1], "coordZ": d.center[2],
             columns[4]: d.probability, "diameter_mm": d.diameter_mm}
            for group in groups for d in group.items]
    with atomic_path(path) as temp:
        _write_csv(temp, columns, rows)
    return path


def _number(row: dict[str, str], column: str, path: Path, line: int, default: float | None = None) -> float | None:
    text = (row.get(column) or "").strip()
    if not text:
        if default is None and column != "diameter_mm":
            raise InputError(path, f"line {line}: column {column!r} is empty")
        return default
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, f"line {line}: {column} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise InputError(path, f"line {line}: {column} is not finite: {text!r}")
    return value


def read_detections_csv(path: str | Path) -> dict[str, Detections]:
    """Read a LUNA16-style CSV into Detections per ``seriesuid`` (in file order).

    The ranking column is ``probability`` or ``score`` (the Detections then say which, in ``score_name``); a file
    with neither (LUNA16's ``annotations.csv``) reads as certain findings (1.0). Boxes are cubes of side
    ``diameter_mm`` when the diameter is known, else of size 0.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ("seriesuid", "coordX", "coordY", "coordZ") if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(path, f"missing column(s) {missing}; expected {DETECTION_COLUMNS}")
            fields = reader.fieldnames or []
            if all(name in fields for name in SCORE_COLUMNS):
                raise InputError(path, "has both a 'probability' and a 'score' column; keep the one its findings "
                                       "were ranked by")
            score_name = "score" if "score" in fields else "probability"
            groups: dict[str, list[Detection]] = {}
            for line, row in enumerate(reader, start=2):
                center = tuple(_number(row, c, path, line) for c in ("coordX", "coordY", "coordZ"))
                probability = _number(row, score_name, path, line, default=1.0)
                diameter = _number(row, "diameter_mm", path, line)
                size = (diameter,) * 3 if diameter is not None else (0.0, 0.0, 0.0)
                try:
                    detection = Detection(center=center, size=size, probability=probability, diameter_mm=diameter,
                                          score_name=score_name)
                except ValueError as exc:
                    raise InputError(path, f"line {line}: {exc}") from None
                groups.setdefault(row["seriesuid"], []).append(detection)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"not a readable CSV file ({exc})") from None
    return {uid: Detections(items=items, source=SourceInfo(series_instance_uid=uid, path=str(path)),
                            metadata={"score_name": score_name})
            for uid, items in groups.items()}


def _classified_row(level: str, item: ClassifiedImage) -> dict[str, Any]:
    return {"level": level, "id": item.image_id, **item.probabilities, **item.attributes}


def write_classification(classification: Classification, json_path: str | Path, csv_path: str | Path) -> None:
    """JSON with everything, and a CSV with one row per image and per group (level, id, classes, attributes)."""
    document = {"model": classification.model, "metadata": classification.metadata,
                "images": [dataclasses.asdict(i) for i in classification.images],
                "groups": [dataclasses.asdict(g) for g in classification.groups]}
    rows = [_classified_row("image", i) for i in classification.images] + \
        [_classified_row("group", g) for g in classification.groups]
    columns = _columns(["level", "id"], rows)
    _write_pair(document, Path(json_path), columns, rows, Path(csv_path))


def write_report(report: Report, json_path: str | Path, csv_path: str | Path) -> None:
    """JSON with title, summary, units, rows and metadata; a CSV of the rows (of the summary when there are none)."""
    document = {"title": report.title, "summary": report.summary, "units": report.units, "rows": report.rows,
                "metadata": report.metadata}
    rows = report.rows if report.rows else [report.summary]
    _write_pair(document, Path(json_path), _columns([], rows), rows, Path(csv_path))


def _columns(first: list[str], rows: list[Mapping[str, Any]]) -> list[str]:
    columns = list(first)
    for row in rows:
        columns += [str(k) for k in row if str(k) not in columns]
    return columns


def _write_pair(document: Any, json_path: Path, columns: list[str], rows: list[Mapping[str, Any]],
                csv_path: Path) -> None:
    """Write the JSON and the CSV together: both appear, or (on any error) neither does."""
    text = _json_text(document)  # fails before anything touches the disk when a value is not JSON-able
    with contextlib.ExitStack() as stack:
        temp_json = stack.enter_context(atomic_path(json_path))
        temp_csv = stack.enter_context(atomic_path(csv_path))
        temp_json.write_text(text, encoding="utf-8")
        _write_csv(temp_csv, columns, [{str(k): v for k, v in row.items()} for row in rows])
