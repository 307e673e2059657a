"""Find the trained weights of a liver network: a checkpoint folder the user names, or an installed model.

A fresh install has no liver weights (the catalogue entries are planned, not published), and a network with
random weights must never produce a "result". So when nothing is found the error says how to get weights:
train them (``radassist train liver``) or bring them (``radassist models import``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radassist.errors import InputError, RadAssistError
from radassist.liver.model import ARCHITECTURES, TASK
from radassist.liver.pipeline import LiverModel


class WeightsMissing(RadAssistError):
    """No trained liver network is installed for the architecture asked for."""


def how_to_get_weights(arch: str) -> str:
    architecture = ARCHITECTURES[arch]
    return (f"no trained {architecture} weights are installed (the catalogue's {architecture} weights are not "
            f"published yet). Train a network on LiTS-layout data with 'radassist train liver --data LITS_DIR "
            f"--arch {arch} --out MODEL_DIR' and pass '--model MODEL_DIR', or install weights you have with "
            f"'radassist models import {TASK} WEIGHTS_FILE --architecture {architecture}'")


def _installed_candidates(architecture: str) -> list[tuple[Path, Any]]:
    """(install folder, catalogue entry) of installed liver models of this architecture, last entries first."""
    from radassist.runtime.catalog import installed_path, load_catalog
    from radassist.runtime.registry import is_installed

    return [(installed_path(entry), entry) for entry in reversed(list(load_catalog()))
            if entry.task == TASK and entry.architecture == architecture and is_installed(entry)]


def load_liver_model(arch: str = "munet", model_path: str | Path | None = None, device: Any = "cpu") -> LiverModel:
    """The liver network to run: ``model_path`` (a checkpoint folder or its .safetensors) or the installed model
    of architecture ``arch`` ("munet" or "unet"); :class:`WeightsMissing` says how to get one."""
    from radassist.runtime.checkpoints import load_checkpoint

    if arch not in ARCHITECTURES:
        raise InputError(None, f"unknown liver architecture '{arch}'; choose {' or '.join(ARCHITECTURES)}")
    if model_path is not None:
        loaded = load_checkpoint(model_path, device)
        if loaded.architecture not in ARCHITECTURES.values():
            raise InputError(model_path, f"is a {loaded.architecture} checkpoint, not a liver network "
                                         f"({' or '.join(ARCHITECTURES.values())})")
        return LiverModel.from_checkpoint(loaded)
    for folder, entry in _installed_candidates(ARCHITECTURES[arch]):
        if (folder / "config.json").is_file():
            return LiverModel.from_checkpoint(load_checkpoint(folder, device), entry.input.window,
                                              entry.input.image_size, entry)
    raise WeightsMissing(how_to_get_weights(arch))
