"""The FROC curve as a PNG, drawn with Pillow (matplotlib is not a dependency).

The plot has LUNA16's look: x is false positives per scan on a log-2 axis with ticks at 1/8 ... 8, y is
sensitivity 0-1 with a grid every 0.1, the curve solid, its bootstrap confidence band shaded, and the seven
CPM operating points marked. :class:`FrocPlot` keeps the mapping from (FP rate, sensitivity) to pixels so
callers and tests can find the curve on the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from radassist.io.atomic import atomic_path
from radassist.metrics.froc import PLOT_FP_RANGE, FrocResult, plot_grid, sensitivity_at

WIDTH, HEIGHT = 720, 540
LEFT, RIGHT, TOP, BOTTOM = 78, 24, 46, 70  # margins around the plot area, pixels
BACKGROUND = (255, 255, 255)
AXIS_COLOUR = (40, 40, 40)
GRID_COLOUR = (222, 222, 222)
TEXT_COLOUR = (20, 20, 20)
CURVE_COLOUR = (31, 119, 180)  # the FROC curve and its operating points
BAND_COLOUR = (198, 219, 239)  # bootstrap confidence band
TICK_LABELS = {0.125: "1/8", 0.25: "1/4", 0.5: "1/2", 1.0: "1", 2.0: "2", 4.0: "4", 8.0: "8"}


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: ImageFont.ImageFont,
          anchor: str = "la") -> None:
    """Text placed by an anchor like Pillow's ('l'/'m'/'r' across, 'a'/'m'/'t' down), for any font kind."""
    left, top, right, bottom = font.getbbox(text)
    x = xy[0] - {"l": left, "m": (left + right) / 2, "r": right}[anchor[0]]
    y = xy[1] - {"a": top, "t": top, "m": (top + bottom) / 2}[anchor[1]]
    draw.text((x, y), text, fill=TEXT_COLOUR, font=font)


@dataclass
class FrocPlot:
    """The drawn image and where its plot area is."""

    image: Image.Image
    x_range: tuple[float, float] = PLOT_FP_RANGE

    @property
    def area(self) -> tuple[int, int, int, int]:
        """Plot area (left, top, right, bottom) in pixels."""
        return LEFT, TOP, self.image.width - RIGHT, self.image.height - BOTTOM

    def to_pixel(self, fp_per_scan: float, sensitivity: float) -> tuple[float, float]:
        left, top, right, bottom = self.area
        low, high = (math.log2(v) for v in self.x_range)
        x = left + (math.log2(fp_per_scan) - low) / (high - low) * (right - left)
        y = bottom - sensitivity * (bottom - top)
        return x, y

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_path(path) as temp:
            self.image.save(temp, format="PNG")
        return path


def draw_froc(result: FrocResult, title: str = "FROC") -> FrocPlot:
    """Draw the FROC curve of ``result`` (with its bootstrap band when there is one)."""
    plot = FrocPlot(Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND))
    draw = ImageDraw.Draw(plot.image)
    left, top, right, bottom = plot.area
    small, normal = _font(12), _font(14)
    grid = plot_grid()

    bootstrap = result.bootstrap
    if bootstrap is not None:
        upper = [plot.to_pixel(x, y) for x, y in zip(bootstrap.curve_fps, bootstrap.curve_high)]
        lower = [plot.to_pixel(x, y) for x, y in zip(bootstrap.curve_fps, bootstrap.curve_low)]
        draw.polygon(upper + lower[::-1], fill=BAND_COLOUR)

    for tenth in range(11):  # horizontal grid and y ticks
        _, y = plot.to_pixel(1.0, tenth / 10)
        draw.line([(left, y), (right, y)], fill=GRID_COLOUR)
        _text(draw, (left - 8, y), f"{tenth / 10:.1f}", small, "rm")
    for rate, label in TICK_LABELS.items():  # vertical grid and x ticks
        x, _ = plot.to_pixel(rate, 0.0)
        draw.line([(x, top), (x, bottom)], fill=GRID_COLOUR)
        draw.line([(x, bottom), (x, bottom + 5)], fill=AXIS_COLOUR)
        _text(draw, (x, bottom + 8), label, small, "mt")
    draw.rectangle([left, top, right, bottom], outline=AXIS_COLOUR)

    sensitivity = sensitivity_at(result.fps, result.sensitivity_curve, grid)
    draw.line([plot.to_pixel(x, y) for x, y in zip(grid, sensitivity)], fill=CURVE_COLOUR, width=3, joint="curve")
    for rate, value in zip(result.rates, result.sensitivities):
        x, y = plot.to_pixel(rate, value)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=CURVE_COLOUR)

    _text(draw, ((left + right) / 2, 14), f"{title}  (CPM {result.cpm:.3f})", normal, "mt")
    _text(draw, ((left + right) / 2, plot.image.height - 22), "Average number of false positives per scan",
          normal, "mm")
    _vertical_text(plot.image, "Sensitivity", (20, (top + bottom) // 2), normal)
    _legend(draw, plot, bootstrap is not None, small)
    return plot


def _vertical_text(image: Image.Image, text: str, centre: tuple[int, int], font: ImageFont.ImageFont) -> None:
    box = font.getbbox(text)
    label = Image.new("RGB", (box[2] - box[0] + 4, box[3] - box[1] + 6), BACKGROUND)
    ImageDraw.Draw(label).text((2 - box[0], 3 - box[1]), text, fill=TEXT_COLOUR, font=font)
    label = label.rotate(90, expand=True)
    image.paste(label, (centre[0] - label.width // 2, centre[1] - label.height // 2))


def _legend(draw: ImageDraw.ImageDraw, plot: FrocPlot, with_band: bool, font: ImageFont.ImageFont) -> None:
    _, _, right, bottom = plot.area
    x, y = right - 190, bottom - (48 if with_band else 26)
    draw.line([(x, y + 7), (x + 24, y + 7)], fill=CURVE_COLOUR, width=3)
    _text(draw, (x + 32, y + 7), "FROC (CPM points marked)", font, "lm")
    if with_band:
        draw.rectangle([x, y + 24, x + 24, y + 34], fill=BAND_COLOUR)
        _text(draw, (x + 32, y + 29), "bootstrap confidence band", font, "lm")


def write_froc_png(result: FrocResult, path: str | Path, title: str = "FROC") -> Path:
    """Draw the FROC curve and write it as a PNG (atomically)."""
    return draw_froc(result, title).write(path)
