"""The ``brain-register`` server task: `radassist brain register MOVING FIXED` on uploaded volumes.

Which upload is which is said by the per-file option ``role`` (one value per file, in upload order): ``moving``,
``fixed``, ``moving-labels``, ``fixed-labels``, ``moving-brain-mask``, ``fixed-brain-mask``. Without it, exactly
two files are expected: the first is the moving image, the second the fixed one (the CLI's argument order).
Several ``moving``/``fixed`` files are the sequences of a multi-sequence image; each one's sequence (flair, t1,
t1ce, t2) comes from the per-file option ``sequence``, else from the client's file name as the CLI reads it
('BraTS20_001_t1ce.nii.gz' is t1ce), else from a name like 'moving_<name>' (the Slicer panel's). The files are the
CLI's, written by its own writer.
"""

from __future__ import annotations

import argparse
from typing import Any

from radassist.commands.brain import TUMOUR_SIMILARITIES, TUMOUR_SIMILARITY_HELP
from radassist.errors import InputError
from radassist.io.atomic import RunOutput
from radassist.runtime.progress import Progress
from radassist.runtime.run_record import RunRecord
from radassist.server.options import OptionSpec
from radassist.server.tasks_base import VOLUME_SUFFIXES, ServerTask, TaskInput, _per_file, _read_volume

ROLES = ("moving", "fixed", "moving-labels", "fixed-labels", "moving-brain-mask", "fixed-brain-mask")
SEQUENCES = ("flair", "t1", "t1ce", "t2")


def file_roles(inputs: list[TaskInput], roles: list[str | None] | None) -> list[str]:
    """Each upload's role: as given, or (moving, fixed) for two files; checked for a complete, unambiguous pair."""
    if roles is None:
        if len(inputs) != 2:
            raise InputError(None, f"got {len(inputs)} files; say what each is with the option 'role' (one of "
                                   f"{', '.join(ROLES)} per file), or send just the moving and the fixed image")
        return ["moving", "fixed"]
    given = _per_file(roles, inputs)
    missing = [item.shown for item, role in zip(inputs, given) if role is None]
    if missing:
        raise InputError(None, f"option 'role' gives no role for {', '.join(missing)}")
    for needed in ("moving", "fixed"):
        if needed not in given:
            raise InputError(None, f"no file has the role '{needed}'")
    twice = [role for role in ROLES[2:] if given.count(role) > 1]
    if twice:
        raise InputError(None, f"more than one file has the role '{twice[0]}'")
    return [str(role) for role in given]


def _sequence_name(item: TaskInput, sequence: str | None, role: str) -> str:
    """The option's sequence, else the one the file name says, else the name after a '<role>_' prefix (Slicer
    sends 'fixed_sequence1.nrrd' with 'moving_sequence1.nrrd'), else 'image' (a single file, as the CLI reads it)."""
    from radassist.brain.preprocess import modality_of

    if sequence or modality_of(item.shown):
        return sequence or str(modality_of(item.shown))
    stem, prefix = item.shown.split(".")[0], f"{role}_"
    return stem[len(prefix):] if stem.lower().startswith(prefix) and len(stem) > len(prefix) else "image"


def read_pair(inputs: list[TaskInput], options: dict[str, Any]) -> tuple[Any, Any]:
    """(moving, fixed) BrainImages of the uploads, read as `radassist brain register` reads its files."""
    from radassist.brain.datasets import read_mask, read_tumour_labels
    from radassist.brain.pipeline import BrainImages
    from radassist.commands.brain import _name_single_images

    roles = file_roles(inputs, options["role"])
    sequences = _per_file(options["sequence"], inputs) or [None] * len(inputs)
    sides: dict[str, BrainImages] = {"moving": BrainImages({}), "fixed": BrainImages({})}
    for item, role, sequence in zip(inputs, roles, sequences):
        if role in sides:
            name = _sequence_name(item, sequence, role)
            if name in sides[role].images:
                raise InputError(item.shown, f"is a second {role} '{name}' image; name the sequences apart with "
                                             f"the option 'sequence'")
            sides[role].images[name] = _read_volume(item)
    for item, role in zip(inputs, roles):
        side, _, kind = role.partition("-")
        if kind == "labels":
            sides[side].tumour = read_tumour_labels(item.path)
            sides[side].tumour.source.path = item.shown
        elif kind == "brain-mask":
            sides[side].brain_mask = read_mask(item.path, sides[side].reference)
    _name_single_images(sides["moving"], sides["fixed"])
    return sides["moving"], sides["fixed"]


def _run_brain_register(inputs: list[TaskInput], options: dict[str, Any], device: Any, progress: Progress,
                        output: RunOutput, record: RunRecord) -> None:
    from radassist.commands import brain as command

    with record.timed("read"):
        moving, fixed = read_pair(inputs, options)
    args = argparse.Namespace(engine=options["engine"], model=None, sequences=None,
                              registration_sequence=options["registration_sequence"],
                              tumour_similarity=options["tumour_similarity"])
    with record.timed("load model"):
        loaded = command._joint_model(args, device)
    config = command._pipeline_config(args, loaded)
    command.register_and_write(moving, fixed, config, loaded, device, progress, output, record)


BRAIN_REGISTER = ServerTask(
    name="brain-register",
    title="register a moving brain MRI to a fixed one and segment the tumour (joint network, or classical "
          "registration without weights). Upload the moving then the fixed image, or set the per-file "
          "option 'role' (moving, fixed, moving-labels, fixed-labels, moving-brain-mask, fixed-brain-mask) and "
          "'sequence' (flair, t1, t1ce, t2; default: from the file name)",
    command="brain register", accepts=(".seg.nrrd", *VOLUME_SUFFIXES), max_files=16, run=_run_brain_register,
    models=("brain-joint",),
    options=(OptionSpec("role", str, None, "per file: what it is (default for two files: moving, fixed)",
                        choices=ROLES, per_file=True),
             OptionSpec("sequence", str, None, "per file: its MRI sequence (default: from the file name)",
                        choices=SEQUENCES, per_file=True),
             OptionSpec("engine", str, "auto", "joint network, classical registration, or auto (joint when its "
                                               "weights are installed)", choices=("auto", "joint", "classic")),
             OptionSpec("registration_sequence", str, None, "classic engine: the sequence that drives the metric",
                        choices=SEQUENCES, aliases=("registration_channel",)),
             OptionSpec("tumour_similarity", str, TUMOUR_SIMILARITIES[0], TUMOUR_SIMILARITY_HELP,
                        choices=TUMOUR_SIMILARITIES)))


__all__ = ["BRAIN_REGISTER", "ROLES", "file_roles", "read_pair"]
