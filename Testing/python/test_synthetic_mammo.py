"""Mammogram phantoms: 12-bit pixels, chest wall on the right edge per breast, lesion masks and exam consistency."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from radassist.synthetic.mammo import (VIEWS, MammoPhantomConfig, make_mammogram, make_mammogram_exam,
                                       write_view_png)

SMALL = MammoPhantomConfig(shape=(736, 480), pixel_spacing_mm=0.4)
ALL_FINDINGS = {"L": ["malignant_mass", "calcifications"], "R": ["benign_mass", "benign_calcifications"]}


@pytest.fixture(scope="module")
def exam():
    return make_mammogram_exam(seed=2, config=SMALL, findings=ALL_FINDINGS)


def test_same_seed_same_image_other_seed_other_image():
    first = make_mammogram(seed=1, laterality="L", view="MLO", config=SMALL)
    again = make_mammogram(seed=1, laterality="L", view="MLO", config=SMALL)
    other = make_mammogram(seed=9, laterality="L", view="MLO", config=SMALL)
    assert np.array_equal(first.pixels, again.pixels)
    assert np.array_equal(first.malignant_mask, again.malignant_mask)
    assert not np.array_equal(first.pixels, other.pixels)


def test_default_size_is_half_the_gmic_window():
    config = MammoPhantomConfig()
    assert config.shape == (1472, 960)
    assert 0.1 <= config.pixel_spacing_mm <= 0.2


def test_pixels_are_12_bit_with_the_breast_against_its_chest_wall(exam):
    assert [view.name for view in exam.views] == list(VIEWS)
    for view in exam.views:
        pixels = view.pixels
        assert pixels.dtype == np.uint16 and pixels.max() <= 4095
        breast = view.breast_mask
        assert np.median(pixels[~breast]) < 60  # near-black background
        assert 700 < np.median(pixels[breast]) < 2800
        wall, far = (0, -1) if view.laterality == "L" else (-1, 0)
        assert breast[:, wall].mean() > 0.5 and not breast[:, far].any()


def test_mlo_views_show_the_pectoral_muscle(exam):
    for laterality in ("L", "R"):
        mlo = exam.view(f"{laterality}-MLO").pixels.astype(float)
        corner = mlo[:40, :25] if laterality == "L" else mlo[:40, -25:]
        assert corner.mean() > np.median(mlo[exam.view(f"{laterality}-MLO").breast_mask])


def test_lesion_masks_lie_in_the_breast_and_are_denser_than_around(exam):
    for view in exam.views:
        for kind in ("benign", "malignant"):
            mask = getattr(view, f"{kind}_mask")
            assert view.labels[kind] == int(mask.any())
            if not mask.any():
                continue
            assert np.all(view.breast_mask[mask])
            ring = ndimage.binary_dilation(mask, iterations=12) & ~ndimage.binary_dilation(mask, iterations=3)
            ring &= view.breast_mask
            assert view.pixels[mask].mean() > view.pixels[ring].mean() + 150
    assert exam.labels == {"L": {"benign": 0, "malignant": 1}, "R": {"benign": 1, "malignant": 0}}


def test_a_lesion_appears_at_the_same_depth_in_cc_and_mlo(exam):
    for laterality in ("L", "R"):
        cc, mlo = exam.view(f"{laterality}-CC"), exam.view(f"{laterality}-MLO")
        assert cc.findings == mlo.findings
        for kind in ("benign", "malignant"):
            a, b = getattr(cc, f"{kind}_mask"), getattr(mlo, f"{kind}_mask")
            assert a.any() == b.any()
            if a.any():
                depth_cc = np.argwhere(a)[:, 1].mean()
                depth_mlo = np.argwhere(b)[:, 1].mean()
                assert abs(depth_cc - depth_mlo) * SMALL.pixel_spacing_mm < 3.0


def test_random_findings_are_shared_by_the_views_of_a_breast():
    exam = make_mammogram_exam(seed=4, config=SMALL)
    for laterality in ("L", "R"):
        assert exam.view(f"{laterality}-CC").findings == exam.view(f"{laterality}-MLO").findings
        assert exam.labels[laterality] == exam.view(f"{laterality}-CC").labels


def test_png_round_trip_keeps_the_12_bit_values(tmp_path, exam):
    view = exam.view("R-CC")
    path = write_view_png(view, tmp_path / "R-CC.png")
    image = Image.open(path)
    assert image.mode == "I;16"
    assert np.array_equal(np.array(image), view.pixels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R-CC.png"]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        make_mammogram(laterality="X", config=SMALL)
    with pytest.raises(ValueError):
        make_mammogram(view="ML", config=SMALL)
    with pytest.raises(ValueError):
        make_mammogram(findings=["tumour"], config=SMALL)
