"""Untrained weights with a fixed answer, for checking the path from a panel to a job and back (the self-tests).

RadAssist publishes no trained liver or brain weights, yet a self-test must see a segmentation come back. These
networks are freshly initialised and their last layer's bias is set so they answer one class everywhere: the liver,
or the tumour. They are never a model: nothing here claims accuracy, and they live only in a test's folders.
"""

from __future__ import annotations

from pathlib import Path

import torch


def _biased(model: torch.nn.Module, head_bias: str, winner: int) -> torch.nn.Module:
    with torch.no_grad():
        bias = dict(model.named_parameters())[head_bias]
        bias.fill_(-20.0)
        bias[winner] = 20.0
    return model


def liver_everywhere_checkpoint(folder: Path) -> Path:
    """A liver U-Net checkpoint folder that marks every voxel as liver."""
    from radassist.liver.model import UNET, LiverUNetConfig
    from radassist.runtime.checkpoints import save_checkpoint
    from radassist.runtime.registry import build_model

    config = LiverUNetConfig(channels=(4, 8))
    return save_checkpoint(_biased(build_model(UNET, config), "head.bias", 1), UNET, config, folder)


def tumour_everywhere_brain_weights(path: Path) -> Path:
    """A state dict of the catalogue's joint brain network that calls every voxel tumour (for ``models import``)."""
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.registry import build_model

    entry = load_catalog().get("brain-joint")
    model = build_model(entry.architecture, entry.architecture_config)
    torch.save(_biased(model, "segmentation_decoder.head.bias", 1).state_dict(), path)
    return path


# GMIC narrowed to a quarter and an eighth of its widths: the same wiring (global net, patches, local net,
# attention, fusion) at a fraction of the published network's CPU time, for self-tests that check plumbing only
SMALL_GMIC = {"global_filters": 4, "post_processing_dim": 64, "local_filters": 8, "attention_dim": 16}


def untrained_gmic_weights(path: Path, config: dict | None = None) -> Path:
    """A state dict of GMIC's network as built here (``config``: GmicConfig fields), untrained (the published
    weights are AGPL: never shipped)."""
    from radassist.mammo.checkpoint_mapping import build_gmic
    from radassist.mammo.model import GmicConfig

    torch.save(build_gmic(GmicConfig(**(config or {}))).state_dict(), path)
    return path
