"""LiteMedSAM's two halves behind one interface, run by torch or by ONNX Runtime (float32 or int8 weights).

The pipeline calls :meth:`LiteMedSamEngine.encode` (slices -> embeddings, the expensive half) and
:meth:`LiteMedSamEngine.decode` (one embedding + boxes -> mask logits). ``variant`` names what computed the
embeddings ("torch-fp32", "onnx-fp32", "onnx-int8"): it is part of the embedding cache key, because the three give
slightly different numbers.

ONNX files are exported once per weights file (named by its sha256, the opset, the torch version and
:data:`GRAPH_VERSION`) into the RadAssist cache's ``onnx`` folder, so a later process opens them without running
the model; int8 files are made from them by ONNX Runtime's dynamic quantisation (weights of the matrix products
stored as int8, activations quantised on the fly).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Literal

import numpy as np

from radassist.errors import InputError
from radassist.runtime.paths import cache_dir

Backend = Literal["torch", "onnx"]
GRAPH_VERSION = 1  # bump when the model code changes what the exported graphs compute
OPSET = 17
EMBEDDING_SHAPE = (256, 64, 64)


@dataclass
class EngineStats:
    """What ran: slices encoded by the network (cache misses) and decoder calls."""

    encoded_slices: int = 0
    decoded_boxes: int = 0


class LiteMedSamEngine:
    """Encoder and decoder of one LiteMedSAM model on one backend."""

    def __init__(self, encoder, decoder, variant: str, weights_sha256: str, description: str) -> None:
        self._encoder = encoder
        self._decoder = decoder
        self.variant = variant
        self.weights_sha256 = weights_sha256
        self.description = description
        self.stats = EngineStats()

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(n, 3, 256, 256) float32 in [0, 1] -> (n, 256, 64, 64) float32 embeddings."""
        out = self._encoder({"images": np.ascontiguousarray(images, dtype=np.float32)})
        self.stats.encoded_slices += len(images)
        return next(iter(out.values()))

    def decode(self, embedding: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
        """One (256, 64, 64) embedding and one box (x0, y0, x1, y1 in the 256 frame) -> (256, 256) logits and the
        model's predicted IoU."""
        out = self._decoder({"embeddings": np.ascontiguousarray(embedding[None], dtype=np.float32),
                             "boxes": np.asarray(box, dtype=np.float32).reshape(1, 4)})
        self.stats.decoded_boxes += 1
        logits, iou = out["logits"], out["iou"]
        return logits[0, 0], float(iou.reshape(-1)[0])


def onnx_path(weights_sha256: str, part: str, int8: bool = False, folder: Path | None = None) -> Path:
    """Where the exported ``part`` ("encoder" or "decoder") of the weights with this sha256 is cached."""
    folder = folder if folder is not None else cache_dir() / "onnx"
    torch_version = version("torch").replace("+", "_")
    suffix = "-int8" if int8 else ""
    return folder / (f"litemedsam-{weights_sha256[:16]}-{part}{suffix}-g{GRAPH_VERSION}-opset{OPSET}-"
                     f"torch{torch_version}.onnx")


def export_parts(model, weights_sha256: str, folder: Path | None = None) -> tuple[Path, Path]:
    """Export encoder and decoder of a loaded torch :class:`LiteMedSam` (skipped when the files exist)."""
    import torch

    from radassist.interactive.model import DecoderGraph
    from radassist.runtime.onnx_backend import export_onnx

    encoder, decoder = (onnx_path(weights_sha256, part, folder=folder) for part in ("encoder", "decoder"))
    size = model.config.image_size
    if not encoder.is_file():
        export_onnx(model.image_encoder, [torch.rand(1, 3, size, size)], encoder, ["images"], ["embeddings"],
                    {"images": {0: "batch"}, "embeddings": {0: "batch"}}, OPSET)
    if not decoder.is_file():
        grid = model.config.embedding_size
        export_onnx(DecoderGraph(model), [torch.rand(1, model.config.embed_dim, grid, grid),
                                          torch.tensor([[10.0, 20.0, 120.0, 200.0]])],
                    decoder, ["embeddings", "boxes"], ["logits", "iou"], None, OPSET)
    return encoder, decoder


def quantize_int8(source: Path, target: Path) -> Path:
    """ONNX Runtime dynamic quantisation of ``source`` (MatMul/Gemm weights to int8), written atomically."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from radassist.io.atomic import atomic_path

    if target.is_file():
        return target
    with atomic_path(target) as temp:
        quantize_dynamic(str(source), str(temp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    return target


def build_engine(model, weights_sha256: str, backend: Backend = "onnx", int8: bool = False, device: str = "cpu",
                 threads: int | None = None, onnx_folder: Path | None = None) -> LiteMedSamEngine:
    """An engine for a loaded torch :class:`LiteMedSam`: the model itself (``backend="torch"``) or its exported
    halves in ONNX Runtime (``int8`` quantises the encoder, the half that costs)."""
    from radassist.runtime.backends import OnnxBackend, TorchBackend

    if backend == "torch":
        if int8:
            raise InputError(None, "int8 weights run through ONNX Runtime: use the onnx backend with int8")
        from radassist.interactive.model import DecoderGraph

        encoder = TorchBackend(model.image_encoder, device, ["images"], ["embeddings"], threads)
        decoder = TorchBackend(DecoderGraph(model), device, ["embeddings", "boxes"], ["logits", "iou"], threads)
        return LiteMedSamEngine(encoder, decoder, "torch-fp32", weights_sha256, encoder.describe())
    if backend != "onnx":
        raise InputError(None, f"unknown backend {backend!r}; use torch or onnx")
    encoder_file, decoder_file = export_parts(model, weights_sha256, onnx_folder)
    if int8:
        encoder_file = quantize_int8(encoder_file, onnx_path(weights_sha256, "encoder", True, onnx_folder))
    encoder = OnnxBackend(encoder_file, device, threads)
    decoder = OnnxBackend(decoder_file, device, threads)
    return LiteMedSamEngine(encoder, decoder, f"onnx-{'int8' if int8 else 'fp32'}", weights_sha256,
                            encoder.describe() + (", int8 encoder" if int8 else ""))
