"""`radassist synth`: deterministic phantoms with ground truth, written in the real data sets' layouts."""

from __future__ import annotations

import argparse
from pathlib import Path

from radassist.commands.run_context import command_run
from radassist.errors import InputError
from radassist.runtime.progress import tqdm_progress

LAYOUTS = {
    "lung": "LUNA16 (subset0/<seriesuid>.mhd, annotations.csv, seg-lungs-LUNA16/)",
    "liver": "LiTS (volume-N.nii, segmentation-N.nii)",
    "brain": "BraTS case folders (<case>_flair/_t1/_t1ce/_t2/_seg.nii.gz) in fixed/moving pairs with the "
             "true deformation",
    "mammo": "an exam list (images/, masks/, exam_list.json, exam_list.csv)",
}


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    layouts = "\n".join(f"  {task:<6} {layout}" for task, layout in LAYOUTS.items())
    parser = commands.add_parser(
        "synth", help="generate synthetic phantoms with ground truth", formatter_class=formatter,
        description="Generate deterministic phantoms with ground truth, in the layout of the real data set:\n"
                    + layouts)
    parser.add_argument("task", choices=sorted(LAYOUTS), help="which phantom")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    parser.add_argument("--cases", type=int, default=2,
                        help="number of cases (pairs for brain, exams for mammo); at most 10000, and no more than "
                             "fit on the disk")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same data")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from radassist.synthetic.datasets import check_dataset_size, write_dataset

    if args.cases < 1:
        raise InputError(None, f"--cases must be at least 1, got {args.cases}")
    check_dataset_size(args.task, args.cases, args.out)  # before any folder is made
    with command_run(args.out, f"synth {args.task}", args) as (output, record):
        with record.timed("generate"), tqdm_progress(f"synth {args.task}") as progress:
            write_dataset(args.task, output.staging, cases=args.cases, seed=args.seed, progress=progress)
        record.summary = {"task": args.task, "layout": LAYOUTS[args.task], "cases": args.cases, "seed": args.seed}
    print(f"wrote {args.cases} synthetic {args.task} case(s) to {args.out} ({LAYOUTS[args.task]})")
    return 0
