"""The ``lung-infection`` server task: `radassist lung infection CT` on an uploaded chest CT.

The first upload is the CT (a volume file or a zipped DICOM series); an optional second one is the lungs as a
``.seg.nrrd`` (the CLI's --lungs). The network is the installed catalogue model of the option ``arch``; the
files are written by the CLI command's own code.
"""

from __future__ import annotations

from typing import Any

from radassist.errors import InputError
from radassist.io.atomic import RunOutput
from radassist.runtime.progress import Progress
from radassist.runtime.run_record import RunRecord
from radassist.server.options import OptionSpec
from radassist.server.tasks_base import BACKEND, SERIES, VOLUME_SUFFIXES, ServerTask, TaskInput, _read_volume


def _run_lung_infection(inputs: list[TaskInput], options: dict[str, Any], device: Any, progress: Progress,
                        output: RunOutput, record: RunRecord) -> None:
    from radassist.commands import lung_infection as command
    from radassist.lung.infection.pipeline import load_infection_model

    with record.timed("read"):
        volume = _read_volume(inputs[0], options["series"])
        lungs = None
        if len(inputs) > 1:
            if not inputs[1].shown.lower().endswith(".seg.nrrd"):
                raise InputError(inputs[1].shown, "the second file must be the lungs as a .seg.nrrd segmentation")
            lungs = command.read_lungs(inputs[1].path)
    with record.timed("load model"):
        model = load_infection_model(options["arch"], None, device.device)
    command.segment_and_write(volume, lungs, model, options["backend"], device, options["batch_size"], progress,
                              output, record)


LUNG_INFECTION = ServerTask(
    name="lung-infection",
    title="ground glass, consolidation and pleural effusion on a chest CT (U-Net or SegNet); optionally a second "
          "file: the lungs as a .seg.nrrd",
    command="lung infection", accepts=(".seg.nrrd", *VOLUME_SUFFIXES), max_files=2, run=_run_lung_infection,
    models=("lung-infection-unet", "lung-infection-segnet"),
    options=(SERIES,
             OptionSpec("arch", str, "unet", "which installed catalogue model", choices=("unet", "segnet")),
             BACKEND,
             OptionSpec("batch_size", int, 8, "slices per network call", minimum=1, maximum=256)))


__all__ = ["LUNG_INFECTION"]
