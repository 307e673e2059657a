"""Benchmark cases of lung infection segmentation, and the balanced-vs-plain cross-entropy comparison.

Speed: a whole 512x512x300 CT through the pipeline (lung window, 300 slices at the study's full 512x512 input,
labels back on the grid, report), U-Net vs SegNet at the paper's sizes (about 31 and 29.5 million weights), torch
vs ONNX Runtime. Weights are random: speed does not depend on them. Each network is also timed on the first 30
slices of the same scan (per-slice cost is constant in slice-wise inference, so those runs fit a short session;
a 300-slice run of a paper-size network takes about 15 minutes on 2 cores). Run with
``python -m benchmarks.run --module benchmarks.cases_infection`` (or add ``CASES`` to ``benchmarks.cases``).

Loss comparison: ``python -m benchmarks.cases_infection --loss-comparison`` trains the same small U-Net on the
same phantom slices with median-frequency-balanced and with plain cross-entropy, on the same budget, for several
seeds, and prints the Markdown table recorded in ``benchmarks/INFECTION_LOSS_COMPARISON.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from benchmarks.harness import BenchmarkCase, CaseEnv

CT_SHAPE = (300, 512, 512)  # (z, y, x): the size
SHORT_SLICES = 30  # the same slices, a tenth of the scan: the per-slice cost is constant (slice-wise inference)
CT_SPACING = (0.7, 0.7, 1.0)  # (x, y, z) mm
BATCH = 4


@dataclass
class _Run:
    volume: Any
    model: Any
    lungs: Any
    engine: str
    cache: Any


def _ct_volume(slices: int = CT_SHAPE[0]):
    """A 512x512 int16 CT of ``slices`` slices: air around a body, two lungs, noise (content does not change the
    timing)."""
    from radassist.volume import SourceInfo, Volume

    shape = (slices, *CT_SHAPE[1:])
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    rng = np.random.default_rng(0)
    hu = np.full(shape, -1000, dtype=np.int16)
    body = ((y - 256) / 180.0) ** 2 + ((x - 256) / 230.0) ** 2 <= 1.0
    hu[np.broadcast_to(body, shape)] = 40
    lungs = np.zeros(shape, dtype=np.uint8)
    for label, centre in ((1, 170), (2, 342)):
        inside = ((y - 250) / 130.0) ** 2 + ((x - centre) / 70.0) ** 2 <= 1.0
        lungs[np.broadcast_to(inside, shape)] = label
    hu[lungs > 0] = -850
    hu += rng.integers(-20, 20, size=shape, dtype=np.int16)
    volume = Volume(hu, spacing=CT_SPACING, source=SourceInfo(modality="CT"))
    return volume, lungs


def _setup(architecture: str, slices: int = CT_SHAPE[0]):
    def setup(env: CaseEnv) -> _Run:
        import torch

        from radassist.lung.infection.model import ARCHITECTURES, default_label_table
        from radassist.lung.infection.pipeline import InfectionModel
        from radassist.results import LabelMap, Segment
        from radassist.runtime.registry import build_model

        torch.manual_seed(0)
        network = build_model(ARCHITECTURES[architecture]).eval()
        volume, lung_labels = _ct_volume(slices)
        lungs = LabelMap(lung_labels, volume.geometry, [Segment("right lung", 1), Segment("left lung", 2)])
        model = InfectionModel(network, default_label_table(), name=f"lung-infection-{architecture} (random)")
        env.notes.append(f"batch {BATCH}, {sum(p.numel() for p in network.parameters()) / 1e6:.1f} M weights")
        return _Run(volume, model, lungs, env.backend, env.scratch)
    return setup


def _run(state: _Run) -> None:
    from radassist.lung.infection.pipeline import segment_infection

    result = segment_infection(state.volume, state.model, state.lungs, engine=state.engine, batch_size=BATCH,
                               onnx_cache=state.cache)
    assert result.labelmap.labels.shape[1:] == state.volume.array.shape  # (layers, z, y, x)


CASES: list[BenchmarkCase] = [
    BenchmarkCase(f"lung infection {name} 512x512x{slices} CT", "lung infection",
                  f"{slices} slices of 512x512 int16, full-size {name}, batch {BATCH}, float32",
                  _setup(arch, slices), _run, backends=("torch", "onnx"), uses_device=True, repeats=1, warmup=0,
                  timeout_s=3600.0)  # 300 full slices of a paper-size network: about 15 min a run on 2 cores
    for slices in (CT_SHAPE[0], SHORT_SLICES) for arch, name in (("unet", "U-Net"), ("segnet", "SegNet"))
]


# ------------------------------------------------------------------------------------------------ loss comparison


@dataclass
class ComparisonRow:
    seed: int
    balanced: list[float]
    plain: list[float]
    seconds: float


def comparison_data():
    """The phantom slices the comparison (and the learning test) train on: 2 phantoms, 28 lung slices of 64x64."""
    from radassist.lung.infection.preprocess import window_to_unit
    from radassist.lung.infection.synthetic import InfectionPhantomConfig, infection_slices
    from radassist.synthetic.chest import ChestPhantomConfig

    config = InfectionPhantomConfig(
        chest=ChestPhantomConfig(shape=(16, 64, 64), spacing=(5.0, 5.0, 15.0), nodule_count=(0, 0), noise_hu=8.0,
                                 vessel_generations=3, airway_generations=2),
        ggo_radius_mm=(30.0, 45.0), ggo_texture_kept=0.1, consolidation_radius_mm=(20.0, 30.0))
    hu, masks = infection_slices([0, 1], config)
    return window_to_unit(hu)[:, np.newaxis], masks


def compare_losses(seeds: Sequence[int], epochs: int, learning_rate: float = 5e-3) -> list[ComparisonRow]:
    """Per seed: per-class Dice on the training slices after ``epochs`` with balanced and with plain CE."""
    from radassist.lung.infection.losses import median_frequency_weights
    from radassist.lung.infection.train import build_network, fit_network, predict_labels
    from radassist.metrics.segmentation import SegmentationScores

    images, masks = comparison_data()
    weights = median_frequency_weights(masks, 4)
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        scores = {}
        for balanced in (True, False):
            _, _, model = build_network("unet", {"channels": (8, 16, 32, 64)}, 4, seed)
            fit_network(model, images, masks, weights if balanced else None, epochs, learning_rate, 8, seed)
            scores[balanced] = SegmentationScores.from_labels(masks, predict_labels(model, images),
                                                              ["bg", "ggo", "consolidation", "effusion"]).dice
        rows.append(ComparisonRow(seed, scores[True], scores[False], time.perf_counter() - start))
    return rows


def comparison_markdown(rows: Sequence[ComparisonRow], epochs: int) -> str:
    images, masks = comparison_data()
    share = np.bincount(masks.ravel(), minlength=4) / masks.size
    lines = [f"Date (UTC): {datetime.now(timezone.utc):%Y-%m-%d %H:%M}; machine: {platform.processor() or 'cpu'}, "
             f"{platform.platform()}, torch threads 1", "",
             f"Data: {len(images)} lung slices of 64x64 from two infection phantoms (seeds 0, 1); pixel shares "
             f"background {share[0]:.4f}, ground glass {share[1]:.4f}, consolidation {share[2]:.4f} (the rare "
             f"class), effusion {share[3]:.4f}.", "",
             f"Model: U-Net channels 8-16-32-64, batch norm; Adam lr 5e-3, batch 8, {epochs} epochs (same budget for "
             f"both losses). Dice on the training slices.", "",
             "| seed | loss | Dice ground glass | Dice consolidation (rare) | Dice effusion |",
             "|---|---|---|---|---|"]
    for row in rows:
        for name, dice in (("balanced", row.balanced), ("plain", row.plain)):
            lines.append(f"| {row.seed} | {name} | {dice[1]:.3f} | {dice[2]:.3f} | {dice[3]:.3f} |")
    mean_b = np.nanmean([r.balanced[2] for r in rows])
    mean_p = np.nanmean([r.plain[2] for r in rows])
    lines += ["", f"Mean Dice of the rare class: balanced {mean_b:.3f}, plain {mean_p:.3f}."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cases_infection")
    parser.add_argument("--loss-comparison", action="store_true", help="run the balanced vs plain CE comparison")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    if not args.loss_comparison:
        parser.print_help()
        return 0
    import torch

    torch.set_num_threads(1)
    rows = compare_losses(args.seeds, args.epochs)
    sys.stdout.write(comparison_markdown(rows, args.epochs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
