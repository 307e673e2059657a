"""`radassist lung infection`, `radassist train lung-infection` and `radassist evaluate lung-infection`.

The ``lung`` command group belongs to the lung module's command file; it calls :func:`register_infection` to add
the ``infection`` subcommand. Train and evaluate take part through the TRAIN_TASKS / EVALUATE_TASKS hooks of
:mod:`radassist.commands.train_evaluate`. Heavy imports stay inside the run functions so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from radassist.commands.inputs import add_input_arguments, load_input_volume
from radassist.commands.options import add_model_option, deprecated_alias, flat_widths, model_folder, widths
from radassist.commands.run_context import command_run
from radassist.errors import InputError
from radassist.runtime.device import add_device_arguments

TASK = "lung-infection"
TRAIN_TASKS = (TASK,)
EVALUATE_TASKS = (TASK,)
ARCH_CHOICES = ("unet", "segnet")
TRAIN_HELP = {TASK: "Train the lung infection U-Net or SegNet on CT slices with median-frequency-balanced "
                    "cross-entropy. DATA holds images/ and masks/ (NIfTI volumes of slices or PNG slices of the same "
                    "names) or <name>_im.nii.gz with <name>_mask.nii.gz. Defaults are the study's: Adam, "
                    "learning rate 3e-5, 50 epochs, 512x512, 16 % held out."}
EVALUATE_HELP = {TASK: "Score lung infection segmentation on a labelled data set (same layouts as training): "
                       "per-class Dice and IoU, pixel accuracy and the confusion matrix as JSON and PNG."}


def register_infection(lung_subcommands: argparse._SubParsersAction,
                       formatter: type[argparse.HelpFormatter]) -> None:
    """Add ``infection`` to the ``lung`` command group."""
    parser = lung_subcommands.add_parser(
        "infection", help="segment ground glass, consolidation and pleural effusion on a chest CT",
        formatter_class=formatter,
        description="Run the lung infection U-Net or SegNet over every axial slice of a chest CT. Writes "
                    "infection.seg.nrrd (one segment per class, opens in Slicer), infection_report.json/.csv "
                    "(volume of each class in mL, infected share of each lung) and infection_preview.png.")
    add_input_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--arch", choices=ARCH_CHOICES, default="unet", help="which installed catalogue model")
    add_model_option(parser, "a catalogue model id or a trained checkpoint folder (default: the installed "
                             "catalogue model of --arch)", old=("--checkpoint",))
    parser.add_argument("--lungs", type=Path,
                        help="the lungs as a segmentation (.seg.nrrd with right/left lung segments); default: "
                             "found by the lung preprocessing")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="inference engine")
    deprecated_alias(parser, "--engine", "--backend")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per network call")
    add_device_arguments(parser)
    parser.set_defaults(handler=run_infection)


def run_infection(args: argparse.Namespace) -> int:
    from radassist.lung.infection.pipeline import load_infection_model
    from radassist.runtime.device import device_from_args
    from radassist.runtime.progress import tqdm_progress

    check_batch_size(args.batch_size)
    with command_run(args.out, "lung infection", args) as (output, record):
        with record.timed("read"):
            volume = load_input_volume(args)
            lungs = read_lungs(args.lungs) if args.lungs else None
        choice = device_from_args(args)
        with record.timed("load model"):
            model = load_infection_model(args.arch, model_folder(args.model), choice.device)
        with tqdm_progress("lung infection") as progress:
            result = segment_and_write(volume, lungs, model, args.backend, choice, args.batch_size, progress,
                                       output, record)
        record.inputs = [str(args.input)] + ([str(args.lungs)] if args.lungs else [])
    print(f"{result.status_line()}; wrote {args.out / 'infection.seg.nrrd'}")
    return 0


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise InputError(None, f"--batch-size must be at least 1, got {batch_size}")


def segment_and_write(volume, lungs, model, engine: str, device, batch_size: int, progress, output, record):
    """Segment ``volume`` and write the command's files into ``output`` (a staged RunOutput) with the record's
    summary: what the CLI, the server and the batch all do, so their files are the same. Returns the result."""
    from radassist.lung.infection.pipeline import segment_infection
    from radassist.results import CT_LUNG, preview_labelmap, write_report, write_seg_nrrd

    with record.timed("segment"):
        result = segment_infection(volume, model, lungs, engine=engine, device=device, batch_size=batch_size,
                                   progress=progress)
    with record.timed("write"):
        write_seg_nrrd(result.labelmap, output.path("infection.seg.nrrd"))
        write_report(result.report, output.path("infection_report.json"), output.path("infection_report.csv"))
        preview_labelmap(volume, result.labelmap, output.path("infection_preview.png"), window=CT_LUNG)
    record.summary = {"model": model.name, "engine": result.engine, **result.report.summary}
    return result


def read_lungs(path: Path):
    """The --lungs file: a .seg.nrrd, or a NIfTI label map with its label table."""
    from radassist.io.atomic import full_suffix
    from radassist.results import read_labelmap_nifti, read_seg_nrrd

    if not path.is_file():
        raise InputError(path, "does not exist" if not path.exists() else "is not a file")
    if full_suffix(path).lower() == ".seg.nrrd":
        return read_seg_nrrd(path)
    if full_suffix(path).lower() in (".nii.gz", ".nii"):
        return read_labelmap_nifti(path)
    raise InputError(path, "lungs must be a .seg.nrrd segmentation or a NIfTI label map with its label table")


# ------------------------------------------------------------------------------------------------ train


def add_train_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    from radassist.commands.finetune_options import add_finetune_arguments

    parser.add_argument("--data", type=Path, required=True, help="folder of image/mask pairs")
    parser.add_argument("--out", type=Path, required=True, help="output folder: the checkpoint and result.json")
    parser.add_argument("--arch", choices=ARCH_CHOICES,
                        help="network (default: unet, or the --model network's)")
    parser.add_argument("--epochs", type=int, default=50, help="passes over the training slices")
    parser.add_argument("--learning-rate", type=float, default=3e-5, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int, default=4,
                        help="slices per step (per process under torchrun)")
    parser.add_argument("--accumulation", type=int, default=1,
                        help="batches per optimiser step (gradient accumulation)")
    parser.add_argument("--image-size", type=int, default=512, help="network input size (square)")
    parser.add_argument("--channels", type=widths, nargs="+", metavar="N",
                        help="feature channels per level, e.g. 16 32 64 128 256 or 16,32,64,128,256 (default: the "
                             "paper's: U-Net 64..1024, SegNet VGG-16; with --model: the model's own)")
    parser.add_argument("--plain-ce", action="store_true",
                        help="plain cross-entropy instead of the median-frequency-balanced one")
    parser.add_argument("--validation-fraction", type=float, default=0.16, help="share of slices held out")
    parser.add_argument("--seed", type=int, default=0, help="random seed (split, initial weights, batch order)")
    add_finetune_arguments(parser)
    add_device_arguments(parser)


def _train_architecture(args: argparse.Namespace, init) -> str:
    """--arch, else the --model network's, else unet."""
    from radassist.lung.infection.model import ARCHITECTURES

    if args.arch is not None or init is None:
        return args.arch or "unet"
    by_name = {name: arch for arch, name in ARCHITECTURES.items()}
    if init.architecture not in by_name:
        raise InputError(None, f"--model {init.source}: is a {init.architecture} network, not a lung infection "
                               f"network ({', '.join(ARCHITECTURES.values())})")
    return by_name[init.architecture]


def _network_overrides(args: argparse.Namespace, arch: str) -> dict:
    """The network settings the options give (none: the paper's network, or the --model network's own)."""
    channels = flat_widths(args.channels)
    overrides: dict = {"channels": channels} if channels else {}
    if channels and arch == "segnet":
        overrides["convs_per_stage"] = (2, 2, 3, 3, 3, 3, 3)[:len(channels)]
    return overrides


def run_train(task: str, args: argparse.Namespace) -> int:
    from radassist.commands.finetune_options import register_result, resolve_init_option
    from radassist.lung.infection.dataset import read_dataset
    from radassist.lung.infection.model import ARCHITECTURES, default_label_table
    from radassist.lung.infection.train import InfectionTrainConfig, absent_classes, train_infection
    from radassist.metrics.curves import log_and_curves
    from radassist.runtime.device import device_from_args
    from radassist.runtime.distributed import main_rank_folder  # under torchrun: rank 0 writes --out
    from radassist.runtime.progress import tqdm_progress

    label_table = default_label_table()
    num_classes = len(label_table) + 1
    overrides = _network_overrides(args, args.arch or "unet")
    init = resolve_init_option(args, ARCHITECTURES[args.arch or "unet"], {"out_channels": num_classes, **overrides})
    arch = _train_architecture(args, init)
    overrides = _network_overrides(args, arch)
    config = InfectionTrainConfig(architecture=arch, model=overrides, epochs=args.epochs,
                                  learning_rate=args.learning_rate, batch_size=args.batch_size,
                                  accumulation_steps=args.accumulation,
                                  image_size=(args.image_size, args.image_size), balanced_loss=not args.plain_ce,
                                  validation_fraction=args.validation_fraction, seed=args.seed)
    with main_rank_folder(args.out) as out, command_run(out, f"train {task}", args) as (output, record):
        with record.timed("read"):
            dataset = read_dataset(args.data, num_classes)
        missing = absent_classes(dataset, num_classes)
        choice = device_from_args(args)
        with record.timed("train"), tqdm_progress(f"train {task}") as progress:
            trained = train_infection(dataset, config, label_table, progress, choice.device, init)
        with record.timed("write"):
            assert output.staging is not None
            trained.save(output.staging)
            log_and_curves([vars(epoch) for epoch in trained.history], output.staging,
                           f"{trained.architecture} (lung infection)")
        dice = None if trained.validation is None else trained.validation.to_dict()["mean_dice_foreground"]
        record.inputs = [str(args.data)]
        record.summary = {"architecture": trained.architecture, "slices": len(dataset),
                          "train_slices": len(trained.train_names), "validation_slices": len(trained.validation_names),
                          "class_weights": [round(float(w), 6) for w in trained.class_weights],
                          "final_train_loss": trained.history[-1].train_loss,
                          "kept_epoch": trained.best_epoch,
                          "classes_without_pixels": missing, "validation_mean_dice": dice,
                          "finetuned_from": trained.finetuned_from}
        registered = register_result(args, trained.model, trained.architecture, trained.config, task,
                                     {} if dice is None else {"validation_mean_dice_foreground": dice}, init)
        if registered is not None:
            record.summary["registered_model"] = registered
    print(f"trained {trained.architecture} on {len(trained.train_names)} slices; checkpoint in {args.out}")
    if registered is not None:
        print(f"registered as model {registered}")
    if missing:
        print(f"note: classes {missing} have no pixel in the training data and cannot be learned")
    return 0


# ------------------------------------------------------------------------------------------------ evaluate


def add_evaluate_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder of image/mask pairs (the ground truth)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: evaluation.json, confusion_matrix.png")
    source = parser.add_mutually_exclusive_group(required=True)
    add_model_option(parser, "run this model (catalogue id or checkpoint folder) on the data's slices",
                     group=source)
    deprecated_alias(parser, "--checkpoint", "--model")
    source.add_argument("--predictions", type=Path, help="folder of prediction masks named like the ground truth")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per network call")
    add_device_arguments(parser)


def run_evaluate(task: str, args: argparse.Namespace) -> int:
    from radassist.lung.infection import model as infection_model
    from radassist.lung.infection.dataset import find_pairs, prediction_file, read_dataset, read_pair, read_prediction
    from radassist.lung.infection.evaluate import (evaluation_document, predict_dataset, score_slices,
                                                   write_evaluation)
    from radassist.lung.infection.pipeline import InfectionModel
    from radassist.runtime.device import device_from_args
    from radassist.runtime.progress import tqdm_progress

    with command_run(args.out, f"evaluate {task}", args) as (output, record):
        if args.model is not None:
            choice = device_from_args(args)
            model = InfectionModel.from_checkpoint(model_folder(args.model), choice.device)
            num_classes = int(getattr(model.network, "out_channels", len(model.label_table) + 1))
            names = infection_model.class_names(model.label_table, num_classes)
            with record.timed("read"):
                dataset = read_dataset(args.data, num_classes, model.input.window)
            with record.timed("predict"), tqdm_progress(f"evaluate {task}") as progress:
                predictions = predict_dataset(model.network, dataset, model.input.image_size, args.batch_size,
                                              choice.device, progress)
            truth, slice_names, model_name = dataset.masks, dataset.names, model.name
        else:
            table = infection_model.default_label_table()
            num_classes = len(table) + 1
            names = infection_model.class_names(table, num_classes)
            truth, predictions, slice_names = [], [], []
            with record.timed("read"):
                for image_path, mask_path in find_pairs(args.data):
                    _, mask = read_pair(image_path, mask_path, num_classes)
                    predicted = read_prediction(prediction_file(args.predictions, mask_path), mask, num_classes)
                    truth += list(mask)
                    predictions += list(predicted)
                    slice_names += [f"{mask_path.name}:{i}" for i in range(len(mask))]
            model_name = str(args.predictions)
        scores = score_slices(truth, predictions, names, slice_names)
        document = evaluation_document(scores, slice_names, model_name)
        with record.timed("write"):
            write_evaluation(document, scores, output.path("evaluation.json"), output.path("confusion_matrix.png"))
        record.inputs = [str(args.data)]
        record.summary = {"slices": len(slice_names), "mean_dice_foreground": document["multiclass"][
            "mean_dice_foreground"], "pixel_accuracy": document["multiclass"]["pixel_accuracy"]}
    dice = document["multiclass"]["mean_dice_foreground"]
    print(f"{len(slice_names)} slices: mean Dice (findings) {dice if dice is None else round(dice, 4)}, pixel "
          f"accuracy {document['multiclass']['pixel_accuracy']}; wrote {args.out / 'evaluation.json'}")
    return 0
