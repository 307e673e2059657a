"""Training the joint network as the paper did: random pairs of subjects each epoch, crops of 144x208x144, Adam at
2e-3, learning rate divided by 5 after 30 epochs without improvement of the validation loss, stop after 50.

Subjects are held in memory already normalised (z-score of each sequence inside its brain); a pair's moving and
fixed images share one crop box, since co-registered data sets (BraTS, aligned OASIS) put every subject on one
grid. Registration-only subjects (OASIS-style) have no tumour labels: their tumour target is "no tumour", which is
the truth for a healthy brain, so the segmentation term still teaches the network what healthy tissue looks like.

Each pair's crop is drawn from its own seeded generator (seed, epoch, position in the epoch), so a pair is cropped
the same way whichever process or batch it lands in. Under torchrun every process trains a DDP copy on its share
of each epoch's pairs (``batch_size`` per process), the micro-steps before an optimiser step of an accumulation
group run without gradient all-reduce, and the losses (training and validation, the latter split across the
processes) are averaged over all processes, so learning-rate schedule, best epoch and early stopping agree
everywhere. Fine-tuning starts from ``init`` weights of the same network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from radassist.annotation.retrain import InitWeights, check_init
from radassist.brain.losses import JointLossConfig, joint_loss
from radassist.brain.model import ARCHITECTURE_NAME, BrainJointConfig, BrainJointNet
from radassist.brain.pipeline import BrainImages
from radassist.brain.preprocess import (brain_mask_from, centred_box, ordered_modalities, resample_onto,
                                        zscore_in_brain)
from radassist.errors import InputError
from radassist.runtime.best_weights import BestWeights
from radassist.runtime.distributed import (accumulation_plan, accumulation_step, all_reduce_sum, global_mean,
                                           init_distributed, rank_order, shard, unwrap, wrap_ddp)
from radassist.runtime.progress import Progress


@dataclass(frozen=True)
class BrainTrainConfig:
    """Optimisation settings; defaults from the paper and its code."""

    epochs: int = 1000                                  # upper bound; early stopping ends training first
    batch_size: int = 2                                 # pairs per step (paper); per process under torchrun
    accumulation_steps: int = 1                         # batches per optimiser step; ours
    learning_rate: float = 2e-3                         # Adam (paper)
    lr_factor: float = 0.2                              # learning rate divided by 5 ...
    lr_patience: int = 30                               # ... after 30 epochs without improvement (paper)
    early_stop_patience: int = 50                       # stop after 50 epochs without improvement (paper)
    crop_size: tuple[int, int, int] = (144, 208, 144)   # (z, y, x) voxels (paper)
    loss: JointLossConfig = field(default_factory=JointLossConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.accumulation_steps < 1:
            raise ValueError("epochs, batch_size and accumulation_steps must be at least 1")
        if not 0 < self.lr_factor < 1:
            raise ValueError(f"lr_factor must be in (0, 1), got {self.lr_factor}")


@dataclass
class TrainingSubject:
    """One subject ready for training: (C, z, y, x) z-scored sequences, tumour classes, brain mask."""

    name: str
    images: np.ndarray
    tumour: np.ndarray | None
    brain: np.ndarray


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    validation_loss: float
    similarity: float
    segmentation: float
    learning_rate: float


@dataclass
class BrainTrainResult:
    """The best network (lowest validation loss), its epoch and the history."""

    model: BrainJointNet
    best_epoch: int
    best_validation_loss: float
    history: list[EpochRecord]
    channels: tuple[str, ...]
    finetuned_from: dict | None = None  # InitWeights.to_dict() of the starting weights


def prepare_subject(name: str, subject: BrainImages, channels: Sequence[str]) -> TrainingSubject:
    """Stack ``channels`` on the first one's grid, z-score each inside the brain, keep tumour classes."""
    missing = [c for c in channels if c not in subject.images]
    if missing:
        raise InputError(name, f"lacks sequence(s) {missing}")
    reference = subject.images[channels[0]].geometry
    arrays = [resample_onto(subject.images[c], reference).array.astype(np.float32) for c in channels]
    brain = np.asarray(subject.brain_mask, dtype=bool) if subject.brain_mask is not None else brain_mask_from(arrays)
    if not brain.any():
        raise InputError(name, "the brain mask is empty")
    tumour = None if subject.tumour is None else subject.tumour.flattened().astype(np.int64)
    return TrainingSubject(name, np.stack([zscore_in_brain(a, brain) for a in arrays]), tumour, brain)


def subject_channels(subjects: Sequence[BrainImages], channels: Sequence[str] | None) -> tuple[str, ...]:
    """The channels to train on: the given ones, else every sequence all subjects share."""
    if channels:
        return tuple(channels)
    shared = set.intersection(*(set(subject.images) for subject in subjects))
    if not shared:
        raise InputError(None, "the subjects share no MRI sequence")
    return tuple(ordered_modalities(list(shared)))


def _crop(subject: TrainingSubject, box) -> tuple[np.ndarray, np.ndarray]:
    images = box.extract(subject.images)
    tumour = np.zeros(images.shape[1:], np.int64) if subject.tumour is None else box.extract(subject.tumour)
    return images, tumour


def make_batch(subjects: Sequence[TrainingSubject], pairs: Sequence[tuple[int, int]], crop: Sequence[int],
               rng: np.random.Generator | Sequence[np.random.Generator] | None,
               multiple: int) -> dict[str, torch.Tensor]:
    """Tensors of one batch of (moving, fixed) pairs, cropped around both brains (randomly moved when ``rng``:
    one generator for the batch, or one per pair)."""
    size = [min(int(c), int(math.ceil(n / multiple) * multiple)) for c, n in zip(crop, subjects[0].brain.shape)]
    size = [int(math.ceil(s / multiple) * multiple) for s in size]
    moving, fixed, moving_tumour, fixed_tumour = [], [], [], []
    generators = list(rng) if isinstance(rng, Sequence) else [rng] * len(pairs)
    for (m, f), generator in zip(pairs, generators):
        if subjects[m].brain.shape != subjects[f].brain.shape:
            raise InputError(subjects[m].name, f"is not on the grid of {subjects[f].name}; training pairs must be "
                                               f"co-registered (same grid)")
        box = centred_box(subjects[f].brain.shape, size, generator, subjects[m].brain | subjects[f].brain)
        for subject, images, labels in ((subjects[m], moving, moving_tumour), (subjects[f], fixed, fixed_tumour)):
            image, tumour = _crop(subject, box)
            images.append(image)
            labels.append(tumour)
    stack = lambda arrays: torch.from_numpy(np.stack(arrays))  # noqa: E731
    return {"moving": stack(moving), "fixed": stack(fixed), "moving_tumour": stack(moving_tumour),
            "fixed_tumour": stack(fixed_tumour)}


def _loss(model: BrainJointNet, batch: dict[str, torch.Tensor], config: BrainTrainConfig, device: torch.device):
    batch = {k: v.to(device) for k, v in batch.items()}
    output = model(batch["moving"], batch["fixed"])
    return joint_loss(output, batch["moving"], batch["fixed"], config.loss, batch["moving_tumour"],
                      batch["fixed_tumour"])


def _validation_pairs(count: int) -> list[tuple[int, int]]:
    return [(i, (i + 1) % count) for i in range(count)] if count > 1 else []


def network_for(model_config: BrainJointConfig, init: InitWeights | None = None) -> BrainJointNet:
    """The network to train: fresh, or ``init``'s weights when they are a brain-joint network of this config
    (else InputError naming the settings that differ)."""
    if init is None:
        return BrainJointNet(model_config)
    check_init(init, ARCHITECTURE_NAME, asdict(model_config))
    return init.build()


def _crop_generators(seed: int, epoch: int, positions: Sequence[int]) -> list[np.random.Generator]:
    """One crop generator per pair, fixed by (seed, epoch, the pair's position in the epoch's list)."""
    return [np.random.default_rng([seed, epoch, position]) for position in positions]


def _train_epoch(model: torch.nn.Module, optimiser: torch.optim.Optimizer, train: Sequence[TrainingSubject],
                 config: BrainTrainConfig, epoch: int, multiple: int, device: torch.device) -> list[float]:
    """One pass over this process's share of the epoch's random pairs; the summed (total, similarity,
    segmentation) losses and the number of batches, over every process."""
    from radassist.brain.datasets import random_pairs

    pairs = random_pairs(len(train), np.random.default_rng([config.seed, epoch]))
    positions = rank_order(range(len(pairs)))
    chunks = [positions[start:start + config.batch_size] for start in range(0, len(positions), config.batch_size)]
    sums = [0.0, 0.0, 0.0]
    model.train()
    optimiser.zero_grad(set_to_none=True)
    for chunk, (group, final) in zip(chunks, accumulation_plan(len(chunks), config.accumulation_steps)):
        batch = make_batch(train, [pairs[i] for i in chunk], config.crop_size,
                           _crop_generators(config.seed, epoch, chunk), multiple)
        with accumulation_step(model, final):  # forward and backward: DDP's no_sync must cover both
            terms = _loss(model, batch, config, device)
            (terms.total / group).backward()
        if final:
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
        for index, value in enumerate((terms.total.detach(), terms.similarity, terms.segmentation)):
            sums[index] += float(value)
    return all_reduce_sum([*sums, len(chunks)])


def _validation_loss(model: torch.nn.Module, held_out: Sequence[TrainingSubject], config: BrainTrainConfig,
                     multiple: int, device: torch.device) -> float:
    """Mean loss over the fixed validation pairs; each process scores its share."""
    model.eval()
    total = 0.0
    pairs = shard(_validation_pairs(len(held_out)))
    with torch.no_grad():
        for pair in pairs:
            total += float(_loss(model, make_batch(held_out, [pair], config.crop_size, None, multiple), config,
                                 device).total)
    return global_mean(total, len(pairs))


def train_brain(train: Sequence[TrainingSubject], validation: Sequence[TrainingSubject],
                model_config: BrainJointConfig, config: BrainTrainConfig | None = None,
                progress: Progress | None = None, device: str | torch.device = "cpu",
                channels: Sequence[str] = (), init: InitWeights | None = None) -> BrainTrainResult:
    """Train from scratch, or from ``init``'s weights (fine-tuning); validation on fixed pairs of ``validation``
    (or of ``train`` when it has < 2 subjects)."""
    config = config or BrainTrainConfig()
    progress = progress or Progress()
    if len(train) < 2:
        raise InputError(None, "training needs at least two subjects to pair")
    device = torch.device(getattr(device, "device", device))
    torch.manual_seed(config.seed)
    network = network_for(model_config, init).to(device)
    init_distributed(device)  # joins torchrun's process group; nothing in a single process
    model = wrap_ddp(network, device)  # the network itself in a single process
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=config.lr_factor,
                                                           patience=config.lr_patience)
    held_out = validation if len(validation) >= 2 else train
    history: list[EpochRecord] = []
    best, waited = BestWeights(higher_is_better=False), 0
    multiple = model_config.size_multiple
    for epoch in range(1, config.epochs + 1):
        totals, similarity, segmentation, steps = _train_epoch(model, optimiser, train, config, epoch, multiple,
                                                               device)
        validation_loss = _validation_loss(network, held_out, config, multiple, device)
        scheduler.step(validation_loss)
        history.append(EpochRecord(epoch, totals / steps, validation_loss, similarity / steps, segmentation / steps,
                                   float(optimiser.param_groups[0]["lr"])))
        waited = 0 if best.offer(epoch, validation_loss, network) else waited + 1
        progress.update(epoch / config.epochs, f"epoch {epoch}: loss {totals / steps:.4f}, "
                                               f"validation {validation_loss:.4f}")
        if waited >= config.early_stop_patience:
            break
    network = unwrap(model)
    best.restore(network)  # none kept (no finite validation loss): the last epoch's weights
    network.eval()
    return BrainTrainResult(network, best.epoch or len(history), best.score, history, tuple(channels),
                            None if init is None else init.to_dict())
