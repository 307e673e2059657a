"""NYU's published GMIC state dicts load into our Gmic: names, shapes, strictness, and the same numbers out.

The published weights cannot be shipped (AGPL, and not fetched at test time), so the tests build state dicts with
the published architecture's key names and shapes (nyukat/GMIC src/modeling/gmic.py + modules.py: ``ds_net`` a
pre-activation ResNet-22 whose blocks have ``bn1/conv1/bn2/conv2`` and a ``downsample.0`` 1x1 conv on the first
block of each ``layer_list`` stage; ``left_postprocess_net.gn_conv_last``; ``dn_resnet`` a torchvision-style
ResNet-18; ``mil_attn_V/U/w``; ``classifier_linear``; ``fusion_dnn``), then check that a functional re-statement
of the published forward pass, reading those keys directly, gives what our model gives after the mapping.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from radassist.errors import InputError
from radassist.mammo.checkpoint_mapping import (
    fit_published_state_dict,
    load_published_state_dict,
    published_key_to_ours,
)
from radassist.mammo.model import Gmic, GmicConfig, crop_patches
from radassist.runtime.checkpoints import import_state_dict
from radassist.runtime.registry import build_model, get_architecture

GLOBAL_STRIDES = (1, 2, 2, 2, 2)


def _bn(shapes: dict, prefix: str, channels: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{prefix}.{name}"] = (channels,)
    shapes[f"{prefix}.num_batches_tracked"] = ()


def published_shapes(global_filters: int = 16, local_filters: int = 64, classes: int = 2,
                     attention: int = 128) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a published GMIC state dict (the published widths by default)."""
    shapes: dict[str, tuple[int, ...]] = {"ds_net.first_conv.weight": (global_filters, 1, 7, 7)}
    inplanes = planes = global_filters
    for stage in range(5):
        for block in range(2):
            p = f"ds_net.layer_list.{stage}.{block}"
            cin = inplanes if block == 0 else planes
            _bn(shapes, f"{p}.bn1", cin)
            shapes[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            _bn(shapes, f"{p}.bn2", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            if block == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes, inplanes, 1, 1)
        inplanes, planes = planes, planes * 2
    _bn(shapes, "ds_net.final_bn", inplanes)
    shapes["left_postprocess_net.gn_conv_last.weight"] = (classes, inplanes, 1, 1)
    global_dim = inplanes
    shapes["dn_resnet.conv1.weight"] = (local_filters, 3, 7, 7)
    _bn(shapes, "dn_resnet.bn1", local_filters)
    inplanes = local_filters
    for layer in range(1, 5):
        planes = local_filters * 2 ** (layer - 1)
        for block in range(2):
            p = f"dn_resnet.layer{layer}.{block}"
            cin = inplanes if block == 0 else planes
            shapes[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
            _bn(shapes, f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            _bn(shapes, f"{p}.bn2", planes)
            if block == 0 and layer > 1:
                shapes[f"{p}.downsample.0.weight"] = (planes, inplanes, 1, 1)
                _bn(shapes, f"{p}.downsample.1", planes)
        inplanes = planes
    shapes["mil_attn_V.weight"] = (attention, inplanes)
    shapes["mil_attn_U.weight"] = (attention, inplanes)
    shapes["mil_attn_w.weight"] = (1, attention)
    shapes["classifier_linear.weight"] = (classes, inplanes)
    shapes["fusion_dnn.weight"] = (classes, global_dim + inplanes)
    shapes["fusion_dnn.bias"] = (classes,)
    return shapes


def published_state(seed: int = 0, **widths: int) -> dict[str, torch.Tensor]:
    """Random tensors under the published names; BN statistics plausible (variance > 0) and all distinct."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in published_shapes(**widths).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(int(torch.randint(1, 1000, (), generator=generator)))
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif key.endswith(("bn1.weight", "bn2.weight", "final_bn.weight", "downsample.1.weight")):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            fan_in = max(1, math.prod(shape[1:]))
            scale = 0.1 if key.endswith(("running_mean", "bias")) else fan_in ** -0.5
            state[key] = torch.randn(shape, generator=generator) * scale
    return state


SMALL = dict(global_filters=4, local_filters=8, attention=16)


def small_config(**changes) -> GmicConfig:
    values = dict(global_filters=4, post_processing_dim=64, local_filters=8, attention_dim=16, crop_shape=(64, 64),
                  num_patches=3, top_t_percent=10.0)
    values.update(changes)
    return GmicConfig(**values)


# --- names and shapes --------------------------------------------------------------------------------------------

def test_every_published_key_maps_onto_the_published_model_with_its_shape() -> None:
    shapes = published_shapes()
    ours = Gmic(GmicConfig.for_published_model(1)).state_dict()
    mapped = {published_key_to_ours(key): shape for key, shape in shapes.items()}
    assert None not in mapped and len(mapped) == len(shapes) == len(ours)
    assert set(mapped) == set(ours)
    assert {k: tuple(v) for k, v in mapped.items()} == {k: tuple(t.shape) for k, t in ours.items()}


def test_mapping_table_examples() -> None:
    assert published_key_to_ours("ds_net.layer_list.3.0.downsample.0.weight") == \
        "global_network.backbone.stages.3.0.projection.weight"
    assert published_key_to_ours("ds_net.layer_list.2.1.bn2.running_var") == \
        "global_network.backbone.stages.2.1.bn2.running_var"
    assert published_key_to_ours("dn_resnet.layer3.0.downsample.1.running_mean") == \
        "local_network.backbone.stages.2.0.projection.bn.running_mean"
    assert published_key_to_ours("dn_resnet.layer1.1.conv2.weight") == \
        "local_network.backbone.stages.0.1.conv2.weight"
    assert published_key_to_ours("mil_attn_V.weight") == "attention.tanh_projection.weight"
    assert published_key_to_ours("mil_attn_U.weight") == "attention.gate_projection.weight"
    assert published_key_to_ours("fusion_dnn.bias") == "fusion_head.linear.bias"
    assert published_key_to_ours("shared_rep_filter.weight") is None
    # our own names pass through, so RadAssist checkpoints of the same network load with the same mapping
    assert published_key_to_ours("fusion_head.linear.bias") == "fusion_head.linear.bias"


def test_published_weights_load_strictly_and_land_where_they_belong() -> None:
    state = published_state()
    model = load_published_state_dict(Gmic(GmicConfig.for_published_model(4)), state, "sample_model_4.p")
    loaded = model.state_dict()
    for key, tensor in state.items():
        assert torch.equal(loaded[published_key_to_ours(key)], tensor), key


def test_the_unused_tensor_some_published_files_carry_is_dropped() -> None:
    state = published_state()
    state["shared_rep_filter.weight"] = torch.zeros(256, 256, 4, 4)
    fitted = fit_published_state_dict(state, Gmic(), "sample_model_2.p")
    assert "shared_rep_filter.weight" not in fitted and len(fitted) == len(state) - 1


def test_missing_extra_and_misshapen_tensors_are_refused_by_name() -> None:
    model = Gmic()
    missing = published_state()
    del missing["mil_attn_U.weight"]
    with pytest.raises(InputError) as error:
        fit_published_state_dict(missing, model, "sample_model_1.p")
    assert "sample_model_1.p" in str(error.value) and "attention.gate_projection.weight" in str(error.value)
    assert "missing keys (1)" in str(error.value)

    extra = published_state()
    extra["ds_net.layer_list.5.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(InputError, match=r"unexpected keys \(1\): global_network\.backbone\.stages\.5\.0\.conv1"):
        fit_published_state_dict(extra, model, "sample_model_1.p")

    misshapen = published_state()
    misshapen["ds_net.first_conv.weight"] = torch.zeros(16, 3, 7, 7)  # a 3-channel stem: not the published net
    with pytest.raises(InputError, match=r"wrong shapes \(1\): global_network\.backbone\.stem_conv\.weight "
                                         r"\(file \[16, 3, 7, 7\], model \[16, 1, 7, 7\]\)"):
        fit_published_state_dict(misshapen, model, "sample_model_1.p")


def test_a_published_file_imports_through_the_registry(tmp_path: Path) -> None:
    """`radassist models import` reads the file with torch.load(weights_only=True) and applies this mapping."""
    assert get_architecture("gmic").key_mapping is published_key_to_ours
    state = published_state(seed=3)
    state["shared_rep_filter.weight"] = torch.zeros(256, 256, 4, 4)
    path = tmp_path / "sample_model_5.p"
    torch.save(state, path)
    fitted = import_state_dict(path, "gmic", config=GmicConfig.for_published_model(5))
    model = build_model("gmic", GmicConfig.for_published_model(5))
    model.load_state_dict(fitted, strict=True)
    assert torch.equal(model.fusion_head.linear.weight, state["fusion_dnn.weight"])
    assert model.config.top_t_percent == 10.0


def test_the_catalogue_configs_build_the_published_models() -> None:
    """gmic-1..5 in Resources/models.json describe exactly the published network with t = 2, 3, 3, 5, 10 %
    (gmic-ensemble, the five averaged, is the sixth entry of that architecture)."""
    catalogue = json.loads((Path(__file__).resolve().parents[2] / "Resources" / "models.json").read_text())
    entries = {m["id"]: m for m in catalogue["models"] if m["architecture"]["name"] == "gmic"}
    assert sorted(entries) == [f"gmic-{n}" for n in range(1, 6)] + ["gmic-ensemble"]
    for number in range(1, 6):
        model = build_model("gmic", entries[f"gmic-{number}"]["architecture"]["config"])
        assert model.config == GmicConfig.for_published_model(number)


# --- same numbers out ----------------------------------------------------------------------------------------------

def _bn_eval(x: torch.Tensor, p: dict, prefix: str) -> torch.Tensor:
    return F.batch_norm(x, p[f"{prefix}.running_mean"], p[f"{prefix}.running_var"], p[f"{prefix}.weight"],
                        p[f"{prefix}.bias"], training=False, eps=1e-5)


def reference_global(p: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The published global network, read off its keys: pre-activation blocks whose downsample conv takes the
    activated input, final BN + ReLU, 1x1 conv + sigmoid."""
    h = F.max_pool2d(F.conv2d(x, p["ds_net.first_conv.weight"], stride=2, padding=3), 3, 2, 0)
    for stage, stride in enumerate(GLOBAL_STRIDES):
        for block in range(2):
            q = f"ds_net.layer_list.{stage}.{block}"
            a = F.relu(_bn_eval(h, p, f"{q}.bn1"))
            shortcut = F.conv2d(a, p[f"{q}.downsample.0.weight"], stride=stride) if block == 0 else h
            out = F.conv2d(a, p[f"{q}.conv1.weight"], stride=stride if block == 0 else 1, padding=1)
            out = F.conv2d(F.relu(_bn_eval(out, p, f"{q}.bn2")), p[f"{q}.conv2.weight"], padding=1)
            h = out + shortcut
    h = F.relu(_bn_eval(h, p, "ds_net.final_bn"))
    return h, torch.sigmoid(F.conv2d(h, p["left_postprocess_net.gn_conv_last.weight"]))


def reference_local(p: dict, patches: torch.Tensor) -> torch.Tensor:
    """The published local network: torchvision-style ResNet-18 on the patch repeated to 3 channels, then GAP."""
    x = patches.expand(-1, 3, -1, -1)
    x = F.max_pool2d(F.relu(_bn_eval(F.conv2d(x, p["dn_resnet.conv1.weight"], stride=2, padding=3), p,
                                     "dn_resnet.bn1")), 3, 2, 1)
    for layer in range(1, 5):
        for block in range(2):
            q = f"dn_resnet.layer{layer}.{block}"
            stride = 2 if block == 0 and layer > 1 else 1
            out = F.relu(_bn_eval(F.conv2d(x, p[f"{q}.conv1.weight"], stride=stride, padding=1), p, f"{q}.bn1"))
            out = _bn_eval(F.conv2d(out, p[f"{q}.conv2.weight"], padding=1), p, f"{q}.bn2")
            shortcut = _bn_eval(F.conv2d(x, p[f"{q}.downsample.0.weight"], stride=stride), p,
                                f"{q}.downsample.1") if f"{q}.downsample.0.weight" in p else x
            x = F.relu(out + shortcut)
    return x.mean(dim=(2, 3))


def test_mapped_model_computes_what_the_published_network_computes() -> None:
    config = small_config()
    state = published_state(seed=7, **SMALL)
    model = load_published_state_dict(Gmic(config), state).eval()
    x = torch.randn(2, 1, 512, 384, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
        features, saliency = reference_global(state, x)
        torch.testing.assert_close(out.saliency_maps, saliency, rtol=1e-4, atol=1e-5)
        n, c, h, w = saliency.shape
        top = saliency.flatten(2).topk(round(h * w * config.top_t_percent / 100), dim=2).values.mean(2)
        torch.testing.assert_close(out.y_global, top, rtol=1e-5, atol=1e-6)

        patches = crop_patches(x, out.patch_locations, config.crop_shape)
        k = config.num_patches
        h_crops = reference_local(state, patches.reshape(n * k, 1, *config.crop_shape)).reshape(n, k, -1)
        gated = torch.sigmoid(h_crops @ state["mil_attn_U.weight"].T) * \
            torch.tanh(h_crops @ state["mil_attn_V.weight"].T)
        attention = torch.softmax((gated @ state["mil_attn_w.weight"].T).squeeze(-1), dim=1)
        z = (attention.unsqueeze(-1) * h_crops).sum(1)
        y_local = torch.sigmoid(z @ state["classifier_linear.weight"].T)
        global_vector = features.amax(dim=(2, 3))
        y_fusion = torch.sigmoid(F.linear(torch.cat([global_vector, z], 1), state["fusion_dnn.weight"],
                                          state["fusion_dnn.bias"]))
    torch.testing.assert_close(out.attention, attention, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out.y_local, y_local, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out.y_fusion, y_fusion, rtol=1e-4, atol=1e-6)
