"""Curves people read: a classifier's ROC curves, and a training's loss and validation metrics per epoch.

Drawn with matplotlib (the Agg backend: no display needed) and written atomically as 8-bit PNGs. The training
curves are read back from ``train_log.csv``, the one log every training writes, so a curve always shows what
the log says: training losses on the left panel, validation numbers on the right, the kept epoch marked on both.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from radassist.io.atomic import atomic_path

CURVES_FILE = "training_curves.png"
KEPT_COLUMNS = ("kept", "best")  # a log column that marks the epoch whose weights were kept (1/True)
SKIPPED_COLUMNS = ("epoch", "seconds", "lr", "lr_backbone", "learning_rate", "train_slabs", "train_positive_slabs")


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def unit_colour(colour: Sequence[float]) -> tuple[float, ...]:
    """A 0-255 colour in matplotlib's 0-1 units."""
    return tuple(c / 255 for c in colour)


def rendered(figure):
    """The figure drawn into an RGB PIL image (8-bit, what every viewer shows), then closed."""
    from PIL import Image

    try:
        figure.canvas.draw()
        size = figure.canvas.get_width_height()
        return Image.frombuffer("RGBA", size, figure.canvas.buffer_rgba()).convert("RGB")
    finally:
        pyplot().close(figure)


def save_figure(figure, path: str | Path) -> Path:
    """Write the figure as a PNG on white, atomically, then close it."""
    plt = pyplot()
    path = Path(path)
    try:
        with atomic_path(path) as temp:
            figure.savefig(temp, format="png", dpi=100, facecolor="white")
    finally:
        plt.close(figure)
    return path


# -- ROC ------------------------------------------------------------------------------------------------------------

def write_roc_png(curves: Mapping[str, tuple[Sequence[float], Sequence[float], Mapping[str, object]]],
                  path: str | Path, title: str = "ROC") -> Path:
    """One ROC curve per entry ``name -> (labels 0/1, scores, AUC result as dict)``; the legend gives each AUC
    with its confidence interval. Entries with one class only (no curve exists) are listed as such."""
    from radassist.metrics.classification import roc_curve

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(5.6, 5.2))
    axes.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1, label="chance (AUC 0.5)")
    for name, (labels, scores, result) in curves.items():
        if result.get("auc") is None:
            axes.plot([], [], linestyle="none", label=f"{name}: no curve ({result.get('reason', 'one class')})")
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        low, high = result.get("ci_low"), result.get("ci_high")
        interval = f" ({float(low):.2f}-{float(high):.2f})" if low is not None and high is not None else ""
        axes.step(fpr, tpr, where="post", linewidth=2, label=f"{name}: AUC {float(result['auc']):.3f}{interval}")
    axes.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="false positive rate (1 - specificity)",
             ylabel="true positive rate (sensitivity)", title=title, aspect="equal")
    axes.grid(True, color="0.9")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


# -- training -------------------------------------------------------------------------------------------------------

def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_log(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def _is_kept(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes")


def write_training_curves(log: str | Path, path: str | Path | None = None, title: str = "training") -> Path:
    """The loss and validation-metric curves of ``log`` (a train_log.csv) as a PNG beside it (default
    ``training_curves.png``): the training columns (losses and their parts) on the left, the validation columns
    (names starting with ``val``: loss, Dice, F1, ...) on the right; the kept epoch (a ``kept`` or ``best``
    column) is marked on both."""
    log = Path(log)
    rows = read_log(log)
    path = Path(path) if path is not None else log.with_name(CURVES_FILE)
    columns = list(rows[0]) if rows else []
    epochs = [_number(row.get("epoch", "")) or index + 1 for index, row in enumerate(rows)]
    series = {name: [_number(row.get(name, "")) for row in rows] for name in columns if name not in SKIPPED_COLUMNS
              and name not in KEPT_COLUMNS}
    series = {name: values for name, values in series.items() if any(v is not None for v in values)}
    losses = {name: values for name, values in series.items() if not name.startswith("val")}
    metrics = {name: values for name, values in series.items() if name.startswith("val")}
    kept_column = next((name for name in KEPT_COLUMNS if name in columns), None)
    kept = [epoch for epoch, row in zip(epochs, rows) if kept_column and _is_kept(row[kept_column])]

    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for axes, group, label in ((left, losses, "training loss"), (right, metrics, "validation")):
        for name, values in group.items():
            points = [(e, v) for e, v in zip(epochs, values) if v is not None]
            axes.plot([e for e, _ in points], [v for _, v in points], marker="o", markersize=3, label=name)
        for epoch in kept[-1:]:
            axes.axvline(epoch, color="0.5", linestyle=":", label=f"kept epoch {epoch:g}")
        axes.set(xlabel="epoch", ylabel=label)
        axes.grid(True, color="0.9")
        if group:
            axes.legend(fontsize=8)
        else:
            axes.text(0.5, 0.5, f"no {label} recorded", ha="center", va="center", transform=axes.transAxes)
    if epochs:
        for axes in (left, right):
            axes.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
            axes.xaxis.get_major_locator().set_params(integer=True)
    left.set_title(f"{title}: losses")
    right.set_title(f"{title}: validation")
    figure.tight_layout()
    return save_figure(figure, path)


def write_log(rows: Sequence[Mapping[str, object]], path: str | Path) -> Path:
    """A train_log.csv from per-epoch dicts (the columns of the first row, None written as empty)."""
    path = Path(path)
    columns = list(rows[0]) if rows else ["epoch"]
    with atomic_path(path) as temp, open(temp, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(name)) for name in columns])
    return path


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    return f"{value:.6g}" if isinstance(value, float) else value


def log_and_curves(rows: Sequence[Mapping[str, object]], folder: Path, title: str) -> list[Path]:
    """train_log.csv and training_curves.png in ``folder``, for a training that keeps its history in memory."""
    log = write_log(rows, Path(folder) / "train_log.csv")
    return [log, write_training_curves(log, title=title)]


__all__ = ["CURVES_FILE", "log_and_curves", "read_log", "write_log", "write_roc_png", "write_training_curves"]
