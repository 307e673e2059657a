"""Lung nodule detection speed: `radassist lung detect` end to end on a 512x512x300 chest CT at 0.7x0.7x1 mm.

End to end means what the command does: read the CT file, find the lungs, detect, and write nodules.mrk.json,
nodules.csv and the slab preview PNG. Two engines:

* the classical candidate detector (no network, CPU only);
* Lung-DETR at the paper's size (ResNet-50, 300 queries, 6+6 layers) with freshly initialised weights, torch vs
  ONNX Runtime, on the CPU and on a GPU when there is one. Speed does not depend on the weights; a random
  network proposes no confident box, so linking is cheap here (a trained one adds a few boxes per nodule).

The issue's target: under 30 s on 2 CPU cores and under 2 s on a GPU. Run with
``python -m benchmarks.run --module benchmarks.cases_lung [--device cuda]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchmarkCase, CaseEnv

CT_SHAPE = (300, 512, 512)  # (z, y, x)
CT_SPACING = (0.7, 0.7, 1.0)  # (x, y, z) mm
SIZE = f"{CT_SHAPE[2]}x{CT_SHAPE[1]}x{CT_SHAPE[0]} int16 chest CT, {CT_SPACING[0]}x{CT_SPACING[1]}x{CT_SPACING[2]} mm"


@dataclass
class _LungRun:
    ct_file: Path
    out: Path
    engine: str
    model: Any


def _write_ct(env: CaseEnv) -> Path:
    """The chest phantom at the benchmark size, written once as NRRD (untimed)."""
    from radassist.io import write_volume
    from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct

    phantom = make_chest_ct(0, ChestPhantomConfig(shape=CT_SHAPE, spacing=CT_SPACING))
    env.notes.append(f"{len(phantom.nodules)} phantom nodules")
    return write_volume(phantom.volume, env.scratch / "chest.nrrd")


def _setup_classic(env: CaseEnv) -> _LungRun:
    return _LungRun(_write_ct(env), env.scratch / "out", "classic", None)


def _setup_detr(env: CaseEnv) -> _LungRun:
    import torch

    from radassist.lung.model import LungDetrConfig, build_lung_detr
    from radassist.lung.pipeline import load_detr_model

    torch.manual_seed(0)
    network = build_lung_detr(LungDetrConfig()).eval()
    model = load_detr_model(network, backend=env.backend, device=env.device, image_size=CT_SHAPE[1:])
    env.notes.append(model.backend.describe())
    return _LungRun(_write_ct(env), env.scratch / "out", "detr", model)


def _run(state: _LungRun) -> None:
    from radassist.io import read_volume
    from radassist.lung.pipeline import detect_nodules
    from radassist.results import preview_detections, write_detections_csv, write_roi_markups

    volume = read_volume(state.ct_file)
    found = detect_nodules(volume, engine=state.engine, model=state.model)
    state.out.mkdir(exist_ok=True)
    write_roi_markups(found, state.out / "nodules.mrk.json")
    write_detections_csv(found, state.out / "nodules.csv")
    preview_detections(volume, found, state.out / "nodules.png", slab_mm=7.5)


CASES: list[BenchmarkCase] = [
    BenchmarkCase("lung detect, classical candidate detector", "lung", SIZE, _setup_classic, _run,
                  repeats=3, warmup=1),
    BenchmarkCase("lung detect, Lung-DETR (ResNet-50, 300 queries, 7.5 mm slabs)", "lung", SIZE, _setup_detr, _run,
                  backends=("torch", "onnx"), uses_device=True, repeats=2, warmup=1),
]
