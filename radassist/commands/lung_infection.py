"""`radassist lung infection`, `radassist train lung-infection` and `radassist evaluate lung-infection`.

The ``lung`` command group belongs to the lung module's command file; it calls :func:`register_infection` to add
the ``infection`` subcommand. Train and evaluate take part through the TRAIN_TASKS / EVALUATE_TASKS hooks of
:mod:`radassist.commands.train_evaluate`. Heavy imports stay inside the run functions so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radassist.commands.finetune_options import add_finetune_arguments, register_result, resolve_init_option
from radassist.commands.inputs import add_input_arguments, load_input_volume, read_labels
from radassist.commands.options import add_model_option, deprecated_alias, flat_widths, model_folder, widths
from radassist.commands.run_context import command_run
from radassist.errors import InputError
from radassist.runtime.device import add_device_arguments, device_from_args
from radassist.runtime.distributed import main_rank_folder  # under torchrun: rank 0 writes --out
from radassist.runtime.progress import tqdm_progress

TASK = "lung-infection"
TRAIN_TASKS = (TASK,)
EVALUATE_TASKS = (TASK,)
ARCH_CHOICES = ("unet", "segnet")
TRAIN_HELP = {TASK: "Train the lung infection U-Net or SegNet on CT slices with median-frequency-balanced "
                    "cross-entropy. DATA holds images/ and masks/ (NIfTI volumes of slices or PNG slices of the same "
                    "names), <name>_im.nii.gz with <name>_mask.nii.gz, or the COVID-SemiSeg layout (TrainingSet/"
                    "TestingSet, Imgs/ + GT/; its test slices are never read). Defaults are the study's: Adam, "
                    "learning rate 3e-5, 50 epochs, 512x512, 16 %% held out; benchmarks/INFECTION_REAL.md has the "
                    "settings that train on the 50 real COVID-SemiSeg slices in under 30 minutes on a CPU."}
EVALUATE_HELP = {TASK: "Score lung infection segmentation on a labelled data set (same layouts as training; the "
                       "COVID-SemiSeg layout is scored on its 48 test slices, beside the published results): "
                       "per-image Dice, sensitivity and specificity, per-class Dice and IoU, pixel accuracy, the "
                       "confusion matrix (JSON and PNG) and a PNG of the worst and best slices."}
LAYOUTS = ("auto", "folders", "covid-semiseg")


def register_infection(lung_subcommands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    """Add ``infection`` to the ``lung`` command group."""
    parser = lung_subcommands.add_parser(
        "infection", help="segment ground glass, consolidation and pleural effusion on a chest CT",
        formatter_class=formatter,
        description="Run the lung infection U-Net or SegNet over every axial slice of a chest CT. Writes "
                    "infection.seg.nrrd (one segment per class, opens in Slicer), infection_report.json/.csv "
                    "(volume of each class in mL, infected share of each lung) and infection_preview.png. "
                    "INPUT may also be one display-windowed 8-bit picture of a slice (.png/.jpg, like the "
                    "COVID-SemiSeg crops) for a model trained on such pictures: then infection_labels.png (class "
                    "values), a report in pixels (a picture has no spacing) and infection_preview.png.")
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


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")


def run_infection(args: argparse.Namespace) -> int:
    from radassist.lung.infection.pipeline import load_infection_model

    check_batch_size(args.batch_size)
    if args.input.suffix.lower() in PICTURE_SUFFIXES:
        return run_picture(args)
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


def run_picture(args: argparse.Namespace) -> int:
    """A display-windowed 8-bit picture of one slice (a COVID-SemiSeg-style JPEG/PNG crop) through a model trained
    on such pictures: the label PNG, a report in pixels (a picture has no spacing) and a preview."""
    from radassist.lung.infection.covid_semiseg import read_picture
    from radassist.lung.infection.figures import label_colours, write_picture_preview
    from radassist.lung.infection.pipeline import load_infection_model, segment_picture
    from radassist.results import write_report

    if args.lungs is not None or args.backend != "torch":
        raise InputError(args.input, "is a picture: --lungs and --backend onnx are for CT volumes")
    if not args.input.is_file():
        raise InputError(args.input, "does not exist" if not args.input.exists() else "is not a file")
    with command_run(args.out, "lung infection", args) as (output, record):
        with record.timed("read"):
            picture = read_picture(args.input)
        choice = device_from_args(args)
        with record.timed("load model"):
            model = load_infection_model(args.arch, model_folder(args.model), choice.device)
        with record.timed("segment"):
            result = segment_picture(picture, model, choice.device, str(args.input))
        report = result.report(model.name)
        colours, legend = label_colours(model.label_table)
        with record.timed("write"):
            _write_label_png(result.labels, output.path("infection_labels.png"))
            write_report(report, output.path("infection_report.json"), output.path("infection_report.csv"))
            write_picture_preview(output.path("infection_preview.png"), picture, result.labels, colours, legend,
                                  f"{model.name}: {args.input.name}")
        record.inputs = [str(args.input)]
        record.summary = {"model": model.name, "input_kind": "display picture", **report.summary}
    print(f"infection {report.summary['infected_percent_of_picture']:.1f} % of the picture; wrote "
          f"{args.out / 'infection_labels.png'}")
    return 0


def _write_label_png(labels, path: Path) -> None:
    """``path`` lies in the run's staging folder, published all at once: no temporary file of its own needed."""
    from PIL import Image

    Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="L").save(path, format="PNG")


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

    if not path.is_file():
        raise InputError(path, "does not exist" if not path.exists() else "is not a file")
    if full_suffix(path).lower() not in (".seg.nrrd", ".nii.gz", ".nii"):
        raise InputError(path, "lungs must be a .seg.nrrd segmentation or a NIfTI label map with its label table")
    return read_labels(path)


# ------------------------------------------------------------------------------------------------ train


def add_train_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder of image/mask pairs")
    add_layout_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder: the checkpoint and result.json")
    parser.add_argument("--arch", choices=ARCH_CHOICES, help="network (default: unet, or the --model network's)")
    parser.add_argument("--epochs", type=int, default=50, help="passes over the training slices")
    parser.add_argument("--learning-rate", type=float, default=3e-5, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int, default=4, help="slices per step (per process under torchrun)")
    parser.add_argument("--accumulation", type=int, default=1,
                        help="batches per optimiser step (gradient accumulation)")
    parser.add_argument("--image-size", type=int, default=512, help="network input size (square)")
    parser.add_argument("--channels", type=widths, nargs="+", metavar="N",
                        help="feature channels per level, e.g. 16 32 64 128 256 or 16,32,64,128,256 (default: the "
                             "paper's: U-Net 64..1024, SegNet VGG-16; with --model: the model's own)")
    parser.add_argument("--plain-ce", action="store_true",
                        help="plain cross-entropy instead of the median-frequency-balanced one")
    parser.add_argument("--dice-loss", action="store_true",
                        help="add a soft Dice term over the finding classes to the cross-entropy (ours)")
    parser.add_argument("--dice-per-image", action="store_true",
                        help="with --dice-loss: the Dice of each slice and class its reference holds, averaged, "
                             "instead of one Dice over the batch (the published protocol scores per slice)")
    parser.add_argument("--validation-fraction", type=float, default=0.16,
                        help="share of the training slices held out to choose the kept epoch")
    parser.add_argument("--seed", type=int, default=0, help="random seed (split, initial weights, batch order)")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="random rotations, flips, scaling, elastic and intensity changes of every batch "
                             "(default: on for the COVID-SemiSeg layout, off otherwise)")
    parser.add_argument("--crop-size", type=int, default=None,
                        help="with --augment: train on windows of this size (square) cut from the slices, half "
                             "of them centred on a finding; default: whole slices")
    parser.add_argument("--intensity-augment", choices=("full", "mild", "off"), default="full",
                        help="with --augment: how much gamma, contrast, brightness and noise vary")
    parser.add_argument("--lr-schedule", choices=("constant", "poly"), default="constant",
                        help="learning rate: constant (the study) or poly, decaying to 0 (nnU-Net)")
    parser.add_argument("--tune-class-offsets", action="store_true",
                        help="after training, choose a constant for each class's logit on the held-out validation "
                             "slices (the study's per-image Dice); the checkpoint keeps them and every run adds them")
    parser.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                        help="stop before an epoch that would end after this many minutes (the best epoch so far "
                             "is kept; result.json says how many epochs ran)")
    add_finetune_arguments(parser)
    add_device_arguments(parser)


def add_layout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", choices=LAYOUTS, default="auto",
                        help="data layout: folders (images/ + masks/, or <name>_im/_mask NIfTI), covid-semiseg "
                             "(TrainingSet/TestingSet with Imgs/ and GT/), or auto: detected from the folder")
    parser.add_argument("--classes", choices=("multiclass", "binary"), default=None,
                        help="covid-semiseg: multi-class labels (ground glass, consolidation; default for "
                             "training) or binary (infection vs not); evaluation defaults to the model's kind")


def data_layout(args: argparse.Namespace) -> str:
    """--layout, or the layout the --data folder has (COVID-SemiSeg when it looks like it, else folders)."""
    from radassist.lung.infection.covid_semiseg import LAYOUT, is_covid_semiseg

    if args.layout != "auto":
        return args.layout
    return LAYOUT if is_covid_semiseg(args.data) else "folders"


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
    from radassist.lung.infection import covid_semiseg
    from radassist.lung.infection.augment import SliceAugment
    from radassist.lung.infection.dataset import read_dataset
    from radassist.lung.infection.model import ARCHITECTURES, default_label_table
    from radassist.lung.infection.train import LOG_FILE, InfectionTrainConfig, absent_classes, train_infection
    from radassist.metrics.curves import write_training_curves

    layout = data_layout(args)
    semiseg = layout == covid_semiseg.LAYOUT
    if not semiseg and args.classes is not None:
        raise InputError(None, "--classes is for the covid-semiseg layout; a folders data set's masks say their "
                               "classes themselves")
    label_table = covid_semiseg.label_table(args.classes or "multiclass") if semiseg else default_label_table()
    num_classes = len(label_table) + 1
    overrides = _network_overrides(args, args.arch or "unet")
    init = resolve_init_option(args, ARCHITECTURES[args.arch or "unet"], {"out_channels": num_classes, **overrides})
    arch = _train_architecture(args, init)
    overrides = _network_overrides(args, arch)
    augmenting = semiseg if args.augment is None else args.augment
    if args.crop_size is not None and not augmenting:
        raise InputError(None, "--crop-size needs --augment (the training windows are part of the augmentation)")
    augment = SliceAugment(crop_size=None if args.crop_size is None else (args.crop_size, args.crop_size)
                           ).with_intensity(args.intensity_augment) if augmenting else None
    config = InfectionTrainConfig(architecture=arch, model=overrides, epochs=args.epochs,
                                  learning_rate=args.learning_rate, batch_size=args.batch_size,
                                  accumulation_steps=args.accumulation,
                                  image_size=(args.image_size, args.image_size), balanced_loss=not args.plain_ce,
                                  dice_loss=args.dice_loss, dice_per_image=args.dice_per_image,
                                  validation_fraction=args.validation_fraction, seed=args.seed,
                                  normalization="display-percentile" if semiseg else "window", augment=augment,
                                  lr_schedule=args.lr_schedule, time_limit_minutes=args.time_limit,
                                  tune_class_offsets=args.tune_class_offsets)
    with main_rank_folder(args.out) as out, command_run(out, f"train {task}", args) as (output, record):
        with record.timed("read"):
            if semiseg:
                dataset = covid_semiseg.read_covid_semiseg(args.data, "train", args.classes or "multiclass").dataset
            else:
                dataset = read_dataset(args.data, num_classes)
        missing = absent_classes(dataset, num_classes)
        choice = device_from_args(args)
        with record.timed("train"), tqdm_progress(f"train {task}") as progress:
            trained = train_infection(dataset, config, label_table, progress, choice.device, init)
        with record.timed("write"):
            assert output.staging is not None
            trained.save(output.staging)
            # save() wrote train_log.csv beside the checkpoint; the curves are drawn from it
            write_training_curves(output.staging / LOG_FILE, title=f"{trained.architecture} (lung infection)")
        dice = None if trained.validation is None else trained.validation.to_dict()["mean_dice_foreground"]
        record.inputs = [str(args.data)]
        record.summary = {"architecture": trained.architecture, "layout": layout, "slices": len(dataset),
                          "train_slices": len(trained.train_names), "validation_slices": len(trained.validation_names),
                          "validation_slice_names": trained.validation_names,
                          "class_weights": [round(float(w), 6) for w in trained.class_weights],
                          "final_train_loss": trained.history[-1].train_loss,
                          "epochs_run": len(trained.history), "kept_epoch": trained.best_epoch,
                          "classes_without_pixels": missing, "validation_mean_dice": dice,
                          "finetuned_from": trained.finetuned_from,
                          "class_offsets": None if trained.class_offsets is None else trained.class_offsets.to_dict()}
        registered = register_result(args, trained.model, trained.architecture, trained.config, task,
                                     {} if dice is None else {"validation_mean_dice_foreground": dice}, init,
                                     metadata=trained.metadata())
        if registered is not None:
            record.summary["registered_model"] = registered
    print(f"trained {trained.architecture} on {len(trained.train_names)} slices (kept epoch {trained.best_epoch}, "
          f"validation mean Dice {dice if dice is None else round(dice, 4)} on {len(trained.validation_names)} "
          f"held-out training slices); checkpoint in {args.out}")
    if registered is not None:
        print(f"registered as model {registered}")
    if trained.class_offsets is not None:
        choice = trained.class_offsets
        print(f"class offsets {choice.offsets} (validation score {choice.score_before:.4f} -> "
              f"{choice.score_after:.4f})")
    if missing:
        print(f"note: classes {missing} have no pixel in the training data and cannot be learned")
    return 0


# ------------------------------------------------------------------------------------------------ evaluate


def add_evaluate_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder of image/mask pairs (the ground truth)")
    add_layout_arguments(parser)
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder: evaluation.json, per_image.csv, confusion_matrix.png, best_worst.png")
    source = parser.add_mutually_exclusive_group(required=True)
    add_model_option(parser, "run this model (catalogue id or checkpoint folder) on the data's slices; give it "
                             "more than once to score an ensemble (softmax probabilities averaged)",
                     repeat=True, old=("--checkpoint",), group=source)
    source.add_argument("--predictions", type=Path,
                        help="folder of prediction masks (class values) named like the ground truth")
    parser.add_argument("--mirror", action="store_true",
                        help="also run every slice flipped left-right and average (test-time augmentation)")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per network call")
    add_device_arguments(parser)


@dataclass
class _Scored:
    """What an evaluation scores: truth and predicted slices, their names and pictures, and the classes."""

    truth: list
    predictions: object  # SlicePredictions or a list of label slices
    names: list[str]
    pictures: list
    class_names: list[str]
    label_table: list[dict]
    model_name: str
    models: list[str] = field(default_factory=list)  # the checkpoint folders run (several: an ensemble)


def _checkpoint_evaluation(args: argparse.Namespace, layout: str, record) -> _Scored:
    from radassist.lung.infection import covid_semiseg
    from radassist.lung.infection import model as infection_model
    from radassist.lung.infection.dataset import read_dataset
    from radassist.lung.infection.pipeline import InfectionModel
    from radassist.lung.infection.predict import predict_prepared

    choice = device_from_args(args)
    folders = [model_folder(value) for value in args.model]
    members = [InfectionModel.from_checkpoint(folder, choice.device) for folder in folders]
    model = members[0]
    for folder, other in zip(folders[1:], members[1:]):
        if other.input != model.input or other.label_table != model.label_table:
            raise InputError(folder, f"differs from {folders[0]} in its input handling or classes; an ensemble's "
                                     "models must share both")
    num_classes = int(getattr(model.network, "out_channels", len(model.label_table) + 1))
    names = infection_model.class_names(model.label_table, num_classes)
    with record.timed("read"):
        if layout == covid_semiseg.LAYOUT:
            classes = args.classes or ("binary" if num_classes == 2 else "multiclass")
            data = covid_semiseg.read_covid_semiseg(args.data, "test", classes, model.input)
            dataset, pictures = data.dataset, data.pictures
            if dataset.max_label >= num_classes:
                raise InputError(folders[0], f"has {num_classes} classes, but the {classes} masks "
                                             f"of {data.split.folder} hold label {dataset.max_label}")
        else:
            dataset = read_dataset(args.data, num_classes, model.input.window, model.input)
            pictures = [np.round(np.clip(image, 0, 1) * 255).astype(np.uint8) for image in dataset.images]
    with record.timed("predict"), tqdm_progress("evaluate lung-infection") as progress:
        predictions = predict_prepared([member.network for member in members], dataset.images,
                                       model.input.image_size, args.batch_size, choice.device, progress, args.mirror)
    name = model.name if len(members) == 1 else f"ensemble of {len(members)} ({model.name.split(' ')[0]})"
    return _Scored(dataset.masks, predictions, dataset.names, pictures, names, model.label_table,
                   name + (", mirrored" if args.mirror else ""), [str(folder) for folder in folders])


def _prediction_folder_evaluation(args: argparse.Namespace, layout: str, record) -> _Scored:
    from radassist.lung.infection import covid_semiseg
    from radassist.lung.infection import model as infection_model
    from radassist.lung.infection.dataset import find_pairs, prediction_file, read_pair, read_prediction

    truth, predictions, slice_names, pictures = [], [], [], []
    with record.timed("read"):
        if layout == covid_semiseg.LAYOUT:
            data = covid_semiseg.read_covid_semiseg(args.data, "test", args.classes)
            table = data.label_table
            num_classes = len(table) + 1
            for (image_path, mask_path), mask, picture in zip(covid_semiseg.pairs(data.split), data.dataset.masks,
                                                              data.pictures):
                predicted = read_prediction(prediction_file(args.predictions, mask_path), mask[np.newaxis], num_classes)
                truth.append(mask)
                predictions.append(predicted[0])
                slice_names.append(image_path.stem)
                pictures.append(picture)
        else:
            table = infection_model.default_label_table()
            num_classes = len(table) + 1
            for image_path, mask_path in find_pairs(args.data):
                image, mask = read_pair(image_path, mask_path, num_classes)
                predicted = read_prediction(prediction_file(args.predictions, mask_path), mask, num_classes)
                truth += list(mask)
                predictions += list(predicted)
                slice_names += [f"{mask_path.name}:{i}" for i in range(len(mask))]
                pictures += [np.round(np.clip(s, 0, 1) * 255).astype(np.uint8) for s in image]
    names = infection_model.class_names(table, num_classes)
    return _Scored(truth, predictions, slice_names, pictures, names, table, str(args.predictions))


def run_evaluate(task: str, args: argparse.Namespace) -> int:
    from radassist.lung.infection import covid_semiseg
    from radassist.lung.infection.evaluate import (comparison_lines, evaluation_document, score_columns,
                                                   score_slices, write_evaluation, write_per_image_csv)
    from radassist.lung.infection.figures import label_colours, write_best_worst_png
    from radassist.lung.infection.predict import SlicePredictions

    layout = data_layout(args)
    if layout != covid_semiseg.LAYOUT and args.classes is not None:
        raise InputError(None, "--classes is for the covid-semiseg layout")
    if args.mirror and args.model is None:
        raise InputError(None, "--mirror runs models; it does nothing for --predictions")
    with command_run(args.out, f"evaluate {task}", args) as (output, record):
        scored = (_checkpoint_evaluation if args.model is not None else _prediction_folder_evaluation)(
            args, layout, record)
        labels = scored.predictions.labels if isinstance(scored.predictions, SlicePredictions) \
            else scored.predictions
        scores = score_slices(scored.truth, labels, scored.class_names, scored.names)
        columns = score_columns(scored.truth, scored.predictions, scored.class_names)
        published = layout == covid_semiseg.LAYOUT
        document = evaluation_document(scores, scored.names, scored.model_name, columns, published)
        if scored.models:
            document.update(models=scored.models, mirror=args.mirror)
        colours, legend = label_colours(scored.label_table)
        with record.timed("write"):
            write_evaluation(document, scores, output.path("evaluation.json"), output.path("confusion_matrix.png"))
            write_per_image_csv(document["per_image"]["slices"], output.path("per_image.csv"))
            worst, best = write_best_worst_png(
                output.path("best_worst.png"), scored.names, [image.dice for image in columns[0].images],
                scored.pictures, scored.truth, labels, colours, legend,
                title=f"{scored.model_name}: worst and best slices by per-image {columns[0].name} Dice")
        document_columns = document["per_image"]["findings"]
        record.inputs = [str(args.data)]
        record.summary = {"slices": len(scored.names), "layout": layout,
                          "mean_dice_foreground": document["multiclass"]["mean_dice_foreground"],
                          "pixel_accuracy": document["multiclass"]["pixel_accuracy"],
                          "per_image": {name: {"mean_dice": c["mean_dice"],
                                               "infnet_dice": c["infnet_protocol"]["label_map"]["dice"]}
                                        for name, c in document_columns.items()},
                          "worst_slices": worst, "best_slices": best}
    print("\n".join(comparison_lines(columns, scored.model_name, published)))
    print(f"{len(scored.names)} slices; wrote {args.out / 'evaluation.json'}, per_image.csv, confusion_matrix.png, "
          "best_worst.png")
    return 0
