"""PNG previews for people: the input image with the result drawn on it, at its true physical aspect ratio.

Every view is shown the way radiologists read it, whatever the voxel order on disk: the volume is first turned
(by axis swaps and flips only, no resampling) so that its axes run towards patient Left, Posterior, Superior.
Axial views then show the patient's right on the image's left and anterior at the top; coronal and sagittal
views show superior at the top, and sagittal views anterior on the left. Pixels are scaled so that one pixel is
the same number of millimetres across and down. Every panel carries the orientation letters of its four edges
(R/L, A/P, S/I; computed from the geometry, so an oblique volume gets the nearest ones), and an optional caption
says what the picture is (for example that its labels are the reference, not a model's result). Each function
returns a :class:`Preview` that says where every panel is in the PNG and maps a world point (LPS mm) to its pixel,
so callers and tests can find things on it. Pictures are drawn with matplotlib on a canvas whose units are the
PNG's pixels, so that arithmetic and the drawing agree to the pixel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from radassist.io.atomic import atomic_path
from radassist.io.sitk_bridge import reference_image, volume_to_sitk
from radassist.metrics.curves import pyplot, rendered, unit_colour
from radassist.results.detections import Detections
from radassist.results.displacement import DisplacementField
from radassist.results.labelmap import LabelMap
from radassist.results.tables import Classification, ClassifiedImage
from radassist.results.transforms import warp_volume
from radassist.volume import Geometry, Volume


@dataclass(frozen=True)
class Window:
    """Display window: values from ``center - width/2`` (black) to ``center + width/2`` (white)."""

    center: float = 40.0
    width: float = 400.0


CT_SOFT_TISSUE = Window(40.0, 400.0)
CT_LUNG = Window(-600.0, 1500.0)
CT_LIVER = Window(60.0, 180.0)

DPI = 100
PX = 72.0 / DPI  # one pixel in points (matplotlib's unit for line widths and font sizes)
FONT_PX = 12
TEXT_COLOUR = (255, 255, 255)
BOX_COLOUR = (255, 220, 0)
GRID_COLOUR = (80, 220, 255)
FILL_OPACITY = 0.35
TITLE_HEIGHT = 18
CAPTION_HEIGHT = 20
MARGIN = 8
LETTER_COLOUR = (255, 140, 0)  # orange: apart from the yellow of boxes and marks
MARK_COLOUR = (255, 255, 0)
MIN_MARK_PX = 14  # a lesion mark is drawn at least this large, so a small lesion stays visible in a preview
LUNG_AIR_HU = (-950.0, -500.0)  # what lung parenchyma looks like on CT: the "no findings" preview looks for it
_WORLD_LETTERS = ("LR", "PA", "SI")  # LPS world axis -> (letter of its + direction, letter of its - direction)
_CLASS_COLOURS = [(230, 80, 80), (80, 160, 230), (90, 200, 90), (230, 180, 60), (180, 100, 220)]


class PixelCanvas:
    """A black matplotlib figure of exact pixel size with one axes over all of it whose data units are the PNG's
    pixels (x to the right, y down), so images, outlines, boxes and text land where :class:`Panel` says.
    ``caption`` is written in a strip of CAPTION_HEIGHT pixels at the top (callers start their layout at
    :attr:`top`); a text wider than the picture widens it."""

    def __init__(self, width: int, height: int, caption: str | None = None) -> None:
        self.width, self.height = max(int(width), 1), max(int(height), 1)
        self.top = CAPTION_HEIGHT if caption else 0
        self.figure = pyplot().figure(figsize=(self.width / DPI, self.height / DPI), dpi=DPI, facecolor="black")
        self.axes = self.figure.add_axes((0.0, 0.0, 1.0, 1.0))
        self.axes.set_axis_off()
        self.axes.set(xlim=(0, self.width), ylim=(self.height, 0), autoscale_on=False)
        if caption:
            self.text(MARGIN, 4, caption)

    def image(self, array: np.ndarray, extent: Sequence[float], interpolation: str = "bilinear") -> None:
        """A grey (uint8) or RGBA (0..1) image stretched over ``extent`` (left, right, bottom, top) pixels."""
        self.axes.imshow(array, extent=tuple(extent), cmap="gray", vmin=0, vmax=255, interpolation=interpolation,
                         aspect="auto")

    def text(self, x: float, y: float, text: str, colour: Sequence[int] = TEXT_COLOUR, **kwargs):
        """``text`` with its top-left corner at (x, y) unless ``ha``/``va`` say otherwise."""
        kwargs = {"ha": "left", "va": "top", "fontsize": FONT_PX * PX, **kwargs}
        return self.axes.text(x, y, text, color=unit_colour(colour), **kwargs)

    def rectangle(self, x0: float, y0: float, x1: float, y1: float, edge: Sequence[int] | None = None,
                  fill: Sequence[int] | None = None, width_px: float = 1.0) -> None:
        from matplotlib.patches import Rectangle

        self.axes.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=fill is not None,
                                      facecolor=unit_colour(fill) if fill else "none", antialiased=False,
                                      edgecolor=unit_colour(edge) if edge else "none", linewidth=width_px * PX))

    def letters(self, box: tuple[float, float, float, float], letters: Sequence[str]) -> None:
        """(left, right, top, bottom) orientation letters inside the edges of the panel ``box`` = (left, top, width,
        height), in a bright colour with a dark outline so they read on any image. Empty letters are skipped."""
        from matplotlib import patheffects

        left, top, width, height = box
        places = ((left + 3, top + height / 2, "left", "center"), (left + width - 3, top + height / 2, "right",
                  "center"), (left + width / 2, top + 2, "center", "top"),
                  (left + width / 2, top + height - 2, "center", "bottom"))
        outline = [patheffects.withStroke(linewidth=3 * PX, foreground="black")]
        for (x, y, ha, va), letter in zip(places, letters):
            if letter:
                self.text(x, y, letter, LETTER_COLOUR, ha=ha, va=va, fontsize=13 * PX, fontweight="bold",
                          path_effects=outline)

    def save(self, path: str | Path, panels: list[Panel]) -> Preview:
        """Write the PNG (8-bit RGB, what every viewer shows) atomically, widened to hold its longest text."""
        renderer = self.figure.canvas.get_renderer()
        right = max([text.get_window_extent(renderer).x1 + MARGIN for text in self.axes.texts], default=0)
        if right > self.width:
            self.width = int(math.ceil(right))
            self.figure.set_size_inches(self.width / DPI, self.height / DPI)
            self.axes.set_xlim(0, self.width)
        image = rendered(self.figure)
        path = Path(path)
        with atomic_path(path) as temp:
            image.save(temp, format="PNG")
        return Preview(path=path, size=image.size, panels=panels)


# -- orientation --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Reorientation:
    """Axis swaps and flips that turn a (z, y, x) array into one whose i, j, k axes point to L, P, S."""

    order: tuple[int, int, int]  # canonical array axis -> original array axis
    flips: tuple[bool, bool, bool]  # per canonical array axis
    geometry: Geometry  # the canonical grid

    def apply(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.view(array))

    def view(self, array: np.ndarray) -> np.ndarray:
        """The reoriented array as a view (no copy): for reading a few small crops of a large volume."""
        extra = tuple(range(3, array.ndim))
        out = np.transpose(array, self.order + extra)
        for axis, flip in enumerate(self.flips):
            if flip:
                out = np.flip(out, axis=axis)
        return out


def _reorientation(geometry: Geometry) -> _Reorientation:
    matrix = geometry.direction_matrix
    world_of_index = [int(np.argmax(np.abs(matrix[:, a]))) for a in range(3)]
    if sorted(world_of_index) != [0, 1, 2]:  # strongly oblique: leave the array as it is
        return _Reorientation((0, 1, 2), (False, False, False), geometry)
    index_of_world = {w: a for a, w in enumerate(world_of_index)}
    signs = {a: float(np.sign(matrix[world_of_index[a], a])) for a in range(3)}
    order = tuple(2 - index_of_world[2 - axis] for axis in range(3))  # array axes are (k, j, i)
    flips = tuple(signs[index_of_world[2 - axis]] < 0 for axis in range(3))
    start = np.array([(geometry.shape[2 - a] - 1) if signs[a] < 0 else 0 for a in range(3)], dtype=float)
    columns = [matrix[:, index_of_world[w]] * signs[index_of_world[w]] for w in range(3)]
    canonical = Geometry(shape=tuple(geometry.shape[o] for o in order),
                         spacing=tuple(geometry.spacing[index_of_world[w]] for w in range(3)),
                         origin=tuple(geometry.ijk_to_world(start)),
                         direction=tuple(np.stack(columns, axis=1).ravel()))
    return _Reorientation(order, flips, canonical)


# -- panels -------------------------------------------------------------------------------------------------------
@dataclass
class Panel:
    """One view in the PNG: where it is, which slice of which (L, P, S-ordered) grid it shows, and how to find
    a world point on it."""

    title: str
    view: str  # "axial", "coronal" or "sagittal"
    slice_index: int
    geometry: Geometry
    left: int
    top: int
    width: int
    height: int
    row_range: tuple[int, int]  # displayed rows [start, stop) of the full slice
    col_range: tuple[int, int]

    def display_index(self, lps: np.ndarray) -> tuple[float, float]:
        """Continuous (row, col) of a world point in the full slice of this view."""
        z, y, x = self.geometry.world_to_zyx(np.asarray(lps, dtype=float))
        nz = self.geometry.shape[0]
        if self.view == "axial":
            return float(y), float(x)
        if self.view == "coronal":
            return float(nz - 1 - z), float(x)
        return float(nz - 1 - z), float(y)

    def index_to_xy(self, row: float, col: float) -> tuple[float, float]:
        """Continuous PNG position (x, y) of a continuous (row, col) of the full slice (voxel centres at whole
        numbers; pixel x covers [x, x + 1))."""
        rows = self.row_range[1] - self.row_range[0]
        cols = self.col_range[1] - self.col_range[0]
        x = self.left + (col - self.col_range[0] + 0.5) * self.width / cols
        y = self.top + (row - self.row_range[0] + 0.5) * self.height / rows
        return x, y

    def index_to_pixel(self, row: float, col: float) -> tuple[int, int]:
        """PNG pixel (x, y) of a continuous (row, col) of the full slice."""
        x, y = self.index_to_xy(row, col)
        return int(math.floor(x)), int(math.floor(y))

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """The panel's (left, right, bottom, top) in pixels: where the displayed rows and columns are drawn."""
        return self.left, self.left + self.width, self.top + self.height, self.top

    def world_to_pixel(self, lps: np.ndarray) -> tuple[int, int]:
        return self.index_to_pixel(*self.display_index(lps))

    @property
    def edge_letters(self) -> tuple[str, str, str, str]:
        """Orientation letters of the (left, right, top, bottom) edges."""
        return edge_letters(self.geometry, self.view)


@dataclass
class Preview:
    """A written PNG and its panels."""

    path: Path
    size: tuple[int, int]
    panels: list[Panel] = field(default_factory=list)


def _letter(direction: np.ndarray) -> str:
    """The patient side a world (LPS) direction points to most: L, R, P, A, S or I."""
    axis = int(np.argmax(np.abs(direction)))
    return _WORLD_LETTERS[axis][0 if direction[axis] > 0 else 1]


def _opposite(letter: str) -> str:
    return next(pair[1 - pair.index(letter)] for pair in _WORLD_LETTERS if letter in pair)


def edge_letters(geometry: Geometry, view: str) -> tuple[str, str, str, str]:
    """Letters of the (left, right, top, bottom) edges of a displayed slice of ``geometry`` (see _view_slice:
    axial rows follow +j and columns +i; coronal and sagittal rows run from the last slice to the first)."""
    columns = geometry.direction_matrix.T  # row a: world direction of array axis i, j, k
    i, j, k = columns[0], columns[1], columns[2]
    across, down = {"axial": (i, j), "coronal": (i, -k), "sagittal": (j, -k)}[view]
    right, bottom = _letter(across), _letter(down)
    return _opposite(right), right, _opposite(bottom), bottom


def _view_slice(array: np.ndarray, view: str, index: int) -> np.ndarray:
    """The 2-D display slice of a canonical (z, y, x[, ...]) array."""
    if view == "axial":
        return array[index]
    if view == "coronal":
        return array[::-1, index]
    return array[::-1, :, index]


def _window_to_uint8(values: np.ndarray, window: Window | None, reference: np.ndarray | None = None) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if window is None:
        source = values if reference is None else np.asarray(reference, dtype=np.float64)
        finite = source[np.isfinite(source)]
        low, high = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
        if high <= low:
            high = low + 1.0
    else:
        low, high = window.center - window.width / 2, window.center + window.width / 2
    scaled = np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0)
    return np.round(scaled * 255).astype(np.uint8)


def _panel_size(geometry: Geometry, view: str, rows: int, cols: int, px_per_mm: float) -> tuple[int, int]:
    sx, sy, sz = geometry.spacing
    row_mm, col_mm = {"axial": (sy, sx), "coronal": (sz, sx), "sagittal": (sz, sy)}[view]
    return max(1, int(round(cols * col_mm * px_per_mm))), max(1, int(round(rows * row_mm * px_per_mm)))


def _grid_positions(sizes: list[tuple[int, int]], columns: int, top: int) -> tuple[list[tuple[int, int]], int, int]:
    """Top-left corners for panels laid out in rows of ``columns`` with a title strip above each."""
    positions, x, y, row_height, width = [], MARGIN, top, 0, 0
    for index, (w, h) in enumerate(sizes):
        if index and index % columns == 0:
            x, y, row_height = MARGIN, y + row_height + TITLE_HEIGHT + MARGIN, 0
        positions.append((x, y + TITLE_HEIGHT))
        x += w + MARGIN
        width = max(width, x)
        row_height = max(row_height, h)
    return positions, width, y + row_height + TITLE_HEIGHT + MARGIN


def _as_volume_on(volume: Volume, geometry: Geometry, interpolator: int = sitk.sitkLinear) -> np.ndarray:
    """``volume`` resampled onto ``geometry`` (identity transform), unless it already lies on it."""
    if volume.geometry.same_grid(geometry):
        return volume.array
    image = sitk.Cast(volume_to_sitk(volume), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(sitk.Resample(image, reference_image(geometry), sitk.Transform(), interpolator,
                                                0.0))


def _caption_top(caption: str | None) -> int:
    """Where the first row of panels starts: below the caption strip when there is one."""
    return MARGIN + (CAPTION_HEIGHT if caption else 0)


def _label(canvas: PixelCanvas, panel: Panel, letters: Sequence[str] | None = None) -> None:
    """The panel's title above it and its orientation letters (``letters``, else its geometry's) inside it."""
    canvas.text(panel.left, panel.top - TITLE_HEIGHT + 3, panel.title)
    canvas.letters((panel.left, panel.top, panel.width, panel.height), letters or panel.edge_letters)


def _paint_masks(canvas: PixelCanvas, panel: Panel, masks: Sequence[tuple[np.ndarray, Sequence[int]]]) -> None:
    """Each (mask, colour): a translucent fill of the mask's voxels, then (over every fill) a solid outline along
    their edges, largest mask first, so the outline of a segment inside another (a lung in the body) stays on top
    where the two share an edge."""
    left, right, bottom, top = panel.extent
    for mask, colour in masks:
        fill = np.zeros((*mask.shape, 4))
        fill[mask] = (*unit_colour(colour), FILL_OPACITY)
        canvas.image(fill, panel.extent, interpolation="nearest")
    for mask, colour in sorted(masks, key=lambda pair: -int(pair[0].sum())):
        dx, dy = panel.width / mask.shape[1], panel.height / mask.shape[0]
        if mask.any():  # one voxel of background around it: an outline closes at the slice's edge
            canvas.axes.contour(np.pad(mask, 1).astype(np.float32), levels=[0.5], colors=[unit_colour(colour)],
                                origin="upper", extent=(left - dx, right + dx, bottom + dy, top - dy),
                                linewidths=PX, antialiased=False)


# -- segmentation -------------------------------------------------------------------------------------------------
def preview_labelmap(volume: Volume, labelmap: LabelMap, path: str | Path, window: Window | None = CT_SOFT_TISSUE,
                     panel_mm_to_px: float | None = None, centre_lps: Sequence[float] | None = None,
                     caption: str | None = None) -> Preview:
    """Axial, coronal and sagittal views through the largest segment's centre (or through the world point
    ``centre_lps``, e.g. a lesion's), segments filled and outlined in their colours, with a legend and
    orientation letters. The label map is resampled (nearest) onto the volume's grid if needed. ``caption``
    (e.g. "reference segmentation") is written above the views."""
    reorient = _reorientation(volume.geometry)
    image = reorient.apply(volume.array.astype(np.float64))
    masks = []
    for segment in labelmap.segments:
        mask = labelmap.mask(segment)
        if not labelmap.geometry.same_grid(volume.geometry):
            mask_volume = Volume.from_geometry(mask.astype(np.uint8), labelmap.geometry)
            mask = _as_volume_on(mask_volume, volume.geometry, sitk.sitkNearestNeighbor) > 0.5
        masks.append(reorient.apply(mask))
    geometry = reorient.geometry
    counts = [int(m.sum()) for m in masks]
    if centre_lps is not None:
        centre = np.clip(np.round(geometry.world_to_zyx(np.asarray(centre_lps, dtype=float))).astype(int), 0,
                         np.array(image.shape) - 1)
    elif counts and max(counts) > 0:
        centre = np.round(ndimage.center_of_mass(masks[int(np.argmax(counts))])).astype(int)
    else:
        centre = np.array(image.shape) // 2
    nz, ny, nx = image.shape
    views = [("axial", int(centre[0])), ("coronal", int(centre[1])), ("sagittal", int(centre[2]))]
    extents = [ny * geometry.spacing[1], nx * geometry.spacing[0], nz * geometry.spacing[2]]
    px_per_mm = panel_mm_to_px or 320.0 / max(extents)
    shapes = {"axial": (ny, nx), "coronal": (nz, nx), "sagittal": (nz, ny)}
    sizes = [_panel_size(geometry, view, *shapes[view], px_per_mm) for view, _ in views]
    positions, width, bottom = _grid_positions(sizes, columns=3, top=_caption_top(caption))
    shown = [(s, m) for s, m, c in zip(labelmap.segments, masks, counts) if c > 0]
    canvas = PixelCanvas(max(width, 200), bottom + max(1, len(shown)) * 16 + MARGIN, caption)
    panels = []
    for (view, index), (w, h), (left, top) in zip(views, sizes, positions):
        depth = {"axial": nz, "coronal": ny, "sagittal": nx}[view]
        rows, cols = shapes[view]
        panel = Panel(f"{view} {index + 1}/{depth}", view, index, geometry, left, top, w, h, (0, rows), (0, cols))
        panels.append(panel)
        canvas.image(_window_to_uint8(_view_slice(image, view, index), window), panel.extent)
        _paint_masks(canvas, panel, [(_view_slice(mask, view, index), _colour255(segment.color))
                                     for segment, mask in shown])
        _label(canvas, panel)
    y = bottom
    for segment, mask in shown:
        canvas.rectangle(MARGIN, y + 2, MARGIN + 10, y + 12, fill=_colour255(segment.color))
        volume_ml = float(mask.sum()) * geometry.voxel_volume_mm3 / 1000.0
        canvas.text(MARGIN + 16, y, f"{segment.name}  {volume_ml:.1f} ml")
        y += 16
    if not shown:
        canvas.text(MARGIN, y, "no segments")
    return canvas.save(path, panels)


def _colour255(colour: Sequence[float]) -> tuple[int, int, int]:
    return tuple(int(round(255 * float(c))) for c in colour[:3])


# -- detections ---------------------------------------------------------------------------------------------------
def preview_detections(volume: Volume, detections: Detections, path: str | Path,
                       window: Window | None = CT_LUNG, max_findings: int = 12, columns: int = 4,
                       tile_px: int = 192, slab_mm: float | None = None, caption: str | None = None) -> Preview:
    """For each finding (best first), the axial slice through its centre, cropped around it, with its box and
    ranking value (``p=`` for a model's probability, ``score`` for a heuristic score); several findings in a grid.
    With ``slab_mm``, each tile is instead the maximum-intensity projection of that thickness centred on the
    finding: the slab a slab-based detector saw it on. Without
    findings, the axial slice through the most lung (see :func:`organ_slice`) shows what was examined."""
    reorient = _reorientation(volume.geometry)
    image = reorient.view(volume.array)  # only the tiles' crops are read
    geometry = reorient.geometry
    nz, ny, nx = image.shape
    sx, sy, _ = geometry.spacing
    tiles = []
    for rank, detection in enumerate(detections.sorted().items[:max_findings], start=1):
        z, y, x = geometry.world_to_zyx(np.asarray(detection.center))
        half_mm = max(32.0, 1.5 * max(detection.size[0], detection.size[1]))
        title = f"#{rank} p={detection.probability:.2f}" if detection.score_name == "probability" else \
            f"#{rank} score {detection.probability:.2f}"
        if detection.diameter_mm is not None:
            title += f" {detection.diameter_mm:.1f}mm"
        tiles.append((title, int(np.clip(round(z), 0, nz - 1)), _crop_range(y, half_mm / sy, ny),
                      _crop_range(x, half_mm / sx, nx), detection))
    if not tiles:
        tiles.append(("no findings: slice through the most lung", organ_slice(image), (0, ny), (0, nx), None))
        tile_px = max(tile_px, 320)
    sizes = []
    for _, _, rows, cols, _ in tiles:
        extent_mm = max((rows[1] - rows[0]) * sy, (cols[1] - cols[0]) * sx)
        sizes.append(_panel_size(geometry, "axial", rows[1] - rows[0], cols[1] - cols[0], tile_px / extent_mm))
    positions, width, bottom = _grid_positions(sizes, columns=columns, top=_caption_top(caption))
    canvas = PixelCanvas(width, bottom, caption)
    panels = []
    thickness = 1 if slab_mm is None else max(1, int(round(slab_mm / geometry.spacing[2])))
    for (title, z_index, rows, cols, detection), (w, h), (left, top) in zip(tiles, sizes, positions):
        first = int(np.clip(z_index - thickness // 2, 0, max(nz - thickness, 0)))
        crop = image[first:first + thickness, rows[0]:rows[1], cols[0]:cols[1]].max(axis=0)
        panel = Panel(title, "axial", z_index, geometry, left, top, w, h, rows, cols)
        panels.append(panel)
        canvas.image(_window_to_uint8(crop, window), panel.extent)
        _label(canvas, panel)
        if detection is not None:
            corners = [panel.world_to_pixel(corner) for corner in (detection.box_min, detection.box_max)]
            x0, x1 = sorted(np.clip([c[0] for c in corners], left, left + w - 1))
            y0, y1 = sorted(np.clip([c[1] for c in corners], top, top + h - 1))
            canvas.rectangle(x0 + 0.5, y0 + 0.5, x1 + 0.5, y1 + 0.5, edge=BOX_COLOUR, width_px=2)
    return canvas.save(path, panels)


def organ_slice(image: np.ndarray, air: tuple[float, float] = LUNG_AIR_HU) -> int:
    """The axial slice (of a canonical z, y, x CT) with the most lung-like voxels: where a chest CT shows the
    lungs best. The middle slice when no slice has any (not a chest CT in HU)."""
    counts = np.array([np.count_nonzero((plane >= air[0]) & (plane <= air[1])) for plane in image])
    return int(np.argmax(counts)) if counts.size and counts.max() > 0 else image.shape[0] // 2


def _crop_range(centre: float, half: float, length: int) -> tuple[int, int]:
    """A window of about 2*half voxels around ``centre``, shifted (not shrunk) to stay inside 0..length."""
    size = min(length, max(1, int(round(2 * half))))
    start = int(round(centre - size / 2))
    start = min(max(start, 0), length - size)
    return start, start + size


# -- registration -------------------------------------------------------------------------------------------------
def preview_registration(fixed: Volume, moving: Volume, warped: Volume | None, field: DisplacementField,
                         path: str | Path, window: Window | None = None, checker_blocks: int = 8,
                         grid_lines: int = 16, caption: str | None = None) -> Preview:
    """Fixed, moving, warped, a fixed/warped checkerboard and the deformation grid, all on the field's grid
    (the fixed grid), through its central axial slice. ``window=None`` scales to the fixed image's 1-99 %."""
    if warped is None:
        warped = warp_volume(moving, field)
    reference = field.geometry
    reorient = _reorientation(reference)
    geometry = reorient.geometry
    arrays = [reorient.apply(_as_volume_on(v, reference).astype(np.float64)) for v in (fixed, moving, warped)]
    vectors = reorient.apply(field.vectors)
    index = geometry.shape[0] // 2
    slices = [a[index] for a in arrays]
    greys = [_window_to_uint8(s, window, reference=slices[0]) for s in slices]
    rows, cols = slices[0].shape
    block = max(1, min(rows, cols) // checker_blocks)
    checker = ((np.arange(rows)[:, None] // block + np.arange(cols)[None, :] // block) % 2).astype(bool)
    greys.append(np.where(checker, greys[2], greys[0]))  # top-left block shows the fixed image
    greys.append((greys[0] // 2).astype(np.uint8))
    titles = ["fixed", "moving", "warped", "checkerboard", "deformation"]
    px_per_mm = 256.0 / max(rows * geometry.spacing[1], cols * geometry.spacing[0])
    size = _panel_size(geometry, "axial", rows, cols, px_per_mm)
    positions, width, bottom = _grid_positions([size] * 5, columns=5, top=_caption_top(caption))
    canvas = PixelCanvas(width, bottom, caption)
    panels = [Panel(title, "axial", index, geometry, left, top, size[0], size[1], (0, rows), (0, cols))
              for title, (left, top) in zip(titles, positions)]
    for panel, grey in zip(panels, greys):
        canvas.image(grey, panel.extent)
        _label(canvas, panel)
    _draw_deformation_grid(canvas, panels[-1], vectors[index], geometry, grid_lines)
    return canvas.save(path, panels)


def _draw_deformation_grid(canvas: PixelCanvas, panel: Panel, vectors: np.ndarray, geometry: Geometry,
                           lines: int) -> None:
    """Grid lines of the fixed slice, each point moved by the in-plane part of its displacement (fixed->moving)."""
    to_index = np.linalg.inv(geometry.direction_matrix @ np.diag(geometry.spacing))
    shift = vectors @ to_index.T  # (rows, cols, 3) displacement in (i, j, k) voxels
    rows, cols = vectors.shape[:2]
    step = max(1, min(rows, cols) // lines)
    grid_rows, grid_cols = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    xs, ys = panel.index_to_xy(grid_rows + shift[..., 1], grid_cols + shift[..., 0])
    style = {"color": unit_colour(GRID_COLOUR), "linewidth": PX, "antialiased": False}
    canvas.axes.plot(xs[::step].T, ys[::step].T, **style)  # one line per grid row
    canvas.axes.plot(xs[:, ::step], ys[:, ::step], **style)  # one per grid column


# -- classification -----------------------------------------------------------------------------------------------
def preview_classification(image_volume: Volume | Mapping[str, Volume], classification: Classification,
                           path: str | Path, overlays: Mapping[str, np.ndarray] | np.ndarray | None = None,
                           window: Window | None = None, panel_px: int = 320,
                           marks: Mapping[str, np.ndarray] | None = None,
                           letters: Mapping[str, Sequence[str]] | None = None, caption: str | None = None) -> Preview:
    """Each image (the middle slice of a volume; a mammogram is one slice) with its class probabilities as bars,
    an optional heat map (values 0..1, the image's shape) in translucent red, and group results underneath.

    ``image_volume`` is one Volume (paired with the first classified image) or a mapping image_id -> Volume.
    ``marks`` (image_id -> mask of the image's shape) ring each connected region, at least MIN_MARK_PX across so
    a small lesion stays visible. ``letters`` (image_id -> left, right, top, bottom) replaces the orientation
    letters found from the geometry (a mammogram's come from its view: see radassist.mammo.postprocess).
    """
    if isinstance(image_volume, Volume):
        first_id = classification.images[0].image_id if classification.images else "image"
        volumes = {first_id: image_volume}
        if isinstance(overlays, np.ndarray):
            overlays = {first_id: overlays}
    else:
        volumes = dict(image_volume)
    if isinstance(overlays, np.ndarray):
        raise ValueError("with several images, give overlays as a mapping image_id -> array")
    overlays, marks, letters = dict(overlays or {}), dict(marks or {}), dict(letters or {})
    by_id = {item.image_id: item for item in classification.images}
    tiles = []
    for image_id, volume in volumes.items():
        reorient = _reorientation(volume.geometry)
        image = reorient.apply(volume.array.astype(np.float64))
        index = image.shape[0] // 2
        heat = None
        if image_id in overlays:
            heat = np.asarray(overlays[image_id], dtype=np.float64)
            if heat.size != volume.array.size:
                raise ValueError(f"overlay for {image_id!r} must have the image's shape {volume.shape}")
            heat = reorient.apply(heat.reshape(volume.shape))[index]
        mark = None
        if image_id in marks:
            mark = reorient.apply(np.asarray(marks[image_id]).reshape(volume.shape).astype(bool))[index]
        rows, cols = image.shape[1:]
        geometry = reorient.geometry
        px_per_mm = panel_px / max(rows * geometry.spacing[1], cols * geometry.spacing[0])
        tiles.append((image_id, image[index], heat, mark, geometry, index,
                      _panel_size(geometry, "axial", rows, cols, px_per_mm)))
    class_names = list(dict.fromkeys(n for item in classification.images for n in item.probabilities))
    bar_height = 16 * max(1, len(class_names)) + 4
    positions, width, bottom = _grid_positions([(w, h + bar_height) for *_, (w, h) in tiles], columns=4,
                                               top=_caption_top(caption))
    group_lines = [_group_text(g) for g in classification.groups]
    canvas = PixelCanvas(max(width, 240), bottom + 16 * len(group_lines) + MARGIN, caption)
    panels = []
    for (image_id, slice_, heat, mark, geometry, index, (w, h)), (left, top) in zip(tiles, positions):
        panel = Panel(image_id, "axial", index, geometry, left, top, w, h, (0, slice_.shape[0]), (0, slice_.shape[1]))
        panels.append(panel)
        canvas.image(_window_to_uint8(slice_, window), panel.extent)
        if heat is not None:
            red = np.zeros((*heat.shape, 4))
            red[..., 0], red[..., 3] = 1.0, 0.5 * np.clip(heat, 0.0, 1.0)
            canvas.image(red, panel.extent, interpolation="nearest")
        if mark is not None:
            _draw_marks(canvas, panel, mark)
        _label(canvas, panel, letters.get(image_id))
        _draw_probability_bars(canvas, by_id.get(image_id), class_names, left, top + h + 4, w)
    for number, line in enumerate(group_lines):
        canvas.text(MARGIN, bottom + 16 * number, line)
    return canvas.save(path, panels)


def _draw_marks(canvas: PixelCanvas, panel: Panel, mask: np.ndarray) -> None:
    """A ring around each connected region of ``mask`` (a 2-D slice of the panel), never smaller than
    MIN_MARK_PX, with a small gap so the lesion itself stays visible."""
    from matplotlib.patches import Circle

    for region in ndimage.find_objects(ndimage.label(mask)[0]):
        x0, y0 = panel.index_to_xy(region[0].start, region[1].start)
        x1, y1 = panel.index_to_xy(region[0].stop - 1, region[1].stop - 1)
        radius = max(abs(x1 - x0), abs(y1 - y0), MIN_MARK_PX) / 2 + 4
        canvas.axes.add_patch(Circle(((x0 + x1) / 2, (y0 + y1) / 2), radius, fill=False,
                                     edgecolor=unit_colour(MARK_COLOUR), linewidth=2 * PX))


def _group_text(group: ClassifiedImage) -> str:
    values = ", ".join(f"{name} {p:.2f}" for name, p in group.probabilities.items())
    return f"{group.image_id}: {values}"


def _draw_probability_bars(canvas: PixelCanvas, item: ClassifiedImage | None, class_names: list[str],
                           left: int, top: int, width: int) -> None:
    if item is None:
        canvas.text(left, top, "not classified")
        return
    label_width = min(90, width // 2)
    bar_width = max(1, width - label_width - 40)
    for row, name in enumerate(class_names):
        if name not in item.probabilities:
            continue
        p = item.probabilities[name]
        y, x0 = top + 16 * row, left + label_width
        canvas.text(left, y, name[:14])
        canvas.rectangle(x0, y + 3, x0 + bar_width + 1, y + 13, edge=(90, 90, 90))
        if p > 0:
            canvas.rectangle(x0, y + 3, x0 + max(1, int(round(p * bar_width))) + 1, y + 13,
                             fill=_CLASS_COLOURS[row % len(_CLASS_COLOURS)])
        canvas.text(x0 + bar_width + 4, y, f"{p:.2f}")


def paint_labels(grey: np.ndarray, labels: np.ndarray, colours: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """A (y, x) 8-bit grey picture as RGB with each label value filled (translucent) and outlined (one solid pixel)
    in its colour (0..255): for pictures assembled pixel for pixel, such as the infection best/worst grid."""
    rgb = np.repeat(np.asarray(grey, dtype=np.float64)[..., None], 3, axis=2)
    for value, colour in colours.items():
        mask = np.asarray(labels) == value
        if not mask.any():
            continue
        colour_array = np.asarray(colour, dtype=np.float64)
        rgb[mask] = (1 - FILL_OPACITY) * rgb[mask] + FILL_OPACITY * colour_array
        rgb[mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=0)] = colour_array
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
