"""`radassist liver segment|quantify`, and the `radassist train liver` / `radassist evaluate liver` hooks.

Heavy imports (torch, the networks) stay inside the run functions so `--help` is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from radassist.commands.finetune_options import (MIX_HELP, add_finetune_arguments, data_folders, register_result,
                                                resolve_init_option)
from radassist.commands.inputs import add_input_arguments, load_input_volume, read_labels
from radassist.commands.options import add_model_option, flat_widths, model_folder, widths
from radassist.commands.remote_option import add_remote_option
from radassist.commands.run_context import command_run
from radassist.errors import InputError
from radassist.io.atomic import full_suffix
from radassist.runtime.device import add_device_arguments, device_from_args
from radassist.runtime.distributed import main_rank_folder  # under torchrun: rank 0 writes --out
from radassist.runtime.progress import tqdm_progress

TRAIN_TASKS = ("liver",)
EVALUATE_TASKS = ("liver",)
TRAIN_HELP = {"liver": "Train U-Net or mU-Net on a LiTS-layout folder (volume-N.nii + segmentation-N.nii, labels "
                       "0/1/2; 'radassist synth liver' writes one) or an MSD export of corrections with the seed "
                       "recipe: HU window, flips, rotation, scaling, elastic deformation, cross-entropy + Dice. "
                       "Writes a checkpoint folder that 'radassist liver segment --model' runs, with the "
                       "weights of the epoch with the best mean validation Dice of liver and tumour, and "
                       "train_log.csv (loss, validation Dice and seconds per epoch). Fine-tune with "
                       "--model (a model id, checkpoint folder or weights file; the start is recorded in the "
                       "checkpoint) and keep the result as a new catalogue version with --register-as."}
EVALUATE_HELP = {"liver": "Score liver and tumour segmentations on a LiTS-layout folder: Dice per case and global, "
                          "VOE, RVD, ASSD and MSD for liver and tumour, and lesion-wise detection precision and "
                          "recall. Predictions come from a folder of label maps (segmentation-N.nii[.gz] or "
                          "test-segmentation-N.nii[.gz], labels 0/1/2) or are made with --model. Writes "
                          "evaluation.json, evaluation.png and result.json to --out."}
SEGMENTATION_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    parser = commands.add_parser("liver", help="liver and liver-tumour segmentation and measurements",
                                 formatter_class=formatter,
                                 description="Segment the liver and liver tumours on an abdominal CT (U-Net or "
                                             "mU-Net), and measure any liver segmentation.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    segment = actions.add_parser(
        "segment", help="segment liver and tumours in a CT", formatter_class=formatter,
        description="Writes segmentation.seg.nrrd (segments 'Liver' and 'Liver tumour', SNOMED CT coded), "
                    "report.json/report.csv (liver volume, tumours with volume and longest axial diameter, "
                    "tumour burden), segmentation.png (views through the largest tumour) and result.json.")
    add_input_arguments(segment)
    segment.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    segment.add_argument("--arch", choices=("munet", "unet"), default="munet", help="network architecture")
    add_model_option(segment, "catalogue model id or trained checkpoint folder (from 'radassist train liver'); "
                              "default: the installed model of --arch")
    segment.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="inference engine")
    segment.add_argument("--batch-size", type=int, default=8, help="slices per network call")
    segment.add_argument("--min-tumour-ml", type=float, default=0.05, help="drop tumours smaller than this (mL)")
    add_device_arguments(segment)
    segment.set_defaults(handler=run_segment)
    add_remote_option(segment, "liver-segment", ("series", "arch", "backend", "batch_size", "min_tumour_ml"))

    quantify = actions.add_parser(
        "quantify", help="measure a liver/tumour segmentation (no model needed)", formatter_class=formatter,
        description="Liver volume, tumour count, each tumour's volume and longest axial diameter, total tumour "
                    "volume and tumour burden (% of the liver) of any segmentation: a .seg.nrrd from Slicer, a "
                    "NIfTI/NRRD label map (LiTS labels 1 liver, 2 tumour unless said otherwise).")
    quantify.add_argument("segmentation", type=Path, help="segmentation file (.seg.nrrd, .nii.gz, .nrrd, ...)")
    quantify.add_argument("--image", type=Path, help="the CT it was drawn on: adds mean HU and a PNG; the grids "
                                                     "must match")
    quantify.add_argument("--out", type=Path, help="write report.json, report.csv (and segmentation.png with "
                                                   "--image) here")
    quantify.add_argument("--liver-label", type=int, action="append", metavar="N",
                          help="label value of the liver (repeatable); default: found by segment name/codes")
    quantify.add_argument("--tumour-label", type=int, action="append", metavar="N",
                          help="label value of tumours (repeatable); default: found by segment name/codes")
    quantify.set_defaults(handler=run_quantify, series=None)


# ------------------------------------------------------------------------------------------------ segment


def segmentation_config(args: argparse.Namespace) -> Any:
    """The LiverSegmentationConfig of the segment options (the command's and the batch's)."""
    from radassist.liver.pipeline import LiverSegmentationConfig
    from radassist.liver.postprocess import PostprocessConfig

    if args.batch_size < 1:
        raise InputError(None, "--batch-size must be at least 1")
    return LiverSegmentationConfig(batch_size=args.batch_size,
                                   postprocess=PostprocessConfig(min_tumour_volume_ml=args.min_tumour_ml))


def run_segment(args: argparse.Namespace) -> int:
    from radassist.liver.pipeline import segment_liver
    from radassist.liver.preprocess import check_ct
    from radassist.liver.quantify import summary_line
    from radassist.liver.weights import load_liver_model

    config = segmentation_config(args)
    volume = load_input_volume(args)
    check_ct(volume, str(args.input))
    device = device_from_args(args)
    model = load_liver_model(args.arch, model_folder(args.model), device.device)  # before any output
    with command_run(args.out, "liver segment", args) as (output, record):
        record.inputs = [str(args.input)]
        with record.timed("segment"), tqdm_progress("liver segment") as progress:
            backend = model.backend(args.backend, device)
            result = segment_liver(volume, model, config, progress, backend=backend)
        with record.timed("write"):
            write_outputs(volume, result, output)
        record.summary = result.report.summary | {"backend": result.backend}
    print(summary_line(result.report.summary))
    print(f"wrote segmentation.seg.nrrd, report.json, report.csv and segmentation.png to {args.out}")
    return 0


def write_outputs(volume: Any, result: Any, output: Any) -> None:
    """The segment command's files (staged in ``output``)."""
    from radassist.results import CT_SOFT_TISSUE, preview_labelmap, write_report, write_seg_nrrd

    write_seg_nrrd(result.labelmap, output.path("segmentation.seg.nrrd"))
    write_report(result.report, output.path("report.json"), output.path("report.csv"))
    preview_labelmap(volume, result.labelmap, output.path("segmentation.png"), CT_SOFT_TISSUE,
                     centre_lps=result.largest_tumour_center)


# ------------------------------------------------------------------------------------------------ quantify


def read_segmentation(path: Path) -> Any:
    """A LabelMap from a .seg.nrrd, a NIfTI label map (with its label table if any) or another label image."""
    suffix = full_suffix(path).lower()
    if not path.exists():
        raise InputError(path, "file not found")
    if suffix not in SEGMENTATION_SUFFIXES:
        raise InputError(path, f"is not a segmentation file ({', '.join(SEGMENTATION_SUFFIXES)})")
    if suffix in (".seg.nrrd", ".nii", ".nii.gz"):
        return read_labels(path)
    return _labelmap_from_image(path)


def _labelmap_from_image(path: Path) -> Any:
    import numpy as np

    from radassist.io import read_volume
    from radassist.results import LabelMap, Segment

    volume = read_volume(path)
    labels = volume.array
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.array_equal(labels, np.rint(labels)):
            raise InputError(path, f"holds non-integer values ({labels.dtype}); a label map holds label numbers")
        labels = np.rint(labels).astype(np.int64)
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 65535:
        raise InputError(path, "label values must be within 0..65535")
    segments = [Segment(f"Segment_{int(v)}", int(v)) for v in np.unique(labels) if v > 0]
    return LabelMap(labels=labels.astype(np.uint16 if labels.max(initial=0) > 255 else np.uint8),
                    geometry=volume.geometry, segments=segments, source=volume.source)


def run_quantify(args: argparse.Namespace) -> int:
    from radassist.liver.grid import align_to_grid
    from radassist.liver.quantify import liver_tumour_labelmap, quantify_labelmap, summary_line

    labelmap = read_segmentation(args.segmentation)
    image = None
    if args.image is not None:
        image = load_input_volume(argparse.Namespace(input=args.image, series=None))
        labelmap = align_to_grid(labelmap, image.geometry, args.segmentation, args.image)
    try:
        quantification = quantify_labelmap(labelmap, image, args.liver_label, args.tumour_label)
    except InputError as error:
        raise InputError(args.segmentation, error.problem) from None
    report = quantification.report()
    report.metadata["segmentation"] = str(args.segmentation)
    if args.out is not None:
        from radassist.results import CT_SOFT_TISSUE, preview_labelmap, write_report

        with command_run(args.out, "liver quantify", args) as (output, record):
            record.inputs = [str(args.segmentation)] + ([str(args.image)] if args.image else [])
            write_report(report, output.path("report.json"), output.path("report.csv"))
            if image is not None:
                centre = quantification.tumours[0].center_lps if quantification.tumours else None
                shown = liver_tumour_labelmap(labelmap, args.liver_label, args.tumour_label)
                preview_labelmap(image, shown, output.path("segmentation.png"), CT_SOFT_TISSUE, centre_lps=centre)
            record.summary = report.summary
    print(summary_line(report.summary))
    for row in report.rows[1:]:
        print(f"  {row['structure']}: {row['volume_ml']:.3f} mL, longest axial diameter "
              f"{row['longest_axial_diameter_mm']:.1f} mm")
    if args.out is not None:
        print(f"wrote report.json and report.csv to {args.out}")
    return 0


# ------------------------------------------------------------------------------------------------ train


def add_train_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, action="append", required=True, metavar="DIR",
                        help="LiTS-layout folder or an MSD export ('radassist export liver'); " + MIX_HELP)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--arch", choices=("munet", "unet"), help="network architecture (default: munet, or the "
                                                                  "--model network's)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="Adam learning rate")
    parser.add_argument("--image-size", type=int, help="slices are padded square and resized to this (default: 512, "
                                                       "or the --model checkpoint's)")
    parser.add_argument("--channels", type=widths, nargs="+", metavar="N",
                        help="feature channels per level, e.g. 32 64 128 256 or 32,64,128,256 (default: the paper's "
                             "64,...,1024, or the --model network's)")
    parser.add_argument("--window", help="CT window: seed (-1024..1024 HU), abdominal (-200..250 HU) or LOW,HIGH "
                                         "(default: seed, or the --model checkpoint's)")
    parser.add_argument("--context-slices", type=int, help="2.5-D: neighbouring slices per side (default: 0, or "
                                                           "the --model network's)")
    parser.add_argument("--validation-fraction", type=float, default=0.2, help="share of cases held out")
    parser.add_argument("--keep-empty-fraction", type=float, default=0.2, help="share of liver-free slices used")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--seed", type=int, default=0)
    add_finetune_arguments(parser)
    add_device_arguments(parser)


def _train_settings(args: argparse.Namespace, model: dict[str, Any]) -> tuple[Any, Any]:
    """(LiverTrainConfig, InitWeights or None): the options, with what they leave out taken from the --model
    checkpoint (architecture, context, window, slice size), so fine-tuning prepares slices as its base was
    trained; the network must fit (else InputError before any data is read)."""
    from radassist.liver.model import ARCHITECTURES, CLASS_COUNT
    from radassist.liver.preprocess import SEED_WINDOW, window_by_name
    from radassist.liver.train import LiverTrainConfig

    context = args.context_slices or 0
    sizing = {"in_channels": 2 * context + 1, "context_slices": context, "out_channels": CLASS_COUNT, **model}
    init = resolve_init_option(args, ARCHITECTURES[args.arch or "munet"], sizing)
    arch = args.arch or next((a for a, name in ARCHITECTURES.items() if init and init.architecture == name), "munet")
    trained_with = init.metadata if init is not None else {}
    if args.context_slices is None and init is not None:
        context = int(getattr(init.config, "context_slices", 0))
    window = window_by_name(args.window) if args.window else tuple(trained_with.get("window") or SEED_WINDOW)
    size = (args.image_size, args.image_size) if args.image_size else tuple(trained_with.get("image_size")
                                                                            or (512, 512))
    config = LiverTrainConfig(architecture=arch, model=model, window=window, context_slices=context,
                              image_size=size, epochs=args.epochs, learning_rate=args.learning_rate,
                              batch_size=args.batch_size, validation_fraction=args.validation_fraction,
                              keep_empty_fraction=args.keep_empty_fraction, seed=args.seed,
                              **({"augment": None} if args.no_augment else {}))
    if init is not None:
        from radassist.liver.train import build_network

        build_network(config, init)  # refuses weights that do not fit, before the data is read
    return config, init


def run_train(task: str, args: argparse.Namespace) -> int:
    from radassist.annotation.mix import training_data
    from radassist.annotation.msd import find_liver_cases
    from radassist.liver.datasets import read_lits_case, training_slices
    from radassist.liver.preprocess import LiverPreprocessing
    from radassist.liver.train import train_liver

    channels = flat_widths(args.channels)
    model: dict[str, Any] = {"channels": channels} if channels else {}
    config, init = _train_settings(args, model)
    folders = data_folders(args)
    device = device_from_args(args)
    preprocessing = LiverPreprocessing(config.window, config.context_slices)
    with training_data("liver", folders) as data:
        cases = find_liver_cases(data)
        with tqdm_progress("reading LiTS") as progress:
            slices = training_slices((read_lits_case(c) for c in cases), preprocessing, config.image_size,
                                     config.keep_empty_fraction, args.seed, progress, len(cases))
    with main_rank_folder(args.out) as out, command_run(out, "train liver", args) as (output, record):
        record.inputs = [str(folder) for folder in folders]
        with record.timed("train"), tqdm_progress(f"train {config.architecture}") as progress:
            trained = train_liver(slices, config, progress, device.device, init)
        trained.save(output.staging)
        last, kept = trained.history[-1], trained.kept_record
        record.summary = {"slices": len(slices), "epochs": config.epochs, "final_loss": last.train_loss,
                          "kept_epoch": kept.epoch, "validation_dice_liver": kept.validation_dice_liver,
                          "validation_dice_tumour": kept.validation_dice_tumour,
                          "validation_cases": trained.validation_cases, "finetuned_from": trained.finetuned_from}
        metrics = {name: value for name, value in (("validation_dice_liver", kept.validation_dice_liver),
                                                   ("validation_dice_tumour", kept.validation_dice_tumour),
                                                   ("final_train_loss", last.train_loss)) if value is not None}
        registered = register_result(args, trained.model, trained.architecture, trained.config, task, metrics,
                                     init, metadata=trained.metadata())
        record.summary["registered_model"] = registered
    print(f"trained {trained.architecture} on {len(slices)} slices; final loss {last.train_loss:.4f}"
          + (f"; kept epoch {kept.epoch} of {len(trained.history)}, validation Dice liver "
             f"{kept.validation_dice_liver:.3f} tumour {kept.validation_dice_tumour:.3f}"
             if kept.validation_dice_liver is not None else ""))
    print(f"wrote the checkpoint to {args.out}; run it with 'radassist liver segment CT --model {args.out}'")
    if registered is not None:
        print(f"registered as model {registered}")
    return 0


# ------------------------------------------------------------------------------------------------ evaluate


def add_evaluate_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="LiTS-layout folder with the reference labels")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", type=Path, help="folder of predicted label maps (segmentation-N.nii[.gz])")
    add_model_option(parser, "catalogue model id or checkpoint folder: segment every case with it", group=source)
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    parser.add_argument("--detection-iou", type=float, default=0.5,
                        help="IoU above which a predicted lesion detects a reference lesion")
    add_device_arguments(parser)


def _predicted_labels(args: argparse.Namespace, case: Any, image: Any, model: Any) -> Any:
    import numpy as np

    from radassist.io import read_volume

    if model is not None:
        from radassist.liver.pipeline import NoLiverFound, segment_liver

        try:
            return segment_liver(image, model).labelmap.labels[0]
        except NoLiverFound:  # a wrong answer to be scored, not a reason to stop
            return np.zeros(image.shape, dtype=np.uint8)
    for name in (f"segmentation-{case.number}", f"test-segmentation-{case.number}"):
        for suffix in (".nii.gz", ".nii"):
            path = args.predictions / f"{name}{suffix}"
            if path.is_file():
                predicted = read_volume(path)
                if not predicted.geometry.same_grid(image.geometry, tolerance=1e-3):
                    raise InputError(path, f"is not on the grid of {case.volume.name}")
                return np.rint(predicted.array).astype(np.uint8)
    raise InputError(args.predictions, f"has no segmentation-{case.number}.nii[.gz] for {case.volume.name}")


def run_evaluate(task: str, args: argparse.Namespace) -> int:
    from radassist.annotation.msd import find_liver_cases
    from radassist.liver.datasets import read_lits_case
    from radassist.liver.evaluate import LitsEvaluation, LitsEvaluationConfig, evaluate_case, write_evaluation

    config = LitsEvaluationConfig(detection_iou=args.detection_iou)
    cases = find_liver_cases(args.data)
    model = None
    if args.model is not None:
        from radassist.liver.weights import load_liver_model

        model = load_liver_model("munet", model_folder(args.model), device_from_args(args).device)
    elif not args.predictions.is_dir():
        raise InputError(args.predictions, "is not a folder of predicted label maps")
    scored = []
    with tqdm_progress("evaluate liver") as progress:
        for index, case in enumerate(cases):
            progress.update(index / len(cases), case.name)
            item = read_lits_case(case)
            predicted = _predicted_labels(args, case, item.image, model)
            scored.append(evaluate_case(case.name, item.labels, predicted, item.image.geometry.spacing_zyx, config))
    evaluation = LitsEvaluation(scored, config)
    with command_run(args.out, "evaluate liver", args) as (output, record):
        record.inputs = [str(args.data), str(args.predictions or args.model)]
        write_evaluation(evaluation, output.path("evaluation.json"), output.path("evaluation.png"))
        record.summary = evaluation.to_dict()["summary"]
    summary = evaluation.summary()
    print(f"{summary['cases']} cases: liver Dice/case {summary['liver']['dice_per_case']:.3f}, tumour Dice/case "
          f"{summary['tumour']['dice_per_case']:.3f}, lesion recall {summary['lesion_detection']['recall']:.3f}")
    print(f"wrote evaluation.json and evaluation.png to {args.out}")
    return 0
