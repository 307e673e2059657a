"""Lung-DETR network: backbone levels, deformable attention against a slow reference, output shapes at several
sizes, padding masks, the config with the catalogue and the registry, and turning outputs into pixel boxes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from radassist.errors import InputError
from radassist.lung.backbone import FrozenBatchNorm2d, ResNetBackbone, fold_batch_norms
from radassist.lung.deformable_attention import MultiScaleDeformableAttention, multi_scale_deformable_attention
from radassist.lung.model import (LungDetr, LungDetrConfig, LungDetrInference, build_lung_detr,
                                  optimizer_parameter_groups, postprocess_outputs)
from radassist.lung.transformer import SinePositionEncoding, encoder_reference_points
from radassist.runtime.registry import build_model, config_from_dict, get_architecture


# --- deformable attention ----------------------------------------------------------------------------------------

def bilinear(image: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Value of a (C, H, W) map at normalised (x, y), pixel centres at (i + 0.5) / size, zero outside."""
    height, width = image.shape[1:]
    px, py = x * width - 0.5, y * height - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    total = torch.zeros(image.shape[0], dtype=torch.float64)
    for xi, wx in ((x0, x0 + 1 - px), (x0 + 1, px - x0)):
        for yi, wy in ((y0, y0 + 1 - py), (y0 + 1, py - y0)):
            if 0 <= xi < width and 0 <= yi < height:
                total += wx * wy * image[:, yi, xi].double()
    return total


def slow_deformable_attention(value, shapes, locations, weights) -> torch.Tensor:
    """The definition, one sampling point at a time."""
    batch, _, heads, head_dim = value.shape
    queries, points = locations.shape[1], locations.shape[4]
    starts = np.cumsum([0] + [h * w for h, w in shapes])
    out = torch.zeros(batch, queries, heads * head_dim, dtype=torch.float64)
    for b in range(batch):
        for q in range(queries):
            for m in range(heads):
                acc = torch.zeros(head_dim, dtype=torch.float64)
                for level, (h, w) in enumerate(shapes):
                    level_map = value[b, starts[level]:starts[level + 1], m].T.reshape(head_dim, h, w)
                    for p in range(points):
                        x, y = locations[b, q, m, level, p].tolist()
                        acc += weights[b, q, m, level, p].double() * bilinear(level_map, x, y)
                out[b, q, m * head_dim:(m + 1) * head_dim] = acc
    return out


@pytest.mark.parametrize("grad", [True, False], ids=["training", "inference"])
def test_deformable_attention_matches_point_by_point_bilinear_sampling(grad):
    """Both paths: with gradients (training) and without (inference weighs the samples in place)."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(6, 8), (3, 4), (2, 2), (1, 1)]
    batch, queries, heads, head_dim, points = 2, 5, 3, 4, 3
    total = sum(h * w for h, w in shapes)
    value = torch.randn(batch, total, heads, head_dim, generator=generator)
    # Locations partly outside [0, 1] so the zero padding is exercised too.
    locations = torch.rand(batch, queries, heads, len(shapes), points, 2, generator=generator) * 1.4 - 0.2
    weights = torch.rand(batch, queries, heads, len(shapes), points, generator=generator)
    weights = weights / weights.sum((-1, -2), keepdim=True)
    with torch.set_grad_enabled(grad):
        fast = multi_scale_deformable_attention(value.requires_grad_(grad), shapes, locations, weights)
    assert fast.requires_grad == grad
    slow = slow_deformable_attention(value.detach(), shapes, locations, weights)
    assert fast.shape == (batch, queries, heads * head_dim)
    np.testing.assert_allclose(fast.detach().double().numpy(), slow.numpy(), atol=1e-5)


@pytest.mark.parametrize("grad", [True, False], ids=["training", "inference"])
def test_points_beyond_every_map_sample_exactly_zero(grad):
    """grid_sample's zero padding, and the inference path's clamped corners on its zero border, agree far out."""
    generator = torch.Generator().manual_seed(1)
    shapes = [(5, 7), (3, 4)]
    value = torch.randn(1, sum(h * w for h, w in shapes), 2, 4, generator=generator) + 10.0
    far = torch.tensor([[-3.0, 0.5], [0.5, 4.0], [2.5, -2.0], [-0.2, 1.3]])  # at least a pixel outside
    locations = far[None, None, None, None].expand(1, 1, 2, len(shapes), 4, 2).contiguous()
    weights = torch.full((1, 1, 2, len(shapes), 4), 1.0 / (4 * len(shapes)))
    with torch.set_grad_enabled(grad):
        out = multi_scale_deformable_attention(value.requires_grad_(grad), shapes, locations, weights)
    assert torch.count_nonzero(out) == 0


def test_attention_offsets_are_in_pixels_of_each_level():
    """With zero offset weights, a query at a pixel centre samples exactly that pixel (plus its ring of points)."""
    attention = MultiScaleDeformableAttention(embed_dim=8, num_heads=2, num_levels=1, num_points=1)
    torch.nn.init.zeros_(attention.sampling_offsets.bias)  # every point on the reference itself
    attention.value_proj = torch.nn.Identity()
    attention.output_proj = torch.nn.Identity()
    value = torch.arange(4 * 5 * 8, dtype=torch.float32).reshape(1, 20, 8)
    reference = torch.tensor([[[[2.5 / 5, 1.5 / 4]]]])  # centre of pixel (x=2, y=1)
    out = attention(torch.randn(1, 1, 8), reference, value, [(4, 5)])
    torch.testing.assert_close(out[0, 0], value[0, 1 * 5 + 2])


def test_sampling_offsets_start_on_a_ring_of_directions():
    attention = MultiScaleDeformableAttention(embed_dim=16, num_heads=4, num_levels=2, num_points=3)
    bias = attention.sampling_offsets.bias.reshape(4, 2, 3, 2)
    torch.testing.assert_close(bias[0, 0], torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]))   # head 0: +x
    torch.testing.assert_close(bias[1, 1, :, 1], torch.tensor([1.0, 2.0, 3.0]))                   # head 1: +y
    assert torch.all(attention.attention_weights.weight == 0)


def test_position_encoding_and_reference_points():
    features = torch.zeros(2, 8, 3, 4)
    position = SinePositionEncoding(8)(features)
    assert position.shape == (2, 8, 3, 4)
    # The first channel encodes y: sin of the normalised row, equal along a row.
    rows = (torch.arange(3) + 0.5) / 3 * 2 * math.pi
    torch.testing.assert_close(position[0, 0, :, 0], rows.sin(), atol=1e-5, rtol=0)
    torch.testing.assert_close(position[0, 0], position[0, 0, :, :1].expand(3, 4))
    padded = torch.zeros(2, 3, 4, dtype=torch.bool)
    padded[1, :, 2:] = True  # image 1 is 2 wide, then padding: x coordinates stretch over the valid part
    masked = SinePositionEncoding(8)(features, padded)
    torch.testing.assert_close(masked[1, :, :, :2], SinePositionEncoding(8)(torch.zeros(1, 8, 3, 2))[0])
    points = encoder_reference_points([(2, 2), (1, 1)], None, torch.zeros(3, 5, 8))
    assert points.shape == (3, 5, 2, 2)
    torch.testing.assert_close(points[0, :, 0], torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75],
                                                              [0.75, 0.75], [0.5, 0.5]]))


# --- backbone ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, width, channels", [("resnet18", 8, (16, 32, 64)), ("resnet34", 4, (8, 16, 32)),
                                                   ("resnet50", 4, (32, 64, 128))])
def test_backbone_returns_c3_c4_c5(name, width, channels):
    backbone = ResNetBackbone(name, in_channels=3, base_width=width).eval()
    features = backbone(torch.randn(1, 3, 64, 96))
    assert backbone.out_channels == channels
    assert [tuple(f.shape) for f in features] == [(1, c, 64 // s, 96 // s) for c, s in zip(channels, (8, 16, 32))]


def test_resnet50_has_the_standard_layout():
    backbone = ResNetBackbone("resnet50", in_channels=3, base_width=64, frozen_batch_norm=False)
    blocks = [len(getattr(backbone, f"layer{i}")) for i in range(1, 5)]
    assert blocks == [3, 4, 6, 3] and backbone.out_channels == (512, 1024, 2048)
    weights = sum(p.numel() for p in backbone.parameters())
    assert weights == 23_508_032  # ResNet-50 without its 1000-class head (25 557 032 - 2 049 000)
    assert "layer4.2.conv3.weight" in backbone.state_dict() and "layer2.0.downsample.1.running_var" in \
        backbone.state_dict()


def test_frozen_batch_norm_uses_its_statistics_and_loads_batch_norm_weights():
    trained = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        trained.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        trained.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
        trained.running_mean.copy_(torch.tensor([0.5, -0.5, 2.0]))
        trained.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    frozen = FrozenBatchNorm2d(3)
    frozen.load_state_dict(trained.state_dict())  # num_batches_tracked is accepted and dropped
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(frozen(x), trained.eval()(x))
    assert not list(frozen.parameters())
    backbone = ResNetBackbone("resnet18", base_width=8, frozen_batch_norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.modules())


# --- the detector ------------------------------------------------------------------------------------------------

def wake_up(model: LungDetr, seed: int = 0) -> LungDetr:
    """Give the heads and offsets that start at zero some weight, so outputs depend on the image as after training."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if any(part in name for part in ("sampling_offsets.weight", "attention_weights.weight", "bbox_embed")):
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


@pytest.fixture(scope="module")
def tiny_model() -> LungDetr:
    torch.manual_seed(0)
    return build_lung_detr(LungDetrConfig.tiny()).eval()


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (2, 1, 64, 64), (1, 1, 96, 160), (2, 1, 128, 64)])
def test_outputs_have_detr_shapes_at_any_multiple_of_32(tiny_model, shape):
    with torch.no_grad():
        outputs = tiny_model(torch.randn(*shape))
    config = tiny_model.config
    assert outputs["pred_logits"].shape == (shape[0], config.num_queries, config.num_classes)
    assert outputs["pred_boxes"].shape == (shape[0], config.num_queries, 4)
    assert len(outputs["aux_outputs"]) == config.decoder_layers - 1
    for auxiliary in outputs["aux_outputs"]:
        assert auxiliary["pred_boxes"].shape == outputs["pred_boxes"].shape
    boxes = outputs["pred_boxes"]
    assert torch.all((boxes > 0) & (boxes < 1))


def test_three_channel_input_and_no_aux_outputs():
    model = build_lung_detr(LungDetrConfig.tiny(in_channels=3, aux_loss=False, num_queries=7)).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 64))
    assert outputs["pred_logits"].shape == (1, 7, 1) and "aux_outputs" not in outputs


def test_padding_mask_hides_padded_tokens_from_the_transformer():
    """What lies under the padding mask cannot change the decoder's output: it is neither attended to nor sampled."""
    torch.manual_seed(1)
    model = wake_up(build_lung_detr(LungDetrConfig.tiny())).eval()
    shapes, valid_widths = [(8, 12), (4, 6), (2, 3), (1, 2)], [8, 4, 2, 1]
    masks = [torch.zeros(1, h, w, dtype=torch.bool) for h, w in shapes]
    for mask, width in zip(masks, valid_widths):
        mask[:, :, width:] = True
    sources = [torch.randn(1, 32, h, w) for h, w in shapes]
    other = [torch.where(mask[:, None], 10 * torch.randn_like(source), source) for mask, source in zip(masks, sources)]
    positions = [model.position_encoding(source, mask) for source, mask in zip(sources, masks)]
    with torch.no_grad():
        first = model.transformer(sources, masks, positions, model.query_embed.weight)[0][-1]
        second = model.transformer(other, masks, positions, model.query_embed.weight)[0][-1]
        unmasked = model.transformer(other, None, positions, model.query_embed.weight)[0][-1]
    torch.testing.assert_close(first, second, atol=1e-5, rtol=1e-5)
    assert (first - unmasked).abs().max() > 1e-2  # the padded values do matter when nothing masks them


def test_detector_takes_a_padding_mask(tiny_model):
    mask = torch.zeros(2, 64, 96, dtype=torch.bool)
    mask[1, :, 64:] = True
    with torch.no_grad():
        outputs = tiny_model(torch.randn(2, 1, 64, 96), mask)
    assert outputs["pred_boxes"].shape == (2, 16, 4) and torch.isfinite(outputs["pred_logits"]).all()


def test_box_refinement_gives_each_decoder_layer_its_own_heads():
    shared = build_lung_detr(LungDetrConfig.tiny())
    refined = build_lung_detr(LungDetrConfig.tiny(with_box_refine=True)).eval()
    assert shared.bbox_embed[0] is shared.bbox_embed[1]
    assert refined.bbox_embed[0] is not refined.bbox_embed[1]
    assert refined.transformer.decoder.bbox_embed is refined.bbox_embed
    with torch.no_grad():
        outputs = refined(torch.randn(1, 1, 64, 64))
    assert outputs["pred_boxes"].shape == (1, 16, 4)


def test_default_config_is_the_papers_and_builds_deformable_detr_sized_model():
    config = LungDetrConfig()
    assert (config.backbone, config.num_queries, config.num_feature_levels, config.hidden_dim, config.num_heads,
            config.encoder_layers, config.decoder_layers, config.dim_feedforward, config.encoder_points,
            config.decoder_points) == ("resnet50", 300, 4, 256, 8, 6, 6, 1024, 4, 4)
    assert (config.focal_alpha, config.focal_gamma, config.dropout, config.aux_loss) == (0.25, 2.0, 0.1, True)
    assert (config.cost_class, config.cost_bbox, config.cost_giou) == (2.0, 5.0, 2.0)
    assert (config.class_loss_weight, config.bbox_loss_weight, config.giou_loss_weight) == (2.0, 5.0, 2.0)
    model = build_lung_detr(config)
    parameters = sum(p.numel() for p in model.parameters())
    assert 39e6 < parameters < 41e6  # Deformable DETR (single scale variants aside): about 40 M
    bias = model.class_embed[0].bias.item()
    assert bias == pytest.approx(-math.log(99))  # prior probability 0.01


def test_config_refuses_what_cannot_be_built():
    with pytest.raises(InputError, match="hidden_dim 30 is not divisible by num_heads 8"):
        LungDetrConfig(hidden_dim=30, group_norm_groups=1)
    with pytest.raises(InputError, match="backbone 'vgg16'"):
        LungDetrConfig(backbone="vgg16")
    with pytest.raises(InputError, match="classification_loss 'softmax' is not supported"):
        LungDetrConfig(classification_loss="softmax")


def test_catalogue_config_builds_through_the_registry():
    """The lung-detr entry's architecture.config (camelCase JSON) is exactly expressible as LungDetrConfig."""
    from radassist.runtime.catalog import load_catalog

    entry = load_catalog().get("lung-detr")
    config = config_from_dict(LungDetrConfig, entry.architecture_config)
    assert config == LungDetrConfig()
    architecture = get_architecture("lung-detr")
    assert architecture.config_class is LungDetrConfig
    small = build_model("lung-detr", dataclasses.asdict(LungDetrConfig.tiny()) | {"num_queries": 5})
    assert isinstance(small, LungDetr) and small.query_embed.num_embeddings == 5
    with pytest.raises(InputError, match="unknown config field"):
        build_model("lung-detr", {"numAnchors": 9})


def test_parameter_groups_follow_the_papers_learning_rates(tiny_model):
    groups = optimizer_parameter_groups(tiny_model, lr=1e-4, lr_backbone=1e-5)
    rates = sorted(group["lr"] for group in groups)
    assert rates == pytest.approx([1e-5, 1e-5, 1e-4])  # backbone, offsets/reference points (x0.1), the rest
    assert sum(len(g["params"]) for g in groups) == len([p for p in tiny_model.parameters() if p.requires_grad])
    backbone_ids = {id(p) for p in tiny_model.backbone.parameters()}
    assert {id(p) for p in groups[1]["params"]} == backbone_ids


# --- outputs -> pixel boxes ------------------------------------------------------------------------------------

def test_postprocess_gives_top_scoring_boxes_in_pixels():
    logits = torch.tensor([[[-5.0], [3.0], [0.0]], [[-4.0], [-6.0], [-5.0]]])
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.25, 0.5, 0.5, 0.25], [0.75, 0.75, 0.1, 0.1]],
                          [[0.5, 0.5, 1.0, 1.0]] * 3])
    found = postprocess_outputs({"pred_logits": logits, "pred_boxes": boxes}, (100, 200), score_threshold=0.1,
                                top_k=2)
    assert len(found) == 2
    np.testing.assert_allclose(found[0].scores, [1 / (1 + math.exp(-3)), 0.5], rtol=1e-6)
    np.testing.assert_allclose(found[0].boxes, [[0.0, 37.5, 100.0, 62.5], [140.0, 70.0, 160.0, 80.0]], atol=1e-4)
    assert found[0].labels.tolist() == [0, 0]
    assert len(found[1]) == 0 and found[1].boxes.shape == (0, 4)
    # numpy input (what ONNX Runtime returns) and one size per image work the same way
    again = postprocess_outputs({"pred_logits": logits.numpy(), "pred_boxes": boxes.numpy()},
                                [(100, 200), (10, 10)], top_k=1)
    np.testing.assert_allclose(again[0].boxes, found[0].boxes[:1], atol=1e-4)
    np.testing.assert_allclose(again[1].boxes, [[0.0, 0.0, 10.0, 10.0]], atol=1e-5)


def test_inference_wrapper_returns_the_final_layer(tiny_model):
    images = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        logits, boxes = LungDetrInference(tiny_model)(images)
        reference = tiny_model(images)
    torch.testing.assert_close(logits, reference["pred_logits"])
    torch.testing.assert_close(boxes, reference["pred_boxes"])


def test_checkpoint_round_trip_rebuilds_the_same_detector(tmp_path):
    """Shared heads, frozen-norm buffers and the config survive save_checkpoint / load_checkpoint (safetensors)."""
    from radassist.runtime.checkpoints import load_checkpoint, save_checkpoint

    config = LungDetrConfig.tiny(num_queries=6)
    model = wake_up(build_lung_detr(config)).eval()
    folder = save_checkpoint(model, "lung-detr", config, tmp_path / "detr", labels={1: "lung nodule"})
    loaded = load_checkpoint(folder)
    assert loaded.architecture == "lung-detr" and loaded.config == config
    images = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(images)["pred_boxes"], model(images)["pred_boxes"])
    assert loaded.model.bbox_embed[0] is loaded.model.bbox_embed[1]


def _randomise_norm_statistics(network: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, (FrozenBatchNorm2d, torch.nn.BatchNorm2d)):
            size = module.running_mean.shape
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            with torch.no_grad():
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.2)


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen-norm", "eval-batch-norm"])
def test_folding_batch_norms_keeps_the_outputs_and_leaves_the_original_alone(frozen):
    torch.manual_seed(1)
    model = build_lung_detr(LungDetrConfig.tiny(frozen_batch_norm=frozen)).eval()
    _randomise_norm_statistics(model, seed=2)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    folded = LungDetrInference.folded(model)
    norms = [m for m in folded.detector.backbone.modules() if isinstance(m, (FrozenBatchNorm2d, torch.nn.BatchNorm2d))]
    assert norms == []  # every backbone norm follows a convolution, so every one is folded
    images = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        expected = LungDetrInference(model)(images)
        actual = folded(images)
    for want, got in zip(expected, actual):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_fold_batch_norms_counts_every_resnet50_norm_and_skips_training_ones():
    backbone = ResNetBackbone("resnet50", base_width=8, frozen_batch_norm=True)
    assert fold_batch_norms(backbone) == 1 + 16 * 3 + 4  # stem, three per bottleneck, four projection shortcuts
    training = ResNetBackbone("resnet18", base_width=8, frozen_batch_norm=False).train()
    assert fold_batch_norms(training) == 0  # batch statistics of a training network are not constants
