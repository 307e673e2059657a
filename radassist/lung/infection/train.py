"""Train the infection U-Net or SegNet on CT slices with median-frequency-balanced cross-entropy.

Defaults are the study's (Saood and Hatem 2021): Adam at a learning rate of 3e-5 for 50 epochs on full 512x512
slices, 84 % of the slices for training and 16 % held out. The class weights are computed from the training
masks only. The trained network is saved as a RadAssist checkpoint whose label table and input description
(size, window) the inference pipeline reads back. Fine-tuning starts from ``init`` weights
(:func:`radassist.annotation.retrain.resolve_init`) of the same network, and the checkpoint records them.

Under torchrun every process trains a DDP copy on its share of each epoch's slices (``batch_size`` per process:
the global batch is ``batch_size`` times the number of processes), the micro-steps before an optimiser step of
an accumulation group run without gradient all-reduce, and losses and validation scores are summed over the
processes, so every process returns the same network and history.

For a few dozen real slices (the 50 COVID-SemiSeg slices) the defaults are not enough: ``augment``
(:class:`~radassist.lung.infection.augment.SliceAugment`, rotations, flips, scaling, elastic, intensity, a training
window) and a decaying learning rate (``lr_schedule="poly"``) are what make a network trained from scratch on a
CPU generalise; benchmarks/INFECTION_REAL.md has the runs.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radassist.annotation.retrain import InitWeights
from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.lung.infection.augment import SliceAugment, augment_batch
from radassist.lung.infection.class_offsets import OffsetChoice, choose_class_offsets, log_probabilities
from radassist.lung.infection.dataset import SliceDataset, fit_dataset
from radassist.lung.infection.losses import (PresentClassDiceLoss, WeightedCrossEntropyLoss, class_frequencies,
                                             weights_from_frequencies)
from radassist.lung.infection.model import ARCHITECTURES, class_names, default_label_table
from radassist.lung.infection.preprocess import DISPLAY_PERCENTILES, LUNG_WINDOW, NORMALIZATIONS
from radassist.metrics.segmentation import SegmentationScores
from radassist.nets.training import csv_number, network_to_train, predict_labels, validation_scores
from radassist.runtime.best_weights import BestWeights
from radassist.runtime.distributed import (accumulation_plan, accumulation_step, get_rank, global_mean,
                                           init_distributed, rank_order, shard, wrap_ddp)
from radassist.runtime.progress import Progress


@dataclass(frozen=True)
class InfectionTrainConfig:
    """How to train; every default is the study's unless noted."""

    architecture: str = "unet"  # "unet" or "segnet" (both compared in Saood and Hatem 2021)
    model: Mapping[str, Any] = field(default_factory=dict)  # architecture config fields to change (e.g. channels)
    epochs: int = 50  # Saood and Hatem 2021
    learning_rate: float = 3e-5  # Adam, Saood and Hatem 2021
    batch_size: int = 4  # not stated in the study's abstract; small enough for 512x512 on one GPU
    accumulation_steps: int = 1  # ours: micro-batches per optimiser step (a larger batch on a small GPU)
    image_size: tuple[int, int] = (512, 512)  # full-resolution input (Saood and Hatem 2021)
    balanced_loss: bool = True  # median-frequency-balanced weighted cross-entropy (Saood and Hatem 2021)
    dice_loss: bool = False  # ours: add a soft Dice term over the finding classes (the liver recipe's CE + Dice)
    dice_per_image: bool = False  # ours: that Dice per slice and class present, as the Inf-Net protocol scores
    validation_fraction: float = 0.16  # 84/16 split of the 100 slices (Saood and Hatem 2021)
    seed: int = 0
    window: tuple[float, float] = LUNG_WINDOW  # recorded in the checkpoint; the data reader applies it
    normalization: str = "window"  # "window" (CT in HU) or "display-percentile" (8-bit display pictures)
    display_percentiles: tuple[float, float] = DISPLAY_PERCENTILES  # for "display-percentile"
    augment: SliceAugment | None = None  # ours; None: the study's plain slices
    lr_schedule: str = "constant"  # "constant" (the study) or "poly": lr * (1 - epoch / epochs) ** 0.9 (nnU-Net)
    time_limit_minutes: float | None = None  # ours: stop before an epoch that would end after this (a safety net)
    tune_class_offsets: bool = False  # ours: per-class logit offsets chosen on the validation slices after training

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InputError(None, f"unknown architecture '{self.architecture}'; choose {' or '.join(ARCHITECTURES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.accumulation_steps < 1 or self.learning_rate <= 0:
            raise InputError(None, "epochs, batch size and accumulation steps must be at least 1 and the learning "
                                   "rate positive")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise InputError(None, f"validation fraction must be in [0, 1), got {self.validation_fraction}")
        if self.tune_class_offsets and self.validation_fraction == 0.0:
            raise InputError(None, "class offsets are chosen on the held-out validation slices; give a validation "
                                   "fraction above 0")
        if self.dice_per_image and not self.dice_loss:
            raise InputError(None, "a Dice per slice (--dice-per-image) is a form of the Dice term: give it with the "
                                   "Dice loss (--dice-loss)")
        if self.normalization not in NORMALIZATIONS:
            raise InputError(None, f"normalization must be one of {', '.join(NORMALIZATIONS)}, got "
                                   f"{self.normalization!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(None, f"learning-rate schedule must be one of {', '.join(LR_SCHEDULES)}, got "
                                   f"{self.lr_schedule!r}")

    def input_description(self) -> dict[str, Any]:
        """What the pipeline must do to an image before the network sees it (the checkpoint's ``input``)."""
        described: dict[str, Any] = {"imageSize": list(self.image_size), "normalization": self.normalization}
        if self.normalization == "window":
            described["window"] = list(self.window)
        else:
            described["percentiles"] = list(self.display_percentiles)
        return described

    def settings(self) -> dict[str, Any]:
        """The settings as plain JSON (for the checkpoint's provenance)."""
        return {key: value.to_dict() if isinstance(value, SliceAugment) else
                (list(value) if isinstance(value, tuple) else value)
                for key, value in vars(self).items() if key != "model"}


LR_SCHEDULES = ("constant", "poly")
POLY_EXPONENT = 0.9  # nnU-Net's polynomial learning-rate decay (Isensee et al., Nature Methods 2021)


def learning_rate_at(epoch: int, epochs: int, base: float, schedule: str) -> float:
    """The learning rate of ``epoch`` (1-based): constant, or decayed polynomially towards 0 at the end."""
    if schedule == "constant":
        return base
    return base * (1.0 - (epoch - 1) / epochs) ** POLY_EXPONENT


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    validation_loss: float | None = None
    validation_mean_dice: float | None = None
    kept: bool = False  # the trained network has this epoch's weights (best validation mean Dice)
    learning_rate: float | None = None
    seconds: float = 0.0  # wall time of the epoch, validation included


@dataclass
class TrainedInfectionModel:
    """A trained network with everything needed to save it as a checkpoint and to judge it."""

    model: nn.Module
    architecture: str  # registry name, e.g. "lung-infection-unet"
    config: Any
    label_table: list[dict[str, Any]]
    class_weights: np.ndarray
    history: list[EpochRecord]
    validation: SegmentationScores | None
    train_config: InfectionTrainConfig
    train_names: list[str] = field(default_factory=list)
    validation_names: list[str] = field(default_factory=list)
    finetuned_from: dict[str, Any] | None = None  # InitWeights.to_dict() of the starting weights
    class_offsets: OffsetChoice | None = None  # chosen on the validation slices (tune_class_offsets)

    def metadata(self) -> dict[str, Any]:
        """Provenance and the input description the pipeline needs (size, window, normalisation)."""
        return {
            "task": "lung-infection-segmentation",
            "input": self.train_config.input_description(),
            "training": self.train_config.settings(), "classWeights": [round(float(w), 6) for w in self.class_weights],
            "lossFunction": ("median-frequency weighted cross-entropy" if self.train_config.balanced_loss
                             else "cross-entropy") + (" + soft Dice" if self.train_config.dice_loss else "")
                             + (" per slice and class present" if self.train_config.dice_per_image else ""),
            "history": [vars(record) for record in self.history],
            "best_epoch": self.best_epoch,
            "validation": self.validation.to_dict() if self.validation is not None else None,
            "trainSlices": len(self.train_names), "validationSlices": len(self.validation_names),
            "finetunedFrom": self.finetuned_from,
            "classOffsets": None if self.class_offsets is None else self.class_offsets.to_dict(),
        }

    @property
    def best_epoch(self) -> int | None:
        """The epoch whose weights the model has (the record marked ``kept``)."""
        return next((r.epoch for r in self.history if r.kept), None)

    def save(self, folder: str | Path) -> Path:
        """Write the checkpoint (model.safetensors + config.json) into ``folder``, and ``train_log.csv`` beside it
        (one row per epoch; ``kept`` marks the epoch whose weights these are)."""
        from radassist.runtime.checkpoints import save_checkpoint

        saved = save_checkpoint(self.model, self.architecture, self.config, folder, metadata=self.metadata(),
                                labels=self.label_table)
        self.write_log(Path(folder) / LOG_FILE)
        return saved

    def write_log(self, path: Path) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(LOG_COLUMNS)
        for r in self.history:
            writer.writerow([r.epoch, csv_number(r.train_loss), csv_number(r.validation_loss),
                             csv_number(r.validation_mean_dice),
                             "" if r.learning_rate is None else f"{r.learning_rate:.3g}", csv_number(r.seconds, 3),
                             int(r.kept)])
        with atomic_path(path) as temp:
            temp.write_text(buffer.getvalue(), encoding="utf-8")


LOG_FILE = "train_log.csv"
LOG_COLUMNS = ("epoch", "train_loss", "validation_loss", "validation_mean_dice", "learning_rate", "seconds", "kept")


def split_indices(count: int, validation_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded shuffle split: (train, validation); at least one training slice, validation may be empty."""
    order = np.random.default_rng(seed).permutation(count).tolist()
    validation = int(round(count * validation_fraction)) if count > 1 else 0
    return sorted(order[validation:]), sorted(order[:validation])


def build_network(architecture: str, overrides: Mapping[str, Any], num_classes: int, seed: int) -> tuple[str, Any,
                                                                                                      nn.Module]:
    """(registry name, config, freshly initialised network) for "unet"/"segnet" with ``num_classes`` outputs."""
    name = ARCHITECTURES[architecture]
    return (name, *network_to_train(name, {"out_channels": num_classes, **dict(overrides)}, seed))


def fit_network(model: nn.Module, images: np.ndarray, masks: np.ndarray, weights: np.ndarray | None, epochs: int,
                learning_rate: float, batch_size: int, seed: int = 0, progress: Progress | None = None,
                device: Any = "cpu", validation: tuple[np.ndarray, np.ndarray] | None = None,
                class_labels: Sequence[str] | None = None, accumulation_steps: int = 1,
                augment: SliceAugment | None = None, lr_schedule: str = "constant",
                dice_loss: bool = False, time_limit: float | None = None,
                dice_per_image: bool = False) -> list[EpochRecord]:
    """Adam on (n, 1, H, W) images and (n, H, W) masks with (weighted) cross-entropy; one record per epoch.

    With ``augment`` every batch is a fresh random draw of its slices (see :mod:`radassist.lung.infection.augment`),
    otherwise the slices as they are. ``lr_schedule`` "poly" lowers the learning rate every epoch. ``dice_loss``
    adds a soft Dice term over the finding classes to the cross-entropy (per slice with ``dice_per_image``). With
    ``time_limit`` (seconds) training stops early when another epoch as long as the last one would end after it
    (fewer records than ``epochs``).

    With ``validation``, ``model`` ends with the weights of the epoch with the best validation mean Dice (its
    record is marked ``kept``); without, with the last epoch's.

    The batch order is a seeded shuffle, so the same inputs and seed give the same run on the same machine. An
    optimiser step follows every ``accumulation_steps`` batches. Under torchrun (process group joined) the model
    trains as DDP on this process's share of each epoch's order, and the records hold every process's mean.
    """
    progress = progress or Progress()
    device = torch.device(getattr(device, "device", device))
    model.to(device)
    trained = wrap_ddp(model, device)  # the model itself in a single process
    loss_fn = training_loss(weights, dice_loss, dice_per_image).to(device)
    optimiser = torch.optim.Adam(trained.parameters(), lr=learning_rate)
    rng = np.random.default_rng(seed)  # the epoch order: the same on every process
    draws = np.random.default_rng([seed, get_rank() + 1])  # augmentation: each process its own draws
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(masks.astype(np.int64))
    skip_single = len(images) > 1 and _has_batch_norm(model)
    classes = int(getattr(model, "out_channels", 0) or (weights.size if weights is not None else 2))
    names = list(class_labels or [str(c) for c in range(classes)])
    history: list[EpochRecord] = []
    best = BestWeights()
    began = time.perf_counter()
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        trained.train()
        rate = learning_rate_at(epoch, epochs, learning_rate, lr_schedule)
        for group in optimiser.param_groups:
            group["lr"] = rate
        chunks = _batches(rank_order(rng.permutation(len(images)).tolist()), batch_size, skip_single)
        total, seen = 0.0, 0
        optimiser.zero_grad(set_to_none=True)
        for chosen, (group, final) in zip(chunks, accumulation_plan(len(chunks), accumulation_steps)):
            if augment is None:
                x, y = x_all[chosen], y_all[chosen]
            else:
                drawn = augment_batch(images[chosen], masks[chosen], draws, augment)
                x, y = torch.from_numpy(drawn[0]), torch.from_numpy(drawn[1].astype(np.int64))
            with accumulation_step(trained, final):  # forward and backward: DDP's no_sync must cover both
                loss = loss_fn(trained(x.to(device)), y.to(device))
                (loss / group).backward()
            if final:
                optimiser.step()
                optimiser.zero_grad(set_to_none=True)
            total += float(loss.detach()) * len(chosen)
            seen += len(chosen)
        record = EpochRecord(epoch, global_mean(total, seen), learning_rate=rate)
        if validation is not None and len(validation[0]):
            record.validation_loss, scores = validate(model, loss_fn, validation, names, batch_size, device)
            dice = scores.mean_dice()
            record.validation_mean_dice = None if math.isnan(dice) else dice
        record.seconds = time.perf_counter() - started
        history.append(record)
        best.offer(epoch, record.validation_mean_dice, model)
        dice = "" if record.validation_mean_dice is None else f", validation Dice {record.validation_mean_dice:.3f}"
        progress.update(epoch / epochs, f"epoch {epoch}/{epochs}, loss {record.train_loss:.4f}{dice}")
        if time_limit is not None and _out_of_time(time.perf_counter() - began, record.seconds, time_limit):
            break
    best.restore(model)
    history[(best.epoch or len(history)) - 1].kept = True
    model.eval()
    return history


def _out_of_time(elapsed: float, last_epoch: float, limit: float) -> bool:
    """Whether another epoch like the last would end after ``limit`` seconds; the same answer on every process."""
    return global_mean(float(elapsed + last_epoch > limit), 1) > 0


def training_loss(weights: np.ndarray | None, dice_loss: bool, per_image: bool = False) -> nn.Module:
    """(Weighted) cross-entropy, plus soft Dice over the finding classes when ``dice_loss``: over the batch, or
    per slice and class present in its reference when ``per_image``."""
    if not dice_loss:
        return WeightedCrossEntropyLoss(weights)
    if per_image:
        return PresentClassDiceLoss(None if weights is None else torch.as_tensor(weights))
    from radassist.liver.losses import CrossEntropyDiceLoss

    return CrossEntropyDiceLoss(class_weights=None if weights is None else torch.as_tensor(weights))


def _batches(order: Sequence[int], batch_size: int, skip_single: bool) -> list[list[int]]:
    """An epoch's batches of ``order``; a last batch of one image is left out when ``skip_single`` (batch norm
    cannot train on a single image's statistics). Every process has as many items, so all leave it out."""
    chunks = [list(order[start:start + batch_size]) for start in range(0, len(order), batch_size)]
    return [chunk for chunk in chunks if not (skip_single and len(chunk) < 2)]


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def validate(model: nn.Module, loss_fn: nn.Module, data: tuple[np.ndarray, np.ndarray], class_labels: Sequence[str],
             batch_size: int = 8, device: Any = "cpu") -> tuple[float, SegmentationScores]:
    """Mean loss and scores of ``model`` on (images, masks); under torchrun each process scores its share and the
    sums are combined, so every process gets the scores of the whole set."""
    device = torch.device(getattr(device, "device", device))
    share = np.asarray(shard(range(len(data[0]))), dtype=np.int64)
    images, masks = data[0][share], data[1][share]
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
            y = torch.from_numpy(masks[start:start + batch_size].astype(np.int64)).to(device)
            total += float(loss_fn(model(x), y)) * len(x)
    return global_mean(total, len(images)), validation_scores(model, *data, class_labels, batch_size, device)


def network_for(config: InfectionTrainConfig, num_classes: int,
                init: InitWeights | None = None) -> tuple[str, Any, nn.Module]:
    """(registry name, config, network) to train: fresh, or ``init``'s weights when they are a network of the
    configured architecture, settings and class count (else InputError)."""
    name = ARCHITECTURES[config.architecture]
    return (name, *network_to_train(name, {"out_channels": num_classes, **dict(config.model)}, config.seed, init))


def train_infection(dataset: SliceDataset, config: InfectionTrainConfig = InfectionTrainConfig(),
                    label_table: list[dict[str, Any]] | None = None, progress: Progress | None = None,
                    device: Any = "cpu", init: InitWeights | None = None) -> TrainedInfectionModel:
    """Train a network on ``dataset`` (slices from :func:`radassist.lung.infection.dataset.read_dataset`),
    from scratch or from ``init``'s weights (fine-tuning).

    The number of classes is the label table's (default: background + ground glass, consolidation, effusion).
    """
    progress = progress or Progress()
    label_table = list(label_table or default_label_table())
    num_classes = max(int(e["value"]) for e in label_table) + 1
    if len(dataset) == 0:
        raise InputError(None, "the training data holds no slices")
    if dataset.max_label >= num_classes:
        raise InputError(None, f"the masks hold label {dataset.max_label}, but the label table has classes "
                               f"0..{num_classes - 1}")
    device = torch.device(getattr(device, "device", device))
    name, arch_config, model = network_for(config, num_classes, init)
    multiple = getattr(model, "size_multiple", 1)
    if config.image_size[0] % multiple or config.image_size[1] % multiple:
        raise InputError(None, f"image size {config.image_size} must be a multiple of {multiple} for this network")
    init_distributed(device)  # joins torchrun's process group; nothing in a single process
    progress.update(0.0, f"resizing {len(dataset)} slices to {config.image_size[0]}x{config.image_size[1]}")
    images, masks = fit_dataset(dataset, config.image_size)
    train, held_out = split_indices(len(dataset), config.validation_fraction, config.seed)
    frequencies = class_frequencies(masks[train], num_classes)
    weights = weights_from_frequencies(frequencies) if config.balanced_loss else None
    names = class_names(label_table, num_classes)
    validation_data = (images[held_out], masks[held_out]) if held_out else None
    history = fit_network(model, images[train], masks[train], weights, config.epochs, config.learning_rate,
                          config.batch_size, config.seed, progress.sub(0.02, 0.98), device, validation_data, names,
                          config.accumulation_steps, config.augment, config.lr_schedule, config.dice_loss,
                          None if config.time_limit_minutes is None else 60.0 * config.time_limit_minutes,
                          config.dice_per_image)
    validation = None
    if validation_data is not None:
        loss_fn = training_loss(weights, config.dice_loss, config.dice_per_image).to(device)
        validation = validate(model, loss_fn, validation_data, names, config.batch_size, device)[1]
    offsets = None
    if config.tune_class_offsets and validation_data is not None:
        progress.update(0.99, "choosing class offsets on the validation slices")
        offsets = choose_class_offsets(log_probabilities(model, validation_data[0], config.batch_size, device),
                                       validation_data[1], names)
    progress.update(1.0, "training finished")
    return TrainedInfectionModel(model.cpu(), name, arch_config, label_table,
                                 weights if weights is not None else np.ones(num_classes, np.float32), history,
                                 validation, config, [dataset.names[i] for i in train],
                                 [dataset.names[i] for i in held_out], None if init is None else init.to_dict(),
                                 offsets)


def absent_classes(dataset: SliceDataset, num_classes: int) -> list[int]:
    """Classes with no pixel in ``dataset`` (their weight is 0 and the network cannot learn them)."""
    return [c for c, present in enumerate(class_frequencies(dataset.masks, num_classes).present) if not present]


__all__ = ["EpochRecord", "InfectionTrainConfig", "TrainedInfectionModel", "absent_classes", "build_network",
           "fit_network", "network_for", "predict_labels", "split_indices", "train_infection", "validate"]
