"""`radassist demo`: generate a sample for each task and run what exists on it.

Each task has one step function that writes into ``<out>/<task>/``: the sample, what RadAssist computes on it
without trained weights (the classical nodule detector), and the phantom's reference results written through the
same Slicer-native writers the pipelines use, so the folder shows every file format a user gets. Tasks whose
models need trained weights (a fresh install has none) show their reference results.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from radassist.commands.run_context import command_run
from radassist.runtime.progress import Progress, tqdm_progress

DemoStep = Callable[[Path, int, Progress], dict[str, Any]]


def _lung(folder: Path, seed: int, progress: Progress) -> dict[str, Any]:
    from radassist.commands.lung import write_outputs
    from radassist.commands.run_context import OutputFolder
    from radassist.io import write_volume
    from radassist.lung.pipeline import detect_nodules
    from radassist.results import preview_labelmap, write_detections_csv, write_roi_markups, write_seg_nrrd
    from radassist.synthetic.chest import make_chest_ct

    phantom = make_chest_ct(seed=seed)
    progress.update(0.3, "detecting nodules (classical detector)")
    detections = detect_nodules(phantom.volume, progress=progress.sub(0.3, 0.9), engine="classic")
    write_volume(phantom.volume, folder / "chest_ct.nrrd")
    write_outputs(phantom.volume, detections, OutputFolder(folder))
    write_seg_nrrd(phantom.lungs, folder / "lungs.seg.nrrd")
    write_roi_markups(phantom.nodules, folder / "reference_nodules.mrk.json")
    write_detections_csv(phantom.nodules, folder / "reference_nodules.csv")
    preview_labelmap(phantom.volume, phantom.lungs, folder / "lungs.png")
    found = sum(any(np.linalg.norm(np.subtract(d.center, n.center)) < max(n.diameter_mm or 0, 4) / 2
                    for d in detections.above(0.5).items) for n in phantom.nodules.items)
    return {"engine": detections.engine, "candidates_at_0.5": len(detections.above(0.5)),
            "reference_nodules": len(phantom.nodules), "reference_nodules_found": found,
            "series_uid": phantom.series_uid}


def _liver(folder: Path, seed: int, progress: Progress) -> dict[str, Any]:
    from radassist.io import write_volume
    from radassist.results import Report, preview_labelmap, write_labelmap_nifti, write_report, write_seg_nrrd
    from radassist.synthetic.abdomen import make_abdomen_ct

    phantom = make_abdomen_ct(seed=seed)
    progress.update(0.5, "writing")
    write_volume(phantom.volume, folder / "abdomen_ct.nii.gz")
    write_seg_nrrd(phantom.labels, folder / "liver.seg.nrrd")
    write_labelmap_nifti(phantom.labels, folder / "liver_labels.nii.gz")
    rows = [{"segment": s.name, "label": s.label_value, "volume_ml": round(phantom.labels.volume_ml(s.name), 2)}
            for s in phantom.labels.segments]
    report = Report(title="Reference segment volumes of the abdomen phantom", rows=rows,
                    summary={"tumours": len(phantom.tumours)}, units={"volume_ml": "mL"})
    write_report(report, folder / "segment_volumes.json", folder / "segment_volumes.csv")
    preview_labelmap(phantom.volume, phantom.labels, folder / "liver.png")
    return {"tumours": len(phantom.tumours), "volumes_ml": {r["segment"]: r["volume_ml"] for r in rows}}


def _brain(folder: Path, seed: int, progress: Progress) -> dict[str, Any]:
    import numpy as np

    from radassist.io import write_volume
    from radassist.results import (preview_registration, warp_volume, write_displacement_nifti,
                                   write_itk_displacement_h5, write_seg_nrrd)
    from radassist.synthetic.brain import make_brain_pair

    pair = make_brain_pair(seed=seed)
    progress.update(0.4, "writing")
    fixed, moving = pair.fixed["flair"], pair.moving["flair"]
    write_volume(fixed, folder / "fixed_flair.nii.gz")
    write_volume(moving, folder / "moving_flair.nii.gz")
    write_itk_displacement_h5(pair.deformation, folder / "transform.h5")
    write_displacement_nifti(pair.deformation, folder / "displacement.nii.gz")
    warped = warp_volume(moving, pair.deformation)
    write_volume(warped, folder / "warped_flair.nii.gz")
    write_seg_nrrd(pair.fixed_labels, folder / "tumour_fixed.seg.nrrd")
    write_seg_nrrd(pair.moving_labels, folder / "tumour_moving.seg.nrrd")
    preview_registration(fixed, moving, warped, pair.deformation, folder / "registration.png")
    before = float(np.abs(moving.array.astype(float) - fixed.array).mean())
    after = float(np.abs(warped.array.astype(float) - fixed.array).mean())
    return {"mean_abs_intensity_error": {"unregistered": round(before, 4), "warped_with_truth": round(after, 4)},
            "max_displacement_mm": round(float(pair.deformation.magnitude.max()), 2)}


def _mammo(folder: Path, seed: int, progress: Progress) -> dict[str, Any]:
    from radassist.results import Classification, ClassifiedImage, preview_classification, write_classification
    from radassist.synthetic.mammo import make_mammogram_exam, write_view_png

    exam = make_mammogram_exam(seed=seed)
    progress.update(0.5, "writing")
    images = []
    for view in exam.views:
        name = f"{view.laterality}-{view.view}"
        write_view_png(view, folder / f"{name}.png")
        images.append(ClassifiedImage(name, {k: float(v) for k, v in view.labels.items()},
                                      {"laterality": view.laterality, "view": view.view}))
    labels = Classification(images=images, model="reference labels of the phantom")
    write_classification(labels, folder / "labels.json", folder / "labels.csv")
    lesions = {f"{v.laterality}-{v.view}": (v.benign_mask | v.malignant_mask).astype(float) for v in exam.views}
    preview_classification({f"{v.laterality}-{v.view}": v.to_volume() for v in exam.views}, labels,
                           folder / "exam.png", overlays=lesions)
    return {"views": [image.image_id for image in images],
            "malignant_views": [i.image_id for i in images if i.probabilities.get("malignant")]}


DEMO_STEPS: dict[str, DemoStep] = {"lung": _lung, "liver": _liver, "brain": _brain, "mammo": _mammo}


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    parser = commands.add_parser(
        "demo", help="generate a sample for each task and write its results", formatter_class=formatter,
        description="Generate a synthetic sample for each task and run what RadAssist can do on it, writing "
                    "Slicer-loadable files, PNG previews and result.json into the output folder.")
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the samples")
    parser.add_argument("--tasks", nargs="+", choices=sorted(DEMO_STEPS), default=list(DEMO_STEPS),
                        help="which tasks to run")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with command_run(args.out, "demo", args) as (output, record), tqdm_progress("demo") as progress:
        for index, task in enumerate(args.tasks):
            step_progress = progress.sub(index / len(args.tasks), (index + 1) / len(args.tasks))
            step_progress.update(0.0, task)
            folder = output.path(task)
            folder.mkdir(exist_ok=True)
            with record.timed(task):
                record.summary[task] = DEMO_STEPS[task](folder, args.seed, step_progress)
            step_progress.update(1.0, task)
    print(f"demo results in {args.out}/:")
    for name in record.outputs:
        print(f"  {name}")
    return 0
