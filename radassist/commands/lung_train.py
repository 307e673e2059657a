"""`radassist train lung`: Lung-DETR on a LUNA16 folder (or phantoms from 'radassist synth lung').

Served through radassist/commands/train_evaluate.py (``TRAIN_TASKS``); heavy imports stay in run_train so
``--help`` is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from radassist.commands.finetune_options import (MIX_HELP, add_finetune_arguments, data_folders, register_result,
                                                resolve_init_option)
from radassist.commands.options import deprecated_alias
from radassist.commands.run_context import command_run
from radassist.runtime.device import add_device_arguments
from radassist.runtime.distributed import is_main_process, main_rank_folder  # rank 0 writes --out
from radassist.runtime.progress import tqdm_progress

TRAIN_TASKS = ("lung",)
TRAIN_HELP = {
    "lung": "Train Lung-DETR (Deformable DETR on 7.5 mm MIP slabs) on a LUNA16 folder: subset*/<seriesuid>.mhd,\n"
            "annotations.csv and optionally annotations_excluded.csv ('radassist synth lung' writes the same).\n"
            "Patients are split 70/20/10 (seeded); training and validation keep every slab with a nodule and\n"
            "sample the others to 12.7 % positives; slabs are augmented with flips, rotation within +-15 degrees,\n"
            "brightness +-15 % and Gaussian noise. The recipe is the paper's: AdamW lr 1e-4 (backbone 1e-5),\n"
            "weight decay 1e-4, StepLR step 10 gamma 0.1, gradient clipping 0.1, batch 6 x accumulation 6, mixed\n"
            "precision on a GPU.\n"
            "Writes to --out: checkpoints/last.pt after every epoch (continue with --resume), train_log.csv,\n"
            "split.json, slab_cache/ (prepared slabs, reused by later runs), best/ (the checkpoint with the best\n"
            "validation F1) and result.json. The best checkpoint is installed as user model --model-id (replacing\n"
            "an earlier training of the same id), so 'radassist lung detect --engine detr --model ID' uses it.\n"
            "Fine-tuning from exported corrections: --model (a model id, checkpoint folder or weights file; the\n"
            "start is recorded in best/'s metadata) with --data EXPORT (or --data LUNA16 --data EXPORT to mix\n"
            "them); --register-as ID keeps the best checkpoint as the next version of ID in the catalogue, with\n"
            "its validation F1 and CPM.",
}


def add_train_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, action="append", required=True, metavar="DIR",
                        help="LUNA16 folder (subset*/*.mhd + annotations.csv; 'radassist export lung' writes one); "
                             + MIX_HELP)
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    parser.add_argument("--config", choices=("tiny", "paper"),
                        help="model size: the paper's Lung-DETR (ResNet-50, 300 queries, 6+6 layers; the default) "
                             "or a tiny one (0.24 M parameters) that checks the whole run end to end in minutes on "
                             "a CPU; it had not learned to find phantom nodules after 14 CPU epochs "
                             "(benchmarks/TRAINING_CPU.md); with --model: the --model network's")
    parser.add_argument("--epochs", type=int, default=50, help="total epochs (a resumed run counts earlier ones)")
    parser.add_argument("--batch-size", type=int, default=6, help="slabs per forward pass (paper: 6)")
    parser.add_argument("--accumulation", type=int, default=6,
                        help="forward passes per optimiser step (paper: gradient accumulation 6)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="AdamW learning rate (paper: 1e-4)")
    parser.add_argument("--learning-rate-backbone", type=float, default=1e-5,
                        help="backbone learning rate (paper: 1e-5)")
    parser.add_argument("--learning-rate-step", type=int, default=10, metavar="EPOCHS",
                        help="epochs between the StepLR learning-rate drops (paper: 10); a resumed run keeps its own")
    parser.add_argument("--learning-rate-gamma", type=float, default=0.1,
                        help="factor of each learning-rate drop (paper: 0.1); a resumed run keeps its own")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split, slab sampling, augmentation, batch order and initial weights")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    parser.add_argument("--model-id", help="id the best checkpoint is installed under, replacing an earlier "
                                           "training of that id (default: lung-detr-user; see 'radassist models "
                                           "list')")
    parser.add_argument("--no-register", action="store_true", help="do not install the best checkpoint as a model")
    parser.add_argument("--cache-dir", type=Path,
                        help="where prepared slabs are kept (default: OUT/slab_cache); share it between runs")
    add_finetune_arguments(parser)
    add_device_arguments(parser)
    for old, new in (("--lr", "--learning-rate"), ("--lr-backbone", "--learning-rate-backbone"),
                     ("--lr-step", "--learning-rate-step"), ("--lr-gamma", "--learning-rate-gamma")):
        deprecated_alias(parser, old, new)


def _model_settings(args: argparse.Namespace) -> tuple[Any, Any, str | None]:
    """(LungDetrConfig, InitWeights or None, id for the old-style install or None), checked before any data is
    read: --register-as replaces the --model-id install, and --config must agree with the --model network."""
    from radassist.errors import InputError
    from radassist.lung.model import ARCHITECTURE_NAME
    from radassist.lung.train import DEFAULT_MODEL_ID, model_preset, saved_model_config

    if args.register_as and (args.model_id or args.no_register):
        raise InputError(None, "--register-as saves the best checkpoint as a new model version; leave out "
                               "--model-id and --no-register")
    init = resolve_init_option(args, ARCHITECTURE_NAME, model_preset(args.config or "paper"))
    if args.config is None and (init is not None or args.resume):
        model = init.config if init is not None else saved_model_config(args.out)  # --resume: the saved run's
    else:
        model = model_preset(args.config or "paper")
    install = None if args.no_register or args.register_as else (args.model_id or DEFAULT_MODEL_ID)
    return model, init, install


def _best_metrics(result: Any) -> dict[str, float]:
    """The validation scores of the best epoch, under the names the catalogue reports."""
    best = next(r for r in result.history if r.epoch == result.best_epoch)
    scores = {"val_f1": best.val_f1, "val_precision": best.val_precision, "val_recall": best.val_recall,
              "val_scan_cpm": best.val_scan_cpm, "val_loss": best.val_loss}
    return {name: float(value) for name, value in scores.items() if value is not None}


def run_train(task: str, args: argparse.Namespace) -> int:
    from radassist.annotation.mix import training_data
    from radassist.lung.train import LungTrainConfig, train_lung
    from radassist.runtime.checkpoints import load_checkpoint

    model, init, install = _model_settings(args)
    folders = data_folders(args)
    with training_data("lung", folders) as data, main_rank_folder(args.out) as out, \
            command_run(out, f"train {task}", args) as (_, record):
        config = LungTrainConfig(data=data, out=args.out, model=model, epochs=args.epochs,
                                 batch_size=args.batch_size, accumulation_steps=args.accumulation,
                                 lr=args.learning_rate, lr_backbone=args.learning_rate_backbone,
                                 lr_step_epochs=args.learning_rate_step, lr_gamma=args.learning_rate_gamma,
                                 seed=args.seed, resume=args.resume, model_id=install,
                                 device=args.device, threads=args.threads, min_gpu_memory_gb=args.min_gpu_memory,
                                 mixed_precision=args.mixed_precision, cache_dir=args.cache_dir)
        record.inputs = [str(folder) for folder in folders]
        with record.timed("train"), tqdm_progress(f"train {task}") as progress:
            result = train_lung(config, progress, init)
        record.summary = result.summary()
        registered = None
        if args.register_as and is_main_process():  # rank 0 wrote best/
            best = load_checkpoint(result.best_checkpoint)
            registered = register_result(args, best.model, best.architecture, best.config, task,
                                         _best_metrics(result), init, metadata=best.metadata)
            record.summary["registered_as"] = registered
    best_f1 = "-" if result.best_f1 is None else f"{result.best_f1:.3f}"
    print(f"trained Lung-DETR for {result.epochs} epoch(s); best validation F1 {best_f1} at epoch "
          f"{result.best_epoch}; checkpoint in {result.best_checkpoint}")
    if result.registered_model:
        print(f"installed as model '{result.registered_model}': radassist lung detect --engine detr --model "
              f"{result.registered_model} ...")
    if registered is not None:
        print(f"registered as model {registered}")
    return 0
