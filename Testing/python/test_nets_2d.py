"""The 2-D U-Net and SegNet: shapes, configuration, SegNet's index unpooling, registry names and ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from radassist.lung.infection import model as infection_model  # registers the two architectures
from radassist.nets import (DoubleConv2d, MaxPoolWithIndices2d, MaxUnpoolByIndices2d, SegNet2d, UNet2d,
                            doubling_channels)
from radassist.runtime.onnx_backend import assert_onnx_parity
from radassist.runtime.registry import build_model


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_unet_keeps_the_image_size_and_follows_its_configuration():
    torch.manual_seed(0)
    net = UNet2d(in_channels=2, out_channels=5, channels=doubling_channels(4, 3), dropout=0.2, batch_norm=False)
    assert net.depth == 3 and net.size_multiple == 8 and net.channels == (4, 8, 16, 32)
    out = net.eval()(torch.randn(3, 2, 40, 24))
    assert out.shape == (3, 5, 40, 24)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    dropouts = [m for m in net.modules() if isinstance(m, nn.Dropout2d)]
    assert len(dropouts) == 2 and all(d.p == 0.2 for d in dropouts)  # the two deepest levels only


def test_unet_refuses_sizes_that_its_poolings_cannot_halve():
    with pytest.raises(ValueError, match="multiple of 4"):
        UNet2d(1, 2, (4, 8, 16))(torch.zeros(1, 1, 30, 32))


def test_the_paper_unet_and_segnet_have_the_published_sizes():
    unet = build_model(infection_model.UNET, {"inChannels": 1, "outChannels": 4, "channels": [64, 128, 256, 512, 1024]})
    segnet = build_model(infection_model.SEGNET, {"inChannels": 1, "outChannels": 4, "encoder": "vgg16-bn"})
    unet_params = sum(p.numel() for p in unet.parameters())
    segnet_params = sum(p.numel() for p in segnet.parameters())
    assert 30e6 < unet_params < 32e6  # U-Net: about 31 million weights
    assert 29e6 < segnet_params < 30e6  # SegNet (VGG-16 encoder + mirrored decoder): about 29.5 million
    convs = [m for m in segnet.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 26  # 13 encoder + 13 decoder convolutions


def test_unpooling_puts_values_where_the_maxima_were():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 8)
    pooled, indices = MaxPoolWithIndices2d()(x)
    ours = MaxUnpoolByIndices2d()(pooled, indices, 6, 8)
    reference = nn.MaxUnpool2d(2, 2)(pooled, indices, output_size=(6, 8))
    torch.testing.assert_close(ours, reference)
    assert int((ours != 0).sum()) == pooled.numel()  # only the maxima survive, zeros elsewhere


def test_segnet_decoder_uses_the_pooling_indices_and_no_learned_upsampling():
    torch.manual_seed(0)
    net = SegNet2d(1, 3, channels=(4, 8), convs_per_stage=(1, 2)).eval()
    assert not any(isinstance(m, (nn.ConvTranspose2d, nn.Upsample)) for m in net.modules())
    assert net.size_multiple == 4
    x = torch.randn(1, 1, 16, 16)
    seen = []
    handle = net.unpool.register_forward_hook(lambda module, args, out: seen.append((args[1].clone(), out)))
    assert net(x).shape == (1, 3, 16, 16)
    handle.remove()
    assert len(seen) == 2  # one unpooling per stage
    indices, unpooled = seen[-1]  # the top stage: non-zeros only at the remembered positions
    flat = unpooled.flatten(2)
    nonzero = flat != 0
    allowed = torch.zeros_like(nonzero)
    allowed.scatter_(2, indices.flatten(2), True)
    assert bool((nonzero & ~allowed).sum() == 0)


def test_segnet_encoder_presets_and_custom_stages():
    small = build_model(infection_model.SEGNET, {"encoder": "vgg11-bn", "outChannels": 2})
    assert small.convs_per_stage == (1, 1, 2, 2, 2)
    custom = build_model(infection_model.SEGNET, {"channels": [4, 8, 8], "convsPerStage": [1, 1, 1]})
    assert custom.channels == (4, 8, 8) and custom.out_channels == 4
    with pytest.raises(ValueError, match="unknown SegNet encoder"):
        build_model(infection_model.SEGNET, {"encoder": "resnet50"})
    with pytest.raises(ValueError, match="one conv count per stage"):
        SegNet2d(1, 2, channels=(4, 8), convs_per_stage=(1,))


def test_blocks_are_reusable_with_named_arguments():
    block = DoubleConv2d(in_channels=3, out_channels=6, batch_norm=True, dropout=0.1)
    assert block(torch.zeros(1, 3, 5, 5)).shape == (1, 6, 5, 5)


@pytest.mark.parametrize("net", [
    UNet2d(1, 4, channels=(4, 8, 16), dropout=0.1),
    UNet2d(1, 4, channels=(4, 8), upsample="bilinear", batch_norm=False),
    SegNet2d(1, 4, channels=(4, 8, 8), convs_per_stage=(1, 2, 2)),
], ids=["unet-transpose", "unet-bilinear", "segnet"])
def test_onnx_export_matches_torch_for_other_batch_and_image_sizes(net, tmp_path):
    torch.manual_seed(0)
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval mode is really exercised
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    example = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    result = assert_onnx_parity(net.eval(), example, tmp_path, atol=1e-4, input_names=["image"],
                                output_names=["logits"])
    shapes = [check.input_shapes["image"] for check in result.checks]
    assert (2, 1, 32, 32) in shapes and (3, 1, 64, 64) in shapes  # batch + 1, size doubled
    assert result.passed
