"""`radassist lung`: the lung command group; `detect` finds nodules on a chest CT.

`radassist lung detect` writes nodules.mrk.json (one ROI per finding at or above the threshold, Slicer opens it),
nodules.csv (every candidate, whatever its score: LUNA16 submission columns plus diameter_mm; the classical
detector's heuristic number is a ``score`` column, Lung-DETR's a ``probability``), nodules.png (the 7.5 mm slab
through each shown finding with its box) and result.json. The lung infection command joins this group through
:func:`radassist.commands.lung_infection.register_infection`.
Heavy imports (torch, SimpleITK, the pipeline) stay inside the run function so `--help` is fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from radassist.commands.inputs import add_input_arguments, load_input_volume
from radassist.commands.lung_infection import register_infection
from radassist.commands.remote_option import add_remote_option
from radassist.commands.run_context import command_run
from radassist.errors import InputError
from radassist.runtime.device import add_device_arguments, device_from_args
from radassist.runtime.progress import tqdm_progress

ENGINE_CHOICES = ("auto", "classic", "detr")


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    parser = commands.add_parser("lung", help="lung nodule detection (and lung infection segmentation)",
                                 formatter_class=formatter,
                                 description="Lung CT tools. 'detect' finds nodules with Lung-DETR or, without "
                                             "trained weights, the classical candidate detector.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    detect = actions.add_parser(
        "detect", help="find lung nodules on a chest CT", formatter_class=formatter,
        description="Find lung nodules of 4-30 mm on a thin-slice chest CT (HU). Writes nodules.mrk.json (one ROI "
                    "per finding at or above --threshold, its probability or score and diameter in its "
                    "description; open it in Slicer over the CT), nodules.csv (every candidate, below the "
                    "threshold too: seriesuid, coordX, coordY, coordZ, probability, diameter_mm; LPS mm, LUNA16 "
                    "submission columns; the classical detector writes 'score' instead of 'probability'), "
                    "nodules.png (the 7.5 mm MIP slab through each shown finding with its box) and "
                    "result.json.\n\nEngines: 'detr' is Lung-DETR (Deformable DETR on 7.5 mm MIP slabs, "
                    "arXiv:2409.05200) and needs trained weights ('radassist models install lung-detr', or "
                    "'radassist models import lung-detr FILE', or --model CHECKPOINT_FOLDER); 'classic' is a "
                    "classical candidate detector (lung mask, multi-scale blob enhancement, size and shape "
                    "filters) that needs no weights: its numbers are heuristic scores that rank candidates, not "
                    "probabilities; 'auto' "
                    "uses Lung-DETR when its weights are installed, else the classical detector.")
    add_input_arguments(detect)
    detect.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    detect.add_argument("--engine", choices=ENGINE_CHOICES, default="auto", help="which detector")
    detect.add_argument("--model", metavar="ID_OR_PATH",
                        help="Lung-DETR weights: a catalogue model id or a checkpoint folder (default: lung-detr)")
    detect.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="inference engine for Lung-DETR (ONNX Runtime exports the model once and caches it)")
    detect.add_argument("--threshold", type=float, default=0.5, metavar="T",
                        help="box findings with a probability (Lung-DETR) or score (classical detector) of at least "
                             "T, 0..1, in nodules.mrk.json and nodules.png; nodules.csv lists every candidate")
    detect.add_argument("--max-nodules", type=int, default=100, metavar="N",
                        help="list at most N candidates, best first (LUNA16 scores 100 per scan)")
    add_device_arguments(detect)
    detect.set_defaults(handler=run_detect)
    add_remote_option(detect, "lung-detect", ("series", "engine", "backend", "threshold", "max_nodules"))
    register_infection(actions, formatter)


def _detection_config(args: argparse.Namespace):
    from radassist.lung.pipeline import LungDetectionConfig

    if not 0.0 <= args.threshold <= 1.0:
        raise InputError(None, f"--threshold must be within 0..1, got {args.threshold}")
    if args.max_nodules < 1:
        raise InputError(None, f"--max-nodules must be at least 1, got {args.max_nodules}")
    config = LungDetectionConfig(score_threshold=args.threshold)
    # slab boxes weaker than the report threshold can never become a reported nodule; below it, keep them all
    return dataclasses.replace(config, box_threshold=min(config.box_threshold, args.threshold),
                               link=dataclasses.replace(config.link, max_candidates=args.max_nodules),
                               classic=dataclasses.replace(config.classic, max_candidates=args.max_nodules))


def _choose_engine(args: argparse.Namespace, device) -> tuple[str, object]:
    """(engine, Lung-DETR model or None); 'auto' falls back to the classical detector without weights."""
    from radassist.lung.pipeline import WeightsMissing, load_detr_model

    if args.engine == "classic":
        return "classic", None
    try:
        return "detr", load_detr_model(args.model, backend=args.backend, device=device)
    except WeightsMissing:
        if args.engine == "detr":
            raise
        print("note: no Lung-DETR weights are installed ('radassist models install lung-detr'); using the "
              "classical candidate detector (heuristic scores, not a trained model)", file=sys.stderr)
        return "classic", None


def write_outputs(volume, detections, output) -> None:
    """The detect command's files (staged in ``output``); the inference server writes the same ones. Every
    candidate goes to nodules.csv; the boxes (mrk.json, PNG) are the findings at or above the threshold."""
    from radassist.lung.pipeline import shown_findings
    from radassist.results import preview_detections, write_detections_csv, write_roi_markups

    shown = shown_findings(detections)
    threshold = float(detections.metadata.get("score_threshold", 0.0))
    write_roi_markups(shown, output.path("nodules.mrk.json"))
    write_detections_csv(detections, output.path("nodules.csv"))
    if detections.score_name == "probability":
        what = f"most probable first ({len(shown)} at probability >= {threshold:g}; p = probability)"
    else:
        what = (f"highest score first ({len(shown)} at score >= {threshold:g}; the score ranks candidates, it is "
                f"not a probability)")
    preview_detections(volume, shown, output.path("nodules.png"),
                       slab_mm=float(detections.metadata.get("slab_thickness_mm", 7.5)),
                       caption=f"lung nodules found by the {detections.engine} detector, {what}")


def run_summary(detections, choice) -> dict:
    """The ``summary`` of the detect command's result.json (``choice``: the DeviceChoice it ran on): the findings
    shown (at or above the threshold) in ``nodules``, and how many candidates nodules.csv lists."""
    from radassist.lung.pipeline import detections_table, shown_findings

    shown = shown_findings(detections)
    return {"engine": detections.engine, "device": str(choice.device),
            "findings": len(shown), "candidates": len(detections), "seriesuid": detections.series_uid,
            **{k: v for k, v in detections.metadata.items() if k != "config"},
            "nodules": detections_table(shown)}


def run_detect(args: argparse.Namespace) -> int:
    from radassist.lung.pipeline import detect_nodules, shown_findings

    config = _detection_config(args)
    with command_run(args.out, "lung detect", args) as (output, record):
        with record.timed("read"):
            volume = load_input_volume(args)
        choice = device_from_args(args)
        with record.timed("load model"):
            engine, model = _choose_engine(args, choice)
        with record.timed("detect"), tqdm_progress(f"lung detect ({engine})") as progress:
            detections = detect_nodules(volume, config, progress, engine=engine, model=model)
        with record.timed("write"):
            write_outputs(volume, detections, output)
        record.inputs = [str(args.input)]
        record.summary = run_summary(detections, choice)
    kind = "nodule(s)" if engine == "detr" else "nodule candidate(s) from the classical detector"
    print(f"{len(shown_findings(detections))} {kind} at {detections.score_name} >= {args.threshold:g} (boxed in "
          f"nodules.mrk.json and nodules.png); nodules.csv lists all {len(detections)} candidate(s) with their "
          f"{detections.score_name}; written to {args.out}")
    return 0
