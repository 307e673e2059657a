"""The FROC curve as a PNG, drawn with matplotlib (the Agg backend: no display needed).

The plot has LUNA16's look: x is false positives per scan on a log-2 axis with ticks at 1/8 ... 8, y is
sensitivity 0-1 with a grid every 0.1, the curve solid, its bootstrap confidence band shaded, and the seven
CPM operating points marked. The axes sit at fixed pixels, so :class:`FrocPlot` maps (FP rate, sensitivity) to
pixels of any FROC PNG this module wrote, and callers and tests can find the curve on the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from radassist.io.atomic import atomic_path
from radassist.metrics.curves import pyplot, rendered, unit_colour
from radassist.metrics.froc import PLOT_FP_RANGE, FrocResult, plot_grid, sensitivity_at

WIDTH, HEIGHT = 720, 540
LEFT, RIGHT, TOP, BOTTOM = 78, 24, 46, 70  # margins around the plot area, pixels
DPI = 100
CURVE_COLOUR = (31, 119, 180)  # the FROC curve and its operating points
BAND_COLOUR = (198, 219, 239)  # bootstrap confidence band
TICK_LABELS = {0.125: "1/8", 0.25: "1/4", 0.5: "1/2", 1.0: "1", 2.0: "2", 4.0: "4", 8.0: "8"}


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
    plt = pyplot()
    figure = plt.figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, facecolor="white")
    axes = figure.add_axes((LEFT / WIDTH, BOTTOM / HEIGHT, 1 - (LEFT + RIGHT) / WIDTH, 1 - (TOP + BOTTOM) / HEIGHT))
    bootstrap = result.bootstrap
    if bootstrap is not None:
        axes.fill_between(bootstrap.curve_fps, bootstrap.curve_low, bootstrap.curve_high,
                          color=unit_colour(BAND_COLOUR), linewidth=0, label="bootstrap confidence band")
    grid = plot_grid()
    axes.plot(grid, sensitivity_at(result.fps, result.sensitivity_curve, grid), color=unit_colour(CURVE_COLOUR),
              linewidth=2.2, solid_joinstyle="round", clip_on=False, zorder=3, label="FROC (CPM points marked)")
    axes.plot(result.rates, result.sensitivities, "o", color=unit_colour(CURVE_COLOUR), markersize=6, clip_on=False,
              zorder=3)
    axes.set_xscale("log", base=2)
    axes.set(xlim=PLOT_FP_RANGE, ylim=(0.0, 1.0), xticks=list(TICK_LABELS), xticklabels=list(TICK_LABELS.values()),
             yticks=np.linspace(0.0, 1.0, 11), xlabel="Average number of false positives per scan",
             ylabel="Sensitivity", title=f"{title}  (CPM {result.cpm:.3f})")
    axes.xaxis.set_minor_locator(plt.NullLocator())
    axes.yaxis.set_major_formatter("{x:.1f}")
    axes.grid(True, color="0.87")
    axes.set_axisbelow(True)
    axes.legend(loc="lower right", fontsize=9, frameon=False)
    return FrocPlot(rendered(figure))


def write_froc_png(result: FrocResult, path: str | Path, title: str = "FROC") -> Path:
    """Draw the FROC curve and write it as a PNG (atomically)."""
    return draw_froc(result, title).write(path)
