"""Train U-Net or mU-Net on liver slices with the seed recipe: HU window, augmentation, cross-entropy + Dice.

Slices are prepared exactly as inference prepares them (:func:`radassist.liver.datasets.volume_slices`), the
validation split is by case (no patient in both sets), and the result is saved as a RadAssist checkpoint whose
metadata (window, 2.5-D context, slice size) the pipeline reads back, so a trained folder runs as it was trained.
Defaults marked "ours" are not from the papers. Fine-tuning starts from ``init`` weights
(:func:`radassist.annotation.retrain.resolve_init`) of the same network, and the checkpoint records them.

Under torchrun every process trains a DDP copy on its share of each epoch's slices (``batch_size`` per process,
so the global batch is ``batch_size`` times the number of processes), validation slices are split across the
processes and their confusion matrices summed, and every process returns the same network.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radassist.annotation.retrain import InitWeights
from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.liver.augment import AugmentConfig, augment_pair
from radassist.liver.datasets import SliceSet
from radassist.liver.losses import CrossEntropyDiceLoss
from radassist.liver.model import ARCHITECTURES, CLASS_COUNT, default_label_table
from radassist.liver.preprocess import SEED_WINDOW
from radassist.metrics.segmentation import SegmentationScores, nan_mean
from radassist.nets.training import csv_number, network_to_train, predict_labels, validation_scores
from radassist.runtime.best_weights import BestWeights
from radassist.runtime.distributed import (get_rank, get_world_size, global_mean, init_distributed, rank_order,
                                           unwrap, wrap_ddp)
from radassist.runtime.progress import Progress

CLASS_NAMES = ["background", "liver", "tumour"]
LOG_FILE = "train_log.csv"
LOG_COLUMNS = ("epoch", "train_loss", "validation_dice_liver", "validation_dice_tumour", "seconds", "kept")


@dataclass(frozen=True)
class LiverTrainConfig:
    """How to train."""

    architecture: str = "munet"  # "munet" or "unet" (Seo et al. 2020 compare both)
    model: Mapping[str, Any] = field(default_factory=dict)  # architecture config fields to change (e.g. channels)
    window: tuple[float, float] = SEED_WINDOW  # HU clipped to [-1024, 1024] (the seed recipe)
    context_slices: int = 0  # 2.5-D: neighbouring slices per side as channels
    image_size: tuple[int, int] = (512, 512)  # LiTS slices are 512 x 512
    epochs: int = 50  # ours
    learning_rate: float = 1e-4  # Adam; ours
    batch_size: int = 8  # ours
    validation_fraction: float = 0.2  # of the cases; ours
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)  # None: no augmentation
    ce_weight: float = 1.0  # loss = CE + Dice (the seed recipe)
    dice_weight: float = 1.0
    keep_empty_fraction: float = 0.2  # share of liver-free slices kept for training; ours
    seed: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InputError(None, f"unknown architecture '{self.architecture}'; choose {' or '.join(ARCHITECTURES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise InputError(None, "epochs and batch size must be at least 1 and the learning rate positive")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise InputError(None, f"validation fraction must be in [0, 1), got {self.validation_fraction}")
        if not 0.0 <= self.keep_empty_fraction <= 1.0:
            raise InputError(None, f"keep_empty_fraction must be within 0..1, got {self.keep_empty_fraction}")


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    validation_dice_liver: float | None = None
    validation_dice_tumour: float | None = None
    seconds: float = 0.0

    @property
    def selection_score(self) -> float | None:
        """What picks the kept epoch: the mean validation Dice of liver and tumour (those defined), else None."""
        return None if self.validation_dice_liver is None else \
            nan_mean([self.validation_dice_liver, self.validation_dice_tumour])


@dataclass
class TrainedLiverModel:
    """A trained network with what is needed to save it and to judge it."""

    model: nn.Module
    architecture: str
    config: Any
    history: list[EpochRecord]
    validation: SegmentationScores | None
    train_config: LiverTrainConfig
    train_cases: list[int]
    validation_cases: list[int]
    finetuned_from: dict[str, Any] | None = None  # InitWeights.to_dict() of the starting weights
    best_epoch: int | None = None  # the epoch whose weights these are (best validation Dice); None: the last

    def metadata(self) -> dict[str, Any]:
        settings = asdict(self.train_config)
        settings["model"] = dict(self.train_config.model)
        return {"task": "liver-segmentation", "window": list(self.train_config.window),
                "context_slices": self.train_config.context_slices,
                "image_size": list(self.train_config.image_size), "train_settings": settings,
                "train_cases": self.train_cases, "validation_cases": self.validation_cases,
                "history": [asdict(r) for r in self.history],
                "validation": None if self.validation is None else self.validation.to_dict(),
                "best_epoch": self.kept_record.epoch, "finetunedFrom": self.finetuned_from}

    @property
    def kept_record(self) -> EpochRecord:
        """The history entry of the epoch whose weights these are."""
        return self.history[(self.best_epoch or len(self.history)) - 1]

    def save(self, folder: str | Path) -> Path:
        """The checkpoint, and ``train_log.csv`` beside it (one row per epoch; ``kept`` marks these weights) with
        its curves in ``training_curves.png``."""
        from radassist.runtime.checkpoints import save_checkpoint

        from radassist.metrics.curves import write_training_curves

        saved = save_checkpoint(self.model, self.architecture, self.config, folder, self.metadata(),
                                default_label_table())
        self.write_log(Path(folder) / LOG_FILE)
        write_training_curves(Path(folder) / LOG_FILE, title=f"{self.architecture} (liver)")
        return saved

    def write_log(self, path: Path) -> None:
        kept = self.kept_record.epoch
        with atomic_path(path) as temp, open(temp, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(LOG_COLUMNS)
            for record in self.history:
                writer.writerow([record.epoch, f"{record.train_loss:.6f}", csv_number(record.validation_dice_liver),
                                 csv_number(record.validation_dice_tumour), f"{record.seconds:.3f}",
                                 int(record.epoch == kept)])


def split_by_case(cases: np.ndarray, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Case numbers for training and validation (at least one each when there are two cases and fraction > 0)."""
    unique = sorted(int(c) for c in np.unique(cases))
    count = 0 if fraction == 0 or len(unique) < 2 else min(len(unique) - 1, max(1, round(fraction * len(unique))))
    order = np.random.default_rng(seed).permutation(len(unique))
    validation = sorted(unique[i] for i in order[:count])
    return [c for c in unique if c not in validation], validation


def build_network(config: LiverTrainConfig, init: InitWeights | None = None) -> tuple[str, Any, nn.Module]:
    """(architecture, config, network): a fresh network of ``config``, or ``init``'s when its weights are a network
    of that architecture with the channels, context and classes the training asks for (else InputError)."""
    architecture = ARCHITECTURES[config.architecture]
    values = {"in_channels": 2 * config.context_slices + 1, "context_slices": config.context_slices,
              "out_channels": CLASS_COUNT, **dict(config.model)}
    return (architecture, *network_to_train(architecture, values, config.seed, init))


def predict_batches(model: nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Argmax labels (n, h, w) of ``model`` on (n, channels, h, w) slices: uint8, or int64 when there are none."""
    labels = predict_labels(model, images, batch_size, device)
    return labels if len(labels) else labels.astype(np.int64)


def _batch(slices: SliceSet, indices: np.ndarray, augment: AugmentConfig | None,
           rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    images, masks = slices.images[indices], slices.masks[indices]
    if augment is not None:
        drawn = (augment_pair(image, mask, rng, augment) for image, mask in zip(images, masks))
        images, masks = map(np.stack, zip(*drawn))
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(np.ascontiguousarray(masks))


def train_liver(slices: SliceSet, config: LiverTrainConfig = LiverTrainConfig(), progress: Progress | None = None,
                device: Any = "cpu", init: InitWeights | None = None) -> TrainedLiverModel:
    """Train on ``slices`` (see :func:`radassist.liver.datasets.training_slices`), from ``init``'s weights when
    given (fine-tuning); reports once per batch.

    With validation cases, the weights returned are those of the epoch with the best mean validation Dice of liver
    and tumour (``best_epoch``; its scores are ``validation``): a later epoch that overfits or oscillates does not
    replace a better one. Without validation they are the last epoch's.
    """
    progress = progress or Progress()
    device = torch.device(getattr(device, "device", device))
    if slices.images.shape[1] != 2 * config.context_slices + 1:
        raise InputError(None, f"slices have {slices.images.shape[1]} channels, but context_slices "
                               f"{config.context_slices} needs {2 * config.context_slices + 1}")
    init_distributed(device)  # joins torchrun's process group; nothing in a single process
    architecture, model_config, network = build_network(config, init)
    network.to(device)
    model = wrap_ddp(network, device)  # the network itself in a single process
    train_cases, validation_cases = split_by_case(slices.cases, config.validation_fraction, config.seed)
    train_index = np.flatnonzero(np.isin(slices.cases, train_cases))
    validation = slices.subset(np.isin(slices.cases, validation_cases)) if validation_cases else None
    loss_fn = CrossEntropyDiceLoss(config.ce_weight, config.dice_weight).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    rng = np.random.default_rng(config.seed)  # the epoch order: the same on every process
    augment_rng = rng if get_world_size() == 1 else np.random.default_rng([config.seed, get_rank() + 1])
    batches = max(1, math.ceil(len(rank_order(train_index)) / config.batch_size))
    history: list[EpochRecord] = []
    best, best_scores, scores = BestWeights(), None, None
    for epoch in range(config.epochs):
        started = time.perf_counter()
        model.train()
        order = rank_order(rng.permutation(train_index))
        total = 0.0
        for number, start in enumerate(range(0, len(order), config.batch_size)):
            images, masks = _batch(slices, order[start:start + config.batch_size], config.augment, augment_rng)
            optimiser.zero_grad()
            loss = loss_fn(model(images.to(device)), masks.to(device))
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
            progress.update((epoch + (number + 1) / batches) / config.epochs,
                            f"epoch {epoch + 1}/{config.epochs} loss {total / (number + 1):.4f}")
        record = EpochRecord(epoch + 1, global_mean(total, batches))
        scores = None
        if validation is not None:
            scores = validation_scores(network, validation.images, validation.masks, CLASS_NAMES, config.batch_size,
                                       device)
            record.validation_dice_liver, record.validation_dice_tumour = scores.dice[1], scores.dice[2]
        record.seconds = time.perf_counter() - started
        history.append(record)
        if best.offer(record.epoch, record.selection_score, network):
            best_scores = scores
    network = unwrap(model).eval()
    if best.restore(network):
        scores = best_scores
    return TrainedLiverModel(network.cpu(), architecture, model_config, history, scores, config, train_cases,
                             validation_cases, None if init is None else init.to_dict(), best.epoch)

