"""Train GMIC on an exam list with image-level labels only, with a random search over learning rate and beta.

Each view is windowed as at inference (:func:`radassist.mammo.preprocess.prepare_view`, at ``image_size``) and,
when ``augment`` is on, its window is shifted by up to ``max_shift_px`` and turned upside down at random, as in
test-time augmentation. The loss is GMIC's (:func:`radassist.mammo.losses.gmic_loss`: BCE on the global, local
and fusion outputs plus beta times the saliency L1). Adam optimises it.

Random search (the paper tuned learning rate and beta this way): ``trials`` draws of the learning rate and of
beta, each log-uniform in its range, each trained from the same initialisation; the trial with the lowest
validation loss (training loss without a validation split) is kept. A fixed ``learning_rate``/``beta`` replaces
its search. Views are held in memory, which suits small and mid-sized sets; the seed fixes everything. Fine-tuning
starts every trial from ``init`` weights (:func:`radassist.annotation.retrain.resolve_init`) of a GMIC network
instead of a seeded random one, and the checkpoint records them.

Under torchrun every process trains a DDP copy on its share of each epoch's views (``batch_size`` per process),
validation views are split across the processes and their losses averaged, so every process keeps the same trial.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radassist.annotation.retrain import InitWeights, check_init
from radassist.errors import InputError
from radassist.io.mammogram import read_mammogram
from radassist.mammo.datasets import ExamRecord, ViewRecord, split_exams
from radassist.mammo.preprocess import PreparedView, PreprocessConfig, augmented_windows, prepare_view
from radassist.runtime.distributed import (get_rank, get_world_size, global_mean, init_distributed, rank_order, shard,
                                           wrap_ddp)
from radassist.runtime.progress import Progress

LABELS = ("benign", "malignant")


@dataclass(frozen=True)
class MammoTrainConfig:
    """Everything that decides a training run."""

    model: dict[str, Any] = field(default_factory=dict)  # GmicConfig fields; empty: the published network
    image_size: tuple[int, int] = (2944, 1920)  # training window (published); smaller for quick experiments
    epochs: int = 10
    batch_size: int = 2
    trials: int = 1  # random-search trials over learning rate and beta
    learning_rate: float | None = None  # fixed learning rate (None: searched in lr_range)
    lr_range: tuple[float, float] = (10 ** -5.5, 10 ** -4)  # log-uniform search range
    beta: float | None = None  # fixed saliency L1 weight (None: searched in beta_range)
    beta_range: tuple[float, float] = (10 ** -5.5, 10 ** -3.5)  # log-uniform search range
    weight_decay: float = 0.0
    augment: bool = True  # random window shifts and upside-down flips
    max_shift_px: int = 100  # augmentation shift (published training crop noise)
    validation_fraction: float = 0.2  # share of exams held out to choose the trial
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1 or self.batch_size < 1 or self.trials < 1:
            problems.append("epochs, batch size and trials must be at least 1")
        if self.learning_rate is not None and self.learning_rate <= 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        if self.beta is not None and self.beta < 0:
            problems.append(f"beta must not be negative, got {self.beta}")
        for name in ("lr_range", "beta_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                problems.append(f"{name} must be two positive numbers, low first, got {getattr(self, name)}")
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            problems.append(f"image_size must be two positive sizes, got {self.image_size}")
        if problems:
            raise InputError(None, "mammo training: " + "; ".join(problems))


@dataclass
class Trial:
    """One random-search draw and how it went (mean losses per epoch)."""

    learning_rate: float
    beta: float
    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)

    @property
    def score(self) -> float:
        """What trials are compared by: the last validation loss, else the last training loss."""
        return (self.validation_loss or self.train_loss)[-1]


@dataclass
class TrainResult:
    """The chosen network, its config, and every trial."""

    model: Any  # radassist.mammo.model.Gmic, eval mode, on the CPU
    config: Any  # GmicConfig
    trials: list[Trial]
    best: int
    train_images: int
    validation_images: int
    finetuned_from: dict[str, Any] | None = None  # InitWeights.to_dict() of the starting weights
    validation_auc: dict[str, float] = field(default_factory=dict)  # per class, of the chosen network

    @property
    def chosen(self) -> Trial:
        return self.trials[self.best]


@dataclass
class _Example:
    view: PreparedView
    labels: np.ndarray  # (2,) float32


def load_examples(exams: list[ExamRecord], image_size: tuple[int, int], crop_shape: tuple[int, int],
                  progress: Progress | None = None) -> list[_Example]:
    """Read and window every view of ``exams`` (laterality and view from the exam list)."""
    progress = progress or Progress()
    records: list[ViewRecord] = [view for exam in exams for view in exam.views]
    config = PreprocessConfig(input_size=tuple(image_size))
    examples = []
    for number, record in enumerate(records):
        progress.update(number / max(len(records), 1), f"reading {record.path.name}")
        mammogram = read_mammogram(record.path, record.laterality, record.view)
        examples.append(_Example(prepare_view(mammogram, config, crop_shape),
                                 np.array(record.labels, dtype=np.float32)))
    return examples


def _batch(examples: list[_Example], rng: np.random.Generator | None, config: MammoTrainConfig) -> tuple[Any, Any]:
    import torch

    images = []
    for example in examples:
        window = example.view.window
        if rng is not None:
            preprocess = PreprocessConfig(input_size=tuple(config.image_size), max_shift_px=config.max_shift_px)
            window = augmented_windows(window, 1, rng, preprocess)[0]
        images.append(example.view.model_input(window))
    return (torch.from_numpy(np.stack(images)[:, None]),
            torch.from_numpy(np.stack([example.labels for example in examples])))


def _mean_loss(model: Any, examples: list[_Example], loss_config: Any, config: MammoTrainConfig,
               device: Any) -> float:
    import torch

    from radassist.mammo.losses import gmic_loss

    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(examples), config.batch_size):
            chunk = examples[start:start + config.batch_size]
            images, labels = _batch(chunk, None, config)
            total += float(gmic_loss(model(images.to(device)), labels.to(device), loss_config).total) * len(chunk)
    return total / len(examples)


def validation_auc(model: Any, examples: list[_Example], config: MammoTrainConfig, device: Any) -> dict[str, float]:
    """Image-level ROC AUC of the fused prediction per class (``auc_benign``, ``auc_malignant``) on the held-out
    views: the number a registered model is listed with. A class whose held-out views are all one label has no
    AUC and is left out."""
    import torch

    from radassist.metrics.classification import roc_auc

    if not examples:
        return {}
    model.eval()
    scores = []
    with torch.no_grad():
        for start in range(0, len(examples), config.batch_size):
            images, _ = _batch(examples[start:start + config.batch_size], None, config)
            scores.append(model(images.to(device)).y_fusion.float().cpu().numpy())
    predicted = np.concatenate(scores)
    labels = np.stack([example.labels for example in examples])
    result = {}
    for index, name in enumerate(LABELS):
        if 0 < labels[:, index].sum() < len(labels):
            result[f"auc_{name}"] = roc_auc(labels[:, index], predicted[:, index])
    return result


def _draw(rng: np.random.Generator, fixed: float | None, bounds: tuple[float, float]) -> float:
    if fixed is not None:
        return float(fixed)
    return float(10 ** rng.uniform(np.log10(bounds[0]), np.log10(bounds[1])))


def network_config(config: MammoTrainConfig, init: InitWeights | None = None) -> Any:
    """The GMIC config to train: ``config.model``'s, or ``init``'s when it is a GMIC network agreeing with it
    (else InputError naming the difference)."""
    from radassist.runtime.registry import make_config

    return make_config("gmic", config.model) if init is None else check_init(init, "gmic", config.model)


def train_gmic(train: list[_Example], validation: list[_Example], config: MammoTrainConfig,
               device: Any = "cpu", progress: Progress | None = None, init: InitWeights | None = None) -> TrainResult:
    """Random search over (learning rate, beta), every trial from the same start (``init``'s weights when given);
    returns the best trial's network."""
    import torch

    from radassist.mammo.losses import GmicLossConfig, gmic_loss
    from radassist.runtime.registry import build_model

    if not train:
        raise InputError(None, "no training images")
    progress = progress or Progress()
    gmic_config = network_config(config, init)
    device = torch.device(getattr(device, "device", device))
    init_distributed(device)  # joins torchrun's process group; nothing in a single process
    search = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    initial = (build_model("gmic", gmic_config) if init is None else init.build()).state_dict()
    trials: list[Trial] = []
    best_state, best = None, 0
    steps = config.trials * config.epochs
    for number in range(config.trials):
        trial = Trial(_draw(search, config.learning_rate, config.lr_range),
                      _draw(search, config.beta, config.beta_range))
        network = build_model("gmic", gmic_config)
        network.load_state_dict(initial)
        network.to(device)
        model = wrap_ddp(network, device)  # the network itself in a single process
        optimiser = torch.optim.Adam(model.parameters(), lr=trial.learning_rate, weight_decay=config.weight_decay)
        loss_config = GmicLossConfig(beta=trial.beta)
        rng = np.random.default_rng([config.seed, number])  # the epoch order: the same on every process
        augment_rng = rng if get_world_size() == 1 else np.random.default_rng([config.seed, number, get_rank() + 1])
        for epoch in range(config.epochs):
            step = number * config.epochs + epoch
            progress.update(step / steps, f"trial {number + 1}/{config.trials} (lr {trial.learning_rate:.2g}, beta "
                                          f"{trial.beta:.2g}), epoch {epoch + 1}/{config.epochs}")
            model.train()
            order = rank_order(rng.permutation(len(train)))
            total, seen = 0.0, 0
            for start in range(0, len(order), config.batch_size):
                progress.check_cancelled()
                chunk = [train[i] for i in order[start:start + config.batch_size]]
                images, labels = _batch(chunk, augment_rng if config.augment else None, config)
                terms = gmic_loss(model(images.to(device)), labels.to(device), loss_config)
                optimiser.zero_grad()
                terms.total.backward()
                optimiser.step()
                total += float(terms.total.detach()) * len(chunk)
                seen += len(chunk)
            trial.train_loss.append(global_mean(total, seen))
            if validation:
                share = shard(validation)
                mean = _mean_loss(network, share, loss_config, config, device) if share else 0.0
                trial.validation_loss.append(global_mean(mean * len(share), len(share)))
        trials.append(trial)
        if best_state is None or trial.score < trials[best].score:
            best, best_state = number, {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    model = build_model("gmic", gmic_config)
    model.load_state_dict(best_state)
    auc = validation_auc(model.to(device), validation, config, device)  # every process: same network, same views
    progress.update(1.0, "done")
    return TrainResult(model.cpu().eval(), gmic_config, trials, best, len(train), len(validation),
                       None if init is None else init.to_dict(), auc)


def train_from_exams(exams: list[ExamRecord], config: MammoTrainConfig, device: Any = "cpu",
                     progress: Progress | None = None, init: InitWeights | None = None) -> TrainResult:
    """Split the exams, window their views and train (see :func:`train_gmic`)."""
    progress = progress or Progress()
    crop = tuple(network_config(config, init).crop_shape)
    training, validation = split_exams(exams, config.validation_fraction, config.seed)
    train = load_examples(training, config.image_size, crop, progress.sub(0.0, 0.05))
    held_out = load_examples(validation, config.image_size, crop, progress.sub(0.05, 0.1))
    return train_gmic(train, held_out, config, device, progress.sub(0.1, 1.0), init)


def trained_metadata(result: TrainResult, config: MammoTrainConfig, folder: str | Path,
                     data: str | Path | list[Path] | None = None, model_id: str | None = None) -> dict[str, Any]:
    """What the checkpoint of a run records: the data folder(s), the search and its losses, the input window and
    the starting weights; ``model_id`` (default: the folder's name) is what runs of it are reported as."""
    folders = [str(d) for d in data] if isinstance(data, list) else None if data is None else str(data)
    return {"modelId": model_id or Path(folder).name or "gmic-trained", "task": "mammography-classification",
            "data": folders,
            "training": {k: v for k, v in dataclasses.asdict(config).items() if k != "model"},
            "chosenTrial": result.best, "trials": [dataclasses.asdict(t) for t in result.trials],
            "trainImages": result.train_images, "validationImages": result.validation_images,
            "input": {"imageSize": list(config.image_size), "normalization": "image-standardize"},
            "finetunedFrom": result.finetuned_from, "validationAuc": result.validation_auc}


def save_trained(result: TrainResult, config: MammoTrainConfig, folder: str | Path,
                 data: str | Path | list[Path] | None = None, model_id: str | None = None) -> Path:
    """Write the chosen network as a RadAssist checkpoint folder that ``radassist mammo classify --model``
    runs, with :func:`trained_metadata`."""
    from radassist.runtime.checkpoints import save_checkpoint

    return save_checkpoint(result.model, "gmic", result.config, folder,
                           metadata=trained_metadata(result, config, folder, data, model_id),
                           labels=dict(enumerate(LABELS)))
