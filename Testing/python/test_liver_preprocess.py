"""What the liver networks see: windows, 2.5-D stacks, the CT check, and augmentation that moves image and mask
together."""

from __future__ import annotations

import numpy as np
import pytest

from radassist.errors import InputError
from radassist.liver.augment import AugmentConfig, augment_pair, random_crop
from radassist.liver.preprocess import (ABDOMINAL_WINDOW, SEED_WINDOW, check_ct, stack_context, window_by_name,
                                        window_to_unit)
from radassist.volume import SourceInfo, Volume


def test_seed_window_clips_to_plus_minus_1024():
    values = np.array([-3000, -1024, 0, 1024, 3000], dtype=np.int16)
    assert window_to_unit(values, SEED_WINDOW).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert window_by_name("abdominal") == ABDOMINAL_WINDOW == (-200.0, 250.0)
    assert window_by_name("-100,300") == (-100.0, 300.0)
    with pytest.raises(InputError, match="LOW < HIGH"):
        window_by_name("300,-100")


def test_context_stack_repeats_the_end_slices():
    slices = np.arange(4)[:, None, None] * np.ones((1, 2, 2))
    stacked = stack_context(slices, 1)
    assert stacked.shape == (4, 3, 2, 2)
    assert stacked[:, :, 0, 0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]]


def _ct(array, modality="CT"):
    return Volume(array=array, source=SourceInfo(path="scan.nii.gz", modality=modality))


def test_check_ct_refuses_what_is_not_an_abdominal_ct():
    ct = np.full((4, 16, 16), -1000, dtype=np.int16)
    ct[:, 4:12, 4:12] = 60
    check_ct(_ct(ct))
    with pytest.raises(InputError, match="scan.nii.gz: is a MR image"):
        check_ct(_ct(ct, "MR"))
    with pytest.raises(InputError, match="no air"):
        check_ct(_ct(np.full((4, 16, 16), 300, dtype=np.int16)))  # an MR-like positive image
    with pytest.raises(InputError, match="single 2-D image"):
        check_ct(_ct(ct[:1]))


def test_augmentation_moves_image_and_mask_together():
    rng = np.random.default_rng(3)
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:40, 20:50] = 1
    mask[25:30, 30:36] = 2
    image = mask.astype(np.float32)[None] / 2.0
    for _ in range(5):
        out_image, out_mask = augment_pair(image, mask, rng, AugmentConfig(elastic_probability=1.0))
        assert out_mask.dtype == mask.dtype and set(np.unique(out_mask)) <= {0, 1, 2}
        agreement = np.mean(np.rint(out_image[0] * 2) == out_mask)
        assert agreement > 0.97  # only interpolated edge pixels may differ
        assert out_mask.any()


def test_flips_are_exact_without_other_changes():
    mask = np.arange(12, dtype=np.uint8).reshape(3, 4)
    config = AugmentConfig(flip_probability=1.0, rotation_degrees=0.0, scale_range=(1.0, 1.0),
                           elastic_probability=0.0)
    image, out = augment_pair(mask.astype(np.float32), mask, np.random.default_rng(0), config)
    assert np.array_equal(out, mask[::-1, ::-1]) and np.array_equal(image[0], mask[::-1, ::-1])


def test_random_crop_cuts_the_same_window():
    image = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    crop_image, crop_mask = random_crop(image, image[0].astype(np.int64), (4, 6), np.random.default_rng(1))
    assert crop_image.shape == (1, 4, 6) and np.array_equal(crop_image[0], crop_mask)
    with pytest.raises(ValueError, match="larger than the slice"):
        random_crop(image, image[0], (12, 4), np.random.default_rng(1))
