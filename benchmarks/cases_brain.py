"""Brain registration speed: one synthetic pair of four-sequence MRIs at the paper's crop size, 144x208x144 voxels
of 1 mm, registered end to end (resampling, z-scores, network or SimpleITK, field conversion, warping of every
sequence, Jacobian, report).

The issue's targets: joint network under 5 s on two CPU cores and under 0.5 s on a GPU; classical engine under 60 s
on two CPU cores. Speed does not depend on the weights and none are trained yet, so the joint network runs freshly
initialised at the paper's width (f = 8: 8-16-32-64-128 features), on torch and on ONNX Runtime. Run with
``python -m benchmarks.run --module benchmarks.cases_brain [--device cuda] [--backend torch|onnx]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.harness import BenchmarkCase, CaseEnv

SHAPE = (144, 208, 144)  # (z, y, x) voxels, the paper's training crop
SIZE = "144x208x144 x 4 sequences, 1 mm, pair"


@dataclass
class _BrainRun:
    moving: Any
    fixed: Any
    config: Any
    model: Any
    device: Any


def _pair() -> tuple[Any, Any]:
    """A synthetic pair of the benchmark size with its tumour labels (built once per case process, untimed)."""
    from radassist.brain.pipeline import BrainImages
    from radassist.brain.postprocess import tumour_labelmap
    from radassist.brain.preprocess import brats_to_classes
    from radassist.synthetic.brain import BrainPhantomConfig, make_brain_pair

    pair = make_brain_pair(0, BrainPhantomConfig(shape=SHAPE, spacing=(1.0, 1.0, 1.0)))

    def images(volumes, labels):
        return BrainImages(dict(volumes),
                           tumour=tumour_labelmap(brats_to_classes(labels.flattened()), labels.geometry))

    return images(pair.moving, pair.moving_labels), images(pair.fixed, pair.fixed_labels)


def _setup_joint(env: CaseEnv) -> _BrainRun:
    """The network on the case's backend; the ONNX export (into the scratch folder) happens here, untimed."""
    import torch

    from radassist.brain.inference import joint_runner
    from radassist.brain.model import BrainJointConfig, BrainJointNet
    from radassist.brain.pipeline import BrainPipelineConfig

    torch.manual_seed(0)
    device = torch.device(env.device)
    model = BrainJointNet(BrainJointConfig()).to(device).eval()
    runner = joint_runner(model, env.backend, device, cache_dir=env.scratch)
    env.notes.append(f"joint network, paper width, untrained, {sum(p.numel() for p in model.parameters())} "
                     f"parameters, {runner.describe()}")
    moving, fixed = _pair()
    return _BrainRun(moving, fixed, BrainPipelineConfig(engine="joint", backend=env.backend), runner, device)


def _setup_classic(env: CaseEnv) -> _BrainRun:
    from radassist.brain.pipeline import BrainPipelineConfig

    env.notes.append("affine + free-form levels 24/12/6 mm fitted by L-BFGS (radassist.brain.deformable defaults), "
                     "robust similarity in the tumour, one torch thread")
    moving, fixed = _pair()
    return _BrainRun(moving, fixed, BrainPipelineConfig(engine="classic"), None, "cpu")


def _run(state: _BrainRun) -> None:
    from radassist.brain.pipeline import register_brain_pair

    result = register_brain_pair(state.moving, state.fixed, state.config, model=state.model, device=state.device)
    assert result.field.vectors.shape == (*SHAPE, 3)


CASES: list[BenchmarkCase] = [
    BenchmarkCase("brain joint registration + segmentation (paper width, f = 8)", "brain", SIZE, _setup_joint, _run,
                  backends=("torch", "onnx"), uses_device=True, repeats=2, warmup=1),
    BenchmarkCase("brain classic registration (affine + free-form, L-BFGS)", "brain", SIZE, _setup_classic, _run,
                  repeats=3, warmup=0),
]
