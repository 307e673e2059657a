"""Published results on the 48 COVID-SemiSeg test slices, printed beside ours by ``radassist evaluate
lung-infection``.

Source: Fan et al., "Inf-Net: Automatic COVID-19 Lung Infection Segmentation from CT Images", IEEE TMI 2020 (the
authors' evaluation results, as quoted in RadAssist issue 19): the mean over images of the per-image Dice, measured
with their evaluation tool (the protocol of :func:`radassist.metrics.per_image.infnet_threshold_scores`). Every
model here trained on the same 50 labelled slices; Semi-Inf-Net also used 1,600 unlabelled slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INFECTION = "infection"  # any finding vs none (LungInfection-Test)
GROUND_GLASS = "ground-glass opacity"  # MultiClassInfection-Test, GT-1
CONSOLIDATION = "consolidation"  # MultiClassInfection-Test, GT-2
SOURCE = "Fan et al., Inf-Net, IEEE TMI 2020 (authors' evaluation results)"


@dataclass(frozen=True)
class PublishedRow:
    model: str
    dice: dict[str, float] = field(default_factory=dict)  # column -> mean per-image Dice


PUBLISHED_DICE: tuple[PublishedRow, ...] = (
    PublishedRow("U-Net", {INFECTION: 0.439}),
    PublishedRow("U-Net++", {INFECTION: 0.581}),
    PublishedRow("Inf-Net", {INFECTION: 0.682}),
    PublishedRow("Semi-Inf-Net (+1,600 unlabelled slices)", {INFECTION: 0.739}),
    PublishedRow("DeepLabV3+ (stride 8)", {GROUND_GLASS: 0.375, CONSOLIDATION: 0.117}),
    PublishedRow("DeepLabV3+ (stride 16)", {GROUND_GLASS: 0.443, CONSOLIDATION: 0.188}),
    PublishedRow("FCN8s", {GROUND_GLASS: 0.471, CONSOLIDATION: 0.221}),
    PublishedRow("Semi-Inf-Net + FCN8s", {GROUND_GLASS: 0.646, CONSOLIDATION: 0.238}),
    PublishedRow("Semi-Inf-Net + multi-class U-Net", {GROUND_GLASS: 0.624, CONSOLIDATION: 0.362}),
)
