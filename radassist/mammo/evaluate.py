"""Score GMIC on an exam list: ROC AUC (with confidence intervals) per class at image and at breast level, and
how well the saliency maps find the lesions (Dice against the lesion masks).

A breast's score is the mean of its views' scores and its label the maximum of its views' labels. Localisation is
scored on the view's own grid, per class, on images that have a mask of that class: the soft Dice
``2 sum(s m) / (sum s + sum m)`` of the saliency map s, and the Dice of the map thresholded at
``dice_threshold``. A mask may be drawn on the image grid or, like GMIC's sample masks, in the model's
2944 x 1920 window frame (then it is put back onto the image grid through the view's window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from radassist.errors import InputError
from radassist.io.mammogram import read_mammogram
from radassist.mammo.datasets import ExamRecord
from radassist.mammo.pipeline import CLASS_NAMES, GmicRunner, MammoConfig, ViewResult, classify_exam
from radassist.metrics.classification import METHODS, auc_interval
from radassist.results.tables import Report
from radassist.runtime.progress import Progress


@dataclass(frozen=True)
class MammoEvaluationConfig:
    """How scores are summarised."""

    ci_method: str = "delong"  # or "bootstrap"
    confidence: float = 0.95
    bootstrap_resamples: int = 2000
    seed: int = 0
    dice_threshold: float = 0.5  # saliency value above which a pixel counts as "found" for the binary Dice

    def __post_init__(self) -> None:
        if self.ci_method not in METHODS:
            raise InputError(None, f"the confidence interval method must be one of {', '.join(METHODS)}")
        if not 0.0 < self.confidence < 1.0:
            raise InputError(None, f"the confidence level must be within (0, 1), got {self.confidence}")


@dataclass
class ImageScore:
    """One view: truth, prediction and (where a mask exists) localisation per class."""

    exam: str
    view: str
    path: str
    labels: dict[str, int]
    probabilities: dict[str, float]
    soft_dice: dict[str, float] = field(default_factory=dict)
    dice: dict[str, float] = field(default_factory=dict)


@dataclass
class MammoEvaluation:
    """All image scores, breast scores and the summary numbers."""

    images: list[ImageScore]
    breasts: list[dict[str, Any]]
    auc: dict[str, dict[str, Any]]  # "image benign" -> AucResult.as_dict() or {"auc": None, "reason": ...}
    localisation: dict[str, dict[str, Any]]  # class -> mean soft Dice, mean Dice, images


def read_mask(path: Any, view: ViewResult) -> np.ndarray:
    """A lesion mask (8-bit PNG, non-zero = lesion) on the view's grid, from the image or the window frame."""
    try:
        with Image.open(path) as image:
            mask = np.asarray(image.convert("L")) > 0
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(path, f"is not a readable mask image ({exc})") from None
    window = view.prepared.window
    if mask.shape == tuple(view.mammogram.shape):
        return mask
    if mask.shape == tuple(window.input_shape):
        return window.to_image(mask, fill=False)
    raise InputError(path, f"is {mask.shape[0]} x {mask.shape[1]}; a mask must match its image "
                           f"{view.mammogram.shape} or the model window {tuple(window.input_shape)}")


def saliency_dice(saliency: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    """(soft Dice, Dice at ``threshold``) of a saliency map against a mask on the same grid."""
    s = np.asarray(saliency, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    soft = 2.0 * float((s * m).sum()) / max(float(s.sum() + m.sum()), 1e-12)
    found = s > threshold
    hard = 2.0 * float((found & m).sum()) / max(float(found.sum() + m.sum()), 1e-12)
    return soft, hard


def _auc(labels: list[int], scores: list[float], config: MammoEvaluationConfig) -> dict[str, Any]:
    positives, needed = int(sum(labels)), 2 if config.ci_method == "bootstrap" else 1
    if min(positives, len(labels) - positives) < needed:
        each = " (two of each for a bootstrap)" if needed == 2 else ""
        return {"auc": None, "reason": f"needs both classes{each}; {positives} positive of {len(labels)}"}
    return auc_interval(labels, scores, config.ci_method, config.confidence, config.bootstrap_resamples,
                        config.seed).as_dict()


def evaluate_exams(exams: list[ExamRecord], models: GmicRunner | list[GmicRunner],
                   config: MammoConfig = MammoConfig(), evaluation: MammoEvaluationConfig = MammoEvaluationConfig(),
                   progress: Progress | None = None) -> MammoEvaluation:
    """Classify every exam and score the predictions against the exam list's labels and masks."""
    progress = progress or Progress()
    images: list[ImageScore] = []
    breasts: list[dict[str, Any]] = []
    for number, exam in enumerate(exams):
        progress.update(number / len(exams), f"exam {exam.exam} ({number + 1}/{len(exams)})")
        mammograms = [read_mammogram(v.path, v.laterality, v.view) for v in exam.views]
        result = classify_exam(mammograms, models, config, progress.sub(number / len(exams),
                                                                        (number + 1) / len(exams)))
        for record in exam.views:
            view = result.view(record.name)
            score = ImageScore(exam.exam, record.name, str(record.path),
                               dict(zip(CLASS_NAMES, record.labels)), dict(view.probabilities))
            for index, kind in enumerate(CLASS_NAMES):
                mask_path = record.mask(kind)
                if mask_path is not None and index < view.saliency.shape[0]:
                    soft, hard = saliency_dice(view.saliency[index], read_mask(mask_path, view),
                                               evaluation.dice_threshold)
                    score.soft_dice[kind], score.dice[kind] = soft, hard
            images.append(score)
        for group in result.classification.groups:
            laterality = group.image_id[0]
            labels = exam.breast_labels(laterality)
            breasts.append({"exam": exam.exam, "breast": group.image_id, "views": group.attributes["views"],
                            **{f"{k}_label": v for k, v in zip(CLASS_NAMES, labels or ())},
                            **{f"{k}_probability": p for k, p in group.probabilities.items()}})
    auc, localisation = {}, {}
    for kind in CLASS_NAMES:
        auc[f"image {kind}"] = _auc([s.labels[kind] for s in images], [s.probabilities[kind] for s in images],
                                    evaluation)
        auc[f"breast {kind}"] = _auc([b[f"{kind}_label"] for b in breasts],
                                     [b[f"{kind}_probability"] for b in breasts], evaluation)
        soft = [s.soft_dice[kind] for s in images if kind in s.soft_dice]
        hard = [s.dice[kind] for s in images if kind in s.dice]
        localisation[kind] = {"images": len(soft), "mean_soft_dice": float(np.mean(soft)) if soft else None,
                              "mean_dice": float(np.mean(hard)) if hard else None}
    progress.update(1.0, "done")
    return MammoEvaluation(images, breasts, auc, localisation)


def evaluation_report(evaluation: MammoEvaluation, model: str = "") -> Report:
    """A Report: one row per image (labels, probabilities, Dice), the AUCs and Dice means as the summary."""
    rows = []
    for score in evaluation.images:
        row: dict[str, Any] = {"exam": score.exam, "view": score.view, "path": score.path}
        for kind in CLASS_NAMES:
            row[f"{kind}_label"] = score.labels[kind]
            row[f"{kind}_probability"] = score.probabilities.get(kind)
            row[f"{kind}_soft_dice"] = score.soft_dice.get(kind)
            row[f"{kind}_dice"] = score.dice.get(kind)
        rows.append(row)
    summary: dict[str, Any] = {"images": len(evaluation.images), "breasts": len(evaluation.breasts)}
    for name, result in evaluation.auc.items():
        key = name.replace(" ", "_")
        summary[f"{key}_auc"] = result.get("auc")
        summary[f"{key}_auc_ci"] = [result.get("ci_low"), result.get("ci_high")] if result.get("auc") is not None \
            else None
    for kind, values in evaluation.localisation.items():
        summary[f"{kind}_mean_soft_dice"] = values["mean_soft_dice"]
        summary[f"{kind}_mean_dice"] = values["mean_dice"]
    return Report(title="GMIC evaluation", rows=rows, summary=summary,
                  metadata={"model": model, "auc": evaluation.auc, "localisation": evaluation.localisation,
                            "breasts": evaluation.breasts})
