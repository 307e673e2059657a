"""One vocabulary for every command: the same option name for the same thing, old spellings kept working.

* ``--model`` is the model a command uses, everywhere: a catalogue id (``ID`` or ``ID@VERSION``) or a folder (or
  file) of weights. It replaced ``--checkpoint`` (brain register, lung infection, evaluate lung-infection),
  ``--init`` (the training commands' starting weights) and ``--model-id`` (export: the model that made the AI
  result). :func:`model_folder` turns the value into the checkpoint folder the loaders read.
* ``--backend`` is the inference engine (torch, onnx); ``--engine`` the algorithm (classic, joint, detr).
* ``--learning-rate`` in every training command (``--lr`` before in brain and lung).
* ``--sequences`` / ``--registration-sequence`` are MRI sequences (flair, t1, ...); ``--channels`` is network
  widths, in every command the same way (``16 32 64`` or ``16,32,64``).

:func:`deprecated_alias` keeps an old spelling as a hidden option that does the same and prints one line saying
what to write instead, so scripts keep working while they are updated.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from radassist.errors import InputError

MODEL_METAVAR = "ID_OR_DIR"


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Accept ``old`` as a hidden spelling of the option ``new`` of ``parser`` (same destination, same values),
    with a one-line note on stderr when it is used."""
    action = parser._option_string_actions[new]
    base = type(action)

    class _Deprecated(base):  # type: ignore[misc, valid-type]
        def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001 (argparse's signature)
            print(f"{parser.prog}: note: {old} is deprecated; use {new}", file=sys.stderr)
            super().__call__(parser, namespace, values, option_string)

    accepted = inspect.signature(base.__init__).parameters
    settings = {name: getattr(action, name) for name in ("nargs", "const", "type", "choices", "metavar")
                if name in accepted}
    alias = _Deprecated(option_strings=[old], dest=action.dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                        **settings)
    group = next((g for g in parser._mutually_exclusive_groups if action in g._group_actions), None)
    (group or parser)._add_action(alias)


def add_model_option(parser: argparse.ArgumentParser, help: str, *, repeat: bool = False,
                     old: tuple[str, ...] = (), group: argparse._ActionsContainer | None = None) -> None:
    """``--model ID_OR_DIR`` (repeatable with ``repeat``), with ``old`` spellings as deprecated aliases."""
    (group or parser).add_argument("--model", action="append" if repeat else "store", metavar=MODEL_METAVAR, help=help)
    for spelling in old:
        deprecated_alias(parser, spelling, "--model")


def model_folder(value: str | Path | None, option: str = "--model") -> Path | None:
    """The checkpoint folder (or weights file) a ``--model`` value names: an existing path as it is, else a
    catalogue id (``ID`` or ``ID@VERSION``) resolved to its install folder. None stays None."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if path.exists():
        return path
    text = str(value)
    model_id, _, version = text.partition("@")
    from radassist.runtime.catalog import installed_path, load_catalog
    from radassist.runtime.registry import MODEL_ID_PATTERN, is_installed

    if not MODEL_ID_PATTERN.match(model_id):
        raise InputError(path, f"{option}: no such file or folder, and not a model id")
    catalog = load_catalog()
    try:
        entry = catalog.get(model_id, version or None)
    except KeyError as error:
        raise InputError(None, f"{option} {text}: no such file or folder, and {error.args[0]}") from None
    if not is_installed(entry):
        raise InputError(None, f"{option} {text}: model {entry.label} is not installed; install it with "
                               f"'radassist models install {entry.id}' (or import its weights)")
    return installed_path(entry)


def widths(text: str) -> list[int]:
    """One value of ``--channels``: '16' or '16,32,64' (both spellings work, with nargs='+')."""
    try:
        values = [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"channel widths are whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"channel widths must be positive, got {text!r}")
    return values


def flat_widths(values: list[list[int]] | None) -> tuple[int, ...] | None:
    """``--channels 16 32`` and ``--channels 16,32`` both as (16, 32); None when the option was not given."""
    if not values:
        return None
    return tuple(width for group in values for width in group)


__all__ = ["MODEL_METAVAR", "add_model_option", "deprecated_alias", "flat_widths", "model_folder", "widths"]
