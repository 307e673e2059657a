"""GMIC's building blocks and forward contract: sizes of the published network, top-t% pooling, greedy patch
retrieval (torch and numpy agree), cropping, the two halves, the loss, and refusals of bad configs and inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radassist.errors import InputError
from radassist.mammo.losses import GmicLossConfig, gmic_loss
from radassist.mammo.model import (
    PUBLISHED_TOP_T_PERCENT,
    Gmic,
    GmicConfig,
    crop_patches,
    crop_patches_numpy,
    retrieve_roi,
    retrieve_roi_numpy,
    select_patches_numpy,
    top_t_percent_pool,
)


def small_config(**changes) -> GmicConfig:
    values = dict(global_filters=4, post_processing_dim=64, local_filters=4, local_blocks=(1, 1, 1, 1),
                  attention_dim=8, crop_shape=(64, 48), num_patches=3, top_t_percent=10.0)
    values.update(changes)
    return GmicConfig(**values)


def test_published_configs() -> None:
    assert {n: GmicConfig.for_published_model(n).top_t_percent for n in range(1, 6)} == PUBLISHED_TOP_T_PERCENT
    assert PUBLISHED_TOP_T_PERCENT == {1: 2.0, 2: 3.0, 3: 3.0, 4: 5.0, 5: 10.0}
    config = GmicConfig()
    assert (config.num_patches, config.crop_shape, config.attention_dim, config.local_features) == (6, (256, 256),
                                                                                                   128, 512)
    assert config.global_channels == config.post_processing_dim == 256
    assert config.saliency_size((2944, 1920)) == config.cam_size == (46, 30)
    with pytest.raises(InputError, match="numbered 1-5"):
        GmicConfig.for_published_model(6)


@pytest.mark.parametrize("changes, message", [
    ({"post_processing_dim": 512}, "post_processing_dim must equal the global network's output channels 256"),
    ({"use_v1_global": True}, "use_v1_global=True"),
    ({"top_t_percent": 0.0}, "top_t_percent"),
    ({"global_backbone": "resnet50"}, "global_backbone"),
    ({"global_strides": (1, 2)}, "one value per stage"),
])
def test_bad_configs_are_refused(changes, message) -> None:
    with pytest.raises(InputError, match=message):
        GmicConfig(**changes)


def test_published_global_network_gives_46_by_30_saliency_maps_for_the_published_input() -> None:
    model = Gmic(GmicConfig.for_published_model(1)).eval()
    with torch.no_grad():
        out = model.forward_global(torch.randn(1, 1, 2944, 1920))
    assert out.saliency_maps.shape == (1, 2, 46, 30)
    assert out.global_vector.shape == (1, 256) and out.y_global.shape == (1, 2)


def test_top_t_percent_pool_is_the_mean_of_the_largest_values() -> None:
    maps = torch.rand(3, 2, 46, 30, generator=torch.Generator().manual_seed(0))
    for percent, count in ((2.0, 28), (3.0, 41), (5.0, 69), (10.0, 138)):  # round(t/100 * 1380)
        expected = maps.flatten(2).topk(count, dim=2).values.mean(2)
        torch.testing.assert_close(top_t_percent_pool(maps, percent), expected)
    tiny = torch.tensor([[[[0.1, 0.9], [0.3, 0.2]]]])  # 1 % of 4 cells rounds to 0: at least one value is used
    torch.testing.assert_close(top_t_percent_pool(tiny, 1.0), torch.tensor([[0.9]]))


def test_retrieve_roi_takes_the_brightest_windows_greedily_without_overlap() -> None:
    saliency = torch.zeros(1, 2, 46, 30)
    saliency[0, 1, 10:14, 20:24] = 1.0  # strongest, malignant map
    saliency[0, 0, 30:34, 2:6] = 0.8  # benign map: after min-max normalisation as strong as the malignant blob
    saliency[0, 1, 30:34, 2:6] = 0.5  # and the malignant map agrees: the sum makes this window the best
    corners = retrieve_roi(saliency, (2944, 1920), (256, 256), num_patches=3)
    assert corners.dtype == torch.int64 and corners.shape == (1, 3, 2)
    # 256-pixel patches are 4 x 4 cells; cell (r, c) starts at pixel (64 r, 64 c)
    assert corners[0, 0].tolist() == [30 * 64, 2 * 64]
    assert corners[0, 1].tolist() == [10 * 64, 20 * 64]
    boxes = corners[0].tolist()
    for i in range(3):
        for j in range(i + 1, 3):
            (r1, c1), (r2, c2) = boxes[i], boxes[j]
            assert abs(r1 - r2) >= 256 or abs(c1 - c2) >= 256, "patches overlap"


def test_retrieve_roi_numpy_matches_torch_and_patches_lie_inside_the_image() -> None:
    generator = torch.Generator().manual_seed(3)
    for image_size, cam, crop in (((2944, 1920), (46, 30), (256, 256)), ((256, 160), (16, 10), (48, 48)),
                                  ((300, 200), (5, 4), (100, 90))):
        saliency = torch.rand(4, 2, *cam, generator=generator)
        ours = retrieve_roi(saliency, image_size, crop, num_patches=4)
        assert np.array_equal(ours.numpy(), retrieve_roi_numpy(saliency.numpy(), image_size, crop, 4))
        assert (ours >= 0).all()
        assert (ours[..., 0] + crop[0] <= image_size[0]).all() and (ours[..., 1] + crop[1] <= image_size[1]).all()
    flat = torch.full((1, 2, 8, 6), 0.5)  # a constant map: no division by a zero range
    assert torch.isfinite(retrieve_roi(flat, (128, 96), (32, 32), 2).float()).all()


def test_crop_patches_cuts_at_the_corners_in_torch_and_numpy() -> None:
    images = torch.arange(2 * 40 * 30, dtype=torch.float32).reshape(2, 1, 40, 30)
    corners = torch.tensor([[[0, 0], [10, 5]], [[30, 20], [3, 17]]])
    patches = crop_patches(images, corners, (10, 10))
    assert patches.shape == (2, 2, 10, 10)
    assert torch.equal(patches[1, 1], images[1, 0, 3:13, 17:27])
    assert torch.equal(patches[0, 1], images[0, 0, 10:20, 5:15])
    assert np.array_equal(crop_patches_numpy(images.numpy(), corners.numpy(), (10, 10)), patches.numpy())


def test_forward_contract() -> None:
    config = small_config()
    model = Gmic(config).eval()
    x = torch.randn(2, 1, 256, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
    h, w = config.saliency_size((256, 192))
    assert out.saliency_maps.shape == (2, 2, h, w) == (2, 2, 4, 3)
    for name in ("y_global", "y_local", "y_fusion"):
        value = getattr(out, name)
        assert value.shape == (2, 2) and ((value > 0) & (value < 1)).all(), name
    assert ((out.saliency_maps >= 0) & (out.saliency_maps <= 1)).all()
    assert out.patch_locations.shape == (2, 3, 2) and out.patches.shape == (2, 3, 64, 48)
    assert out.attention.shape == (2, 3)
    torch.testing.assert_close(out.attention.sum(1), torch.ones(2))
    row, col = out.patch_locations[1, 2].tolist()
    assert torch.equal(out.patches[1, 2], x[1, 0, row:row + 64, col:col + 48])
    torch.testing.assert_close(out.y_global, top_t_percent_pool(out.saliency_maps, 10.0))


def test_the_two_halves_with_numpy_selection_give_the_full_forward() -> None:
    model = Gmic(small_config()).eval()
    x = torch.randn(3, 1, 256, 192, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(x)
        glob = model.forward_global(x)
        corners, patches = select_patches_numpy(x.numpy(), glob.saliency_maps.numpy(), model.config)
        local = model.forward_local(torch.from_numpy(patches), glob.global_vector)
    assert np.array_equal(corners, full.patch_locations.numpy())
    torch.testing.assert_close(local.y_fusion, full.y_fusion)
    torch.testing.assert_close(local.attention, full.attention)


def test_training_step_reaches_every_parameter_and_the_loss_has_its_terms() -> None:
    model = Gmic(small_config()).train()
    x = torch.randn(2, 1, 256, 192, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    out = model(x)
    terms = gmic_loss(out, labels, GmicLossConfig(beta=1e-3))
    terms.total.backward()
    without_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert without_grad == []
    bce = torch.nn.functional.binary_cross_entropy
    expected = (bce(out.y_global, labels) + bce(out.y_local, labels) + bce(out.y_fusion, labels)
                + 1e-3 * out.saliency_maps.sum() / 2)
    torch.testing.assert_close(terms.total, expected)
    with pytest.raises(ValueError, match="labels of shape"):
        gmic_loss(out, labels[:, :1])


def test_bad_inputs_are_refused() -> None:
    model = Gmic(small_config()).eval()
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.zeros(1, 3, 256, 192))
    with pytest.raises(ValueError, match="smaller than its patches"):
        model(torch.zeros(1, 1, 60, 192))
