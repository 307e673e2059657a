"""Pictures for people who judge an infection model: its worst and best slices, reference beside prediction.

Each row is one slice: the picture, the reference drawn on it, the prediction drawn on it (class colours from the
model's label table), titled with the slice's name and its per-image Dice. Slices whose reference is empty have
no Dice and are not ranked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from radassist.io.atomic import atomic_path
from radassist.results.preview import paint_labels

PANEL = 200  # pixels: every picture is fitted into a square of this size
TITLE = 18
GAP = 6


@dataclass(frozen=True)
class RankedSlice:
    name: str
    dice: float
    picture: np.ndarray  # (y, x) uint8
    reference: np.ndarray  # (y, x) labels
    prediction: np.ndarray  # (y, x) labels


def rank_slices(names: Sequence[str], dice: Sequence[float], count: int) -> tuple[list[int], list[int]]:
    """Indices of the ``count`` worst (lowest Dice first) and ``count`` best (highest first) slices with a Dice;
    a slice is in at most one of the two lists."""
    scored = sorted((d, i) for i, d in enumerate(dice) if not math.isnan(d))
    worst = [i for _, i in scored[:count]]
    best = [i for _, i in reversed(scored[count:])][:count] if len(scored) > count else []
    return worst, best


def _fit(rgb: np.ndarray) -> Image.Image:
    picture = Image.fromarray(rgb)
    scale = PANEL / max(picture.size)
    return picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                          Image.Resampling.NEAREST)


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _header(draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, title: str,
            legend: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
    """The title, and under it one colour square and name per class."""
    draw.text((GAP, 2), title, fill=(255, 255, 255), font=font)
    x = GAP
    for name, colour in legend:
        draw.rectangle([x, TITLE + 4, x + 12, TITLE + 14], fill=colour)
        draw.text((x + 16, TITLE + 2), name, fill=(255, 255, 255), font=font)
        x += 24 + int(draw.textlength(name, font=font))


def draw_best_worst(worst: Sequence[RankedSlice], best: Sequence[RankedSlice],
                    colours: dict[int, tuple[int, int, int]], legend: Sequence[tuple[str, tuple[int, int, int]]],
                    title: str) -> Image.Image:
    """The figure: a header with the legend, then one row per slice (worst first, then best)."""
    rows = [("worst", s) for s in worst] + [("best", s) for s in best]
    width = 3 * PANEL + 4 * GAP
    header = 2 * TITLE + GAP
    canvas = Image.new("RGB", (width, header + len(rows) * (PANEL + TITLE + GAP)), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    _header(draw, font, title, legend)
    for row, (kind, item) in enumerate(rows):
        top = header + row * (PANEL + TITLE + GAP)
        draw.text((GAP, top), f"{kind}: slice {item.name}, Dice {item.dice:.3f}   (picture | reference | prediction)",
                  fill=(255, 255, 255), font=font)
        panels = [np.repeat(item.picture[..., None], 3, axis=2), paint_labels(item.picture, item.reference, colours),
                  paint_labels(item.picture, item.prediction, colours)]
        for column, rgb in enumerate(panels):
            canvas.paste(_fit(rgb), (GAP + column * (PANEL + GAP), top + TITLE))
    return canvas


def write_best_worst_png(path: str | Path, names: Sequence[str], dice: Sequence[float],
                         pictures: Sequence[np.ndarray], references: Sequence[np.ndarray],
                         predictions: Sequence[np.ndarray], colours: dict[int, tuple[int, int, int]],
                         legend: Sequence[tuple[str, tuple[int, int, int]]], count: int = 3,
                         title: str = "Worst and best slices by per-image Dice") -> tuple[list[str], list[str]]:
    """Rank the slices by ``dice`` and write the figure atomically; returns the names of the worst and best."""
    worst, best = rank_slices(names, dice, count)

    def item(index: int) -> RankedSlice:
        return RankedSlice(names[index], float(dice[index]), np.asarray(pictures[index], dtype=np.uint8),
                           references[index], predictions[index])

    figure = draw_best_worst([item(i) for i in worst], [item(i) for i in best], colours, legend, title)
    with atomic_path(path) as temp:
        figure.save(temp, format="PNG")
    return [names[i] for i in worst], [names[i] for i in best]


def write_picture_preview(path: str | Path, picture: np.ndarray, labels: np.ndarray,
                          colours: dict[int, tuple[int, int, int]], legend: Sequence[tuple[str, tuple[int, int, int]]],
                          title: str) -> None:
    """The picture and the picture with the segmentation drawn on it, side by side, with a legend (atomically)."""
    picture = np.asarray(picture, dtype=np.uint8)
    panels = [Image.fromarray(np.repeat(picture[..., None], 3, axis=2)),
              Image.fromarray(paint_labels(picture, labels, colours))]
    width, height = panels[0].size
    canvas = Image.new("RGB", (2 * width + 3 * GAP, height + 2 * TITLE + GAP), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    _header(draw, font, title, legend)
    for column, panel in enumerate(panels):
        canvas.paste(panel, (GAP + column * (width + GAP), 2 * TITLE + GAP))
    with atomic_path(path) as temp:
        canvas.save(temp, format="PNG")


def label_colours(label_table: Sequence[dict]) -> tuple[dict[int, tuple[int, int, int]],
                                                          list[tuple[str, tuple[int, int, int]]]]:
    """Colours by label value and the legend (name, colour) of a label table's findings (value > 0)."""
    colours = {int(e["value"]): tuple(int(c) for c in (e.get("color") or (255, 80, 80))[:3])
               for e in label_table if int(e["value"]) > 0}
    legend = [(str(e["name"]), colours[int(e["value"])]) for e in sorted(label_table, key=lambda e: int(e["value"]))
              if int(e["value"]) > 0]
    return colours, legend
