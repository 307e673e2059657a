"""`radassist brain register`, `radassist train brain` and `radassist evaluate brain`.

Heavy imports stay inside the run functions so ``--help`` stays fast. Every output goes through the staged output
folder of :func:`command_run`: a failure or a cancel leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from radassist.commands.finetune_options import add_finetune_arguments, register_result, resolve_init_option
from radassist.commands.options import add_model_option, deprecated_alias, model_folder
from radassist.commands.run_context import command_run
from radassist.errors import InputError
from radassist.runtime.device import add_device_arguments, device_from_args
from radassist.runtime.distributed import main_rank_folder  # under torchrun: rank 0 writes --out
from radassist.runtime.progress import tqdm_progress

TRAIN_TASKS = ("brain",)
EVALUATE_TASKS = ("brain",)
TRAIN_HELP = {
    "brain": "Train the joint registration + tumour segmentation network (Estienne et al. 2020) on a BraTS folder\n"
             "(one folder per case with *_flair, *_t1, *_t1ce, *_t2 and *_seg NIfTI files) or an OASIS-style\n"
             "folder (one image + anatomical labels per subject: registration-only pairs). Subjects are paired at\n"
             "random each epoch. Writes a RadAssist checkpoint (model.safetensors + config.json), history.json\n"
             "and result.json to --out; use it with 'radassist brain register --model OUT'.",
}
EVALUATE_HELP = {
    "brain": "Register pairs of a BraTS, OASIS-style or synthetic ('radassist synth brain') folder and score them\n"
             "before and after: Dice of anatomical labels (VoxelMorph protocol), inside vs outside the tumour,\n"
             "warped tumour Dice, tumour Dice per class of the network's segmentations, end-point error against a\n"
             "known deformation (mean, 95th percentile), intensity error and non-positive Jacobian percentage.\n"
             "Writes evaluation.json, evaluation.png and result.json to --out.",
}
FIELD_FORMATS = ("h5", "nifti", "both")
TUMOUR_SIMILARITIES = ("robust", "masked")  # radassist.brain.deformable's, not imported: --help stays light
TUMOUR_SIMILARITY_HELP = ("classic engine, in the tumour: robust (it pulls where it still matches, hardly where it has "
                          "changed) or masked (it pulls on nothing)")
OUTPUTS = ("transform.h5", "displacement.nii.gz", "warped.nii.gz", "tumour_moving.seg.nrrd", "tumour_fixed.seg.nrrd",
           "jacobian.nii.gz", "report.json", "report.csv", "registration.png")


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("auto", "joint", "classic"), default="auto",
                        help="joint network, classical (affine + free-form) registration, or auto (joint when its "
                             "weights are installed or --model is given, else classic)")
    add_model_option(parser, "joint network: a catalogue model id or checkpoint folder (default: the installed "
                             "catalogue model brain-joint)", old=("--checkpoint",))
    parser.add_argument("--sequences", nargs="+", metavar="SEQ",
                        help="MRI sequences the joint network reads, in its order (default: from the checkpoint)")
    parser.add_argument("--registration-sequence", metavar="SEQ",
                        help="classic engine: sequence that drives the metric (default: t1ce, t1, t2 or flair)")
    parser.add_argument("--tumour-similarity", choices=TUMOUR_SIMILARITIES, default=TUMOUR_SIMILARITIES[0],
                        help=TUMOUR_SIMILARITY_HELP)
    deprecated_alias(parser, "--channels", "--sequences")
    deprecated_alias(parser, "--registration-channel", "--registration-sequence")
    add_device_arguments(parser)


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    group = commands.add_parser("brain", help="brain MRI registration and tumour segmentation",
                                formatter_class=formatter,
                                description="Register a moving brain MRI to a fixed one and segment the tumour in "
                                            "both (Estienne et al. 2020), or register with SimpleITK.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    parser = actions.add_parser(
        "register", help="register MOVING to FIXED and segment the tumour", formatter_class=formatter,
        description="MOVING and FIXED are each an image file or a folder of sequences (flair, t1, t1ce, t2; a\n"
                    "BraTS case folder works, its *_seg labels are used as the tumour). Writes to --out:\n"
                    "  transform.h5          ITK displacement field transform, fixed -> moving, LPS, float32,\n"
                    "                        compressed (Slicer loads it); --field-format nifti writes\n"
                    "                        displacement.nii.gz instead (a NIfTI vector image, intent 1006),\n"
                    "                        both writes the two\n"
                    "  warped.nii.gz         the moving image resampled onto the fixed grid (warped_<seq> for others)\n"
                    "  tumour_fixed.seg.nrrd, tumour_moving.seg.nrrd   tumour segmentations (when known)\n"
                    "  jacobian.nii.gz       Jacobian determinant of the transform (<= 0: folding)\n"
                    "  report.json/.csv      folding percentage, displacement statistics, tumour volumes per class\n"
                    "  registration.png      fixed, moving, warped, checkerboard and deformation grid")
    parser.add_argument("moving", type=Path, help="moving image file or folder of sequences")
    parser.add_argument("fixed", type=Path, help="fixed image file or folder of sequences")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    parser.add_argument("--fixed-labels", type=Path, help="fixed tumour labels (.seg.nrrd, or BraTS label values)")
    parser.add_argument("--moving-labels", type=Path, help="moving tumour labels (.seg.nrrd, or BraTS values)")
    parser.add_argument("--label-convention", choices=("auto", "brats2015", "brats2017", "brats2021"),
                        default="auto",
                        help="what BraTS label values mean: 2015 (1 necrosis, 2 oedema, 3 non-enhancing, 4 "
                             "enhancing), 2017-2020 (1 NCR/NET, 2 ED, 4 ET), 2021+ (1 NCR, 2 ED, 3 ET); auto tells "
                             "them apart by the values present")
    for side in ("fixed", "moving"):
        parser.add_argument(f"--{side}-brain-mask", type=Path,
                            help=f"{side} brain mask (default: voxels that differ from the image's border value)")
    _engine_arguments(parser)
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="inference engine for the joint network (ONNX Runtime exports the model once and "
                             "caches it)")
    parser.add_argument("--field-format", choices=FIELD_FORMATS, default="h5",
                        help="the deformation as transform.h5 (ITK transform), displacement.nii.gz (NIfTI vector "
                             "image) or both; float32 and compressed either way")
    parser.set_defaults(handler=run_register)


def _write_json(document, path: Path) -> None:
    """``path`` lies in the run's staging folder, published all at once: no temporary file of its own needed."""
    from radassist.results import plain_json

    path.write_text(json.dumps(plain_json(document), indent=2) + "\n", encoding="utf-8")


# -- register -----------------------------------------------------------------------------------------------------

def _images(path: Path, labels: Path | None, brain_mask: Path | None, convention: str = "auto"):
    from radassist.brain.datasets import read_brain_input, read_mask, read_tumour_labels

    images = read_brain_input(path, convention=convention)
    if labels is not None:
        images.tumour = read_tumour_labels(labels, convention)
    if brain_mask is not None:
        images.brain_mask = read_mask(brain_mask, images.reference)
    return images


def _name_single_images(moving, fixed) -> None:
    """Two single files, one of an unknown sequence ('image'): they are the same sequence, give them one name."""
    if len(moving.images) == 1 and len(fixed.images) == 1 and "image" in (*moving.images, *fixed.images):
        name = next(n for n in (*fixed.images, *moving.images) if n != "image") \
            if set(moving.images) != set(fixed.images) else next(iter(fixed.images))
        moving.images = {name: next(iter(moving.images.values()))}
        fixed.images = {name: next(iter(fixed.images.values()))}


def _joint_model(args: argparse.Namespace, device):
    from radassist.brain.pipeline import find_joint_model

    if args.engine == "classic" and args.model is None:
        return None
    return find_joint_model(model_folder(args.model), device.device)


def _pipeline_config(args: argparse.Namespace, loaded):
    from radassist.brain.classic import ClassicConfig
    from radassist.brain.pipeline import BrainPipelineConfig, model_channels

    channels = tuple(args.sequences) if args.sequences else (model_channels(loaded) if loaded is not None else None)
    return BrainPipelineConfig(engine=args.engine, channels=channels, registration_channel=args.registration_sequence,
                               classic=ClassicConfig(tumour_similarity=args.tumour_similarity))


def run_register(args: argparse.Namespace) -> int:
    device = device_from_args(args)
    moving = _images(args.moving, args.moving_labels, args.moving_brain_mask, args.label_convention)
    fixed = _images(args.fixed, args.fixed_labels, args.fixed_brain_mask, args.label_convention)
    _name_single_images(moving, fixed)
    loaded = _joint_model(args, device)
    config = replace(_pipeline_config(args, loaded), backend=args.backend)
    with command_run(args.out, "brain register", args) as (output, record):
        record.inputs = [str(args.moving), str(args.fixed)]
        with tqdm_progress("brain register") as progress:
            result, written = register_and_write(moving, fixed, config, loaded, device, progress, output, record,
                                                 args.field_format)
    print(result.status_line())
    print(f"wrote {', '.join(written)} to {args.out}")
    return 0


def register_and_write(moving, fixed, config, loaded, device, progress, output, record, field_format="h5"):
    """Register the pair and write the command's files into ``output`` with the record's summary: what the CLI,
    the server and the batch all do, so their files are the same. Returns (result, names written)."""
    from radassist.brain.pipeline import register_brain_pair

    with record.timed("register"):
        result = register_brain_pair(moving, fixed, config, progress, None if loaded is None else loaded.model,
                                     device.device)
    with record.timed("write"):
        written = write_registration(result, output, field_format)
    record.summary = {**result.report.summary, "outputs": written}
    return result, written


def write_registration(result, output, field_format: str = "h5") -> list[str]:
    """Every file of a registration result into a RunOutput; returns the names written. The field is written once
    (``h5``: transform.h5, ``nifti``: displacement.nii.gz) unless ``both`` are asked for."""
    from radassist.io import write_volume
    from radassist.results import (preview_registration, write_displacement_nifti, write_itk_displacement_h5,
                                   write_report, write_seg_nrrd)

    names = []

    def path(name: str) -> Path:
        names.append(name)
        return output.path(name)

    if field_format in ("h5", "both"):
        write_itk_displacement_h5(result.field, path("transform.h5"))
    if field_format in ("nifti", "both"):
        write_displacement_nifti(result.field, path("displacement.nii.gz"))
    first = result.sequence
    for name, volume in result.warped.items():
        write_volume(volume, path("warped.nii.gz" if name == first else f"warped_{name}.nii.gz"))
    if result.moving_tumour is not None:
        write_seg_nrrd(result.moving_tumour, path("tumour_moving.seg.nrrd"))
    if result.fixed_tumour is not None:
        write_seg_nrrd(result.fixed_tumour, path("tumour_fixed.seg.nrrd"))
    write_volume(result.jacobian, path("jacobian.nii.gz"))
    write_report(result.report, path("report.json"), path("report.csv"))
    preview_registration(result.fixed, result.moving, result.warped[first], result.field, path("registration.png"))
    return names


# -- train --------------------------------------------------------------------------------------------------------

# Defaults of the training options, the paper's; kept here as literals so building the parser does not import
# torch (test_cli_brain checks they equal the config dataclasses' defaults).
TRAIN_DEFAULTS = {"epochs": 1000, "batch_size": 2, "learning_rate": 2e-3, "crop_size": (144, 208, 144),
                  "features": (8, 16, 32, 64, 128), "merge": "subtract", "alpha": 1e-10, "beta": 1.0}


def add_train_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    d = TRAIN_DEFAULTS
    parser.add_argument("--data", type=Path, required=True, help="BraTS or OASIS-style folder (one folder per subject)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--layout", choices=("auto", "brats", "oasis"), default="auto", help="data layout")
    parser.add_argument("--sequences", nargs="+", metavar="SEQ",
                        help="MRI sequences to train on (default: the --model checkpoint's, else all shared)")
    parser.add_argument("--epochs", type=int, default=d["epochs"], help="maximum epochs (early stopping ends sooner)")
    parser.add_argument("--batch-size", type=int, default=d["batch_size"],
                        help="pairs per step (per process under torchrun)")
    parser.add_argument("--accumulation", type=int, default=1,
                        help="batches per optimiser step (gradient accumulation)")
    parser.add_argument("--learning-rate", type=float, default=d["learning_rate"], help="Adam learning rate")
    parser.add_argument("--crop", type=int, nargs=3, default=list(d["crop_size"]), metavar=("Z", "Y", "X"),
                        help="training crop in voxels")
    parser.add_argument("--features", type=int, nargs="+",
                        help=f"features per level (default: {' '.join(map(str, d['features']))}, or the --model "
                             f"network's)")
    parser.add_argument("--merge", choices=("subtract", "add", "concatenate"),
                        help=f"how the two images' codes are merged (default: {d['merge']}, or the --model "
                             f"network's)")
    parser.add_argument("--alpha", type=float, default=d["alpha"], help="weight of the gradient regulariser")
    parser.add_argument("--beta", type=float, default=d["beta"], help="weight of the segmentation loss")
    parser.add_argument("--validation-subjects", type=int, default=2, help="subjects held out for validation")
    parser.add_argument("--seed", type=int, default=0, help="pairing, crop and initialisation seed")
    add_finetune_arguments(parser)
    add_device_arguments(parser)
    deprecated_alias(parser, "--channels", "--sequences")
    deprecated_alias(parser, "--lr", "--learning-rate")


def _init_channels(init) -> list[str] | None:
    """The sequences a checkpoint folder given to --model was trained on (recorded by 'radassist train brain')."""
    from radassist.runtime.checkpoints import CONFIG_NAME, read_checkpoint_config

    source = None if init is None else Path(init.source).expanduser()
    if source is None or not source.exists():
        return None  # a catalogue id: its channels must be given, or the data's shared sequences fit the network
    folder = source if source.is_dir() else source.parent
    if not (folder / CONFIG_NAME).is_file():
        return None
    channels = read_checkpoint_config(folder).get("metadata", {}).get("channels")
    return list(channels) if channels else None


def _train_model_config(args: argparse.Namespace, channels, init):
    """The network to train: the options' settings over the --model network's (or the paper's defaults)."""
    from radassist.brain.model import BrainJointConfig

    given: dict = {"channels_per_image": len(channels)}
    if args.features:
        given["features"] = tuple(args.features)
        given["convolutions"] = tuple(min(level + 1, 3) for level in range(len(args.features)))  # V-Net: 1, 2, 3..
    if args.merge:
        given["merge"] = args.merge
    base = init.config if init is not None and isinstance(init.config, BrainJointConfig) else BrainJointConfig()
    return replace(base, **given)


def run_train(task: str, args: argparse.Namespace) -> int:
    from radassist.brain.datasets import load_subject, read_layout
    from radassist.brain.losses import JointLossConfig
    from radassist.brain.model import ARCHITECTURE_NAME
    from radassist.brain.postprocess import TUMOUR_CLASSES
    from radassist.brain.train import BrainTrainConfig, prepare_subject, subject_channels, train_brain
    from radassist.metrics.curves import log_and_curves
    from radassist.runtime.checkpoints import save_checkpoint

    device = device_from_args(args)
    layout, files = read_layout(args.data, args.layout)
    init = resolve_init_option(args, ARCHITECTURE_NAME)
    wanted = args.sequences or _init_channels(init)
    subjects = [load_subject(f, wanted) for f in files]
    channels = subject_channels(subjects, wanted)
    prepared = [prepare_subject(f.name, s, channels) for f, s in zip(files, subjects)]
    held = min(max(args.validation_subjects, 0), max(len(prepared) - 2, 0))
    train_set, validation = prepared[:len(prepared) - held], prepared[len(prepared) - held:]
    try:
        model_config = _train_model_config(args, channels, init)
        config = BrainTrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                                  accumulation_steps=args.accumulation, crop_size=tuple(args.crop),
                                  loss=JointLossConfig(alpha=args.alpha, beta=args.beta), seed=args.seed)
    except ValueError as error:
        raise InputError(None, str(error)) from None
    with main_rank_folder(args.out) as out, command_run(out, f"train {task}", args) as (output, record):
        record.inputs = [str(args.data)]
        with record.timed("train"), tqdm_progress(f"train {task}") as progress:
            result = train_brain(train_set, validation, model_config, config, progress, device.device, channels, init)
        save_checkpoint(result.model, ARCHITECTURE_NAME, model_config, output.path("config.json").parent,
                        metadata={"channels": list(channels), "layout": layout, "data": str(args.data),
                                  "bestEpoch": result.best_epoch, "trainConfig": asdict(config),
                                  "finetunedFrom": result.finetuned_from},
                        labels=TUMOUR_CLASSES)
        _write_json([asdict(r) for r in result.history], output.path("history.json"))
        log_and_curves([asdict(r) | {"kept": r.epoch == result.best_epoch} for r in result.history],
                       output.staging, "joint registration + segmentation")
        record.summary = {"best_epoch": result.best_epoch, "best_validation_loss": result.best_validation_loss,
                          "epochs": len(result.history), "channels": list(channels), "subjects": len(prepared),
                          "finetuned_from": result.finetuned_from}
        registered = register_result(args, result.model, ARCHITECTURE_NAME, model_config, task,
                                     {"validation_loss": result.best_validation_loss}, init)
        if registered is not None:
            record.summary["registered_model"] = registered
    print(f"best epoch {result.best_epoch} (validation loss {result.best_validation_loss:.4f}); wrote the "
          f"checkpoint to {args.out}")
    if registered is not None:
        print(f"registered as model {registered}")
    return 0


# -- evaluate -----------------------------------------------------------------------------------------------------

def add_evaluate_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="BraTS, OASIS-style or synthetic pairs folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    parser.add_argument("--layout", choices=("auto", "brats", "oasis"), default="auto", help="data layout")
    parser.add_argument("--pairs", type=int, help="evaluate only the first N pairs")
    _engine_arguments(parser)


def run_evaluate(task: str, args: argparse.Namespace) -> int:
    from radassist.brain.evaluate import evaluate_brain, write_evaluation_png

    device = device_from_args(args)
    loaded = _joint_model(args, device)
    config = _pipeline_config(args, loaded)
    with command_run(args.out, f"evaluate {task}", args) as (output, record):
        record.inputs = [str(args.data)]
        with record.timed("evaluate"), tqdm_progress(f"evaluate {task}") as progress:
            evaluation = evaluate_brain(args.data, config, None if loaded is None else loaded.model, device.device,
                                        progress, args.layout, args.pairs, config.channels)
        document = {"layout": evaluation.layout, "summary": evaluation.summary,
                    "pairs": [asdict(p) for p in evaluation.pairs]}
        _write_json(document, output.path("evaluation.json"))
        write_evaluation_png(evaluation, output.path("evaluation.png"))
        record.summary = evaluation.summary
    for key, value in evaluation.summary.items():
        print(f"{key}: {value:.4f}")
    print(f"wrote evaluation.json and evaluation.png to {args.out}")
    return 0
