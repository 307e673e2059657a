"""Train Lung-DETR on a LUNA16 folder (or phantoms written in its layout) with the paper's recipe.

Ramezani et al. (Lung-DETR, arXiv:2409.05200) train Deformable DETR on 7.5 mm MIP slabs with AdamW (lr 1e-4,
backbone 1e-5, weight decay 1e-4), StepLR (step 10, gamma 0.1), gradient clipping 0.1, batch 6 with gradient
accumulation 6, mixed precision, flips / rotation / brightness / noise augmentation, patients split 70/20/10 and
12.7 % positive slabs in training and validation. :func:`train_lung` does that and writes into ``config.out``:

* ``checkpoints/last.pt``: everything a resumed run needs (model, optimiser, scheduler, gradient scaler, epoch, best
  score, torch RNG state, history), saved atomically after every epoch and loaded with ``weights_only=True``;
* ``best/``: the checkpoint (``model.safetensors`` + ``config.json``) with the best validation F1, written with
  :func:`radassist.runtime.checkpoints.save_checkpoint`, and registered as a user model so
  ``radassist lung detect --engine detr --model ID`` and ``radassist models list`` find it;
* ``train_log.csv`` (one row per epoch) with its curves in ``training_curves.png``, ``split.json`` (seriesuids
  of each split, slab counts) and ``tensorboard/`` when the ``tensorboard`` package is installed (it is not a
  dependency);
* ``slab_cache/``: the prepared slabs of every scan (see :class:`radassist.lung.datasets.SlabCache`).

Validation F1 is the paper's slab-level score: a predicted box at probability >= 0.5 is a true positive when it
overlaps a nodule box of its slab with IoU >= 0.5 (greedy, most probable first; counted with
:func:`radassist.metrics.detection.evaluate_detections`). The LUNA16 CPM of the validation scans (all slabs linked
into 3-D candidates, as the inference pipeline does) is logged beside it. A pipeline never reads files; training is
not a pipeline: it reads a data folder and owns its output folder, reporting through :class:`Progress`.

Under torchrun (``torchrun --nproc-per-node N -m radassist.cli train lung ...``) every process trains a DDP copy on
its share of each epoch's slabs: ``batch_size`` per process, gradients all-reduced once per optimiser step (the
earlier micro-steps of an accumulation group run under ``no_sync``), so an optimiser step sees N x batch_size x
accumulation_steps slabs. Rank 0 prepares the slab cache first (the others reuse it) and alone writes the split,
log, TensorBoard scalars, checkpoints and the registered model.

Fine-tuning (``init``, from :func:`radassist.annotation.retrain.resolve_init`) starts from a Lung-DETR of the same
config instead of a seeded random one; the start is kept in the training state, so a resumed run still records it
in ``best/``'s metadata (``finetunedFrom``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radassist.annotation.retrain import InitWeights, check_init
from radassist.errors import InputError, RadAssistError
from radassist.io.atomic import atomic_path, ensure_writable_dir
from radassist.lung.augment import AugmentConfig
from radassist.lung.datasets import (PreparedScan, SlabBatch, SlabCache, SlabDataset, SplitConfig, collate_slabs,
                                     read_luna16, select_slabs, slab_counts, split_by_patient)
from radassist.lung.evaluate import _fraction
from radassist.lung.losses import DetrLoss
from radassist.lung.model import (ARCHITECTURE_NAME, LungDetr, LungDetrConfig, build_lung_detr,
                                  optimizer_parameter_groups, postprocess_outputs)
from radassist.lung.preprocess import LungMaskConfig, SlabConfig
from radassist.metrics.curves import write_training_curves
from radassist.results.detections import Detection
from radassist.runtime.distributed import (accumulation_step, all_reduce_sum, barrier, init_distributed,
                                           is_main_process, main_process_first, rank_device_preference, rank_order,
                                           wrap_ddp)
from radassist.runtime.progress import Progress

STATE_FORMAT = "radassist-lung-detr-train-state"
STATE_VERSION = 1
STATE_FILE = "checkpoints/last.pt"
BEST_FOLDER = "best"
LOG_FILE = "train_log.csv"
SPLIT_FILE = "split.json"
CACHE_FOLDER = "slab_cache"
TENSORBOARD_FOLDER = "tensorboard"
DEFAULT_MODEL_ID = "lung-detr-user"


class TrainingDiverged(RadAssistError):
    """The loss became NaN or infinite: the learning rate is too high for this data or model."""


def model_preset(name: str) -> LungDetrConfig:
    """A model preset: "paper" is the full Lung-DETR (ResNet-50, 300 queries, 6+6 layers), "tiny" the CPU test
    model. Both train their BatchNorm (there are no ImageNet weights here to freeze)."""
    if name == "paper":
        return LungDetrConfig(frozen_batch_norm=False)
    if name == "tiny":
        return LungDetrConfig.tiny(frozen_batch_norm=False)
    raise InputError(None, f"unknown model config '{name}'; choose tiny or paper")


@dataclass(frozen=True)
class LungTrainConfig:
    """A training run: data, output folder, model, and the optimisation recipe with the paper's defaults."""

    data: Path
    out: Path
    model: LungDetrConfig = field(default_factory=lambda: model_preset("paper"))
    epochs: int = 50  # Deformable DETR's schedule length (Zhu et al.); set it to your budget
    batch_size: int = 6  # Lung-DETR paper: batch 6
    accumulation_steps: int = 6  # Lung-DETR paper: gradient accumulation 6
    lr: float = 1e-4  # Lung-DETR paper: AdamW lr 1e-4
    lr_backbone: float = 1e-5  # Lung-DETR paper: backbone lr 1e-5
    weight_decay: float = 1e-4  # Lung-DETR paper: weight decay 1e-4
    lr_step_epochs: int = 10  # Lung-DETR paper: StepLR step 10
    lr_gamma: float = 0.1  # Lung-DETR paper: StepLR gamma 0.1
    clip_max_norm: float = 0.1  # Lung-DETR paper: gradient clipping 0.1
    mixed_precision: bool = True  # Lung-DETR paper: mixed precision (where the device supports it: CUDA)
    split: SplitConfig = field(default_factory=SplitConfig)  # Lung-DETR paper: 70/20/10, 12.7 % positives
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # Lung-DETR paper: flips, +-15 deg, +-15 %, noise
    slabs: SlabConfig = field(default_factory=SlabConfig)  # Lung-DETR paper: 7.5 mm MIP
    mask: LungMaskConfig = field(default_factory=LungMaskConfig)
    min_lung_fraction: float = 0.0  # negatives need at least this share of lung in the slab
    seed: int = 0  # model initialisation, split, slab sampling, augmentation and batch order
    device: str = "auto"
    threads: int | None = None
    min_gpu_memory_gb: float | None = None  # a GPU with less free memory is passed over
    resume: bool = False
    model_id: str | None = DEFAULT_MODEL_ID  # the user model the best checkpoint becomes; None: not registered
    model_version: str = "1.0.0"
    cache_dir: Path | None = None  # default: <out>/slab_cache
    score_threshold: float = 0.5  # validation F1: probability a predicted box needs to count
    iou_threshold: float = 0.5  # validation F1: IoU a predicted box needs to hit a nodule box
    validation_froc: bool = True  # also link validation slabs into 3-D candidates and log the LUNA16 CPM

    def __post_init__(self) -> None:
        problems = []
        for name in ("epochs", "batch_size", "accumulation_steps", "lr_step_epochs"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "lr_backbone"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if self.weight_decay < 0 or self.clip_max_norm < 0 or not 0 < self.lr_gamma <= 1:
            problems.append("weight_decay and clip_max_norm must be >= 0 and lr_gamma within (0, 1]")
        if not 0.0 <= self.score_threshold <= 1.0 or not 0.0 < self.iou_threshold <= 1.0:
            problems.append("score_threshold must be within 0..1 and iou_threshold within (0, 1]")
        if self.seed < 0:
            problems.append(f"seed must be >= 0, got {self.seed}")
        if isinstance(self.model, LungDetrConfig) and (abs(self.model.mip_slab_mm - self.slabs.thickness_mm) > 1e-6
                                                       or self.model.lung_windows != self.slabs.lung_windows):
            problems.append(f"the model is tied to {self.model.mip_slab_mm:g} mm slabs with lung windows "
                            f"{'on' if self.model.lung_windows else 'off'}, but the slabs are "
                            f"{self.slabs.thickness_mm:g} mm with lung windows "
                            f"{'on' if self.slabs.lung_windows else 'off'}; set both alike")
        if problems:
            raise InputError(None, "training config: " + "; ".join(problems))

    @property
    def cache_folder(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir is not None else Path(self.out) / CACHE_FOLDER


@dataclass
class EpochRecord:
    """One row of ``train_log.csv``."""

    epoch: int
    lr: float
    lr_backbone: float
    train_loss: float
    train_loss_ce: float
    train_loss_bbox: float
    train_loss_giou: float
    train_slabs: int
    train_positive_slabs: int
    val_loss: float
    val_precision: float | None
    val_recall: float | None
    val_f1: float | None
    val_scan_cpm: float | None
    best: bool
    seconds: float

    def row(self) -> list[Any]:
        return ["" if (value := getattr(self, name)) is None else value for name in LOG_COLUMNS]


LOG_COLUMNS = tuple(f.name for f in dataclasses.fields(EpochRecord))


@dataclass
class TrainResult:
    """What a training run produced."""

    out: Path
    epochs: int  # epochs completed in total (a resumed run counts the earlier ones)
    history: list[EpochRecord]
    best_epoch: int
    best_f1: float | None
    best_checkpoint: Path
    state: Path
    log: Path
    split: dict[str, list[str]]
    slab_counts: dict[str, dict[str, Any]]
    resumed_from: int | None
    device: str
    registered_model: str | None = None
    registered_path: Path | None = None
    cache: dict[str, int] = field(default_factory=dict)
    finetuned_from: dict[str, Any] | None = None  # InitWeights.to_dict() of the starting weights

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else None
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "best_val_f1": self.best_f1,
                "final_train_loss": None if last is None else last.train_loss,
                "final_val_loss": None if last is None else last.val_loss,
                "val_scan_cpm": None if last is None else last.val_scan_cpm,
                "scans": {name: len(uids) for name, uids in self.split.items()}, "slabs": self.slab_counts,
                "resumed_from_epoch": self.resumed_from, "device": self.device,
                "registered_model": self.registered_model, "finetuned_from": self.finetuned_from,
                "best_checkpoint": str(self.best_checkpoint), "cache": dict(self.cache)}


# -- the pieces of one epoch ----------------------------------------------------------------------------------------

def _float_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The network's outputs in float32 (the loss and matcher run in full precision under mixed precision)."""
    result: dict[str, Any] = {name: outputs[name].float() for name in ("pred_logits", "pred_boxes")}
    if "aux_outputs" in outputs:
        result["aux_outputs"] = [{k: v.float() for k, v in aux.items()} for aux in outputs["aux_outputs"]]
    return result


def _autocast(device: torch.device, amp_dtype: torch.dtype | None) -> Any:
    return torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None)


def _to_device(batch: SlabBatch, device: torch.device) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    return batch.images.to(device), [{k: v.to(device) for k, v in t.items()} for t in batch.targets]


def batches(dataset: SlabDataset, batch_size: int, order: Sequence[int] | None = None) -> list[list[int]]:
    """Item indices of each batch, in ``order`` (default: the dataset's own)."""
    order = list(range(len(dataset))) if order is None else list(order)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def epoch_order(length: int, seed: int, epoch: int) -> list[int]:
    """The shuffled item order of an epoch: fixed by (seed, epoch), so a resumed run repeats it exactly."""
    return [int(i) for i in np.random.default_rng([seed, epoch, 1]).permutation(length)]


def dataset_loss(model: LungDetr, dataset: SlabDataset, criterion: DetrLoss, device: torch.device,
                 batch_size: int, amp_dtype: torch.dtype | None = None) -> float:
    """The mean total loss of the model (eval mode, no gradients) over a dataset, batch by batch."""
    return validate(model, dataset, criterion, device, batch_size, amp_dtype=amp_dtype).loss


@dataclass
class ValidationScores:
    loss: float
    precision: float | None
    recall: float | None
    f1: float | None
    scan_cpm: float | None


def _slab_detection(box: np.ndarray, probability: float) -> Detection:
    """A 2-D pixel box as a Detection one unit thick, so the 3-D IoU matching of radassist.metrics scores it as
    the 2-D IoU it is."""
    x0, y0, x1, y1 = (float(v) for v in box)
    width, height = max(x1 - x0, 0.0), max(y1 - y0, 0.0)
    return Detection(center=((x0 + x1) / 2, (y0 + y1) / 2, 0.0), size=(width, height, 1.0),
                     probability=float(np.clip(probability, 0.0, 1.0)), diameter_mm=max(width, height))


def slab_f1(predictions: Mapping[str, Sequence[Detection]], references: Mapping[str, Sequence[Detection]],
            iou_threshold: float, score_threshold: float) -> tuple[float | None, float | None, float | None]:
    """Precision, recall and F1 over slabs (keys: one per slab) with the paper's IoU matching."""
    from radassist.metrics.detection import evaluate_detections

    keys = sorted(set(predictions) | set(references))
    row = evaluate_detections(keys, references, predictions, iou_threshold=iou_threshold,
                              score_threshold=score_threshold).row()
    return row.precision, row.recall, row.f1


def validate(model: LungDetr, dataset: SlabDataset, criterion: DetrLoss, device: torch.device, batch_size: int,
             iou_threshold: float = 0.5, score_threshold: float = 0.5, amp_dtype: torch.dtype | None = None,
             scans: Sequence[PreparedScan] = (), nodules: Mapping[str, Sequence[Detection]] | None = None,
             excluded: Mapping[str, Sequence[Detection]] | None = None) -> ValidationScores:
    """Validation loss and slab-level precision / recall / F1 on ``dataset``; with ``scans`` and ``nodules`` also
    the LUNA16 CPM of the scans' 3-D candidates."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    predictions: dict[str, list[Detection]] = {}
    references: dict[str, list[Detection]] = {}
    with torch.no_grad():
        for indices in batches(dataset, batch_size):
            batch = collate_slabs([dataset[i] for i in indices])
            images, targets = _to_device(batch, device)
            with _autocast(device, amp_dtype):
                outputs = _float_outputs(model(images))
            total += float(criterion(outputs, targets)["loss"]) * len(indices)
            count += len(indices)
            found = postprocess_outputs(outputs, batch.size, score_threshold=0.0, top_k=model.config.num_queries)
            for uid, slab, truth, image in zip(batch.uids, batch.slabs, batch.pixel_boxes, found):
                key = f"{uid}#{slab}"
                references[key] = [_slab_detection(b, 1.0) for b in truth.numpy()]
                predictions[key] = [_slab_detection(b, s) for b, s in zip(image.boxes, image.scores)]
    precision, recall, f1 = slab_f1(predictions, references, iou_threshold, score_threshold)
    cpm = None
    if scans and nodules is not None:
        cpm = scan_cpm(model, scans, nodules, excluded or {}, device, batch_size, amp_dtype)
    model.train(was_training)
    return ValidationScores(total / max(count, 1), precision, recall, f1, cpm)


def scan_cpm(model: LungDetr, scans: Sequence[PreparedScan], nodules: Mapping[str, Sequence[Detection]],
             excluded: Mapping[str, Sequence[Detection]], device: torch.device, batch_size: int,
             amp_dtype: torch.dtype | None = None) -> float | None:
    """LUNA16 CPM of the model on whole scans: every slab, boxes linked into 3-D candidates as at inference."""
    from radassist.lung.postprocess import LinkConfig, slab_boxes_to_detections
    from radassist.lung.slab_inference import detect_on_slabs
    from radassist.metrics.froc import evaluate_froc

    def run_batch(images: np.ndarray) -> dict[str, Any]:
        with torch.no_grad(), _autocast(device, amp_dtype):
            return _float_outputs(model(torch.from_numpy(images).to(device)))

    candidates: dict[str, list[Detection]] = {}
    for scan in scans:
        stack = scan.stack()
        per_slab = detect_on_slabs(stack, run_batch, model.config.in_channels, batch_size)
        candidates[scan.uid] = slab_boxes_to_detections(per_slab, stack, LinkConfig())
    uids = [scan.uid for scan in scans]
    try:
        return evaluate_froc(uids, {u: list(nodules.get(u, [])) for u in uids}, candidates,
                             {u: list(excluded.get(u, [])) for u in uids}, bootstrap_samples=0).cpm
    except ValueError:  # no nodule in the validation scans: sensitivity is undefined
        return None


# -- state, log and registration ------------------------------------------------------------------------------------

def save_state(path: Path, *, epoch: int, model: LungDetr, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
               best: Mapping[str, Any], history: Sequence[EpochRecord], split: Mapping[str, list[str]],
               init: Mapping[str, Any] | None = None) -> Path:
    """Everything a resumed run needs (``init``: the starting weights of a fine-tuning run), written atomically (a
    crash mid-write keeps the previous state)."""
    from radassist.runtime.registry import config_to_dict

    state = {"format": STATE_FORMAT, "version": STATE_VERSION, "epoch": int(epoch),
             "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "scaler": scaler.state_dict(), "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
             "best": json.dumps(dict(best)), "history": json.dumps([dataclasses.asdict(r) for r in history]),
             "model_config": json.dumps(config_to_dict(model.config)), "split": json.dumps(dict(split)),
             "init": json.dumps(None if init is None else dict(init))}
    with atomic_path(path) as temp:
        torch.save(state, temp)
    return path


def load_state(path: Path) -> dict[str, Any]:
    """A saved training state (tensors and plain values only: ``weights_only=True``)."""
    if not path.is_file():
        raise InputError(path, "no training state to resume: this output folder has no checkpoints/last.pt "
                               "(start without --resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file fails in many ways
        raise InputError(path, f"is not a readable training state ({str(error).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise InputError(path, f"is not a Lung-DETR training state (no format '{STATE_FORMAT}')")
    if state.get("version") != STATE_VERSION:
        raise InputError(path, f"training state version {state.get('version')} is not {STATE_VERSION}")
    return state


def saved_model_config(out: str | Path) -> LungDetrConfig:
    """The model config of the run saved in ``out``: what a resumed run continues with when no --config is given
    (a fine-tuning run's network came from --model, not from a preset)."""
    from radassist.runtime.registry import make_config

    return make_config(ARCHITECTURE_NAME, json.loads(load_state(Path(out) / STATE_FILE)["model_config"]))


def write_log(path: Path, history: Sequence[EpochRecord]) -> Path:
    """``train_log.csv``: one row per epoch, rewritten whole (atomically) after every epoch."""
    with atomic_path(path) as temp, temp.open("w", encoding="utf-8") as handle:  # as write_text: native newlines
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(LOG_COLUMNS)
        writer.writerows(record.row() for record in history)
    return path


def _write_json(path: Path, data: Any) -> Path:
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


class _TensorBoard:
    """Scalars to TensorBoard when the tensorboard package is installed (and ``enabled``); nothing otherwise."""

    def __init__(self, folder: Path, enabled: bool = True) -> None:
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                return
            self.writer = SummaryWriter(log_dir=str(folder))

    def add(self, record: EpochRecord) -> None:
        if self.writer is None:
            return
        for name in LOG_COLUMNS[1:]:
            value = getattr(record, name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, value, record.epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def check_model_id(model_id: str) -> None:
    """Refuse an id that would shadow a model of the bundled or a site catalogue, before any training."""
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.registry import MODEL_ID_PATTERN

    if not MODEL_ID_PATTERN.match(model_id):
        raise InputError(None, f"model id '{model_id}' must be lower-case letters and digits joined by '-'")
    catalog = load_catalog()
    if model_id in catalog.ids():
        entry = catalog.get(model_id)
        if entry.status != "user-import":
            raise InputError(None, f"model id '{model_id}' belongs to the catalogue model {entry.label}; give the "
                                   f"trained model an id of its own (--model-id)")


def register_trained_model(checkpoint: Path, model_id: str, version: str, title: str) -> Path:
    """Install the best checkpoint as user model ``model_id`` (replacing an earlier training of the same id and
    version), so the catalogue lists it and the detection pipeline loads it by id."""
    from radassist.runtime import paths
    from radassist.runtime.checkpoints import WEIGHTS_NAME
    from radassist.runtime.registry import import_model, remove_user_entry

    check_model_id(model_id)
    remove_user_entry(model_id, version)
    previous = paths.models_dir() / model_id / version
    if previous.exists():
        shutil.rmtree(previous)
    return import_model(ARCHITECTURE_NAME, Path(checkpoint) / WEIGHTS_NAME, model_id, version=version, title=title)


# -- the training run -----------------------------------------------------------------------------------------------

def _is_better(f1: float | None, loss: float, best: Mapping[str, Any]) -> bool:
    """Higher validation F1 wins; at equal F1 (e.g. none found yet) the lower validation loss."""
    if best.get("epoch") is None:
        return True
    current, previous = (f1 or 0.0), (best.get("f1") or 0.0)
    if not math.isclose(current, previous, abs_tol=1e-12):
        return current > previous
    return loss < float(best["val_loss"])


def train_lung(config: LungTrainConfig, progress: Progress | None = None,
               init: InitWeights | None = None) -> TrainResult:
    """Train (or resume training) Lung-DETR as ``config`` says, from ``init``'s weights when given (fine-tuning);
    see the module text for what is written."""
    from radassist.runtime.checkpoints import save_checkpoint
    from radassist.runtime.device import choose_device
    from radassist.runtime.registry import config_to_dict

    progress = progress or Progress()
    if init is not None:
        if config.resume:
            raise InputError(None, f"--model {init.source}: a resumed run continues from its own saved weights; "
                                   f"leave out --model (the run keeps recording where it started)")
        check_init(init, ARCHITECTURE_NAME, config_to_dict(config.model))
    out = ensure_writable_dir(config.out)
    state_path = out / STATE_FILE
    if config.model_id is not None:
        check_model_id(config.model_id)
    if state_path.exists() and not config.resume:
        raise InputError(out, "already holds a training run (checkpoints/last.pt); continue it with --resume or "
                              "choose another output folder")
    state = load_state(state_path) if config.resume else None

    data = read_luna16(config.data)
    if state is not None:
        split = json.loads(state["split"])
        missing = [uid for uids in split.values() for uid in uids if uid not in {s.uid for s in data.scans}]
        if missing:
            raise InputError(config.data, f"lacks {len(missing)} scan(s) of the run being resumed, e.g. "
                                          f"{missing[0]}; resume with the same data folder")
    else:
        split = split_by_patient(data, config.split.fractions, config.split.seed + config.seed).to_dict()

    choice = choose_device(rank_device_preference(config.device), min_free_memory_gb=config.min_gpu_memory_gb,
                           threads=config.threads, mixed_precision=config.mixed_precision)
    device, amp_dtype = choice.device, choice.amp_dtype
    init_distributed(device)  # joins torchrun's process group; nothing in a single process
    barrier()  # every rank has passed the checks above before rank 0 writes anything
    main = is_main_process()
    progress.update(0.0, f"preparing slabs on {device}")
    cache = SlabCache(config.cache_folder, config.slabs, config.mask)
    preparing = progress.sub(0.0, 0.1)
    with main_process_first():  # rank 0 fills the slab cache, the other ranks read it; the test split is not needed
        train_scans = cache.prepare(data, split["train"], preparing.sub(0.0, 0.75))
        validation_scans = cache.prepare(data, split["validation"], preparing.sub(0.75, 1.0))
    ratio_train, ratio_validation, _ = config.split.positive_ratio
    train_items = select_slabs(train_scans, ratio_train, config.seed, config.min_lung_fraction)
    validation_items = select_slabs(validation_scans, ratio_validation, config.seed + 1, config.min_lung_fraction)
    counts = {"train": slab_counts(train_scans, train_items),
              "validation": slab_counts(validation_scans, validation_items)}
    if not counts["train"]["positive_slabs"]:
        raise InputError(config.data, "the training split has no slab with a nodule; add scans with nodules")
    channels = config.model.in_channels
    train_set = SlabDataset(train_scans, train_items, config.augment, config.seed, channels)
    validation_set = SlabDataset(validation_scans, validation_items, None, config.seed, channels)
    if main:
        _write_json(out / SPLIT_FILE, {"split": split, "slabs": counts, "seed": config.seed,
                                       "fractions": list(config.split.fractions),
                                       "positive_ratio": list(config.split.positive_ratio), "data": str(config.data)})

    torch.manual_seed(config.seed)
    model = (build_lung_detr(config.model) if init is None else init.build()).to(device)
    start_weights = None if init is None else init.to_dict()
    criterion = DetrLoss(config.model)
    optimizer = torch.optim.AdamW(optimizer_parameter_groups(model, config.lr, config.lr_backbone),
                                  lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step_epochs, gamma=config.lr_gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    history: list[EpochRecord] = []
    best: dict[str, Any] = {"epoch": None, "f1": None, "val_loss": None}
    start_epoch = 0
    if state is not None:
        start_weights = json.loads(state.get("init") or "null")
        if json.loads(state["model_config"]) != json.loads(json.dumps(config_to_dict(config.model))):
            raise InputError(state_path, "was saved for another model config; resume with the same --config")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        best = json.loads(state["best"])
        history = [EpochRecord(**r) for r in json.loads(state["history"])]
        start_epoch = int(state["epoch"])
    resumed_from = start_epoch if state is not None else None
    trained = wrap_ddp(model, device)  # the model itself in a single process

    board = _TensorBoard(out / TENSORBOARD_FOLDER, enabled=main)
    training = progress.sub(0.1, 0.98)
    epochs_to_run = max(config.epochs - start_epoch, 0)
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            epoch_progress = training.sub((epoch - start_epoch) / max(epochs_to_run, 1),
                                          (epoch - start_epoch + 1) / max(epochs_to_run, 1))
            losses = run_epoch(trained, criterion, optimizer, scaler, train_set, epoch, config, device, amp_dtype,
                               epoch_progress.sub(0.0, 0.85))
            rates = [group["lr"] for group in optimizer.param_groups]
            scheduler.step()
            epoch_progress.update(0.85, f"epoch {epoch + 1}: validation")
            scores = validate(model, validation_set, criterion, device, config.batch_size, config.iou_threshold,
                              config.score_threshold, amp_dtype,
                              validation_scans if config.validation_froc else (), data.nodules, data.excluded)
            improved = _is_better(scores.f1, scores.loss, best)
            record = EpochRecord(epoch=epoch + 1, lr=rates[0], lr_backbone=rates[1] if len(rates) > 1 else rates[0],
                                 train_loss=losses["loss"], train_loss_ce=losses["loss_ce"],
                                 train_loss_bbox=losses["loss_bbox"], train_loss_giou=losses["loss_giou"],
                                 train_slabs=len(train_set), train_positive_slabs=counts["train"]["positive_slabs"],
                                 val_loss=scores.loss, val_precision=scores.precision, val_recall=scores.recall,
                                 val_f1=scores.f1, val_scan_cpm=scores.scan_cpm, best=improved,
                                 seconds=round(time.perf_counter() - started, 2))
            history.append(record)
            if improved:
                best = {"epoch": epoch + 1, "f1": scores.f1, "val_loss": scores.loss}
            if improved and main:
                save_checkpoint(model, ARCHITECTURE_NAME, config.model, out / BEST_FOLDER,
                                metadata={"task": "lung-nodule-detection", "trainedWith": "radassist train lung",
                                          "data": str(config.data), "epoch": epoch + 1, "valF1": scores.f1,
                                          "valLoss": scores.loss, "valScanCpm": scores.scan_cpm,
                                          "seed": config.seed, "modelId": config.model_id or "",
                                          "finetunedFrom": start_weights},
                                labels={1: "lung nodule"})
            if main:
                write_log(out / LOG_FILE, history)
                write_training_curves(out / LOG_FILE, title="Lung-DETR")
                board.add(record)
                save_state(state_path, epoch=epoch + 1, model=model, optimizer=optimizer, scheduler=scheduler,
                           scaler=scaler, best=best, history=history, split=split, init=start_weights)
            epoch_progress.update(1.0, f"epoch {epoch + 1}/{config.epochs}: loss {record.train_loss:.3f}, "
                                       f"validation F1 {_fraction(scores.f1)}")
    finally:
        board.close()

    if best.get("epoch") is None or (main and not (out / BEST_FOLDER).is_dir()):
        raise InputError(out, "has no best checkpoint: no epoch was trained (raise --epochs)")
    registered_path = None
    if config.model_id is not None and main:
        progress.update(0.99, f"registering model {config.model_id}")
        title = (f"Lung-DETR trained on {Path(config.data).name} (epoch {best['epoch']}, validation F1 "
                 f"{_fraction(best['f1'])})")
        registered_path = register_trained_model(out / BEST_FOLDER, config.model_id, config.model_version, title)
    barrier()  # the other ranks return once rank 0's checkpoint and registration are in place
    progress.update(1.0, "training done")
    return TrainResult(out=out, epochs=len(history), history=history, best_epoch=int(best["epoch"]),
                       best_f1=best["f1"], best_checkpoint=out / BEST_FOLDER, state=state_path, log=out / LOG_FILE,
                       split=split, slab_counts=counts, resumed_from=resumed_from, device=choice.describe(),
                       registered_model=config.model_id, registered_path=registered_path,
                       cache={"computed": cache.computed, "reused": cache.reused}, finetuned_from=start_weights)


def run_epoch(model: LungDetr, criterion: DetrLoss, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
              dataset: SlabDataset, epoch: int, config: LungTrainConfig, device: torch.device,
              amp_dtype: torch.dtype | None, progress: Progress) -> dict[str, float]:
    """One pass over the training slabs: micro-batches of ``batch_size``, an optimiser step every
    ``accumulation_steps`` of them (and at the end), gradients clipped to ``clip_max_norm``. Returns the mean of
    each loss term (over all ranks). Under DDP this rank takes its share of the epoch's order, and the micro-steps
    before an optimiser step run without gradient all-reduce (``no_sync``)."""
    model.train()
    dataset.set_epoch(epoch)
    groups = batches(dataset, config.batch_size, rank_order(epoch_order(len(dataset), config.seed, epoch)))
    sums = {"loss": 0.0, "loss_ce": 0.0, "loss_bbox": 0.0, "loss_giou": 0.0}
    seen = 0
    optimizer.zero_grad(set_to_none=True)
    for number, indices in enumerate(groups):
        group_start = number - number % config.accumulation_steps
        group_size = min(config.accumulation_steps, len(groups) - group_start)
        images, targets = _to_device(collate_slabs([dataset[i] for i in indices]), device)
        final = (number + 1 - group_start) == group_size
        with accumulation_step(model, final):  # forward and backward: DDP's no_sync must cover both
            with _autocast(device, amp_dtype):
                outputs = model(images)
            losses = criterion(_float_outputs(outputs), targets)
            scaler.scale(losses["loss"] / group_size).backward()
        if final:
            scaler.unscale_(optimizer)
            if config.clip_max_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_max_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        for name in sums:
            sums[name] += float(losses[name].detach()) * len(indices)
        seen += len(indices)
        progress.update((number + 1) / len(groups), f"epoch {epoch + 1}: batch {number + 1}/{len(groups)}, "
                                                    f"loss {float(losses['loss'].detach()):.3f}")
    *totals, seen = all_reduce_sum([*sums.values(), seen])  # every rank sees the same sums (and stops together)
    sums = dict(zip(sums, totals))
    if not all(math.isfinite(v) for v in sums.values()):
        raise TrainingDiverged(f"the training loss became {sums['loss']} in epoch {epoch + 1}; lower --lr (the "
                               f"state of the last finished epoch is kept for --resume)")
    return {name: value / max(seen, 1) for name, value in sums.items()}


__all__ = ["BEST_FOLDER", "DEFAULT_MODEL_ID", "EpochRecord", "LOG_COLUMNS", "LOG_FILE", "LungTrainConfig",
           "STATE_FILE", "TrainResult", "TrainingDiverged", "ValidationScores", "batches", "check_model_id",
           "dataset_loss", "epoch_order", "load_state", "model_preset", "register_trained_model", "run_epoch",
           "save_state", "saved_model_config", "scan_cpm", "slab_f1", "train_lung", "validate", "write_log"]
