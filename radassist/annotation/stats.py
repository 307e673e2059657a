"""``radassist dataset stats DIR``: how much annotators changed the AI's results, per label and per model version.

Counted over the latest version of every case (what training reads), from each case's provenance record.
Means leave out undefined values (a Dice of two empty masks, a surface distance of an empty mask).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from radassist.annotation.export import latest_entries, read_index
from radassist.annotation.provenance import read_provenance


def _mean(values: Iterable[float | None]) -> float | None:
    defined = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return round(sum(defined) / len(defined), 6) if defined else None


@dataclass
class LabelStats:
    """One segment name across the cases that have it (in the AI result or the correction)."""

    cases: int = 0
    unchanged: int = 0
    edited: int = 0
    added: int = 0
    removed: int = 0
    mean_dice: float | None = None
    mean_abs_volume_change_percent: float | None = None
    mean_assd_mm: float | None = None
    mean_hausdorff_mm: float | None = None


@dataclass
class ModelStats:
    """Everything corrected in the results of one model version."""

    cases: int = 0
    mean_dice: float | None = None
    boxes: dict[str, int] = field(default_factory=lambda: {"unchanged": 0, "moved": 0, "deleted": 0, "added": 0})
    label_changes: int = 0
    labels_checked: int = 0
    mean_tre_before_mm: float | None = None
    mean_tre_after_mm: float | None = None


@dataclass
class DatasetStats:
    root: str
    task: str
    layout: str
    cases: int
    versions: int
    annotators: dict[str, int]
    not_approved_items: int
    labels: dict[str, LabelStats]
    models: dict[str, ModelStats]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def dataset_stats(root: str | Path) -> DatasetStats:
    """Summarise the export at ``root`` (InputError when it is not one)."""
    root = Path(root)
    index = read_index(root)
    label_rows: dict[str, list[dict]] = defaultdict(list)
    model_rows: dict[str, list] = defaultdict(list)
    annotators: dict[str, int] = defaultdict(int)
    not_approved = 0
    entries = latest_entries(index)
    for _case, entry in entries:
        record = read_provenance(root / entry["provenance"])
        annotators[record.annotator or "unknown"] += 1
        not_approved += len(record.review.get("not_approved", []))
        for change in record.changes.get("segments", []):
            label_rows[change["name"]].append(change)
        model_rows[record.model.label].append(record)
    labels = {}
    for name, rows in sorted(label_rows.items()):
        stats = LabelStats(cases=len(rows))
        for row in rows:
            setattr(stats, row["change"], getattr(stats, row["change"]) + 1)
        stats.mean_dice = _mean(r["dice"] for r in rows)
        stats.mean_abs_volume_change_percent = _mean(
            abs(r["volume_change_percent"]) if r["volume_change_percent"] is not None else None for r in rows)
        stats.mean_assd_mm = _mean(r["assd_mm"] for r in rows)
        stats.mean_hausdorff_mm = _mean(r["hausdorff_mm"] for r in rows)
        labels[name] = stats
    models = {}
    for name, records in sorted(model_rows.items()):
        stats = ModelStats(cases=len(records))
        stats.mean_dice = _mean(c["dice"] for r in records for c in r.changes.get("segments", []))
        before, after = [], []
        for record in records:
            boxes = record.changes.get("boxes")
            if boxes:
                for key in stats.boxes:
                    stats.boxes[key] += int(boxes.get(key, 0))
            for change in record.changes.get("labels", []):
                stats.labels_checked += 1
                stats.label_changes += int(bool(change.get("changed")))
            landmarks = record.changes.get("landmarks") or {}
            before += landmarks.get("before_mm") or []
            after += landmarks.get("after_mm") or []
        stats.mean_tre_before_mm, stats.mean_tre_after_mm = _mean(before), _mean(after)
        models[name] = stats
    versions = sum(len(info["versions"]) for info in index["cases"].values())
    return DatasetStats(root=str(root), task=str(index["task"]), layout=str(index.get("layout", "")),
                        cases=len(entries), versions=versions, annotators=dict(sorted(annotators.items())),
                        not_approved_items=not_approved, labels=labels, models=models)


def _text(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.3f}{unit}"


def format_stats(stats: DatasetStats) -> str:
    """The summary as a few plain-text tables."""
    lines = [f"{stats.root}: {stats.task} export ({stats.layout}), {stats.cases} case(s), {stats.versions} "
             f"version(s) in all",
             "annotators: " + (", ".join(f"{name} ({n})" for name, n in stats.annotators.items()) or "-"),
             f"items exported without approval: {stats.not_approved_items}"]
    if stats.labels:
        lines += ["", f"{'label':<24}{'cases':>6}{'unchgd':>8}{'edited':>8}{'added':>7}{'removed':>8}"
                      f"{'Dice':>8}{'|dV| %':>9}{'ASSD mm':>9}{'HD mm':>9}"]
        for name, s in stats.labels.items():
            lines.append(f"{name[:23]:<24}{s.cases:>6}{s.unchanged:>8}{s.edited:>8}{s.added:>7}{s.removed:>8}"
                         f"{_text(s.mean_dice):>8}{_text(s.mean_abs_volume_change_percent):>9}"
                         f"{_text(s.mean_assd_mm):>9}{_text(s.mean_hausdorff_mm):>9}")
    lines += ["", f"{'model':<28}{'cases':>6}{'Dice':>8}  boxes kept/moved/deleted/added  labels changed  "
                  f"TRE before/after mm"]
    for name, s in stats.models.items():
        boxes = "/".join(str(s.boxes[k]) for k in ("unchanged", "moved", "deleted", "added"))
        labels = f"{s.label_changes}/{s.labels_checked}" if s.labels_checked else "-"
        tre = f"{_text(s.mean_tre_before_mm)}/{_text(s.mean_tre_after_mm)}"
        lines.append(f"{name[:27]:<28}{s.cases:>6}{_text(s.mean_dice):>8}  {boxes:<31}{labels:<16}{tre}")
    return "\n".join(lines)
