"""Checks that a picture written for people is one they can open: an 8-bit PNG with something drawn on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def assert_readable_png(path: Path) -> np.ndarray:
    """An 8-bit RGB(A) or greyscale PNG (16-bit ones look black in ordinary viewers), not blank; its pixels."""
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode in ("RGB", "RGBA", "L"), (path, image.mode)
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 5, f"{path} is blank"
    return pixels


def assert_curves(folder: Path) -> None:
    """A training folder holds train_log.csv and its curves beside it."""
    assert (folder / "train_log.csv").is_file()
    pixels = assert_readable_png(folder / "training_curves.png")
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
    assert len(colours) > 20  # lines in colour, axes and text: a drawn chart, not a flat picture
