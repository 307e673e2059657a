"""NYU's published GMIC weights (``sample_model_1.p`` .. ``_5.p``, PyTorch state dicts) -> our :class:`Gmic`.

Ours: no library knows GMIC's key names. The published network keeps its parts as attributes of one module
(nyukat/GMIC, ``src/modeling/gmic.py`` and ``modules.py``); :data:`PUBLISHED_KEY_RULES` says, one rule per
part, where each lives here.

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

_Rule = tuple["re.Pattern[str]", "str | Callable[[re.Match[str]], str] | None"]


def _local_stage(part: str) -> Callable[[re.Match[str]], str]:
    """``dn_resnet.layer<n>.<b>.`` (1-based, torchvision style) -> ``local_network.backbone.stages.<n-1>.<b>.``."""
    return lambda m: f"local_network.backbone.stages.{int(m[1]) - 1}.{m[2]}.{part}{m[3]}"


PUBLISHED_KEY_RULES: tuple[_Rule, ...] = tuple((re.compile(pattern), rename) for pattern, rename in (
    (r"^ds_net\.first_conv\.(.+)$", r"global_network.backbone.stem_conv.\1"),
    (r"^ds_net\.layer_list\.(\d+)\.(\d+)\.downsample\.0\.(.+)$", r"global_network.backbone.stages.\1.\2.projection.\3"),
    (r"^ds_net\.layer_list\.(.+)$", r"global_network.backbone.stages.\1"),
    (r"^ds_net\.final_bn\.(.+)$", r"global_network.backbone.final_bn.\1"),
    (r"^left_postprocess_net\.gn_conv_last\.(.+)$", r"global_network.saliency_conv.\1"),
    (r"^dn_resnet\.conv1\.(.+)$", r"local_network.backbone.stem_conv.\1"),
    (r"^dn_resnet\.bn1\.(.+)$", r"local_network.backbone.stem_bn.\1"),
    (r"^dn_resnet\.layer(\d+)\.(\d+)\.downsample\.0\.(.+)$", _local_stage("projection.conv.")),
    (r"^dn_resnet\.layer(\d+)\.(\d+)\.downsample\.1\.(.+)$", _local_stage("projection.bn.")),
    (r"^dn_resnet\.layer(\d+)\.(\d+)\.(.+)$", _local_stage("")),
    (r"^mil_attn_V\.(.+)$", r"attention.tanh_projection.\1"),
    (r"^mil_attn_U\.(.+)$", r"attention.gate_projection.\1"),
    (r"^mil_attn_w\.(.+)$", r"attention.score.\1"),
    (r"^classifier_linear\.(.+)$", r"local_classifier.\1"),
    (r"^fusion_dnn\.(.+)$", r"fusion_head.linear.\1"),
    (r"^shared_rep_filter\..+$", None),  # a tensor some published files carry, never used (nyukat/GMIC issue #29)
))
"""(pattern, ``re.sub`` replacement) pairs tried in order; the first match decides; a replacement of None drops
the key."""


def published_key_to_ours(key: str) -> str | None:
    """Our name for a published GMIC state-dict key (None: a key GMIC does not use). Unknown keys pass through."""
    for pattern, rename in PUBLISHED_KEY_RULES:
        if pattern.match(key):
            return None if rename is None else pattern.sub(rename, key)
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
