"""Score infection segmentations against ground-truth masks: per-class Dice and IoU, pixel accuracy and the
confusion matrix over the whole set (as JSON), plus the confusion matrix as a PNG for people.

Predictions come either from a network run on the data set's slices or from prediction masks on disk; scores add
up the confusion matrices of all slices (global scores), and the binary "any finding vs background" scores of the
study are given beside the multi-class ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from radassist.errors import InputError
from radassist.io.atomic import atomic_path
from radassist.lung.infection.dataset import SliceDataset, fit_dataset
from radassist.metrics.curves import pyplot, rendered
from radassist.metrics.segmentation import SegmentationScores, confusion_matrix
from radassist.runtime.progress import Progress
from radassist.runtime.slicewise import plan_fit, unfit_slices


def score_slices(truth: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
                 class_names: Sequence[str], names: Sequence[str] | None = None) -> SegmentationScores:
    """Global scores of paired label slices (confusion matrices added over the set)."""
    if len(truth) != len(predictions):
        raise ValueError(f"{len(truth)} truth slices but {len(predictions)} predictions")
    total = np.zeros((len(class_names), len(class_names)), dtype=np.int64)
    for index, (t, p) in enumerate(zip(truth, predictions)):
        if t.shape != p.shape:
            where = names[index] if names else str(index)
            raise InputError(where, f"prediction is {p.shape[::-1]} pixels, the ground truth {t.shape[::-1]}")
        total += confusion_matrix(t, p, len(class_names))
    return SegmentationScores(list(class_names), total)


def predict_dataset(network: Any, dataset: SliceDataset, image_size: tuple[int, int] | None, batch_size: int = 8,
                    device: Any = "cpu", progress: Progress | None = None) -> list[np.ndarray]:
    """The network's labels for every slice of ``dataset``, each at its slice's own size."""
    import torch

    progress = progress or Progress()
    if image_size is None:
        raise ValueError("evaluation needs the network's input size")
    images, _ = fit_dataset(dataset, image_size)
    predictions = []
    network.eval()
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            logits = network(torch.from_numpy(images[start:start + batch_size]).to(torch.device(str(device))))
            for offset, slice_logits in enumerate(logits.cpu()):
                original = dataset.images[start + offset].shape
                back = unfit_slices(slice_logits[np.newaxis], plan_fit(original, image_size))
                predictions.append(back[0].argmax(dim=0).numpy().astype(np.uint8))
            progress.update(min(start + batch_size, len(images)) / len(images), "evaluating")
    return predictions


def evaluation_document(scores: SegmentationScores, names: Sequence[str], model: str = "") -> dict[str, Any]:
    """The JSON written by ``radassist evaluate lung-infection``."""
    return {"task": "lung-infection-segmentation", "model": model, "slices": len(names),
            "multiclass": scores.to_dict(), "binary": scores.binary().to_dict()}


def confusion_png(scores: SegmentationScores, title: str = "Lung infection: confusion matrix") -> Image.Image:
    """A row-normalised confusion matrix (rows = truth) with counts and percentages in every cell."""
    names, counts = scores.class_names, scores.confusion
    rows = counts.astype(np.float64)
    totals = rows.sum(axis=1, keepdims=True)
    shares = np.divide(rows, totals, out=np.zeros_like(rows), where=totals > 0)
    size = 2.0 + 1.0 * len(names)
    figure, axes = pyplot().subplots(figsize=(size + 1.0, size), dpi=100)
    axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (t, p), share in np.ndenumerate(shares):
        axes.text(p, t, f"{int(counts[t, p])}\n{100 * share:.1f} %", ha="center", va="center", fontsize=8,
                  color="white" if share > 0.5 else "black")
    ticks = np.arange(len(names))
    axes.set_xticks(ticks, [name[:15] for name in names], rotation=30, ha="right")
    axes.set_yticks(ticks, [name[:22] for name in names])
    axes.set(xlabel="predicted class", ylabel="true class", title=title)
    figure.tight_layout()
    return rendered(figure)


def write_evaluation(document: dict[str, Any], scores: SegmentationScores, json_path: str | Path,
                     png_path: str | Path) -> None:
    """Write the metrics JSON and the confusion-matrix PNG, each atomically."""
    text = json.dumps(document, indent=2) + "\n"
    with atomic_path(json_path) as temp:
        temp.write_text(text, encoding="utf-8")
    with atomic_path(png_path) as temp:
        confusion_png(scores).save(temp, format="PNG")
