"""The tasks the server offers. Each runs the same pipeline and writes the same files as its CLI command.

A task gets the job's inputs (stored under server-made names), its checked options, the worker's device, a
Progress that carries the job's cancel flag, and the staged output folder with its result.json record. The files
come from the CLI command's own ``write_outputs``, so a result fetched from the server is the result the CLI
would have written for the same input and options.
"""

from __future__ import annotations

import argparse
from typing import Any

from radassist.io.atomic import RunOutput
from radassist.runtime.progress import Progress
from radassist.runtime.run_record import RunRecord
from radassist.server.options import OptionSpec
from radassist.server.tasks_base import (BACKEND, MAMMOGRAM_SUFFIXES, SERIES, VOLUME_SUFFIXES, ServerTask, TaskInput,
                                         TaskRun, _per_file, _read_volume)
from radassist.server.tasks_brain import BRAIN_REGISTER
from radassist.server.tasks_lung_infection import LUNG_INFECTION
from radassist.server.tasks_segment import SEGMENT_BOX

# -------------------------------------------------------------------------------------------------- convert

def _run_convert(inputs: list[TaskInput], options: dict[str, Any], device: Any, progress: Progress,
                 output: RunOutput, record: RunRecord) -> None:
    from radassist.commands.inputs import FORMATS, describe
    from radassist.io import write_volume

    progress.update(0.0, "reading")
    with record.timed("read"):
        volume = _read_volume(inputs[0], options["series"])
    progress.update(0.5, "writing")
    with record.timed("write"):
        write_volume(volume, output.path(options["name"] + FORMATS[options["format"]]))
    record.summary = describe(volume)
    progress.update(1.0, "converted")


CONVERT = ServerTask(
    name="convert", title="convert an image or zipped DICOM series to NRRD, NIfTI or MHA", command="convert",
    accepts=VOLUME_SUFFIXES, max_files=1, run=_run_convert,
    options=(SERIES,
             OptionSpec("format", str, "nrrd", "output file format", choices=("mha", "nifti", "nrrd")),
             OptionSpec("name", str, "volume", "output file name without extension (letters, digits, - and _)",
                        pattern=r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")))


# -------------------------------------------------------------------------------------------------- lung

def _run_lung_detect(inputs: list[TaskInput], options: dict[str, Any], device: Any, progress: Progress,
                     output: RunOutput, record: RunRecord) -> None:
    from radassist.commands import lung as command
    from radassist.lung.pipeline import detect_nodules

    args = argparse.Namespace(model=None, **{k: v for k, v in options.items() if k != "series"})
    config = command._detection_config(args)
    with record.timed("read"):
        volume = _read_volume(inputs[0], options["series"])
    with record.timed("load model"):
        engine, model = command._choose_engine(args, device)
    with record.timed("detect"):
        detections = detect_nodules(volume, config, progress, engine=engine, model=model)
    with record.timed("write"):
        command.write_outputs(volume, detections, output)
    record.summary = command.run_summary(detections, device)


LUNG_DETECT = ServerTask(
    name="lung-detect", title="lung nodules on a chest CT (Lung-DETR, or the classical detector without weights)",
    command="lung detect", accepts=VOLUME_SUFFIXES, max_files=1, run=_run_lung_detect, models=("lung-detr",),
    options=(SERIES,
             OptionSpec("engine", str, "auto", "which detector", choices=("auto", "classic", "detr")),
             BACKEND,
             OptionSpec("threshold", float, 0.5, "box findings with a probability (Lung-DETR) or score (classical "
                        "detector) of at least this; nodules.csv lists every candidate", minimum=0.0, maximum=1.0),
             OptionSpec("max_nodules", int, 100, "list at most this many candidates", minimum=1, maximum=1000)))


# -------------------------------------------------------------------------------------------------- liver

def _run_liver_segment(inputs: list[TaskInput], options: dict[str, Any], device: Any, progress: Progress,
                       output: RunOutput, record: RunRecord) -> None:
    from radassist.commands import liver as command
    from radassist.liver.pipeline import segment_liver
    from radassist.liver.preprocess import check_ct
    from radassist.liver.weights import load_liver_model

    with record.timed("read"):
        volume = _read_volume(inputs[0], options["series"])
    check_ct(volume, inputs[0].shown)
    model = load_liver_model(options["arch"], options.get("model"), device.device)
    config = command.segmentation_config(argparse.Namespace(**options))
    with record.timed("segment"):
        result = segment_liver(volume, model, config, progress, backend=model.backend(options["backend"], device))
    with record.timed("write"):
        command.write_outputs(volume, result, output)
    record.summary = result.report.summary | {"backend": result.backend}


LIVER_SEGMENT = ServerTask(
    name="liver-segment", title="liver and liver tumours on an abdominal CT (U-Net or mU-Net)",
    command="liver segment", accepts=VOLUME_SUFFIXES, max_files=1, run=_run_liver_segment,
    models=("liver-munet", "liver-unet"),
    options=(SERIES,
             OptionSpec("arch", str, "munet", "network architecture", choices=("munet", "unet")),
             BACKEND,
             OptionSpec("batch_size", int, 8, "slices per network call", minimum=1, maximum=256),
             OptionSpec("min_tumour_ml", float, 0.05, "drop tumours smaller than this (mL)", minimum=0.0,
                        maximum=1e6),
             OptionSpec("model", str, None, "a checkpoint folder from 'radassist train liver' on the computer that "
                        "runs the task (default: the installed model of the architecture)")))


# -------------------------------------------------------------------------------------------------- mammo

def _run_mammo_classify(inputs: list[TaskInput], options: dict[str, Any], device: Any, progress: Progress,
                        output: RunOutput, record: RunRecord) -> None:
    from radassist.commands import mammo as command
    from radassist.mammo.pipeline import MammoConfig, classify_exam, prepare_exam

    config = MammoConfig(tta=options["tta"], tta_seed=options["tta_seed"])
    mammograms = command.read_exam([item.path for item in inputs], _per_file(options["laterality"], inputs),
                                   _per_file(options["view"], inputs))
    runners = command.load_models([options["model"]] if options["model"] else None, options["backend"],
                                  device.device)
    prepare_exam(mammograms, config, max(tuple(r.config.crop_shape) for r in runners))
    with record.timed("classify"):
        result = classify_exam(mammograms, runners, config, progress)
    with record.timed("write"):
        command.write_outputs(result, output)
    record.summary = {item.image_id: item.probabilities for item in
                      result.classification.images + result.classification.groups}


MAMMO_CLASSIFY = ServerTask(
    name="mammo-classify", title="benign and malignant probabilities of a screening exam (GMIC)",
    command="mammo classify", accepts=MAMMOGRAM_SUFFIXES, max_files=8, run=_run_mammo_classify,
    models=("gmic-1",),
    options=(OptionSpec("laterality", str, None, "per file: L or R when the file does not say", per_file=True,
                        pattern=r"[A-Za-z]{1,10}"),
             OptionSpec("view", str, None, "per file: CC or MLO when the file does not say", per_file=True,
                        pattern=r"[A-Za-z]{1,10}"),
             OptionSpec("tta", int, 0, "test-time augmentation windows", minimum=0, maximum=64),
             OptionSpec("tta_seed", int, 0, "seed of the augmentation windows", minimum=0, maximum=2**31 - 1),
             BACKEND,
             OptionSpec("model", str, None, "an installed model id (gmic-1 .. gmic-5, gmic-ensemble, or one imported) "
                        "or a checkpoint folder on the computer that runs the task (default: gmic-1)")))

TASKS: dict[str, ServerTask] = {task.name: task for task in (CONVERT, LUNG_DETECT, LUNG_INFECTION, LIVER_SEGMENT,
                                                             MAMMO_CLASSIFY, BRAIN_REGISTER,
                                                             SEGMENT_BOX)}

__all__ = ["BACKEND", "MAMMOGRAM_SUFFIXES", "SERIES", "TASKS", "VOLUME_SUFFIXES", "ServerTask", "TaskInput",
           "TaskRun"]
