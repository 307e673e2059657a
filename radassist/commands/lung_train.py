"""`radassist train lung`: Lung-DETR on a LUNA16 folder (or phantoms from 'radassist synth lung').

Served through radassist/commands/train_evaluate.py (``TRAIN_TASKS``); heavy imports stay in run_train so
``--help`` is fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from radassist.commands.run_context import command_run
from radassist.runtime.device import add_device_arguments

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
            "an earlier training of the same id), so 'radassist lung detect --engine detr --model ID' uses it.",
}


def add_train_arguments(task: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="LUNA16 folder (subset*/*.mhd + annotations.csv)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    parser.add_argument("--config", choices=("tiny", "paper"), default="paper",
                        help="model size: the paper's Lung-DETR (ResNet-50, 300 queries, 6+6 layers) or a tiny "
                             "one for CPU trials")
    parser.add_argument("--epochs", type=int, default=50, help="total epochs (a resumed run counts earlier ones)")
    parser.add_argument("--batch-size", type=int, default=6, help="slabs per forward pass (paper: 6)")
    parser.add_argument("--accumulation", type=int, default=6,
                        help="forward passes per optimiser step (paper: gradient accumulation 6)")
    parser.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (paper: 1e-4)")
    parser.add_argument("--lr-backbone", type=float, default=1e-5, help="backbone learning rate (paper: 1e-5)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split, slab sampling, augmentation, batch order and initial weights")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    parser.add_argument("--model-id", default="lung-detr-user",
                        help="id the best checkpoint is installed under (see 'radassist models list')")
    parser.add_argument("--no-register", action="store_true", help="do not install the best checkpoint as a model")
    parser.add_argument("--cache-dir", type=Path,
                        help="where prepared slabs are kept (default: OUT/slab_cache); share it between runs")
    add_device_arguments(parser)


def run_train(task: str, args: argparse.Namespace) -> int:
    from radassist.runtime.distributed import main_rank_folder  # under torchrun: rank 0 writes --out
    from radassist.lung.train import LungTrainConfig, model_preset, train_lung
    from radassist.runtime.progress import tqdm_progress

    config = LungTrainConfig(data=args.data, out=args.out, model=model_preset(args.config), epochs=args.epochs,
                             batch_size=args.batch_size, accumulation_steps=args.accumulation, lr=args.lr,
                             lr_backbone=args.lr_backbone, seed=args.seed, resume=args.resume,
                             model_id=None if args.no_register else args.model_id, device=args.device,
                             threads=args.threads, min_gpu_memory_gb=args.min_gpu_memory,
                             mixed_precision=args.mixed_precision, cache_dir=args.cache_dir)
    with main_rank_folder(args.out) as out, command_run(out, f"train {task}", args) as (_, record):
        record.inputs = [str(args.data)]
        with record.timed("train"), tqdm_progress(f"train {task}") as progress:
            result = train_lung(config, progress)
        record.summary = result.summary()
    best = "-" if result.best_f1 is None else f"{result.best_f1:.3f}"
    print(f"trained Lung-DETR ({args.config}) for {result.epochs} epoch(s); best validation F1 {best} at epoch "
          f"{result.best_epoch}; checkpoint in {result.best_checkpoint}")
    if result.registered_model:
        print(f"installed as model '{result.registered_model}': radassist lung detect --engine detr --model "
              f"{result.registered_model} ...")
    return 0
