"""Benchmark cases of GMIC mammogram classification.

Speed: one screening exam (L-CC, R-CC, L-MLO, R-MLO phantoms at the published 2944 x 1920) through the whole
pipeline (window search, network, saliency maps back on each grid, patches), torch vs ONNX Runtime; the issue's
targets are under 8 s on 2 CPU cores and under 0.5 s on a GPU.

Memory: one 2944 x 1920 view through GMIC's network and through a ResNet-34 feature extractor on the same input
(each case runs in its own process, so its peak memory is its own); the paper reports GMIC needing far less
memory than a ResNet-34 on full-resolution images, and these rows measure it here. Weights are random: speed and
memory do not depend on them. Run with ``python -m benchmarks.run --module benchmarks.cases_mammo`` (or add
``CASES`` to ``benchmarks.cases``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.harness import BenchmarkCase, CaseEnv

INPUT_SIZE = (2944, 1920)


@dataclass
class _Exam:
    mammograms: list
    runner: Any


def _published_network() -> Any:
    import torch

    from radassist.mammo.model import Gmic, GmicConfig

    torch.manual_seed(0)
    return Gmic(GmicConfig.for_published_model(1)).eval()


def _setup_exam(env: CaseEnv) -> _Exam:
    from radassist.io.mammogram import Mammogram
    from radassist.mammo.pipeline import load_gmic
    from radassist.synthetic.mammo import MammoPhantomConfig, make_mammogram_exam

    exam = make_mammogram_exam(0, MammoPhantomConfig(shape=INPUT_SIZE, pixel_spacing_mm=0.1))
    mammograms = [Mammogram(view.pixels, (0.1, 0.1), view.laterality, view.view, path=f"phantom {view.name}")
                  for view in exam.views]
    runner = load_gmic(_published_network(), env.backend, env.device, cache_dir=env.scratch)
    env.notes.append(f"published GMIC (t = 2%), {len(mammograms)} views of {INPUT_SIZE[0]}x{INPUT_SIZE[1]}")
    return _Exam(mammograms, runner)


def _run_exam(state: _Exam) -> None:
    from radassist.mammo.pipeline import classify_exam

    result = classify_exam(state.mammograms, state.runner)
    assert len(result.classification.images) == 4


def _one_view() -> Any:
    import torch

    return torch.from_numpy(np.random.default_rng(0).standard_normal((1, 1, *INPUT_SIZE)).astype(np.float32))


@dataclass
class _Forward:
    network: Any
    image: Any


def _setup_gmic_forward(env: CaseEnv) -> _Forward:
    import torch

    device = torch.device(env.device if env.device != "auto" else "cpu")
    env.notes.append("GMIC network (global + 6 patches + local + fusion), batch 1, float32, no gradients")
    return _Forward(_published_network().to(device), _one_view().to(device))


def _setup_resnet34_forward(env: CaseEnv) -> _Forward:
    import torch

    from radassist.mammo.resnet_blocks import ResNet

    torch.manual_seed(0)
    device = torch.device(env.device if env.device != "auto" else "cpu")
    network = ResNet(in_channels=1, filters=64, blocks=(3, 4, 6, 3)).eval().to(device)
    env.notes.append("ResNet-34 feature extractor on the whole view, batch 1, float32, no gradients")
    return _Forward(network, _one_view().to(device))


def _training_step(setup):
    """The same network in training mode, forward and backward: what the paper's memory figure is about (the
    activations kept for the gradient), rather than inference, where they are freed as the pass goes."""
    def setup_training(env: CaseEnv) -> _Forward:
        state = setup(env)
        env.notes[-1] = env.notes[-1].replace("no gradients", "forward + backward (training step)")
        state.network.train()
        return state
    return setup_training


def _run_training_step(state: _Forward) -> None:
    import torch

    state.network.zero_grad(set_to_none=True)
    output = state.network(state.image)
    items = [output] if isinstance(output, torch.Tensor) else \
        list(output) if isinstance(output, (list, tuple)) else list(vars(output).values())
    sum(t.float().mean() for t in items if isinstance(t, torch.Tensor) and t.requires_grad).backward()
    if state.image.is_cuda:
        torch.cuda.synchronize()


def _run_forward(state: _Forward) -> None:
    import torch

    with torch.no_grad():
        state.network(state.image)
    if state.image.is_cuda:
        torch.cuda.synchronize()


CASES: list[BenchmarkCase] = [
    BenchmarkCase("GMIC exam (4 views)", "mammography", "L-CC, R-CC, L-MLO, R-MLO phantoms at 2944x1920, "
                  "published network, no TTA", _setup_exam, _run_exam, backends=("torch", "onnx"), uses_device=True,
                  repeats=3, warmup=1),
    BenchmarkCase("GMIC network, one view", "mammography memory", "1x1x2944x1920 float32", _setup_gmic_forward,
                  _run_forward, uses_device=True, repeats=3, warmup=1),
    BenchmarkCase("ResNet-34 network, one view", "mammography memory", "1x1x2944x1920 float32",
                  _setup_resnet34_forward, _run_forward, uses_device=True, repeats=3, warmup=1),
    BenchmarkCase("GMIC network, one view, training step", "mammography memory", "1x1x2944x1920 float32",
                  _training_step(_setup_gmic_forward), _run_training_step, uses_device=True, repeats=3, warmup=1),
    BenchmarkCase("ResNet-34 network, one view, training step", "mammography memory", "1x1x2944x1920 float32",
                  _training_step(_setup_resnet34_forward), _run_training_step, uses_device=True, repeats=3,
                  warmup=1),
]
