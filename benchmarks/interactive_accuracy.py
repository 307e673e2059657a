"""Box-prompted segmentation (LiteMedSAM) on the real sample images, beside Otsu inside the same box.

For each reference structure the box is its bounding box on the axial slices grown by 3 pixels of the model's
256-pixel frame and by one slice (see radassist.interactive.evaluate). Run with

    .venv/bin/python -m benchmarks.interactive_accuracy [--backend onnx|torch] [--int8] [--json FILE]

after 'radassist models install litemedsam'. It prints a Markdown table (the one in benchmarks/INTERACTIVE.md)
and, with --json, writes every number. Slice embeddings go to the RadAssist cache, so a second run with other
propagation settings encodes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.cases import test_data_root

BRATS_CASES = ("brats_2013_pat0001_1", "brats_2013_pat0002_1", "brats_2013_pat0003_1", "brats_2013_pat0004_1")
TOTALSEG_ORGANS = {"liver": 5, "spleen": 1, "right kidney": 2, "left kidney": 3}  # TotalSegmentator v2 class map
GMIC_VIEWS = ("R-CC", "R-MLO")
MIN_LESION_PX = 100  # GMIC's masks also mark specks of 4-9 pixels (calcifications); one box per real lesion


@dataclass
class AccuracyCase:
    """One reference structure: the group it is reported in, and how to load (image, reference mask)."""

    group: str
    case: str
    structure: str
    load: Callable[[], tuple]
    window: str | None = None  # None: the paper's window for the image's modality


def brats_cases(root: Path) -> Iterator[AccuracyCase]:
    from radassist.io import read_volume

    for case in BRATS_CASES:
        folder = root / "brain" / "brats2015" / case

        def load(folder: Path = folder) -> tuple:
            flair = read_volume(folder / "Flair_subtrMeanDivStd.nii.gz")
            labels = read_volume(folder / "OTMultiClass.nii.gz").array
            return flair, (labels >= 1) & (labels <= 4)  # whole tumour: labels 1-4

        yield AccuracyCase("BraTS 2015 FLAIR, whole tumour (expert labels)", case, "whole tumour", load)


def totalseg_cases(root: Path) -> Iterator[AccuracyCase]:
    from radassist.io import read_volume

    folder = root / "ct" / "chest_abdomen_example"
    for organ, value in TOTALSEG_ORGANS.items():
        def load(value: int = value) -> tuple:
            ct = read_volume(folder / "example_ct_sm.nii.gz")
            return ct, read_volume(folder / "example_seg.nii.gz").array == value

        yield AccuracyCase("TotalSegmentator example CT, organs (labels by the TotalSegmentator model)",
                           "example_ct_sm", organ, load)


def gmic_lesion_masks(root: Path, view: str) -> tuple:
    """The mammogram of ``view`` as a one-slice Volume and its benign lesion mask on the image's own grid (the
    published masks are in GMIC's 2944 x 1920 window frame: mapped back through our window placement)."""
    from PIL import Image

    from radassist.io.mammogram import read_mammogram
    from radassist.mammo.preprocess import prepare_view

    folder = root / "mammo" / "gmic_exam0"
    mammogram = read_mammogram(folder / f"0_{view}.png")
    window = prepare_view(mammogram).window
    in_window = np.asarray(Image.open(folder / "lesion_masks" / f"0_{view}_benign.png")) > 0
    return mammogram.to_volume(), (window.to_image(in_window.astype(np.uint8)) > 0)[None]


def gmic_cases(root: Path) -> Iterator[AccuracyCase]:
    from scipy import ndimage

    for view in GMIC_VIEWS:
        def load_all(view: str = view) -> tuple:
            return gmic_lesion_masks(root, view)

        volume, mask = load_all()
        labels, count = ndimage.label(mask[0], structure=np.ones((3, 3)))
        sizes = ndimage.sum_labels(mask[0], labels, range(1, count + 1))
        for number, index in enumerate(np.flatnonzero(sizes >= MIN_LESION_PX) + 1, start=1):
            def load(view: str = view, index: int = int(index)) -> tuple:
                volume, mask = load_all(view)
                labels, _ = ndimage.label(mask[0], structure=np.ones((3, 3)))
                return volume, (labels == index)[None]

            yield AccuracyCase("GMIC sample exam, benign lesion (2-D)", f"0_{view}", f"lesion {number}", load)


def chest_cases(root: Path) -> Iterator[AccuracyCase]:
    from radassist.io import read_volume
    from radassist.results import read_seg_nrrd

    for lung in ("right lung", "left lung"):
        for window in (None, "ct-lung"):
            def load(lung: str = lung) -> tuple:
                ct = read_volume(root / "slicer" / "CTChest4.nrrd")
                return ct, read_seg_nrrd(root / "slicer" / "Segmentation.seg.nrrd").mask(lung)

            yield AccuracyCase("CTChest4 (slicerio sample), lungs", "CTChest4", lung, load, window)


def all_cases(root: Path) -> list[AccuracyCase]:
    return [*brats_cases(root), *totalseg_cases(root), *gmic_cases(root), *chest_cases(root)]


def run(cases: Sequence[AccuracyCase], engine, config_for: Callable, progress: bool = True) -> list[dict]:
    from radassist.interactive.embedding_cache import EmbeddingCache
    from radassist.interactive.evaluate import score_box

    cache = EmbeddingCache()
    rows = []
    for case in cases:
        volume, reference = case.load()
        started = time.perf_counter()
        score = score_box(volume, reference, engine, case.case, case.structure, config_for(case), cache)
        row = score.as_row() | {"group": case.group, "window": case.window or "paper",
                                "wall_s": round(time.perf_counter() - started, 1)}
        rows.append(row)
        if progress:
            print(f"{case.case:>22} {case.structure:<14} {row['window']:<8} Dice {row['dice']:.3f} "
                  f"(Otsu {row['baseline_dice']:.3f}), {row['encoded_slices']} encoded, {row['wall_s']} s",
                  file=sys.stderr, flush=True)
    return rows


def markdown(rows: Sequence[dict]) -> str:
    lines = []
    for group in dict.fromkeys(row["group"] for row in rows):
        chosen = [row for row in rows if row["group"] == group]
        lines += [f"**{group}**", "",
                  "| case | structure | window | slices in box | LiteMedSAM Dice | Otsu in box Dice |",
                  "|---|---|---|---:|---:|---:|"]
        lines += [f"| {r['case']} | {r['structure']} | {r['window']} | {r['box_slices']} | {r['dice']:.3f} | "
                  f"{r['baseline_dice']:.3f} |" for r in chosen]
        paper = [r for r in chosen if r["window"] == "paper"]
        lines += [f"| **mean** | | paper | | **{np.mean([r['dice'] for r in paper]):.3f}** | "
                  f"**{np.mean([r['baseline_dice'] for r in paper]):.3f}** |", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.interactive_accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    parser.add_argument("--int8", action="store_true", help="int8 encoder (ONNX Runtime)")
    parser.add_argument("--only", action="append", help="only cases whose group, case or structure has this text")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)

    from radassist.interactive.engine import build_engine
    from radassist.interactive.pipeline import BoxSegmentationConfig
    from radassist.interactive.preprocess import parse_window
    from radassist.interactive.weights import load_litemedsam

    cases = all_cases(test_data_root())
    if args.only:
        cases = [c for c in cases if any(t.lower() in f"{c.group} {c.case} {c.structure}".lower() for t in args.only)]
    model, sha256 = load_litemedsam()
    engine = build_engine(model, sha256, args.backend, args.int8)
    rows = run(cases, engine, lambda case: BoxSegmentationConfig(window=parse_window(case.window)
                                                                  if case.window else None))
    for row in rows:
        row["engine"] = engine.variant
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
