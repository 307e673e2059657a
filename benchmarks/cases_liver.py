"""Liver pipeline speed: a 512x512x200 CT end to end (slice inference, cleaning, measurements), U-Net vs mU-Net,
torch vs ONNX Runtime, on the CPU and on a GPU when there is one.

The issue's target: under the seed's 15 s on CPU, under 1 s on a GPU. Speed does not depend on the weights, and no
trained weights exist yet, so the networks are freshly initialised with their output biased towards "liver": every
slice then yields liver and the cleaning and measuring steps run on a full-size organ (more work than a real scan,
never less). Run with ``python -m benchmarks.run --module benchmarks.cases_liver [--device cuda]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


from benchmarks.harness import BenchmarkCase, CaseEnv

CT_SHAPE = (200, 512, 512)  # (z, y, x)
CT_SPACING = (0.75, 0.75, 1.5)  # (x, y, z) mm


@dataclass
class _LiverRun:
    volume: Any
    model: Any
    backend: Any


def _ct() -> Any:
    """A synthetic abdominal CT of the benchmark size (generated once per case process, untimed)."""
    from radassist.synthetic.abdomen import AbdomenPhantomConfig, make_abdomen_ct

    return make_abdomen_ct(0, AbdomenPhantomConfig(shape=CT_SHAPE, spacing=CT_SPACING)).volume


def _setup(architecture: str, channels: tuple[int, ...], input_size: tuple[int, int] | None):
    def setup(env: CaseEnv) -> _LiverRun:
        import torch

        from radassist.liver.pipeline import LiverModel
        from radassist.liver.preprocess import ABDOMINAL_WINDOW, LiverPreprocessing
        from radassist.runtime.registry import build_model

        torch.manual_seed(0)
        network = build_model(architecture, {"channels": channels}).eval()
        with torch.no_grad():
            network.head.bias.copy_(torch.tensor([0.0, 50.0, 0.0]))  # every pixel "liver": all steps run
        model = LiverModel(network, architecture, LiverPreprocessing(ABDOMINAL_WINDOW), input_size=input_size,
                           size_multiple=2 ** (len(channels) - 1))
        backend = model.backend(env.backend, env.device, env.scratch)
        env.notes.append(backend.describe())
        return _LiverRun(_ct(), model, backend)

    return setup


def _run(state: _LiverRun) -> None:
    from radassist.liver.pipeline import segment_liver

    result = segment_liver(state.volume, state.model, backend=state.backend)
    assert result.labelmap.labels.shape[1:] == CT_SHAPE


def _augment_setup(env: CaseEnv) -> tuple[Any, Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    image = rng.random((3, 512, 512), dtype=np.float32)  # a 2.5-D stack of three windowed slices
    return image, (image[1] > 0.5).astype(np.uint8), rng


def _augment_run(state: tuple[Any, Any, Any]) -> None:
    from radassist.liver.augment import AugmentConfig, augment_pair

    image, mask, rng = state
    for _ in range(8):  # one training batch
        augment_pair(image, mask, rng, AugmentConfig(elastic_probability=1.0))


PAPER = (64, 128, 256, 512, 1024)
LIGHT = (16, 32, 64, 128, 256)
SIZE = f"{CT_SHAPE[2]}x{CT_SHAPE[1]}x{CT_SHAPE[0]} int16 CT, batch 8"

CASES: list[BenchmarkCase] = [
    BenchmarkCase("liver pipeline, mU-Net (paper width 64-1024, 512x512 slices)", "liver", SIZE,
                  _setup("liver-munet", PAPER, (512, 512)), _run, backends=("torch", "onnx"), uses_device=True,
                  repeats=1, warmup=0,
                  timeout_s=3600.0),  # 200 slices of 385-595 GFLOP each: 15-25 min a run on 2 cores
    BenchmarkCase("liver pipeline, U-Net (paper width 64-1024, 512x512 slices)", "liver", SIZE,
                  _setup("liver-unet", PAPER, (512, 512)), _run, backends=("torch", "onnx"), uses_device=True,
                  repeats=1, warmup=0,
                  timeout_s=3600.0),  # 200 slices of 385-595 GFLOP each: 15-25 min a run on 2 cores
    BenchmarkCase("liver pipeline, mU-Net (16-256 channels, 256x256 slices)", "liver", SIZE,
                  _setup("liver-munet", LIGHT, (256, 256)), _run, backends=("torch", "onnx"), uses_device=True,
                  repeats=3, warmup=1),
    BenchmarkCase("liver pipeline, U-Net (16-256 channels, 256x256 slices)", "liver", SIZE,
                  _setup("liver-unet", LIGHT, (256, 256)), _run, backends=("torch", "onnx"), uses_device=True,
                  repeats=3, warmup=1),
    BenchmarkCase("liver training augmentation (flips, rotation, scaling, elastic), 8 slices", "liver",
                  "8 x (3, 512, 512) float32 stacks with their masks, elastic on every one", _augment_setup,
                  _augment_run, repeats=5, warmup=1),
]
