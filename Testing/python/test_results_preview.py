"""PNG previews: check what is drawn where (colours at the expected pixels), not only that a file exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from radassist.io.sitk_bridge import sitk_to_volume
from radassist.results import (Classification, ClassifiedImage, Detection, Detections, DisplacementField,
                               LabelMap, Segment, Window, preview_classification, preview_detections,
                               preview_labelmap, preview_registration, read_seg_nrrd)
from radassist.results.preview import _CLASS_COLOURS, BOX_COLOUR, GRID_COLOUR, Panel
from radassist.volume import Geometry, Volume

RED = (255, 0, 0)
# Voxel axes pointing to R, A, S: the preview must turn them to show radiological orientation.
GEOMETRY = Geometry(shape=(12, 40, 50), spacing=(0.8, 1.2, 3.0), origin=(100.0, 80.0, -20.0),
                    direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))


def _pixels(path: Path) -> np.ndarray:
    image = Image.open(path)
    assert image.mode == "RGB"
    return np.asarray(image)


def _panel_pixels(pixels: np.ndarray, panel: Panel) -> np.ndarray:
    return pixels[panel.top:panel.top + panel.height, panel.left:panel.left + panel.width]


def _colour_mask(pixels: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.all(pixels == np.array(colour, dtype=np.uint8), axis=-1)


def _ramp_volume(geometry: Geometry) -> Volume:
    z, y, x = np.mgrid[0:geometry.shape[0], 0:geometry.shape[1], 0:geometry.shape[2]]
    return Volume.from_geometry((x * 4 + y * 2).astype(np.int16) - 100, geometry)


def test_labelmap_colour_is_where_the_mask_is(tmp_path: Path) -> None:
    volume = _ramp_volume(GEOMETRY)
    mask = np.zeros(GEOMETRY.shape, bool)
    mask[4:9, 10:20, 5:15] = True  # small i: the i axis points to patient Right, so this is the patient's left
    labelmap = LabelMap(mask.astype(np.uint8), GEOMETRY, [Segment("lesion", 1, color=(1.0, 0.0, 0.0))])
    preview = preview_labelmap(volume, labelmap, tmp_path / "seg.png", window=Window(0, 400))
    pixels = _pixels(preview.path)
    assert preview.size == (pixels.shape[1], pixels.shape[0])
    axial = next(p for p in preview.panels if p.view == "axial")
    # The axial slice goes through the segment's centre.
    assert axial.slice_index == 6
    # Physical aspect ratio: 50 x 0.8 mm wide, 40 x 1.2 mm high.
    assert abs(axial.width / axial.height - (50 * 0.8) / (40 * 1.2)) < 0.02
    # Where the mask's corners land on the panel (voxel edges are half a voxel out from the centres).
    corners = [GEOMETRY.zyx_to_world(np.array([6, j, i], float)) for j in (9.5, 19.5) for i in (4.5, 14.5)]
    xs, ys = zip(*(axial.world_to_pixel(c) for c in corners))
    region = _panel_pixels(pixels, axial)
    outline = _colour_mask(region, RED)
    rows, cols = np.nonzero(outline)
    assert rows.size > 20
    assert rows.min() + axial.top >= min(ys) - 2 and rows.max() + axial.top <= max(ys) + 2
    assert cols.min() + axial.left >= min(xs) - 2 and cols.max() + axial.left <= max(xs) + 2
    # Inside: red-tinted grey; well outside: pure grey.
    cy, cx = (min(ys) + max(ys)) // 2, (min(xs) + max(xs)) // 2
    r, g, b = pixels[cy, cx].astype(int)
    assert r > g + 40 and g == b
    far = region[: region.shape[0] // 3, -5]  # the top third: the orientation letter "L" sits mid-height
    assert np.all(far[:, 0] == far[:, 1]) and np.all(far[:, 1] == far[:, 2])
    # Radiological convention: the patient's left (where the mask is) is on the image's right half.
    assert GEOMETRY.zyx_to_world(np.array([6.0, 15.0, 10.0]))[0] > GEOMETRY.zyx_to_world(np.array([6.0, 20, 25]))[0]
    assert cols.mean() > axial.width / 2


def test_real_lungs_in_radiological_orientation(test_data: Path, tmp_path: Path) -> None:
    volume = sitk_to_volume(sitk.ReadImage(str(test_data / "slicer" / "CTChest4.nrrd")))
    labelmap = read_seg_nrrd(test_data / "slicer" / "Segmentation.seg.nrrd")
    preview = preview_labelmap(volume, labelmap, tmp_path / "chest.png")
    pixels = _pixels(preview.path)
    axial = next(p for p in preview.panels if p.view == "axial")
    coronal = next(p for p in preview.panels if p.view == "coronal")
    colour = tuple(int(round(255 * c)) for c in labelmap.segment("right lung").color)
    for panel in (axial, coronal):
        _, cols = np.nonzero(_colour_mask(_panel_pixels(pixels, panel), colour))
        assert cols.size > 50 and cols.mean() < panel.width / 2, panel.view  # right lung on the image's left
    # Coronal: the lungs are above the abdomen, so their colour sits in the upper part of the panel.
    rows, _ = np.nonzero(_colour_mask(_panel_pixels(pixels, coronal), colour))
    assert rows.mean() < coronal.height * 0.6


def test_detection_boxes_drawn_at_their_position(tmp_path: Path) -> None:
    volume = _ramp_volume(GEOMETRY)
    centres = [GEOMETRY.zyx_to_world(np.array(c, float)) for c in ([6, 20, 25], [3, 10, 10], [8, 30, 40],
                                                                     [5, 15, 30], [7, 25, 12])]
    probabilities = [0.3, 0.95, 0.5, 0.7, 0.1]
    detections = Detections([Detection(tuple(c), (9.0, 12.0, 6.0), p, diameter_mm=9.0)
                             for c, p in zip(centres, probabilities)])
    preview = preview_detections(volume, detections, tmp_path / "boxes.png", window=Window(0, 400), columns=4)
    pixels = _pixels(preview.path)
    assert [p.title.split()[1] for p in preview.panels] == ["p=0.95", "p=0.70", "p=0.50", "p=0.30", "p=0.10"]
    assert preview.panels[4].top > preview.panels[0].top  # fifth tile starts the second row
    for panel, detection in zip(preview.panels, detections.sorted().items):
        x0, y0 = panel.world_to_pixel(detection.box_min)
        x1, y1 = panel.world_to_pixel(detection.box_max)
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        box = _colour_mask(pixels, BOX_COLOUR)
        # The left and right edges are box-coloured along most of the box's height, and so are top and bottom.
        for column in (x0, x1):
            assert box[y0:y1 + 1, column - 1:column + 2].any(axis=1).mean() > 0.9, panel.title
        for row in (y0, y1):
            assert box[row - 1:row + 2, x0:x1 + 1].any(axis=0).mean() > 0.9, panel.title
        # Nothing box-coloured in the middle of the box.
        assert not box[(y0 + y1) // 2, (x0 + x1) // 2]
        # The box is 9 mm wide (x) and 12 mm high (y) at the panel's scale.
        scale = panel.width / ((panel.col_range[1] - panel.col_range[0]) * GEOMETRY.spacing[0])
        assert abs((x1 - x0) - 9.0 * scale) <= 2 and abs((y1 - y0) - 12.0 * scale) <= 2


def test_registration_panels_checkerboard_and_grid(tmp_path: Path) -> None:
    geometry = Geometry(shape=(6, 32, 32), spacing=(1.0, 1.0, 2.0))
    fixed = Volume.from_geometry(np.full(geometry.shape, 100.0, np.float32), geometry)
    warped = Volume.from_geometry(np.zeros(geometry.shape, np.float32), geometry)
    shift = np.zeros((*geometry.shape, 3))
    shift[..., 0] = 3.0  # 3 mm = 3 voxels towards patient left (image right)
    field = DisplacementField(shift, geometry)
    preview = preview_registration(fixed, fixed, warped, field, tmp_path / "reg.png", window=Window(50, 100),
                                   checker_blocks=4, grid_lines=4)
    pixels = _pixels(preview.path)
    assert [p.title for p in preview.panels] == ["fixed", "moving", "warped", "checkerboard", "deformation"]
    checker = preview.panels[3]
    x, y = checker.index_to_pixel(2, 2)  # block (0, 0): fixed (white)
    assert tuple(pixels[y, x]) == (255, 255, 255)
    x, y = checker.index_to_pixel(2, 10)  # block (0, 1): warped (black)
    assert tuple(pixels[y, x]) == (0, 0, 0)
    grid = preview.panels[4]
    grid_pixels = _colour_mask(pixels, GRID_COLOUR)
    moved_x, _ = grid.index_to_pixel(0, 0 + 3)  # the first vertical line, shifted by 3 voxels
    _, top = grid.index_to_pixel(1, 0)
    _, bottom = grid.index_to_pixel(30, 0)
    assert grid_pixels[top:bottom, moved_x - 1:moved_x + 2].any(axis=1).mean() > 0.9
    unshifted_x, _ = grid.index_to_pixel(0, 0)
    assert not grid_pixels[top:bottom, unshifted_x].any()


def test_classification_bars_and_heat_map(tmp_path: Path) -> None:
    geometry = Geometry(shape=(1, 120, 80), spacing=(0.2, 0.2, 1.0))
    image = Volume.from_geometry(np.tile(np.linspace(0, 4095, 80), (1, 120, 1)), geometry)
    heat = np.zeros(geometry.shape)
    heat[0, 30:60, 10:40] = 1.0
    classification = Classification([ClassifiedImage("R-CC", {"benign": 0.8929, "malignant": 0.3259})],
                                     groups=[ClassifiedImage("right", {"benign": 0.95, "malignant": 0.18})])
    preview = preview_classification(image, classification, tmp_path / "cls.png", overlays=heat)
    pixels = _pixels(preview.path)
    [panel] = preview.panels
    assert abs(panel.width / panel.height - 80 / 120) < 0.02
    x, y = panel.index_to_pixel(45, 25)
    r, g, b = pixels[y, x].astype(int)
    assert r > g + 50 and g == b  # heat map: red over grey
    x, y = panel.index_to_pixel(100, 60)
    assert len(set(pixels[y, x].tolist())) == 1  # no heat: grey
    bar_row = pixels[panel.top + panel.height + 4 + 8]
    bar_width = panel.width - min(90, panel.width // 2) - 40
    for index, probability in enumerate((0.8929, 0.3259)):
        row = pixels[panel.top + panel.height + 4 + 16 * index + 8]
        filled = _colour_mask(row[None], _CLASS_COLOURS[index]).sum()
        assert abs(filled - probability * bar_width) <= 2
    assert _colour_mask(bar_row[None], _CLASS_COLOURS[0]).any()


def test_detection_tile_can_show_the_slab_the_finding_was_seen_on(tmp_path: Path) -> None:
    """With slab_mm the tile is the maximum over the slab centred on the finding: a bright dot two slices (6 mm)
    from the finding's slice shows in a 15 mm slab and not in the plain slice."""
    array = np.full(GEOMETRY.shape, -900, dtype=np.int16)
    array[8, 20, 25] = 300  # two slices above the finding
    volume = Volume.from_geometry(array, GEOMETRY)
    centre = tuple(GEOMETRY.zyx_to_world(np.array([6.0, 20.0, 25.0])))
    detections = Detections([Detection(centre, (12.0, 12.0, 6.0), 0.9, diameter_mm=12.0)])
    for slab_mm, expect_dot in ((None, False), (15.0, True)):
        preview = preview_detections(volume, detections, tmp_path / f"slab{slab_mm}.png", window=Window(0, 400),
                                     slab_mm=slab_mm)
        panel = preview.panels[0]
        assert panel.slice_index == 6
        region = _panel_pixels(_pixels(preview.path), panel)
        x, y = panel.world_to_pixel(np.array(GEOMETRY.zyx_to_world(np.array([8.0, 20.0, 25.0]))))
        dot = region[int(y) - panel.top - 1:int(y) - panel.top + 2, int(x) - panel.left - 1:int(x) - panel.left + 2]
        assert (dot.max() > 200) == expect_dot, slab_mm
