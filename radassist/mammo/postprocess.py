"""GMIC's raw outputs as things people and Slicer read: breast-level probabilities, saliency maps as images on
the view's grid, patches as ROI boxes, and a picture like the published visualisation.

The picture has one row per view: the input window, the patch map, the benign (green) and malignant (red)
saliency maps over the input, and the K patches titled with their attention weights. Each view carries its
orientation letters (:func:`mammogram_letters`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from radassist.io.atomic import atomic_path
from radassist.results.detections import Detection, Detections
from radassist.results.preview import draw_edge_letters
from radassist.results.tables import ClassifiedImage
from radassist.volume import Volume

if TYPE_CHECKING:
    from radassist.mammo.pipeline import MammoResult, ViewResult

PATCH_LABEL = "GMIC patch"
_GREEN, _RED, _PATCH = (0, 200, 60), (230, 30, 30), (40, 150, 255)


def mammogram_letters(chest_wall_right: bool, laterality: str | None, view: str | None) -> tuple[str, str, str, str]:
    """Orientation letters of a displayed mammogram's (left, right, top, bottom) edges: P at the chest wall and A
    at the nipple (found in the pixels); top and bottom as the standard display has them (IHE Mammography Image
    profile): an MLO view superior-up, a CC view lateral-up (L up for a left breast). Unknown: left blank."""
    left, right = ("A", "P") if chest_wall_right else ("P", "A")
    top = bottom = ""
    if view and view.upper().endswith("MLO"):
        top, bottom = "S", "I"
    elif view and view.upper().startswith(("CC", "XCC")) and laterality in ("L", "R"):
        top, bottom = laterality, "R" if laterality == "L" else "L"
    return left, right, top, bottom


def letters_of_image(pixels: np.ndarray, laterality: str | None, view: str | None) -> tuple[str, str, str, str]:
    """:func:`mammogram_letters` for an image as stored (its chest-wall side found as the preprocessing does)."""
    from radassist.mammo.preprocess import PreprocessConfig, breast_mask, chest_wall_on_right, tissue_threshold

    config = PreprocessConfig()
    mask = breast_mask(pixels, tissue_threshold(pixels, config.tissue_threshold), config.erosion_px)
    return mammogram_letters(chest_wall_on_right(mask), laterality, view)


def breast_groups(views: list[ViewResult]) -> list[ClassifiedImage]:
    """Per breast, the mean of its views' probabilities (CC and MLO, or the one given)."""
    groups = []
    for laterality in ("L", "R"):
        members = [v for v in views if v.prepared.laterality == laterality]
        if not members:
            continue
        names = list(members[0].probabilities)
        probabilities = {name: float(np.mean([v.probabilities[name] for v in members])) for name in names}
        groups.append(ClassifiedImage(f"{laterality} breast", probabilities,
                                      {"views": ", ".join(v.name for v in members)}))
    return groups


def view_attributes(view: ViewResult) -> dict[str, Any]:
    """What the report says about a view besides its probabilities: file, window and how many runs averaged."""
    window = view.prepared.window
    return {"file": view.mammogram.path or "", "laterality": view.prepared.laterality, "view": view.prepared.view,
            "mirrored": window.flipped, "window_row_offset": window.row_offset,
            "window_col_offset": window.col_offset, "runs_averaged": view.runs}


def saliency_volume(view: ViewResult, class_index: int, grid: Volume | None = None) -> Volume:
    """One class's saliency map (0..1) as a one-slice Volume on the view's grid: ``grid`` (the view as a Volume,
    e.g. a Slicer node's, with its own placement) or the mammogram's pixel spacing at the origin."""
    grid = grid if grid is not None else view.mammogram.to_volume()
    return grid.with_array(view.saliency[class_index][np.newaxis].astype(np.float32))


def patch_detections(view: ViewResult, grid: Volume | None = None) -> Detections:
    """The patches as boxes in LPS mm on the view's grid (``grid`` as in :func:`saliency_volume`); a box's
    ``probability`` is its attention weight, the share of the local decision it carries. Boxes follow the grid's
    axes (a grid with a rotated direction would need oriented boxes; mammograms are not rotated)."""
    volume = grid if grid is not None else view.mammogram.to_volume()
    col_mm, row_mm, depth_mm = volume.spacing
    items = []
    for patch in view.patches:
        centre_index = [patch.left + (patch.width - 1) / 2, patch.top + (patch.height - 1) / 2, 0.0]
        centre = volume.ijk_to_world(np.array(centre_index))
        items.append(Detection(center=tuple(centre), size=(patch.width * col_mm, patch.height * row_mm, depth_mm),
                               probability=min(max(patch.attention, 0.0), 1.0), label=PATCH_LABEL,
                               extra={"index": patch.index, "attention": patch.attention}))
    return Detections(items, volume.geometry, volume.source, engine="GMIC",
                      metadata={"view": view.name, "probability": "attention weight of the patch"})


# -- the picture ----------------------------------------------------------------------------------------------------

def _grey(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, [1, 99.5])
    return np.clip((image - low) / max(high - low, 1e-6) * 255.0, 0, 255)


def _resize(array: np.ndarray, size: tuple[int, int], resample: int = Image.BILINEAR) -> np.ndarray:
    """(rows, cols) float array -> (height, width) = ``size``."""
    return np.asarray(Image.fromarray(array.astype(np.float32), "F").resize((size[1], size[0]), resample))


def _overlay(grey: np.ndarray, heat: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    alpha = (0.95 * np.clip(heat, 0.0, 1.0))[..., None]
    return (1 - alpha) * grey[..., None] + alpha * np.array(colour, dtype=float)


def _rgb(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return Image.fromarray(np.round(np.clip(array, 0, 255)).astype(np.uint8), "RGB")


def render_visualisation(result: MammoResult, path: str | Path, panel_height: int = 320) -> Path:
    """One row per view: input, patch map, benign and malignant saliency maps, and the patches with their
    attention weights (written atomically)."""
    font = ImageFont.load_default()
    title = 16
    rows = []
    for view in result.views:
        height, width = view.model_input.shape
        size = (panel_height, max(int(round(panel_height * width / height)), 1))
        scale = panel_height / height
        grey = _resize(_grey(view.model_input), size)
        maps = [_resize(view.prepared.window.to_input(m), size) for m in view.saliency]
        framed = _rgb(grey)  # the window has the chest wall on the left (preprocess flips right-facing views)
        draw_edge_letters(ImageDraw.Draw(framed), (0, 0, framed.width, framed.height),
                          mammogram_letters(False, view.prepared.laterality, view.prepared.view))
        tiles: list[tuple[str, Image.Image]] = [(f"{view.name} input", framed)]
        patch_map = _rgb(grey)
        draw = ImageDraw.Draw(patch_map)
        for patch in view.patches:
            top, left = (c * scale for c in patch.window_corner)
            draw.rectangle([left, top, left + patch.width * scale, top + patch.height * scale], outline=_PATCH,
                           width=2)
        tiles.append(("patch map", patch_map))
        for name, heat, colour in zip(("benign", "malignant"), maps, (_GREEN, _RED)):
            probability = view.probabilities.get(name)
            text = f"SM {name}" + (f" p={probability:.2f}" if probability is not None else "")
            tiles.append((text, _rgb(_overlay(grey, heat, colour))))
        patch_size = min(panel_height // 2, 160)
        for patch, pixels in zip(view.patches, view.patch_pixels):
            tiles.append((f"a{patch.index}={patch.attention:.2f}",
                          _rgb(_resize(_grey(pixels), (patch_size, patch_size), Image.NEAREST))))
        rows.append(tiles)
    width = max(sum(tile.width + 6 for _, tile in tiles) for tiles in rows) + 6
    canvas = Image.new("RGB", (width, len(rows) * (panel_height + title + 6) + 6), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    y = 6
    for tiles in rows:
        x = 6
        for text, tile in tiles:
            draw.text((x, y), text, fill=(255, 255, 255), font=font)
            canvas.paste(tile, (x, y + title))
            x += tile.width + 6
        y += panel_height + title + 6
    path = Path(path)
    with atomic_path(path) as temp:
        canvas.save(temp, format="PNG")
    return path
