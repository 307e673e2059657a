"""GMIC, the globally-aware multiple instance classifier for screening mammograms (Shen et al., Medical Image
Analysis 68:101908, 2021), assembled from small blocks and named so NYU's published checkpoints load into it.

Forward contract (what preprocessing, the pipeline, training and evaluation rely on):

* input ``x``: float tensor (N, 1, H, W), one grey view per item, flipped so every breast faces the same way
  and standardised per image, ``(x - mean) / max(std, 1e-5)``; the published models expect H x W = 2944 x 1920
  and any size at least ``crop_shape`` works. The model never reads or writes files.
* :meth:`Gmic.forward` returns a :class:`GmicOutput`: ``y_fusion`` (N, C) is the prediction, ``y_global``
  and ``y_local`` (N, C) are the two branches the loss also trains, ``saliency_maps`` (N, C, h, w) in [0, 1]
  (46 x 30 for the published input), ``patch_locations`` (N, K, 2) the upper-left (row, column) of each
  retrieved patch in input pixels, ``patches`` (N, K, ph, pw) their pixels, ``attention`` (N, K) summing to 1.
  Classes are ordered as the catalogue's labels: 0 benign, 1 malignant.
* The model is two halves joined by a greedy patch selection that needs no weights: :meth:`Gmic.forward_global`
  (image -> saliency, y_global, global vector) and :meth:`Gmic.forward_local` (patches + global vector ->
  y_local, y_fusion, attention). :func:`select_patches_numpy` does the selection in numpy, so each half can be
  run by ONNX Runtime (:class:`GmicGlobalExport`, :class:`GmicLocalExport`); :class:`GmicFullExport` exports
  everything as one graph for a fixed input size.

Where the published code differs from the paper's text, the published model is followed (checkpoint
compatibility is the goal): the stem max pool has no padding (hence 46 x 30 maps), every stage of ResNet-22
starts with a 1x1 projection shortcut, y_global's top-t% count is ``round(t/100 * h * w)``, and a patch is taken
at the upper-left corner of the best saliency window. Our two deliberate differences, which never change the
result at the published input size: patch corners are clamped so a patch lies inside the image (the published
code pads with the image minimum instead), and a constant saliency map is not divided by its zero range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radassist.errors import InputError
from radassist.mammo.resnet_blocks import PreActResNet, ResNet

PUBLISHED_TOP_T_PERCENT: dict[int, float] = {1: 2.0, 2: 3.0, 3: 3.0, 4: 5.0, 5: 10.0}
"""t of top-t% pooling for NYU's published checkpoints sample_model_1.p .. sample_model_5.p."""

GLOBAL_BACKBONES = ("resnet22-v2",)
LOCAL_BACKBONES = ("resnet18",)


@dataclass(frozen=True)
class GmicConfig:
    """Every constructor argument of :class:`Gmic`. Defaults are the published models' (field names match the
    catalogue's ``architecture.config``, which spells them in camelCase)."""

    num_classes: int = 2  # benign, malignant (published)
    global_backbone: str = "resnet22-v2"  # pre-activation ResNet family; depth/width from the fields below
    global_filters: int = 16  # ResNet-22 first-stage width (paper, published)
    global_blocks: tuple[int, ...] = (2, 2, 2, 2, 2)  # five stages of two basic blocks (published)
    global_strides: tuple[int, ...] = (1, 2, 2, 2, 2)  # published; with the stem, 1/64 of the input
    post_processing_dim: int = 256  # channels of the global features = global_filters * 2**(stages - 1)
    cam_size: tuple[int, int] = (46, 30)  # saliency map size for the published 2944 x 1920 input
    top_t_percent: float = 2.0  # top-t% pooling; 2, 3, 3, 5, 10 for published models 1-5
    num_patches: int = 6  # K, patches retrieved per image (paper)
    crop_shape: tuple[int, int] = (256, 256)  # patch size in input pixels (paper)
    local_backbone: str = "resnet18"  # post-activation ResNet family; depth/width from the fields below
    local_filters: int = 64  # ResNet-18: 64 filters give L = 512 features per patch
    local_blocks: tuple[int, ...] = (2, 2, 2, 2)  # ResNet-18
    attention_dim: int = 128  # M of the gated attention (paper); L is the local feature size
    use_v1_global: bool = False  # published flag; all published models use the v2 (pre-activation) global net

    def __post_init__(self) -> None:
        problems = []
        if self.num_classes < 1:
            problems.append(f"num_classes must be at least 1, got {self.num_classes}")
        if self.global_backbone not in GLOBAL_BACKBONES:
            problems.append(f"global_backbone must be one of {GLOBAL_BACKBONES}, got {self.global_backbone!r}")
        if self.local_backbone not in LOCAL_BACKBONES:
            problems.append(f"local_backbone must be one of {LOCAL_BACKBONES}, got {self.local_backbone!r}")
        if self.use_v1_global:
            problems.append("use_v1_global=True (a ResNet-18 global network) is not supported; no published "
                            "GMIC model uses it")
        if not self.global_blocks or len(self.global_blocks) != len(self.global_strides):
            problems.append(f"global_blocks {self.global_blocks} and global_strides {self.global_strides} need "
                            f"one value per stage")
        elif self.post_processing_dim != self.global_channels:
            problems.append(f"post_processing_dim must equal the global network's output channels "
                            f"{self.global_channels} (global_filters * 2**(stages - 1)), got "
                            f"{self.post_processing_dim}")
        if not 0 < self.top_t_percent <= 100:
            problems.append(f"top_t_percent must be in (0, 100], got {self.top_t_percent}")
        if self.num_patches < 1:
            problems.append(f"num_patches must be at least 1, got {self.num_patches}")
        if len(self.crop_shape) != 2 or min(self.crop_shape) < 1:
            problems.append(f"crop_shape must be two positive sizes, got {self.crop_shape}")
        if len(self.cam_size) != 2 or min(self.cam_size) < 1:
            problems.append(f"cam_size must be two positive sizes, got {self.cam_size}")
        if not self.local_blocks or min(self.global_filters, self.local_filters, self.attention_dim) < 1:
            problems.append("local_blocks, global_filters, local_filters and attention_dim must be positive")
        if problems:
            raise InputError(None, "gmic config: " + "; ".join(problems))

    @property
    def global_channels(self) -> int:
        """Channels of the global network's feature map."""
        return self.global_filters * 2 ** (len(self.global_blocks) - 1)

    @property
    def local_features(self) -> int:
        """L: features per patch from the local network (512 for ResNet-18)."""
        return self.local_filters * 2 ** (len(self.local_blocks) - 1)

    @classmethod
    def for_published_model(cls, number: int) -> GmicConfig:
        """The config of NYU's ``sample_model_<number>.p`` (1-5): the published network with its t."""
        if number not in PUBLISHED_TOP_T_PERCENT:
            raise InputError(None, f"GMIC published models are numbered 1-5, got {number}")
        return cls(top_t_percent=PUBLISHED_TOP_T_PERCENT[number])

    def saliency_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Saliency map (h, w) the global network gives for an (H, W) input (conv arithmetic, no model run)."""
        sizes = []
        for size in image_size:
            size = (size + 2 * 3 - 7) // 2 + 1  # stem conv 7x7, stride 2, padding 3
            size = (size - 3) // 2 + 1  # max pool 3x3, stride 2, no padding
            for stride in self.global_strides:
                size = (size - 1) // stride + 1  # 3x3 conv, padding 1
            sizes.append(size)
        return sizes[0], sizes[1]


# --- outputs -----------------------------------------------------------------------------------------------------

@dataclass
class GlobalOutput:
    """What the global half gives: saliency maps (N, C, h, w), y_global (N, C), global vector (N, G)."""

    saliency_maps: torch.Tensor
    y_global: torch.Tensor
    global_vector: torch.Tensor


@dataclass
class LocalOutput:
    """What the local half gives: y_local (N, C), y_fusion (N, C), attention over the patches (N, K)."""

    y_local: torch.Tensor
    y_fusion: torch.Tensor
    attention: torch.Tensor


@dataclass
class GmicOutput:
    """Everything one forward pass gives (shapes in the module docstring); ``y_fusion`` is the prediction."""

    y_global: torch.Tensor
    y_local: torch.Tensor
    y_fusion: torch.Tensor
    saliency_maps: torch.Tensor
    patch_locations: torch.Tensor
    patches: torch.Tensor
    attention: torch.Tensor
    global_vector: torch.Tensor


# --- pooling, patch retrieval and cropping -------------------------------------------------------------------------

def top_t_percent_pool(saliency_maps: torch.Tensor, percent: float) -> torch.Tensor:
    """Mean of the largest ``round(percent/100 * h * w)`` (at least one) values of each map: (N, C, h, w) -> (N, C).

    Written with a sort and a rank mask rather than ``topk(k)`` so that an ONNX export keeps the count dynamic
    when the map size is.
    """
    flat = saliency_maps.flatten(2)
    ordered = flat.sort(dim=2, descending=True).values
    ones = torch.ones_like(ordered)
    ranks = ones.cumsum(2)
    count = torch.clamp(torch.round(ones.sum(2, keepdim=True) * (percent / 100.0)), min=1.0)
    return (ordered * (ranks <= count).to(ordered.dtype)).sum(2) / count.squeeze(2)


def cam_window(cam_size: tuple[int, int], image_size: tuple[int, int],
               crop_shape: tuple[int, int]) -> tuple[int, int]:
    """A patch's size on the saliency grid: crop_shape scaled by cam/image, rounded, kept within 1..cam size."""
    return tuple(min(max(int(np.round(crop * cam / image)), 1), cam)  # type: ignore[return-value]
                 for crop, cam, image in zip(crop_shape, cam_size, image_size))


def _check_crop_fits(image_size: tuple[int, int], crop_shape: tuple[int, int]) -> None:
    if image_size[0] < crop_shape[0] or image_size[1] < crop_shape[1]:
        raise ValueError(f"GMIC input {tuple(image_size)} is smaller than its patches {tuple(crop_shape)}")


def retrieve_roi(saliency_maps: torch.Tensor, image_size: tuple[int, int], crop_shape: tuple[int, int],
                 num_patches: int) -> torch.Tensor:
    """Greedy patch retrieval: (N, C, h, w) saliency -> (N, K, 2) upper-left (row, column) in image pixels.

    Each map is min-max normalised and the classes summed; K times, the crop-sized window with the highest mean
    is taken and its cells zeroed, so later windows avoid it. No gradient flows through the selection.
    """
    maps = saliency_maps.detach()
    n, _, h, w = maps.shape
    wh, ww = cam_window((h, w), image_size, crop_shape)
    flat = maps.flatten(2)
    low, high = flat.amin(2, keepdim=True), flat.amax(2, keepdim=True)
    spread = high - low
    spread = torch.where(spread > 0, spread, torch.ones_like(spread))
    current = ((flat - low) / spread).sum(1).reshape(n, 1, h, w)
    rows = torch.arange(h, device=maps.device).view(1, h, 1)
    cols = torch.arange(w, device=maps.device).view(1, 1, w)
    map_width = w - ww + 1
    corners = []
    for _ in range(num_patches):
        best = F.avg_pool2d(current, (wh, ww), stride=1).flatten(1).argmax(1)
        top = torch.div(best, map_width, rounding_mode="floor")
        left = best - top * map_width
        t, l_ = top.view(n, 1, 1), left.view(n, 1, 1)
        inside = (rows >= t) & (rows < t + wh) & (cols >= l_) & (cols < l_ + ww)
        current = current * (~inside).unsqueeze(1).to(current.dtype)
        corners.append(torch.stack([top, left], dim=1))
    return cam_to_image(torch.stack(corners, dim=1), (h, w), image_size, crop_shape)


def cam_to_image(cam_corners: torch.Tensor, cam_size: tuple[int, int], image_size: tuple[int, int],
                 crop_shape: tuple[int, int]) -> torch.Tensor:
    """Saliency-grid corners -> image pixels: ``round(corner * H / h)`` (halves up, in integers), clamped so the
    patch lies inside the image."""
    _check_crop_fits(image_size, crop_shape)
    out = []
    for axis in range(2):
        scaled = torch.div(cam_corners[..., axis] * image_size[axis] + cam_size[axis] // 2, cam_size[axis],
                           rounding_mode="floor")
        out.append(scaled.clamp(0, image_size[axis] - crop_shape[axis]))
    return torch.stack(out, dim=-1)


def crop_patches(images: torch.Tensor, locations: torch.Tensor, crop_shape: tuple[int, int]) -> torch.Tensor:
    """Cut (N, K, ph, pw) patches from (N, 1, H, W) images at (N, K, 2) upper-left corners (inside the image)."""
    n, _, height, width = images.shape
    ph, pw = crop_shape
    k = locations.shape[1]
    rows = locations[..., 0:1] + torch.arange(ph, device=images.device)
    cols = locations[..., 1:2] + torch.arange(pw, device=images.device)
    index = rows.unsqueeze(-1) * width + cols.unsqueeze(-2)
    return torch.gather(images.reshape(n, height * width), 1, index.reshape(n, k * ph * pw)).reshape(n, k, ph, pw)


def retrieve_roi_numpy(saliency_maps: np.ndarray, image_size: tuple[int, int], crop_shape: tuple[int, int],
                       num_patches: int) -> np.ndarray:
    """:func:`retrieve_roi` in numpy (for ONNX Runtime pipelines): (N, C, h, w) -> (N, K, 2) int64 corners."""
    maps = np.asarray(saliency_maps, dtype=np.float64)
    n, _, h, w = maps.shape
    wh, ww = cam_window((h, w), image_size, crop_shape)
    low = maps.min(axis=(2, 3), keepdims=True)
    spread = maps.max(axis=(2, 3), keepdims=True) - low
    current = ((maps - low) / np.where(spread > 0, spread, 1.0)).sum(axis=1)
    map_width = w - ww + 1
    corners = np.zeros((n, num_patches, 2), dtype=np.int64)
    for item in range(n):
        grid = current[item].copy()
        for patch in range(num_patches):
            windows = np.lib.stride_tricks.sliding_window_view(grid, (wh, ww)).mean(axis=(2, 3))
            top, left = divmod(int(np.argmax(windows)), map_width)
            grid[top:top + wh, left:left + ww] = 0.0
            corners[item, patch] = (top, left)
    return cam_to_image(torch.from_numpy(corners), (h, w), image_size, crop_shape).numpy()  # integers: exact


def crop_patches_numpy(images: np.ndarray, locations: np.ndarray, crop_shape: tuple[int, int]) -> np.ndarray:
    """:func:`crop_patches` in numpy: (N, 1, H, W) images, (N, K, 2) corners -> (N, K, ph, pw)."""
    windows = np.lib.stride_tricks.sliding_window_view(images[:, 0], tuple(crop_shape), axis=(1, 2))
    return windows[np.arange(len(locations))[:, None], locations[..., 0], locations[..., 1]]


def select_patches_numpy(images: np.ndarray, saliency_maps: np.ndarray,
                         config: GmicConfig) -> tuple[np.ndarray, np.ndarray]:
    """The step between the two ONNX halves: patch corners (N, K, 2) and patches (N, K, ph, pw)."""
    image_size = (images.shape[2], images.shape[3])
    locations = retrieve_roi_numpy(saliency_maps, image_size, config.crop_shape, config.num_patches)
    return locations, crop_patches_numpy(images, locations, config.crop_shape)


# --- the networks ----------------------------------------------------------------------------------------------------

class GlobalNetwork(nn.Module):
    """Low-capacity, whole-image branch: ResNet-22 features and a 1x1 convolution (no bias) + sigmoid per class
    giving the saliency maps."""

    def __init__(self, config: GmicConfig) -> None:
        super().__init__()
        self.backbone = PreActResNet(in_channels=1, filters=config.global_filters, blocks=config.global_blocks,
                                     strides=config.global_strides)
        self.saliency_conv = nn.Conv2d(self.backbone.out_channels, config.num_classes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, H, W) -> features (N, G, h, w) and saliency maps (N, C, h, w)."""
        features = self.backbone(x)
        return features, torch.sigmoid(self.saliency_conv(features))


class LocalNetwork(nn.Module):
    """High-capacity patch branch: each grey patch repeated to 3 channels, ResNet-18, global average pooling."""

    def __init__(self, config: GmicConfig) -> None:
        super().__init__()
        self.backbone = ResNet(in_channels=3, filters=config.local_filters, blocks=config.local_blocks)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """(N, K, ph, pw) -> (N, K, L) patch features."""
        n, k, ph, pw = patches.shape
        grey = patches.reshape(n * k, 1, ph, pw)
        features = self.backbone(grey.expand(-1, 3, -1, -1)).mean(dim=(2, 3))
        return features.reshape(n, k, -1)


class GatedAttention(nn.Module):
    """Gated attention MIL pooling (Ilse et al., ICML 2018): a_k = softmax_k(w^T (tanh(V h_k) * sigmoid(U h_k))),
    z = sum_k a_k h_k.

    Args:
        feature_dim: L, size of each instance's features (512 in GMIC).
        attention_dim: M, size of the hidden attention space (128 in GMIC).
    """

    def __init__(self, feature_dim: int = 512, attention_dim: int = 128) -> None:
        super().__init__()
        self.tanh_projection = nn.Linear(feature_dim, attention_dim, bias=False)  # V
        self.gate_projection = nn.Linear(feature_dim, attention_dim, bias=False)  # U
        self.score = nn.Linear(attention_dim, 1, bias=False)  # w

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, L) -> z (N, L) and attention weights (N, K)."""
        hidden = torch.tanh(self.tanh_projection(features)) * torch.sigmoid(self.gate_projection(features))
        weights = torch.softmax(self.score(hidden).squeeze(-1), dim=1)
        return (weights.unsqueeze(-1) * features).sum(dim=1), weights


class FusionHead(nn.Module):
    """The prediction: sigmoid(linear([max-pooled global features, z])).

    Args:
        global_dim: channels of the global features (256 in GMIC).
        local_dim: L, size of z (512 in GMIC).
        num_classes: outputs.
    """

    def __init__(self, global_dim: int, local_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(global_dim + local_dim, num_classes)

    def forward(self, global_vector: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(torch.cat([global_vector, z], dim=1)))


class Gmic(nn.Module):
    """GMIC: global network -> saliency -> top-t% pooling (y_global) and K retrieved patches -> local network ->
    gated attention (y_local) -> fusion with the global features (y_fusion). See the module docstring."""

    def __init__(self, config: GmicConfig | None = None) -> None:
        super().__init__()
        self.config = config or GmicConfig()
        c = self.config
        self.global_network = GlobalNetwork(c)
        self.local_network = LocalNetwork(c)
        self.attention = GatedAttention(c.local_features, c.attention_dim)
        self.local_classifier = nn.Linear(c.local_features, c.num_classes, bias=False)
        self.fusion_head = FusionHead(c.global_channels, c.local_features, c.num_classes)

    def forward_global(self, x: torch.Tensor) -> GlobalOutput:
        """(N, 1, H, W) standardised images -> saliency maps, y_global and the max-pooled global features."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"GMIC takes (N, 1, H, W) grey images, got shape {tuple(x.shape)}")
        features, saliency = self.global_network(x)
        y_global = top_t_percent_pool(saliency, self.config.top_t_percent)
        return GlobalOutput(saliency, y_global, features.amax(dim=(2, 3)))

    def forward_local(self, patches: torch.Tensor, global_vector: torch.Tensor) -> LocalOutput:
        """(N, K, ph, pw) patches and (N, G) global vector -> y_local, y_fusion and the attention weights."""
        z, attention = self.attention(self.local_network(patches))
        y_local = torch.sigmoid(self.local_classifier(z))
        return LocalOutput(y_local, self.fusion_head(global_vector, z), attention)

    def forward(self, x: torch.Tensor) -> GmicOutput:
        image_size = (x.shape[2], x.shape[3])
        _check_crop_fits(image_size, self.config.crop_shape)
        glob = self.forward_global(x)
        locations = retrieve_roi(glob.saliency_maps, image_size, self.config.crop_shape, self.config.num_patches)
        patches = crop_patches(x, locations, self.config.crop_shape)
        local = self.forward_local(patches, glob.global_vector)
        return GmicOutput(y_global=glob.y_global, y_local=local.y_local, y_fusion=local.y_fusion,
                          saliency_maps=glob.saliency_maps, patch_locations=locations, patches=patches,
                          attention=local.attention, global_vector=glob.global_vector)


# --- ONNX views: plain tuples out, one per half and one for the whole model -----------------------------------------

GLOBAL_EXPORT_OUTPUTS = ("saliency_maps", "y_global", "global_vector")
LOCAL_EXPORT_OUTPUTS = ("y_local", "y_fusion", "attention")
FULL_EXPORT_OUTPUTS = ("y_fusion", "y_global", "y_local", "saliency_maps", "patch_locations", "attention")


class _ExportView(nn.Module):
    """A wrapper around a :class:`Gmic` whose forward returns a plain tuple, in the model's train/eval mode."""

    def __init__(self, model: Gmic) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)  # a wrapper must not flip the model's mode when an exporter restores it


class GmicGlobalExport(_ExportView):
    """``image`` -> (saliency_maps, y_global, global_vector); exportable with dynamic batch and image size."""

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model.forward_global(image)
        return out.saliency_maps, out.y_global, out.global_vector


class GmicLocalExport(_ExportView):
    """(``patches``, ``global_vector``) -> (y_local, y_fusion, attention); dynamic batch."""

    def forward(self, patches: torch.Tensor, global_vector: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model.forward_local(patches, global_vector)
        return out.y_local, out.y_fusion, out.attention


class GmicFullExport(_ExportView):
    """``image`` -> FULL_EXPORT_OUTPUTS as one graph, patch selection included. The window sizes of the selection
    are fixed when traced, so export it for the input size it will run on (batch may stay dynamic)."""

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image)
        return out.y_fusion, out.y_global, out.y_local, out.saliency_maps, out.patch_locations, out.attention


# Registering "gmic" needs the classes above; the registry imports this module to find it.
import radassist.mammo.checkpoint_mapping  # noqa: E402,F401  (registers the architecture)
