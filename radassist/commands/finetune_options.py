"""`--model MODEL_ID_OR_FILE` (formerly --init) and `--register-as ID[@VERSION]` of the training commands: fine-tune
from a model and save the result as a new version in the local catalogue.

The work is :func:`radassist.annotation.retrain.resolve_init` and :func:`~radassist.annotation.retrain.
register_finetuned`; this module is the command-line side they share: the options, an early check of the id (so a
typo fails before hours of training, not after), and registration by rank 0 alone under torchrun.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from radassist.commands.options import add_model_option
from radassist.errors import InputError
from radassist.runtime.distributed import is_main_process


MIX_HELP = ("repeat --data to train on a data set together with exported corrections: the first folder is the base "
            "set, each later one (a 'radassist export' folder) replaces the cases it corrected and adds its new ones "
            "(mixed by links in a temporary folder; nothing is copied or changed)")


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_option(parser, "fine-tune from this model: a catalogue model id (ID or ID@VERSION), a checkpoint "
                             "folder or a weights file; the network must be the one this training builds",
                     old=("--init",))
    parser.add_argument("--register-as", metavar="ID[@VERSION]",
                        help="also save the trained model in the local catalogue as model ID (version: the next "
                             "free one unless given), so 'radassist models list' and the pipelines find it")


def registration_target(args: argparse.Namespace) -> tuple[str, str | None] | None:
    """(model id, version or None) of --register-as, checked; None when the option is not given."""
    from radassist.runtime.registry import MODEL_ID_PATTERN

    text = getattr(args, "register_as", None)
    if not text:
        return None
    model_id, _, version = text.partition("@")
    if not MODEL_ID_PATTERN.match(model_id):
        raise InputError(None, f"--register-as {text}: model id '{model_id}' must be lower-case letters and digits "
                               f"joined by '-'")
    return model_id, version or None


def resolve_init_option(args: argparse.Namespace, architecture: str, config: Any = None) -> Any:
    """The InitWeights --model names (None without it); ``architecture``/``config`` size a bare weights file.
    --register-as is checked here too, before any training."""
    registration_target(args)
    if not getattr(args, "model", None):
        return None
    from radassist.annotation.retrain import resolve_init

    return resolve_init(args.model, architecture, config)


def register_result(args: argparse.Namespace, network: Any, architecture: str, config: Any, task: str,
                    metrics: Mapping[str, float], init: Any = None, *, metadata: Mapping[str, Any] | None = None
                    ) -> str | None:
    """Save the trained ``network`` as --register-as says (rank 0 only), with the run's checkpoint ``metadata``
    (window, input size: what the pipelines read back); returns 'ID VERSION' or None."""
    target = registration_target(args)
    if target is None or not is_main_process():
        return None
    from radassist.annotation.retrain import register_finetuned

    model_id, version = target
    entry = register_finetuned(network, architecture, config, model_id=model_id, task=task, metrics=metrics,
                               training_data=data_folders(args), base=init, version=version, metadata=metadata)
    return f"{entry.id} {entry.version}"


def data_folders(args: argparse.Namespace) -> list[Path]:
    """--data as a list of folders (the option is repeatable where a task mixes an export into its data)."""
    return list(args.data) if isinstance(args.data, (list, tuple)) else [args.data]


__all__ = ["MIX_HELP", "add_finetune_arguments", "data_folders", "register_result", "registration_target",
           "resolve_init_option"]
