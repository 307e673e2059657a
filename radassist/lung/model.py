"""Lung-DETR: Deformable DETR detecting lung nodules on maximum-intensity-projection slabs of chest CT.

Ramezani, Aleman and Letourneau (arXiv:2409.05200) train Deformable DETR (Zhu et al., ICLR 2021,
arXiv:2010.04159) with a ResNet-50 backbone and sigmoid focal loss on 7.5 mm MIP slabs. The network is the
paper's single-stage variant; iterative box refinement (Zhu et al., Sec. 4.2) is an option. Everything is our own
PyTorch code (no CUDA kernel, no torchvision), so the model trains on a CPU and exports to ONNX.

Importing this module registers the architecture "lung-detr" with :mod:`radassist.runtime.registry`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from radassist.errors import InputError
from radassist.lung.backbone import RESNETS, ResNetBackbone, fold_batch_norms
from radassist.lung.transformer import DeformableTransformer, SinePositionEncoding, refine_boxes
from radassist.nets.mlp import HeadMlp
from radassist.runtime.registry import register_architecture

ARCHITECTURE_NAME = "lung-detr"


@dataclass(frozen=True)
class LungDetrConfig:
    """Every constructor choice of :class:`LungDetr` and its loss, with the published defaults.

    Field names are the snake_case of the catalogue's ``architecture.config`` keys (``numQueries`` ->
    ``num_queries``), so a catalogue entry or a checkpoint's config.json builds this dataclass directly.
    """

    # backbone
    backbone: str = "resnet50"              # Lung-DETR and Deformable DETR: ResNet-50
    backbone_base_width: int = 64           # standard ResNet stem width (He et al. 2016); smaller only for tests
    frozen_batch_norm: bool = True          # Deformable DETR: FrozenBatchNorm2d on an ImageNet-pretrained ResNet;
    #                                         set False when training the backbone from scratch
    in_channels: int = 1                    # one HU-windowed MIP slab; 3 when the slab is repeated for RGB weights
    # transformer
    num_classes: int = 1                    # lung nodule (sigmoid classes: no background class)
    num_queries: int = 300                  # Deformable DETR: 300 object queries
    num_feature_levels: int = 4             # Deformable DETR: C3, C4, C5 + one stride-64 level
    hidden_dim: int = 256                   # Deformable DETR: d_model 256
    num_heads: int = 8                      # Deformable DETR: 8 attention heads
    encoder_layers: int = 6                 # Deformable DETR: 6 encoder layers
    decoder_layers: int = 6                 # Deformable DETR: 6 decoder layers
    dim_feedforward: int = 1024             # Deformable DETR: FFN width 1024
    dropout: float = 0.1                    # Deformable DETR: dropout 0.1
    encoder_points: int = 4                 # Deformable DETR: K = 4 sampling points (encoder)
    decoder_points: int = 4                 # Deformable DETR: K = 4 sampling points (decoder)
    position_temperature: float = 10000.0   # DETR sine encoding temperature
    position_scale: float = 2 * math.pi     # DETR sine encoding scale (2*pi)
    group_norm_groups: int = 32             # Deformable DETR: GroupNorm(32) after each input projection
    with_box_refine: bool = False           # Deformable DETR "+ iterative bounding box refinement" variant (off)
    aux_loss: bool = True                   # Deformable DETR: losses on every decoder layer
    # loss (sigmoid focal classification + L1 + GIoU, Hungarian matching)
    classification_loss: str = "focal"      # Lung-DETR: focal loss against the nodule/background imbalance
    focal_alpha: float = 0.25               # Lin et al. (RetinaNet) / Deformable DETR: alpha 0.25
    focal_gamma: float = 2.0                # Lin et al. (RetinaNet) / Deformable DETR: gamma 2
    class_prior: float = 0.01               # RetinaNet prior probability for the class-bias initialisation
    cost_class: float = 2.0                 # Deformable DETR matcher: class cost 2
    cost_bbox: float = 5.0                  # Deformable DETR matcher: L1 box cost 5
    cost_giou: float = 2.0                  # Deformable DETR matcher: GIoU cost 2
    class_loss_weight: float = 2.0          # Deformable DETR: cls_loss_coef 2
    bbox_loss_weight: float = 5.0           # Deformable DETR: bbox_loss_coef 5
    giou_loss_weight: float = 2.0           # Deformable DETR: giou_loss_coef 2
    # data the weights are tied to (read by preprocessing, stored with the checkpoint)
    mip_slab_mm: float = 7.5                # Lung-DETR: 7.5 mm maximum-intensity projections
    lung_windows: bool = True               # each slab cut to its lung box (radassist.lung.preprocess.SlabConfig)

    def __post_init__(self) -> None:
        problems = []
        if self.backbone not in RESNETS:
            problems.append(f"backbone '{self.backbone}' is not one of {', '.join(RESNETS)}")
        if self.classification_loss != "focal":
            problems.append(f"classification_loss '{self.classification_loss}' is not supported (only 'focal')")
        for name in ("backbone_base_width", "in_channels", "num_classes", "num_queries", "num_feature_levels",
                     "hidden_dim", "num_heads", "encoder_layers", "decoder_layers", "dim_feedforward",
                     "encoder_points", "decoder_points", "group_norm_groups"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_heads >= 1 and self.hidden_dim % self.num_heads:
            problems.append(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if self.hidden_dim % 4:
            problems.append(f"hidden_dim {self.hidden_dim} must be divisible by 4 (sine position encoding)")
        if self.group_norm_groups >= 1 and self.hidden_dim % self.group_norm_groups:
            problems.append(f"hidden_dim {self.hidden_dim} is not divisible by group_norm_groups "
                            f"{self.group_norm_groups}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.class_prior < 1.0:
            problems.append(f"class_prior must be in (0, 1), got {self.class_prior}")
        if problems:
            raise InputError(None, f"{ARCHITECTURE_NAME} config: " + "; ".join(problems))

    @classmethod
    def tiny(cls, **overrides: Any) -> "LungDetrConfig":
        """A ~0.24 M-parameter model for CPU tests: same structure (4 levels, deformable attention, focal
        loss, auxiliary losses), narrow and shallow."""
        values: dict[str, Any] = dict(backbone="resnet18", backbone_base_width=8, num_queries=16, hidden_dim=32,
                                      num_heads=4, encoder_layers=1, decoder_layers=2, dim_feedforward=64,
                                      dropout=0.0, encoder_points=2, decoder_points=2, group_norm_groups=8)
        return cls(**(values | overrides))


class MLP(HeadMlp):
    """DETR's box head (3 layers); its own name keeps the module's printed form."""


def _input_projection(in_channels: int, hidden_dim: int, groups: int, stride: int) -> nn.Sequential:
    """1x1 projection of a backbone level, or a 3x3 stride-2 convolution making an extra, coarser level."""
    conv = nn.Conv2d(in_channels, hidden_dim, kernel_size=1) if stride == 1 else \
        nn.Conv2d(in_channels, hidden_dim, kernel_size=3, stride=2, padding=1)
    nn.init.xavier_uniform_(conv.weight, gain=1.0)
    nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, nn.GroupNorm(groups, hidden_dim))


class LungDetr(nn.Module):
    """Deformable DETR for nodule boxes on 2-D slabs.

    ``forward(images, padding_mask=None)``: images (B, C, H, W), any H and W (multiples of 32 keep every level
    aligned with the image); optional padding mask (B, H, W), True where a pixel is padding. Returns
    ``pred_logits`` (B, Q, num_classes; apply a sigmoid), ``pred_boxes`` (B, Q, 4; normalised cx, cy, w, h in
    [0, 1] of the image) and ``aux_outputs`` (the same pair for each earlier decoder layer, when
    ``config.aux_loss``).
    """

    def __init__(self, config: LungDetrConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden_dim
        self.backbone = ResNetBackbone(config.backbone, config.in_channels, config.backbone_base_width,
                                       config.frozen_batch_norm)
        used = min(config.num_feature_levels, 3)
        self.backbone_levels = list(range(3 - used, 3))  # which of C3, C4, C5 feed the transformer
        projections = [_input_projection(self.backbone.out_channels[i], hidden, config.group_norm_groups, 1)
                       for i in self.backbone_levels]
        in_channels = self.backbone.out_channels[-1]
        for _ in range(config.num_feature_levels - used):
            projections.append(_input_projection(in_channels, hidden, config.group_norm_groups, 2))
            in_channels = hidden
        self.input_proj = nn.ModuleList(projections)
        self.position_encoding = SinePositionEncoding(hidden, config.position_temperature, config.position_scale)
        self.transformer = DeformableTransformer(hidden, config.num_heads, config.encoder_layers, config.decoder_layers,
                                                 config.dim_feedforward, config.dropout, config.num_feature_levels,
                                                 config.encoder_points, config.decoder_points)
        self.query_embed = nn.Embedding(config.num_queries, hidden * 2)
        class_embed = nn.Linear(hidden, config.num_classes)
        nn.init.constant_(class_embed.bias, -math.log((1 - config.class_prior) / config.class_prior))
        bbox_embed = MLP(hidden, hidden, 4, 3)
        nn.init.zeros_(bbox_embed.layers[-1].weight)
        nn.init.zeros_(bbox_embed.layers[-1].bias)
        layers = config.decoder_layers
        if config.with_box_refine:
            self.class_embed = nn.ModuleList(copy.deepcopy(class_embed) for _ in range(layers))
            self.bbox_embed = nn.ModuleList(copy.deepcopy(bbox_embed) for _ in range(layers))
            nn.init.constant_(self.bbox_embed[0].layers[-1].bias[2:], -2.0)
            self.transformer.decoder.bbox_embed = self.bbox_embed
        else:
            nn.init.constant_(bbox_embed.layers[-1].bias[2:], -2.0)  # start with small boxes (sigmoid(-2) = 0.12)
            self.class_embed = nn.ModuleList([class_embed] * layers)  # one head shared by every decoder layer
            self.bbox_embed = nn.ModuleList([bbox_embed] * layers)

    def _levels(self, images: torch.Tensor, padding_mask: torch.Tensor | None
                ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None, list[torch.Tensor]]:
        features = self.backbone(images)
        sources = [self.input_proj[i](features[level]) for i, level in enumerate(self.backbone_levels)]
        previous = features[-1]
        for projection in self.input_proj[len(sources):]:
            previous = projection(previous)
            sources.append(previous)
        masks = None
        if padding_mask is not None:
            masks = [torch.nn.functional.interpolate(padding_mask[:, None].to(images.dtype),
                                                     size=source.shape[-2:]).to(torch.bool)[:, 0]
                     for source in sources]
        positions = [self.position_encoding(source, None if masks is None else masks[i]).to(source.dtype)
                     for i, source in enumerate(sources)]
        return sources, masks, positions

    def forward(self, images: torch.Tensor, padding_mask: torch.Tensor | None = None) -> dict[str, Any]:
        sources, masks, positions = self._levels(images, padding_mask)
        outputs, _, references = self.transformer(sources, masks, positions, self.query_embed.weight)
        logits, boxes = [], []
        for layer, (hidden, reference) in enumerate(zip(outputs, references)):
            logits.append(self.class_embed[layer](hidden))
            boxes.append(refine_boxes(self.bbox_embed[layer](hidden), reference).sigmoid())
        result: dict[str, Any] = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.config.aux_loss:
            result["aux_outputs"] = [{"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1])]
        return result


class LungDetrInference(nn.Module):
    """The detector with a plain two-tensor output ``(pred_logits, pred_boxes)``: what ONNX export and inference
    backends run (no auxiliary outputs, no padding mask: a slab fills its whole image)."""

    output_names = ("pred_logits", "pred_boxes")

    def __init__(self, detector: LungDetr) -> None:
        super().__init__()
        self.detector = detector

    @classmethod
    def folded(cls, detector: LungDetr) -> "LungDetrInference":
        """An eval-mode copy of ``detector`` whose backbone batch norms are folded into its convolutions: the same
        outputs with one pass less over every backbone feature map. ``detector`` itself is left untouched."""
        inference_copy = copy.deepcopy(detector).eval()
        fold_batch_norms(inference_copy.backbone)
        return cls(inference_copy)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.detector(images)
        return outputs["pred_logits"], outputs["pred_boxes"]


def build_lung_detr(config: LungDetrConfig | None = None) -> LungDetr:
    """A freshly initialised Lung-DETR (the registry's build function)."""
    return LungDetr(config or LungDetrConfig())


# --- optimisation ---------------------------------------------------------------------------------------------

def optimizer_parameter_groups(model: LungDetr, lr: float = 1e-4, lr_backbone: float = 1e-5,
                               linear_projection_multiplier: float = 0.1) -> list[dict[str, Any]]:
    """AdamW parameter groups: the backbone at ``lr_backbone`` (Lung-DETR: 1e-5), the deformable attention's
    sampling-offset and reference-point layers at ``lr * linear_projection_multiplier`` (Deformable DETR: 0.1),
    everything else at ``lr`` (Lung-DETR: 1e-4). Frozen parameters are left out."""
    backbone, projections, rest = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.startswith("backbone."):
            backbone.append(parameter)
        elif "sampling_offsets" in name or "reference_points" in name:
            projections.append(parameter)
        else:
            rest.append(parameter)
    groups = [{"params": rest, "lr": lr},
              {"params": backbone, "lr": lr_backbone},
              {"params": projections, "lr": lr * linear_projection_multiplier}]
    return [group for group in groups if group["params"]]


# --- outputs -> boxes ------------------------------------------------------------------------------------------

@dataclass
class ImageDetections:
    """Detections on one image: boxes (N, 4) as pixel (x0, y0, x1, y1), scores (N,), class indices (N,).

    Pixel coordinates are continuous: x = 0 is the left edge of column 0, x = W its right edge; the centre of
    pixel column i is at i + 0.5.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def postprocess_outputs(outputs: Mapping[str, Any], image_size: tuple[int, int] | Sequence[tuple[int, int]],
                        score_threshold: float = 0.0, top_k: int = 100) -> list[ImageDetections]:
    """The ``top_k`` most confident (query, class) pairs of each image scoring at least ``score_threshold``.

    ``outputs`` holds ``pred_logits`` and ``pred_boxes`` as torch tensors or numpy arrays (torch or ONNX Runtime
    output alike); ``image_size`` is (height, width) of every image, or one (height, width) per image. Scores are
    sigmoid probabilities, sorted from the highest.
    """
    logits = _numpy(outputs["pred_logits"])
    boxes = _numpy(outputs["pred_boxes"])
    if logits.ndim != 3 or boxes.ndim != 3 or boxes.shape[:2] != logits.shape[:2] or boxes.shape[2] != 4:
        raise ValueError(f"expected pred_logits (B, Q, C) and pred_boxes (B, Q, 4), got {logits.shape} and "
                         f"{boxes.shape}")
    batch, _, classes = logits.shape
    sizes = np.asarray(image_size, dtype=np.float64)
    sizes = np.broadcast_to(sizes, (batch, 2)) if sizes.shape == (2,) else sizes
    if sizes.shape != (batch, 2):
        raise ValueError(f"image_size must be (height, width) or one per image ({batch}), got {image_size!r}")
    probabilities = 1.0 / (1.0 + np.exp(-logits))
    results = []
    for index in range(batch):
        flat = probabilities[index].reshape(-1)
        order = np.argsort(-flat, kind="stable")[:top_k]
        order = order[flat[order] >= score_threshold]
        query, label = np.divmod(order, classes)
        cx, cy, w, h = boxes[index, query].T
        height, width = sizes[index]
        xyxy = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height],
                        axis=-1).reshape(-1, 4)
        results.append(ImageDetections(xyxy, flat[order], label.astype(np.int64)))
    return results


# --- registration ---------------------------------------------------------------------------------------------

register_architecture(ARCHITECTURE_NAME, LungDetrConfig, build_lung_detr,
                      description="Lung-DETR: Deformable DETR (ResNet backbone, multi-scale deformable attention, "
                                  "focal loss) for nodule boxes on CT MIP slabs")

__all__ = ["ARCHITECTURE_NAME", "ImageDetections", "LungDetr", "LungDetrConfig", "LungDetrInference", "MLP",
           "build_lung_detr", "optimizer_parameter_groups", "postprocess_outputs"]
