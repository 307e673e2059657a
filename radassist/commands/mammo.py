"""`radassist mammo classify`, and the `radassist train mammo` / `radassist evaluate mammo` hooks.

Heavy imports (torch, the network) stay inside the run functions so `--help` is fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from radassist.commands.finetune_options import (MIX_HELP, add_finetune_arguments, data_folders, register_result,
                                                resolve_init_option)
from radassist.commands.remote_option import add_remote_option
from radassist.commands.run_context import command_run
from radassist.errors import InputError
from radassist.runtime.device import add_device_arguments, device_from_args
from radassist.runtime.distributed import main_rank_folder  # under torchrun: rank 0 writes --out
from radassist.runtime.progress import tqdm_progress

TRAIN_TASKS = ("mammo",)
EVALUATE_TASKS = ("mammo",)
TRAIN_HELP = {"mammo": "Train GMIC on an exam list (exam_list.json or exam_list.csv: image paths, view, laterality, "
                       "benign/malignant labels; 'radassist synth mammo' writes one) with image-level labels only: "
                       "BCE on the global, local and fusion outputs plus beta x saliency L1, and a random search "
                       "over learning rate and beta. Writes a checkpoint folder that 'radassist mammo classify "
                       "--model' runs. Fine-tune with --model (a model id such as gmic-1, a checkpoint folder or a "
                       "weights file; the start is recorded in the checkpoint) and keep the result as a new "
                       "catalogue version with --register-as."}
EVALUATE_HELP = {"mammo": "Classify every exam of an exam list with GMIC and score it: ROC AUC with confidence "
                          "intervals for benign and malignant at image and breast level, and saliency Dice against "
                          "the lesion masks listed. Writes evaluation.json, evaluation.csv, roc.png (the ROC curves "
                          "with their AUCs) and result.json."}
MODEL_HELP = ("catalogue id (gmic-1 .. gmic-5, or gmic-ensemble for the five averaged, once installed with "
              "'radassist models install') or checkpoint folder from 'radassist train mammo'; repeat for an ensemble "
              "of your own (default: gmic-1)")


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    parser = commands.add_parser("mammo", help="screening mammogram classification (GMIC)", formatter_class=formatter,
                                 description="Benign and malignant probabilities per view and per breast, saliency "
                                             "maps and the patches GMIC read (Shen et al. 2021).")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    classify = actions.add_parser(
        "classify", help="classify the views of one exam", formatter_class=formatter,
        description="Reads DICOM or PNG views (L-CC, R-CC, L-MLO, R-MLO or any of them). Writes report.json and "
                    "report.csv (per view and per breast), and per view a folder <VIEW>/ with "
                    "saliency_benign.nrrd and saliency_malignant.nrrd on the view's grid and patches.mrk.json "
                    "(one ROI per patch; its probability is the patch's attention weight), gmic.png (input, patch "
                    "map, saliency maps, patches with attention) and result.json. GMIC's published weights are "
                    "not shipped: 'radassist models install gmic-1' (or gmic-ensemble) downloads them once you "
                    "accept their licence.")
    classify.add_argument("files", type=Path, nargs="+", metavar="FILE", help="mammogram views (DICOM or PNG)")
    classify.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    classify.add_argument("--model", action="append", metavar="ID_OR_DIR", help=MODEL_HELP)
    classify.add_argument("--tta", type=int, default=0, metavar="N",
                          help="test-time augmentation: average N randomly shifted/flipped windows with the "
                               "published one")
    classify.add_argument("--tta-seed", type=int, default=0, help="seed of the augmentation windows")
    classify.add_argument("--laterality", action="append", metavar="L|R",
                          help="when the file does not say: once for every file, or once per file in order")
    classify.add_argument("--view", action="append", metavar="CC|MLO",
                          help="when the file does not say: once for every file, or once per file in order")
    classify.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="inference engine")
    add_device_arguments(classify)
    classify.set_defaults(handler=run_classify)
    add_remote_option(classify, "mammo-classify", remote_options, inputs=lambda args: list(args.files))


def _per_file(values: list[str] | None, files: list[Path], option: str) -> list[str | None]:
    if not values:
        return [None] * len(files)
    if len(values) == 1:
        return values * len(files)
    if len(values) != len(files):
        raise InputError(None, f"give {option} once for every file or once per file ({len(files)} files, "
                               f"{len(values)} values)")
    return list(values)


def remote_options(args: argparse.Namespace) -> dict[str, Any]:
    """The classify options for a server: laterality/view per file, from the command line or the file's name
    (the server stores uploads under its own names, so it cannot read them there)."""
    from radassist.io.mammogram import parse_view_from_name

    named = [parse_view_from_name(path.name) for path in args.files]
    lateralities = _per_file(args.laterality, args.files, "--laterality")
    views = _per_file(args.view, args.files, "--view")
    return {"laterality": [given or name[0] for given, name in zip(lateralities, named)],
            "view": [given or name[1] for given, name in zip(views, named)],
            "tta": args.tta, "tta_seed": args.tta_seed, "backend": args.backend}


def read_exam(files: list[Path], lateralities: list[str] | None, views: list[str] | None) -> list[Any]:
    """Read every view; a file that does not say its laterality/view takes the command line's."""
    from radassist.io.mammogram import read_mammogram

    mammograms = []
    for path, laterality, view in zip(files, _per_file(lateralities, files, "--laterality"),
                                      _per_file(views, files, "--view")):
        mammogram = read_mammogram(path)
        if (mammogram.laterality is None and laterality) or (mammogram.view is None and view):
            mammogram = read_mammogram(path, mammogram.laterality or laterality, mammogram.view or view)
        mammograms.append(mammogram)
    return mammograms


def load_models(models: list[str] | None, backend: str, device: Any) -> list[Any]:
    """The networks to run (an ensemble when several); WeightsMissing says how to get weights."""
    from radassist.mammo.pipeline import expand_models, load_gmic

    return [load_gmic(model, backend, device) for model in expand_models(models)]


def write_outputs(result: Any, output: Any) -> None:
    """The classify command's files (staged in ``output``)."""
    from radassist.io import write_volume
    from radassist.mammo.pipeline import CLASS_NAMES
    from radassist.mammo.postprocess import patch_detections, render_visualisation, saliency_volume
    from radassist.results import write_classification, write_roi_markups

    write_classification(result.classification, output.path("report.json"), output.path("report.csv"))
    for view in result.views:
        for index in range(view.saliency.shape[0]):
            write_volume(saliency_volume(view, index), output.path(f"{view.name}/saliency_{CLASS_NAMES[index]}.nrrd"))
        write_roi_markups(patch_detections(view), output.path(f"{view.name}/patches.mrk.json"))
    render_visualisation(result, output.path("gmic.png"))


def summary_lines(classification: Any) -> list[str]:
    """What the terminal shows: one line per view and per breast."""
    def line(item: Any) -> str:
        return f"{item.image_id:9s} " + "  ".join(f"{k} {v:.4f}" for k, v in item.probabilities.items())
    return [line(item) for item in classification.images] + [line(group) for group in classification.groups]


def run_classify(args: argparse.Namespace) -> int:
    from radassist.mammo.pipeline import MammoConfig, classify_exam, prepare_exam

    config = MammoConfig(tta=args.tta, tta_seed=args.tta_seed)
    mammograms = read_exam(args.files, args.laterality, args.view)
    device = device_from_args(args)
    runners = load_models(args.model, args.backend, device.device)  # before any output: no weights, no folder
    prepare_exam(mammograms, config, max(tuple(r.config.crop_shape) for r in runners))  # bad input: nothing written
    with command_run(args.out, "mammo classify", args) as (output, record):
        record.inputs = [str(path) for path in args.files]
        with record.timed("classify"), tqdm_progress("mammo classify") as progress:
            result = classify_exam(mammograms, runners, config, progress)
        with record.timed("write"):
            write_outputs(result, output)
        record.summary = {item.image_id: item.probabilities for item in
                          result.classification.images + result.classification.groups}
    for text in summary_lines(result.classification):
        print(text)
    print(f"wrote report.json, report.csv, gmic.png and per-view saliency maps and patches to {args.out}")
    return 0


# ------------------------------------------------------------------------------------------------ train


def add_train_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, action="append", required=True, metavar="PATH",
                        help="exam list file, or a folder holding one ('radassist export mammo' writes one); "
                             + MIX_HELP)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--trials", type=int, default=1, help="random-search trials over learning rate and beta")
    parser.add_argument("--learning-rate", type=float, help="fix the learning rate (default: searched in "
                                                            "10^-5.5 .. 10^-4)")
    parser.add_argument("--beta", type=float, help="fix the saliency L1 weight (default: searched in "
                                                   "10^-5.5 .. 10^-3.5)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("ROWS", "COLS"),
                        help="training window (default: the published 2944 1920, or the --model checkpoint's)")
    parser.add_argument("--config", help="GMIC architecture fields as JSON, e.g. '{\"global_filters\": 8}' "
                                         "(default: the published network, or the --model network)")
    parser.add_argument("--validation-fraction", type=float, default=0.2, help="share of exams held out")
    parser.add_argument("--no-augment", action="store_true", help="train without window shifts and flips")
    parser.add_argument("--seed", type=int, default=0)
    add_finetune_arguments(parser)
    add_device_arguments(parser)


def _model_fields(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(None, f"--config is not valid JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise InputError(None, "--config must be a JSON object of GMIC config fields")
    return fields


def _train_settings(args: argparse.Namespace) -> tuple[Any, Any]:
    """(MammoTrainConfig, InitWeights or None), checked before any image is read: the --config fields must be
    GMIC's and agree with the --model network; the window defaults to the --model checkpoint's."""
    from radassist.mammo.train import MammoTrainConfig, network_config

    fields = _model_fields(args.config)
    init = resolve_init_option(args, "gmic", fields)
    trained_size = (init.metadata.get("input") or {}).get("imageSize") if init is not None else None
    size = tuple(args.image_size or trained_size or (2944, 1920))
    config = MammoTrainConfig(model=fields, image_size=size, epochs=args.epochs,
                              batch_size=args.batch_size, trials=args.trials, learning_rate=args.learning_rate,
                              beta=args.beta, augment=not args.no_augment,
                              validation_fraction=args.validation_fraction, seed=args.seed)
    network_config(config, init)  # refuse unknown fields, or weights that do not fit
    return config, init


def run_train(task: str, args: argparse.Namespace) -> int:
    from radassist.annotation.mix import training_data
    from radassist.mammo.datasets import read_exam_list
    from radassist.mammo.train import save_trained, train_from_exams, trained_metadata
    from radassist.metrics.curves import log_and_curves

    config, init = _train_settings(args)
    folders = data_folders(args)
    device = device_from_args(args)
    with training_data("mammo", folders) as data, main_rank_folder(args.out) as out, \
            command_run(out, "train mammo", args) as (output, record):
        exams = read_exam_list(data)
        record.inputs = [str(folder) for folder in folders]
        with record.timed("train"), tqdm_progress("train mammo") as progress:
            result = train_from_exams(exams, config, device.device, progress, init)
        save_trained(result, config, output.staging, folders, Path(args.out).name)  # named as the user named it
        chosen = result.chosen
        epochs = len(chosen.train_loss)  # the chosen trial's network after its last epoch is the one kept
        log_and_curves([{"epoch": number + 1, "train_loss": loss,
                         "validation_loss": chosen.validation_loss[number] if number < len(chosen.validation_loss)
                         else None, "kept": number + 1 == epochs} for number, loss in enumerate(chosen.train_loss)],
                       output.staging, f"GMIC, trial {result.best + 1}")
        record.summary = {"exams": len(exams), "train_images": result.train_images,
                          "validation_images": result.validation_images, "trials": len(result.trials),
                          "learning_rate": chosen.learning_rate, "beta": chosen.beta,
                          "final_train_loss": chosen.train_loss[-1],
                          "final_validation_loss": chosen.validation_loss[-1] if chosen.validation_loss else None,
                          "validation_auc": result.validation_auc, "finetuned_from": result.finetuned_from}
        metrics = {name: record.summary[name] for name in ("final_train_loss", "final_validation_loss")
                   if record.summary[name] is not None} | result.validation_auc
        registered = register_result(args, result.model, "gmic", result.config, task, metrics, init,
                                     metadata=trained_metadata(result, config, output.staging, folders,
                                                               Path(args.out).name))
        record.summary["registered_model"] = registered
    print(f"trained GMIC on {result.train_images} images; chosen trial {result.best + 1}/{len(result.trials)} "
          f"(learning rate {chosen.learning_rate:.3g}, beta {chosen.beta:.3g}), final loss {chosen.train_loss[-1]:.4f}")
    print(f"wrote the checkpoint to {args.out}; run it with 'radassist mammo classify FILES --model {args.out}'")
    if registered is not None:
        print(f"registered as model {registered}")
    return 0


# ------------------------------------------------------------------------------------------------ evaluate


def add_evaluate_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="exam list file, or a folder holding one")
    parser.add_argument("--model", action="append", metavar="ID_OR_DIR", help=MODEL_HELP)
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    parser.add_argument("--tta", type=int, default=0, metavar="N", help="test-time augmentation windows")
    parser.add_argument("--ci", choices=("delong", "bootstrap"), default="delong", help="AUC confidence interval")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="inference engine")
    add_device_arguments(parser)


def run_evaluate(task: str, args: argparse.Namespace) -> int:
    from radassist.mammo.datasets import read_exam_list
    from radassist.mammo.evaluate import MammoEvaluationConfig, evaluate_exams, evaluation_report
    from radassist.mammo.pipeline import MammoConfig
    from radassist.metrics.curves import write_roc_png
    from radassist.results import write_report

    scoring = MammoEvaluationConfig(ci_method=args.ci, confidence=args.confidence)
    exams = read_exam_list(args.data)
    runners = load_models(args.model, args.backend, device_from_args(args).device)
    with command_run(args.out, "evaluate mammo", args) as (output, record):
        record.inputs = [str(args.data)]
        with record.timed("evaluate"), tqdm_progress("evaluate mammo") as progress:
            evaluation = evaluate_exams(exams, runners, MammoConfig(tta=args.tta), scoring, progress)
        report = evaluation_report(evaluation, " + ".join(r.model_id for r in runners))
        write_report(report, output.path("evaluation.json"), output.path("evaluation.csv"))
        write_roc_png(roc_inputs(evaluation), output.path("roc.png"),
                      title=f"GMIC ({' + '.join(r.model_id for r in runners)}) on {len(exams)} exam(s)")
        record.summary = report.summary
    for name, result in evaluation.auc.items():
        if result.get("auc") is None:
            print(f"{name:17s} AUC n/a ({result['reason']})")
        else:
            print(f"{name:17s} AUC {result['auc']:.3f} ({100 * args.confidence:g}% CI {result['ci_low']:.3f}-"
                  f"{result['ci_high']:.3f})")
    for kind, values in evaluation.localisation.items():
        if values["images"]:
            print(f"{kind:9s} saliency Dice {values['mean_dice']:.3f} (soft {values['mean_soft_dice']:.3f}) on "
                  f"{values['images']} image(s)")
    print(f"wrote evaluation.json, evaluation.csv and roc.png to {args.out}")
    return 0


def roc_inputs(evaluation: Any) -> dict[str, tuple[list[int], list[float], dict[str, Any]]]:
    """(labels, scores, AUC result) of every curve evaluate_exams scored, by the names its AUCs have."""
    from radassist.mammo.pipeline import CLASS_NAMES

    curves = {}
    for kind in CLASS_NAMES:
        curves[f"image {kind}"] = ([s.labels[kind] for s in evaluation.images],
                                   [s.probabilities[kind] for s in evaluation.images], evaluation.auc[f"image {kind}"])
        curves[f"breast {kind}"] = ([b[f"{kind}_label"] for b in evaluation.breasts],
                                    [b[f"{kind}_probability"] for b in evaluation.breasts],
                                    evaluation.auc[f"breast {kind}"])
    return curves
