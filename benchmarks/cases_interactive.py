"""Benchmark cases of box-prompted segmentation (LiteMedSAM, published weights: install them first with
'radassist models install litemedsam').

Per backend (torch, ONNX Runtime float32, ONNX Runtime with an int8 encoder): the encoder on one 256 x 256 slice,
the decoder on one box, a 40-slice tumour box end to end with no embedding cache (BraTS case pat0002's FLAIR,
its whole tumour's box cut to the 40 slices around its middle), and the re-run after moving that box by a few
millimetres with every embedding on disk. Run with
``python -m benchmarks.run --module benchmarks.cases_interactive``; the Dice of each end-to-end run is in the
notes, so a faster engine that loses accuracy shows it. benchmarks/INTERACTIVE.md discusses the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.cases import test_data_root
from benchmarks.harness import BenchmarkCase, CaseEnv

BACKENDS = ("torch", "onnx", "onnx-int8")
CASE = "brats_2013_pat0002_1"
BOX_SLICES = 40
MOVE_MM = (3.0, -2.0, 0.0)  # the annotator nudges the box


def _missing() -> str | None:
    from radassist.interactive.weights import MODEL_ID
    from radassist.runtime.catalog import load_catalog
    from radassist.runtime.registry import is_installed

    folder = test_data_root() / "brain" / "brats2015" / CASE
    if not folder.is_dir():
        return f"BraTS sample not found at {folder} (set RADASSIST_TEST_DATA)"
    if not is_installed(load_catalog().get(MODEL_ID)):
        return "LiteMedSAM is not installed: radassist models install litemedsam"
    return None


def _engine(env: CaseEnv):
    from radassist.interactive.engine import build_engine
    from radassist.interactive.weights import load_litemedsam

    model, sha256 = load_litemedsam()
    backend, int8 = ("onnx", True) if env.backend == "onnx-int8" else (env.backend, False)
    engine = build_engine(model, sha256, backend, int8, env.device)  # ONNX files from the RadAssist cache
    env.notes.append(engine.description)
    return engine


def _tumour(box_slices: int = BOX_SLICES) -> tuple[Any, np.ndarray]:
    from radassist.io import read_volume

    folder = test_data_root() / "brain" / "brats2015" / CASE
    flair = read_volume(folder / "Flair_subtrMeanDivStd.nii.gz")
    tumour = read_volume(folder / "OTMultiClass.nii.gz").array > 0
    slices = np.flatnonzero(tumour.any(axis=(1, 2)))
    start = int(np.median(slices)) - box_slices // 2
    part = np.zeros_like(tumour)
    part[start:start + box_slices] = tumour[start:start + box_slices]
    return flair, part


@dataclass
class _Slice:
    engine: Any
    image: np.ndarray
    embedding: np.ndarray
    box: np.ndarray


def _setup_slice(env: CaseEnv) -> _Slice:
    from radassist.interactive.preprocess import default_window, prepare_slices, window_to_uint8

    engine = _engine(env)
    flair, tumour = _tumour()
    middle = int(np.argmax(tumour.sum(axis=(1, 2))))
    image = prepare_slices(window_to_uint8(flair.array, default_window("MR"))[middle:middle + 1])
    rows, cols = np.nonzero(tumour[middle])
    box = np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=np.float32) * 256 / 240
    return _Slice(engine, image, engine.encode(image)[0], box)


def _run_encoder(state: _Slice) -> None:
    state.engine.encode(state.image)


def _run_decoder(state: _Slice) -> None:
    state.engine.decode(state.embedding, state.box)


@dataclass
class _Box:
    engine: Any
    volume: Any
    reference: np.ndarray
    box: Any
    cache: Any
    env: CaseEnv
    config: Any = None
    noted: bool = False


def _setup_box(env: CaseEnv, step_mm: float | None = None) -> _Box:
    from radassist.interactive.boxes import box_around_mask
    from radassist.interactive.embedding_cache import EmbeddingCache
    from radassist.interactive.pipeline import BoxSegmentationConfig
    from radassist.interactive.propagate import PropagationConfig

    flair, tumour = _tumour()
    box = box_around_mask(tumour, flair.geometry, margin_px=3 * 240 / 256, name="tumour")
    config = BoxSegmentationConfig() if step_mm is None else \
        BoxSegmentationConfig(propagation=PropagationConfig(step_mm=step_mm))
    return _Box(_engine(env), flair, tumour, box, EmbeddingCache(limit_bytes=0), env, config)


def _setup_box_every_slice(env: CaseEnv) -> _Box:
    return _setup_box(env, step_mm=0.0)


def _run_box(state: _Box) -> None:
    from radassist.interactive.pipeline import segment_boxes
    from radassist.metrics.segmentation import dice

    result = segment_boxes(state.volume, [state.box], state.engine, state.config, cache=state.cache)
    if not state.noted:
        stats = result.stats
        state.env.notes.append(f"Dice {dice(state.reference, result.boxes[0].mask):.3f}, "
                               f"{stats['encoded_slices']} slices encoded, {stats['decoded_slices']} decoded")
        state.noted = True


def _setup_rerun(env: CaseEnv) -> _Box:
    from radassist.interactive.embedding_cache import EmbeddingCache
    from radassist.interactive.pipeline import segment_boxes

    state = _setup_box(env)
    state.cache = EmbeddingCache(folder=env.scratch / "embeddings", limit_bytes=4 << 30)
    segment_boxes(state.volume, [state.box], state.engine, state.config, cache=state.cache)  # first run, untimed
    state.box = state.box.moved(MOVE_MM)
    return state


CASES: list[BenchmarkCase] = [
    BenchmarkCase("LiteMedSAM encoder, one slice", "interactive", "1x3x256x256 (a BraTS FLAIR slice)",
                  _setup_slice, _run_encoder, backends=BACKENDS, uses_device=True, repeats=5, warmup=1,
                  unavailable=_missing),
    BenchmarkCase("LiteMedSAM decoder, one box", "interactive", "embedding 256x64x64 + 1 box", _setup_slice,
                  _run_decoder, backends=BACKENDS, uses_device=True, repeats=20, warmup=2, unavailable=_missing),
    BenchmarkCase("LiteMedSAM 40-slice tumour box, end to end", "interactive",
                  f"BraTS {CASE} FLAIR 240x240x155, box over {BOX_SLICES} slices, no cache, slices 3 mm apart "
                  f"(default)", _setup_box, _run_box, backends=BACKENDS, uses_device=True, repeats=3, warmup=0,
                  unavailable=_missing, timeout_s=3600),
    BenchmarkCase("LiteMedSAM 40-slice tumour box, every slice", "interactive",
                  f"BraTS {CASE} FLAIR 240x240x155, box over {BOX_SLICES} slices, no cache, every slice "
                  f"(--step-mm 0, as published)", _setup_box_every_slice, _run_box, backends=("onnx",),
                  uses_device=True, repeats=3, warmup=0, unavailable=_missing, timeout_s=3600),
    BenchmarkCase("LiteMedSAM re-run after moving the box", "interactive",
                  f"the same {BOX_SLICES}-slice box moved by {MOVE_MM} mm, embeddings on disk", _setup_rerun,
                  _run_box, backends=BACKENDS, uses_device=True, repeats=5, warmup=1, unavailable=_missing,
                  timeout_s=3600),
]
