"""The registered benchmark cases. Each task adds its pipeline here; `python -m benchmarks.run` measures them all.

Inputs are generated (or, for the DICOM reader, the real sample series) at a stated size, so a row in
RESULTS.md can be reproduced anywhere. Cases that run a network list the backends they compare.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import BenchmarkCase, CaseEnv

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DICOM_SERIES = Path("ct") / "chest_abdomen_example" / "dicom"


def test_data_root() -> Path:
    """``$RADASSIST_TEST_DATA``, else ``../shared/data`` beside the project (as the test suite finds it)."""
    return Path(os.environ.get("RADASSIST_TEST_DATA", PROJECT_ROOT.parent / "shared" / "data")).resolve()


# ------------------------------------------------------------------------------------------------ I/O


def _dicom_missing() -> str | None:
    folder = test_data_root() / DICOM_SERIES
    return None if folder.is_dir() else f"real DICOM series not found at {folder} (set RADASSIST_TEST_DATA)"


def _setup_read_dicom(env: CaseEnv) -> Path:
    return test_data_root() / DICOM_SERIES


def _run_read_dicom(folder: Path) -> None:
    from radassist.io import read_dicom_series

    volume = read_dicom_series(folder)
    assert volume.array.shape == (20, 512, 512), volume.array.shape


SEG_SHAPE = (300, 512, 512)  # (z, y, x)


@dataclass
class _SegWrite:
    labelmap: Any
    target: Path


def _setup_write_seg(env: CaseEnv) -> _SegWrite:
    """Three label regions (an organ, a lesion inside it, a second organ) on a 512x512x300 grid."""
    from radassist.results import LabelMap, Segment, terminology_for
    from radassist.volume import Geometry

    z, y, x = np.ogrid[:SEG_SHAPE[0], :SEG_SHAPE[1], :SEG_SHAPE[2]]
    labels = np.zeros(SEG_SHAPE, dtype=np.uint8)
    labels[((z - 150) / 120) ** 2 + ((y - 256) / 180) ** 2 + ((x - 200) / 120) ** 2 < 1] = 1
    labels[((z - 150) / 100) ** 2 + ((y - 256) / 150) ** 2 + ((x - 390) / 90) ** 2 < 1] = 3
    labels[((z - 140) / 30) ** 2 + ((y - 230) / 30) ** 2 + ((x - 190) / 30) ** 2 < 1] = 2
    segments = [Segment("liver", 1, terminology=terminology_for("liver")),
                Segment("liver tumour", 2, terminology=terminology_for("liver tumour")),
                Segment("right lung", 3, terminology=terminology_for("right lung"))]
    labelmap = LabelMap(labels, Geometry(SEG_SHAPE, spacing=(0.7, 0.7, 1.0)), segments)
    return _SegWrite(labelmap, env.scratch / "labels.seg.nrrd")


def _run_write_seg(state: _SegWrite) -> None:
    from radassist.results import write_seg_nrrd

    write_seg_nrrd(state.labelmap, state.target)


# ------------------------------------------------------------------------------------------------ synthetic


def _setup_chest(env: CaseEnv) -> Callable[..., Any]:
    from radassist.synthetic.chest import make_chest_ct

    return make_chest_ct


def _run_chest(make_chest_ct: Callable[..., Any]) -> None:
    make_chest_ct(seed=0)


# ------------------------------------------------------------------------------------------------ inference

UNET_BATCH = 4
UNET_SLICE = 512


@dataclass
class _Inference:
    backend: Any
    batch: np.ndarray


def liver_unet_2d() -> Any:
    """The 2-D U-Net family the liver and lung-infection tasks use (MONAI UNet, 5 levels, residual units)."""
    import torch
    from monai.networks.nets import UNet

    torch.manual_seed(0)  # speed does not depend on the weights; fixed anyway
    return UNet(spatial_dims=2, in_channels=1, out_channels=3, channels=(16, 32, 64, 128, 256),
                strides=(2, 2, 2, 2), num_res_units=2).eval()


def _setup_unet(env: CaseEnv) -> _Inference:
    from radassist.runtime.backends import make_backend

    batch = np.random.default_rng(0).standard_normal((UNET_BATCH, 1, UNET_SLICE, UNET_SLICE)).astype(np.float32)
    backend = make_backend(liver_unet_2d(), env.backend, env.device, example_inputs=batch[:1],
                           input_names=["image"], output_names=["logits"], cache_dir=env.scratch)
    env.notes.append(backend.describe())
    return _Inference(backend, batch)


def _run_unet(state: _Inference) -> None:
    state.backend({"image": state.batch})


CASES: list[BenchmarkCase] = [
    BenchmarkCase("read DICOM series (real CT)", "io", "20 slices of 512x512 int16, 0.98x0.98x2 mm",
                  _setup_read_dicom, _run_read_dicom, unavailable=_dicom_missing),
    BenchmarkCase("write .seg.nrrd", "io", "512x512x300 uint8 label map, 3 segments, gzip",
                  _setup_write_seg, _run_write_seg),
    BenchmarkCase("chest CT phantom", "synthetic", "384x288x112 int16 with nodules, vessels, airways (seed 0)",
                  _setup_chest, _run_chest, repeats=3),
    BenchmarkCase("MONAI 2-D UNet inference", "inference",
                  f"{UNET_BATCH} slices of {UNET_SLICE}x{UNET_SLICE}, channels 16-256, 2 res units, float32",
                  _setup_unet, _run_unet, backends=("torch", "onnx"), uses_device=True, repeats=10, warmup=2),
]
