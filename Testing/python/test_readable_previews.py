"""Outputs people can read: 8-bit previews with orientation letters on every panel, captions that say when a
picture shows reference labels, lesion marks large enough to see, a "no findings" picture of the organ examined,
and ROC and training curves drawn as charts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from radassist.mammo.postprocess import letters_of_image, mammogram_letters
from radassist.metrics.classification import auc_interval
from radassist.metrics.curves import log_and_curves, read_log, write_roc_png
from radassist.results.detections import Detections
from radassist.results.preview import (CAPTION_HEIGHT, LETTER_COLOUR, MARK_COLOUR, MIN_MARK_PX, edge_letters,
                                       organ_slice, preview_classification, preview_detections, preview_labelmap)
from radassist.results.tables import Classification, ClassifiedImage
from radassist.volume import Geometry, Volume
from readable_outputs import assert_readable_png

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image).astype(int)


def colour_near(image: np.ndarray, x: int, y: int, colour: tuple[int, int, int], radius: int = 12) -> bool:
    patch = image[max(y - radius, 0):y + radius, max(x - radius, 0):x + radius]
    return bool((np.abs(patch - np.array(colour)).sum(axis=-1) < 60).any())


def letters_drawn(image: np.ndarray, panel) -> bool:
    """The letter colour appears at the middle of each of the panel's four edges."""
    mid_x, mid_y = panel.left + panel.width // 2, panel.top + panel.height // 2
    spots = ((panel.left + 6, mid_y), (panel.left + panel.width - 6, mid_y), (mid_x, panel.top + 7),
             (mid_x, panel.top + panel.height - 7))
    return all(colour_near(image, x, y, LETTER_COLOUR, 9) for x, y in spots)


# -- orientation letters ---------------------------------------------------------------------------------------

def test_edge_letters_follow_the_geometry() -> None:
    lps = Geometry((4, 5, 6), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), IDENTITY)
    assert edge_letters(lps, "axial") == ("R", "L", "A", "P")  # the patient's right on the image's left
    assert edge_letters(lps, "coronal") == ("R", "L", "S", "I")
    assert edge_letters(lps, "sagittal") == ("A", "P", "S", "I")
    ras = Geometry((4, 5, 6), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))
    assert edge_letters(ras, "axial") == ("L", "R", "P", "A")  # unturned RAS voxels: shown mirrored, and said so
    assert mammogram_letters(False, "L", "CC") == ("P", "A", "L", "R")  # chest wall left, lateral side up
    assert mammogram_letters(True, "R", "MLO") == ("A", "P", "S", "I")
    assert mammogram_letters(False, None, None) == ("P", "A", "", "")


def test_every_panel_of_a_segmentation_preview_has_letters_and_a_reference_caption(tmp_path: Path) -> None:
    from radassist.synthetic.abdomen import AbdomenPhantomConfig, make_abdomen_ct

    phantom = make_abdomen_ct(seed=0, config=AbdomenPhantomConfig(shape=(24, 64, 80), spacing=(3.0, 3.0, 6.0)))
    path = tmp_path / "liver.png"
    preview = preview_labelmap(phantom.volume, phantom.labels, path, caption="REFERENCE segmentation (ground truth)")
    image = assert_readable_png(path)
    assert [panel.edge_letters for panel in preview.panels] == [("R", "L", "A", "P"), ("R", "L", "S", "I"),
                                                                ("A", "P", "S", "I")]
    assert all(letters_drawn(image, panel) for panel in preview.panels)
    assert min(panel.top for panel in preview.panels) > CAPTION_HEIGHT  # the caption strip is above the views
    assert (image[:CAPTION_HEIGHT] > 200).all(axis=-1).any()  # white caption text on it
    plain = preview_labelmap(phantom.volume, phantom.labels, tmp_path / "plain.png")
    assert preview.size[1] == plain.size[1] + CAPTION_HEIGHT


# -- no findings ---------------------------------------------------------------------------------------------------

def test_no_findings_shows_the_slice_with_the_lungs_not_the_middle_one(tmp_path: Path) -> None:
    array = np.full((40, 48, 48), 40, dtype=np.int16)  # soft tissue everywhere ...
    array[4:14, 10:38, 8:20] = -800  # ... and lungs in the top quarter of the scan only
    array[4:14, 10:38, 28:40] = -800
    volume = Volume(array, spacing=(2.0, 2.0, 5.0))
    assert organ_slice(array) in range(4, 14)
    path = tmp_path / "nodules.png"
    preview = preview_detections(volume, Detections([], volume.geometry, volume.source, engine="classic"), path)
    (panel,) = preview.panels
    assert panel.slice_index in range(4, 14) and panel.slice_index != 20
    assert "no findings" in panel.title and letters_drawn(pixels(path), panel)
    image = pixels(path)
    inside = image[panel.top:panel.top + panel.height, panel.left:panel.left + panel.width]
    assert (inside.mean(axis=-1) < 120).mean() > 0.1  # the dark lungs (-800 HU: grey 94) are in the picture
    assert organ_slice(np.full((5, 4, 4), 100.0)) == 2  # no lung anywhere: the middle slice


# -- mammograms ----------------------------------------------------------------------------------------------------

def test_a_mammogram_preview_is_8_bit_with_visible_lesion_rings_and_view_letters(tmp_path: Path) -> None:
    from radassist.synthetic.mammo import MammoPhantomConfig, make_mammogram_exam

    exam = make_mammogram_exam(seed=0, config=MammoPhantomConfig(shape=(368, 240), pixel_spacing_mm=0.4))
    view = exam.view("L-CC")
    lesion = np.zeros(view.pixels.shape, bool)
    lesion[200, 120] = True  # a one-pixel lesion: at preview scale far smaller than a pixel
    labels = Classification(images=[ClassifiedImage("L-CC", {"benign": 0.0, "malignant": 1.0})], model="reference")
    letters = {"L-CC": letters_of_image(view.pixels.astype(float), "L", "CC")}
    path = tmp_path / "exam.png"
    preview = preview_classification({"L-CC": view.to_volume()}, labels, path, marks={"L-CC": lesion},
                                     letters=letters, caption="REFERENCE labels")
    image = assert_readable_png(path)
    (panel,) = preview.panels
    x, y = panel.index_to_pixel(200, 120)
    ring = np.abs(image - np.array(MARK_COLOUR)).sum(axis=-1) < 60
    ys, xs = np.nonzero(ring)
    assert xs.size and xs.max() - xs.min() >= MIN_MARK_PX and ys.max() - ys.min() >= MIN_MARK_PX
    assert abs((xs.max() + xs.min()) / 2 - x) <= 2 and abs((ys.max() + ys.min()) / 2 - y) <= 2  # centred on it
    assert letters["L-CC"] == mammogram_letters(False, "L", "CC")  # the phantom's chest wall is on the left
    assert letters_drawn(image, panel)


def test_demo_mammograms_are_inputs_and_its_preview_says_reference(tmp_path: Path) -> None:
    from radassist.commands.demo import _mammo
    from radassist.runtime.progress import Progress

    _mammo(tmp_path, 0, Progress())
    for png in tmp_path.rglob("*.png"):
        with Image.open(png) as image:
            if png.parent.name == "input":
                assert image.mode.startswith("I"), png  # the 16-bit data GMIC reads, not a preview
            else:
                assert image.mode == "RGB", png  # what people look at: 8-bit
    assert sorted(p.name for p in (tmp_path / "input").iterdir()) == ["L-CC.png", "L-MLO.png", "R-CC.png",
                                                                        "R-MLO.png"]
    assert_readable_png(tmp_path / "exam.png")


# -- curves --------------------------------------------------------------------------------------------------------

def test_roc_curves_are_drawn_with_their_auc(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = [0] * 30 + [1] * 20
    scores = list(rng.random(30) * 0.7) + list(0.3 + rng.random(20) * 0.7)
    result = auc_interval(labels, scores, "delong", 0.95).as_dict()
    path = write_roc_png({"image malignant": (labels, scores, result),
                          "breast benign": ([0, 0], [0.2, 0.4], {"auc": None, "reason": "one class"})},
                         tmp_path / "roc.png")
    image = assert_readable_png(path)
    blue = (np.abs(image - np.array([31, 119, 180])).sum(axis=-1) < 40)  # matplotlib's first line colour
    assert blue.sum() > 200  # the curve is drawn


def test_training_curves_read_the_log_and_mark_the_kept_epoch(tmp_path: Path) -> None:
    rows = [{"epoch": e, "train_loss": 1 / e, "validation_dice": min(0.9, 0.2 * e), "kept": e == 3}
            for e in range(1, 6)]
    log, png = log_and_curves(rows, tmp_path, "test")
    assert [row["kept"] for row in read_log(log)] == ["0", "0", "1", "0", "0"]
    assert read_log(log)[1]["train_loss"] == "0.5"
    image = assert_readable_png(png)
    assert image.shape[1] > image.shape[0]  # two panels side by side
    blue = (np.abs(image - np.array([31, 119, 180])).sum(axis=-1) < 40)
    left, right = blue[:, : image.shape[1] // 2], blue[:, image.shape[1] // 2:]
    assert left.sum() > 100 and right.sum() > 100  # the training loss on the left, the validation Dice right
