"""LiteMedSAM (Ma et al., MedSAM, Nature Communications 15:654, 2024; LiteMedSAM release of the MedSAM authors):
a box-prompted segmenter for any medical image, assembled from our TinyViT encoder and SAM's prompt encoder and
mask decoder.

Forward contract (what preprocessing, the pipeline and the ONNX export rely on):

* :meth:`LiteMedSam.encode` takes (B, 3, 256, 256) slices, intensities in [0, 1], each slice resized so its
  long side is 256 and padded at the bottom and right; it returns (B, 256, 64, 64) image embeddings. This is the
  expensive half (about 30 GMAC per slice), run once per slice and cached.
* :meth:`LiteMedSam.decode` takes embeddings and boxes (B, 4) as x0, y0, x1, y1 in the 256-pixel frame; it
  returns mask logits (B, 1, 256, 256) in that frame and the predicted IoU (B, 1). Cheap: about 0.1 s on a CPU.

Module and parameter names are the published checkpoint's (``image_encoder.*``, ``prompt_encoder.*``,
``mask_decoder.*``), so ``lite_medsam.pth`` loads with ``strict=True`` and no key renaming.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from radassist.interactive.mask_decoder import MaskDecoder
from radassist.interactive.prompt_encoder import PromptEncoder
from radassist.interactive.tinyvit import TinyViTEncoder
from radassist.runtime.registry import register_architecture

ARCHITECTURE_NAME = "litemedsam"


@dataclass(frozen=True)
class LiteMedSamConfig:
    """Constructor arguments of :class:`LiteMedSam`; defaults are the published LiteMedSAM's
    (CVPR 2024 MedSAM-on-Laptop baseline: TinyViT 64/128/160/320, depths 2/2/6/2, 256 x 256 input)."""

    image_size: int = 256
    encoder_dims: tuple[int, ...] = (64, 128, 160, 320)
    encoder_depths: tuple[int, ...] = (2, 2, 6, 2)
    encoder_heads: tuple[int, ...] = (2, 4, 5, 10)
    encoder_windows: tuple[int, ...] = (7, 7, 14, 7)
    merge_strides: tuple[int, ...] = (2, 2, 1)  # MobileSAM keeps the last merge at stride 1
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    embed_dim: int = 256
    mask_in_channels: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden: int = 256

    @property
    def embedding_size(self) -> int:
        return self.image_size // math.prod(self.merge_strides)


class LiteMedSam(nn.Module):
    """Image encoder + prompt encoder + mask decoder; see the module docstring for the contract."""

    def __init__(self, config: LiteMedSamConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or LiteMedSamConfig()
        self.image_encoder = TinyViTEncoder(config.image_size, 3, config.encoder_dims, config.encoder_depths,
                                            config.encoder_heads, config.encoder_windows, config.merge_strides,
                                            config.mlp_ratio, config.mbconv_expand_ratio, config.embed_dim)
        self.prompt_encoder = PromptEncoder(config.embed_dim, config.embedding_size, config.image_size,
                                            config.mask_in_channels)
        self.mask_decoder = MaskDecoder(config.embed_dim, config.multimask_outputs, config.decoder_depth,
                                        config.decoder_heads, config.decoder_mlp_dim, config.iou_head_depth,
                                        config.iou_head_hidden)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(images)

    def decode(self, embeddings: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sparse, dense = self.prompt_encoder(boxes)
        return self.mask_decoder(embeddings, self.prompt_encoder.dense_positions(), sparse, dense)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(self.encode(images), boxes)


class DecoderGraph(nn.Module):
    """Prompt encoder + mask decoder, for ONNX export: (embeddings, boxes) -> (logits, iou); the encoder half is
    ``model.image_encoder`` itself."""

    def __init__(self, model: LiteMedSam) -> None:
        super().__init__()
        self.model = model

    def forward(self, embeddings: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.decode(embeddings, boxes)


register_architecture(ARCHITECTURE_NAME, LiteMedSamConfig, LiteMedSam,
                      description="LiteMedSAM (Ma et al., MedSAM, Nat. Commun. 2024): TinyViT encoder + SAM prompt "
                                  "encoder and mask decoder, box-prompted 2-D segmentation")
