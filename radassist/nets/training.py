"""What the trainings of the 2-D segmentation networks (liver, lung infection) share: the network to start from,
argmax labels in batches, and validation scores over the slices of every torchrun process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from radassist.annotation.retrain import InitWeights, check_init
from radassist.metrics.segmentation import SegmentationScores, confusion_matrix
from radassist.runtime.distributed import all_reduce_sum, shard
from radassist.runtime.registry import get_architecture, make_config
from radassist.runtime.slicewise import class_argmax


def csv_number(value: float | None, digits: int = 6) -> str:
    """A train_log.csv cell: ``digits`` decimals, empty for None."""
    return "" if value is None else f"{value:.{digits}f}"


def network_to_train(architecture: str, values: Mapping[str, Any], seed: int,
                     init: InitWeights | None = None) -> tuple[Any, nn.Module]:
    """(config, network): a fresh ``architecture`` network with config ``values``, its weights drawn after
    ``torch.manual_seed(seed)``, or ``init``'s when its weights are such a network (else InputError)."""
    config = make_config(architecture, values) if init is None else check_init(init, architecture, values)
    torch.manual_seed(seed)
    return config, get_architecture(architecture).build(config) if init is None else init.build()


def predict_labels(model: nn.Module, images: np.ndarray, batch_size: int = 8, device: Any = "cpu") -> np.ndarray:
    """argmax labels (n, H, W) of a network on (n, C, H, W) network-ready images, in eval mode, no gradients."""
    model.eval()
    device = torch.device(getattr(device, "device", device))
    out = np.zeros((len(images), *images.shape[-2:]), dtype=np.uint8)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
            out[start:start + batch_size] = class_argmax(model(batch)).cpu().numpy()
    return out


def validation_scores(model: nn.Module, images: np.ndarray, masks: np.ndarray, class_names: Sequence[str],
                      batch_size: int, device: Any) -> SegmentationScores:
    """Scores of ``model`` on this process's share of (images, masks) with the confusion matrices of every
    process added, so every process gets the scores of the whole set."""
    share = np.asarray(shard(range(len(images))), dtype=np.int64)
    count = len(class_names)
    predicted = predict_labels(model, images[share], batch_size, device)
    matrix = all_reduce_sum(confusion_matrix(masks[share], predicted, count).ravel().tolist())
    return SegmentationScores(list(class_names), np.rint(matrix).astype(np.int64).reshape(count, count))
