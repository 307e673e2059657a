"""Backgrounds of brain MRI as shipped: BraTS images z-scored inside the brain have a constant background near -3.6,
not 0. The brain mask comes from the border value, and warped images are padded with it (no grey frames)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radassist.brain.pipeline import BrainImages, _brain, _finish
from radassist.brain.preprocess import background_value, brain_mask_from
from radassist.io import read_volume
from radassist.metrics.registration import dice
from radassist.results.displacement import DisplacementField

CASES = ("brats_2013_pat0001_1", "brats_2013_pat0002_1", "brats_2013_pat0003_1", "brats_2013_pat0004_1")


@pytest.mark.parametrize("case", CASES)
def test_the_brain_of_a_z_scored_brats_image_is_where_it_differs_from_its_border(test_data: Path, case):
    folder = test_data / "brain" / "brats2015" / case
    flair = read_volume(folder / "Flair_subtrMeanDivStd.nii.gz")
    t1c = read_volume(folder / "T1c_subtrMeanDivStd.nii.gz")
    shipped = read_volume(folder / "brainmask.nii.gz").array > 0.5
    assert background_value(flair.array) == pytest.approx(float(flair.array.min()))
    assert background_value(flair.array) < -2.5  # not 0: "non-zero voxels" would be the whole image
    assert np.count_nonzero(flair.array) == flair.array.size
    mask = brain_mask_from([flair.array, t1c.array])
    assert dice(mask, shipped) > 0.99, dice(mask, shipped)
    assert _brain(BrainImages({"flair": flair, "t1ce": t1c})).sum() == mask.sum()


def test_warped_images_are_padded_with_their_background(test_data: Path):
    folder = test_data / "brain" / "brats2015" / CASES[0]
    flair = read_volume(folder / "Flair_subtrMeanDivStd.nii.gz")
    shift = np.zeros((*flair.shape, 3), dtype=np.float32)
    shift[..., 0] = 40.0  # every fixed point reads 40 mm to the side: a band of out-of-view voxels
    field = DisplacementField(shift, flair.geometry)
    images = BrainImages({"flair": flair})
    result = _finish(field, images, images, "classic", None, None, __import__("radassist.runtime.progress",
                                                                                fromlist=["Progress"]).Progress())
    warped = result.warped["flair"].array
    background = background_value(flair.array)
    band = warped[:, :, -30:]  # points that read beyond the image
    assert np.all(band == np.float32(background))
    assert not np.any(warped == 0.0)
