"""NYU's published GMIC weights (``sample_model_1.p`` .. ``_5.p``, PyTorch state dicts) -> our :class:`Gmic`.

Ours: no library knows GMIC's key names; the table below is read from the published code.

The published network keeps its parts as attributes of one module, so its state dicts use these prefixes
(read from nyukat/GMIC, ``src/modeling/gmic.py`` and ``modules.py``); the table below says where each lives here:

=====================================================  ============================================================
published key                                          RadAssist key
=====================================================  ============================================================
``ds_net.first_conv.*``                                ``global_network.backbone.stem_conv.*``
``ds_net.layer_list.<s>.<b>.downsample.0.*``           ``global_network.backbone.stages.<s>.<b>.projection.*``
``ds_net.layer_list.<s>.<b>.{bn1,conv1,bn2,conv2}.*``  ``global_network.backbone.stages.<s>.<b>.{same}.*``
``ds_net.final_bn.*``                                  ``global_network.backbone.final_bn.*``
``left_postprocess_net.gn_conv_last.*``                ``global_network.saliency_conv.*``
``dn_resnet.conv1.*`` / ``dn_resnet.bn1.*``            ``local_network.backbone.stem_conv.*`` / ``stem_bn.*``
``dn_resnet.layer<n>.<b>.downsample.0.*`` / ``.1.*``   ``local_network.backbone.stages.<n-1>.<b>.projection.conv.*``
                                                       / ``.projection.bn.*``
``dn_resnet.layer<n>.<b>.{conv1,bn1,conv2,bn2}.*``     ``local_network.backbone.stages.<n-1>.<b>.{same}.*``
``mil_attn_V.*`` / ``mil_attn_U.*`` / ``mil_attn_w.*``  ``attention.tanh_projection.*`` / ``gate_projection.*`` /
                                                       ``score.*``
``classifier_linear.*``                                ``local_classifier.*``
``fusion_dnn.*``                                       ``fusion_head.linear.*``
``shared_rep_filter.*``                                dropped: a tensor some published files carry that GMIC
                                                       never uses (nyukat/GMIC issue #29)
=====================================================  ============================================================

Any other key is kept as it is, so RadAssist's own checkpoints pass through unchanged and foreign keys show up
as "unexpected" in the strict check. The check itself (every key present, no key left over, every shape equal)
is the runtime's (:func:`radassist.runtime.checkpoints.fit_state_dict`); the published code loaded with
``strict=False``, we never do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from radassist.mammo.model import Gmic, GmicConfig
from radassist.runtime.registry import register_architecture

_Rule = tuple["re.Pattern[str]", "Callable[[re.Match[str]], str] | None"]


def _stage(match: re.Match[str]) -> str:
    """``layer<n>`` (1-based, torchvision style) -> ``stages.<n-1>``."""
    return f"stages.{int(match.group('layer')) - 1}.{match.group('block')}"


PUBLISHED_KEY_RULES: tuple[_Rule, ...] = (
    (re.compile(r"^ds_net\.first_conv\.(?P<rest>.+)$"),
     lambda m: f"global_network.backbone.stem_conv.{m['rest']}"),
    (re.compile(r"^ds_net\.layer_list\.(?P<stage>\d+)\.(?P<block>\d+)\.downsample\.0\.(?P<rest>.+)$"),
     lambda m: f"global_network.backbone.stages.{m['stage']}.{m['block']}.projection.{m['rest']}"),
    (re.compile(r"^ds_net\.layer_list\.(?P<rest>.+)$"),
     lambda m: f"global_network.backbone.stages.{m['rest']}"),
    (re.compile(r"^ds_net\.final_bn\.(?P<rest>.+)$"),
     lambda m: f"global_network.backbone.final_bn.{m['rest']}"),
    (re.compile(r"^left_postprocess_net\.gn_conv_last\.(?P<rest>.+)$"),
     lambda m: f"global_network.saliency_conv.{m['rest']}"),
    (re.compile(r"^dn_resnet\.conv1\.(?P<rest>.+)$"),
     lambda m: f"local_network.backbone.stem_conv.{m['rest']}"),
    (re.compile(r"^dn_resnet\.bn1\.(?P<rest>.+)$"),
     lambda m: f"local_network.backbone.stem_bn.{m['rest']}"),
    (re.compile(r"^dn_resnet\.layer(?P<layer>\d+)\.(?P<block>\d+)\.downsample\.0\.(?P<rest>.+)$"),
     lambda m: f"local_network.backbone.{_stage(m)}.projection.conv.{m['rest']}"),
    (re.compile(r"^dn_resnet\.layer(?P<layer>\d+)\.(?P<block>\d+)\.downsample\.1\.(?P<rest>.+)$"),
     lambda m: f"local_network.backbone.{_stage(m)}.projection.bn.{m['rest']}"),
    (re.compile(r"^dn_resnet\.layer(?P<layer>\d+)\.(?P<block>\d+)\.(?P<rest>.+)$"),
     lambda m: f"local_network.backbone.{_stage(m)}.{m['rest']}"),
    (re.compile(r"^mil_attn_V\.(?P<rest>.+)$"), lambda m: f"attention.tanh_projection.{m['rest']}"),
    (re.compile(r"^mil_attn_U\.(?P<rest>.+)$"), lambda m: f"attention.gate_projection.{m['rest']}"),
    (re.compile(r"^mil_attn_w\.(?P<rest>.+)$"), lambda m: f"attention.score.{m['rest']}"),
    (re.compile(r"^classifier_linear\.(?P<rest>.+)$"), lambda m: f"local_classifier.{m['rest']}"),
    (re.compile(r"^fusion_dnn\.(?P<rest>.+)$"), lambda m: f"fusion_head.linear.{m['rest']}"),
    (re.compile(r"^shared_rep_filter\..+$"), None),
)
"""(pattern, rename) pairs tried in order; the first match decides; a rename of None drops the key."""


def published_key_to_ours(key: str) -> str | None:
    """Our name for a published GMIC state-dict key (None: a key GMIC does not use). Unknown keys pass through."""
    for pattern, rename in PUBLISHED_KEY_RULES:
        match = pattern.match(key)
        if match:
            return None if rename is None else rename(match)
    return key


def fit_published_state_dict(state: Mapping[str, torch.Tensor], model: Gmic,
                             source: str | Path = "GMIC weights") -> dict[str, torch.Tensor]:
    """Rename a published (or our own) GMIC state dict and check it strictly against ``model``: any missing,
    left-over or differently shaped tensor is an InputError naming ``source`` and listing the keys."""
    from radassist.runtime.checkpoints import fit_state_dict

    return fit_state_dict(state, model, source, "gmic", published_key_to_ours)


def load_published_state_dict(model: Gmic, state: Mapping[str, torch.Tensor],
                              source: str | Path = "GMIC weights") -> Gmic:
    """Load published GMIC weights into ``model`` (strictly, after renaming); returns the model."""
    model.load_state_dict(fit_published_state_dict(state, model, source), strict=True)
    return model


def build_gmic(config: GmicConfig) -> Gmic:
    """The registry's build function for ``gmic``."""
    return Gmic(config)


register_architecture(
    "gmic", GmicConfig, build_gmic, key_mapping=published_key_to_ours,
    description="GMIC (Shen et al. 2021): ResNet-22 saliency, top-t% pooling, K patches through ResNet-18 with "
                "gated attention, fusion; loads NYU's published sample_model_1-5.p")
