"""`radassist evaluate lung`: LUNA16 FROC/CPM and the Lung-DETR detection table for a predictions CSV.

Served through radassist/commands/train_evaluate.py (``EVALUATE_TASKS``); heavy imports stay in run_evaluate.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from radassist.commands.run_context import command_run

if TYPE_CHECKING:
    from radassist.lung.evaluate import LungEvaluation

EVALUATE_TASKS = ("lung",)
EVALUATE_HELP = {
    "lung": "Score nodule predictions on a LUNA16 folder (or one made by 'radassist synth lung'):\n"
            "  * the LUNA16 FROC with the challenge's rules (hit = candidate centre within the nodule's radius;\n"
            "    annotations_excluded.csv findings are neither hits nor false positives; one hit per nodule),\n"
            "    sensitivity at 1/8, 1/4, 1/2, 1, 2, 4, 8 false positives per scan, CPM = their mean, and a\n"
            "    bootstrap confidence interval over scans;\n"
            "  * precision, recall, F1 and AP at 3-D IoU >= 0.5, for all nodules and for < 7, 7-15, > 15 mm\n"
            "    (needs a diameter_mm column in the predictions).\n"
            "Writes evaluation.json, froc.png and result.json to --out.",
}


def add_evaluate_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="LUNA16 folder: annotations.csv, optional annotations_excluded.csv, subset*/ scans "
                             "or seriesuids.csv")
    parser.add_argument("--predictions", type=Path, required=True,
                        help="predictions CSV: seriesuid, coordX, coordY, coordZ, probability (or score, as the "
                             "classical detector writes)[, diameter_mm] (world mm, LPS as in the .mhd headers); "
                             "every candidate, not only those over a threshold, for a full FROC curve")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    parser.add_argument("--subset", action="append", default=[], metavar="NAME",
                        help="evaluate only the scans in this subset folder, e.g. subset9 (repeatable); default: "
                             "seriesuids.csv if present, else every subset*/*.mhd")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU needed to match a box (detection table)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability (or score) at or above which a prediction counts (precision, recall, F1)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples for the CPM confidence "
                                                                    "interval (0: none)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the interval")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed; the same seed gives the same interval")
    parser.add_argument("--max-marks", type=int, default=100,
                        help="candidates kept per scan, highest probability (score) first (LUNA16: 100)")


def run_evaluate(task: str, args: argparse.Namespace) -> int:
    from radassist.lung.evaluate import (LungEvaluationConfig, evaluate_lung, read_luna16_reference,
                                         summary_lines, write_evaluation)
    from radassist.results.csv_json import read_detections_csv
    from radassist.runtime.progress import tqdm_progress

    config = LungEvaluationConfig(iou_threshold=args.iou, score_threshold=args.threshold,
                                  bootstrap_samples=args.bootstrap, confidence=args.confidence, seed=args.seed,
                                  max_marks_per_scan=args.max_marks)
    reference = read_luna16_reference(args.data, args.subset)
    predictions = read_detections_csv(args.predictions)
    with command_run(args.out, f"evaluate {task}", args) as (output, record):
        record.inputs = [str(args.predictions), *reference.files.values()]
        with record.timed("evaluate"), tqdm_progress(f"evaluate {task}") as progress:
            evaluation = evaluate_lung(reference, predictions, config, progress)
        with record.timed("write"):
            write_evaluation(evaluation, output.path("evaluation.json"), output.path("froc.png"))
        record.summary = _summary(evaluation)
    print("\n".join(summary_lines(evaluation)))
    print(f"wrote evaluation.json and froc.png to {args.out}")
    return 0


def _summary(evaluation: LungEvaluation) -> dict:
    """The headline numbers for result.json."""
    summary = {"scans": evaluation.scans, "nodules": evaluation.froc.counts["nodules"], "cpm": evaluation.froc.cpm}
    if evaluation.froc.bootstrap is not None:
        summary["cpm_ci"] = [evaluation.froc.bootstrap.cpm_low, evaluation.froc.bootstrap.cpm_high]
    if evaluation.detection is not None:
        overall = evaluation.detection.row()
        summary |= {"precision": overall.precision, "recall": overall.recall, "f1": overall.f1,
                    "ap": overall.average_precision}
    return summary
