"""Render Resources/Screenshots/RadAssist-1.png (the picture the extension's CMake metadata points to) from real
results: RadAssist's own commands run on the real, Apache-2.0 TotalSegmentator example CT.

    .venv/bin/python docs/make_screenshot.py [--data DIR] [--out FILE]

Left: `radassist segment box` with the published LiteMedSAM weights, one box per organ drawn around the
example's reference label (as an annotator would); right: `radassist liver quantify` of that label. Nothing is
retouched; the caption says it is not a capture of Slicer's window (no Slicer runs on the machines that build
this project). Needs LiteMedSAM installed (`radassist models install litemedsam`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORGANS = ((5, "liver"), (1, "spleen"), (2, "right kidney"), (3, "left kidney"))  # TotalSegmentator v2 labels


def radassist(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "radassist.cli", *arguments], check=True, cwd=ROOT)


def organ_boxes(ct_path: Path, labels_path: Path, roi_path: Path) -> None:
    """One ROI per organ: its reference label's box grown by 3 pixels of the model's frame and one slice."""
    from radassist.interactive.boxes import box_around_mask
    from radassist.io import read_volume
    from radassist.results import Detection, Detections, write_roi_markups

    ct, labels = read_volume(ct_path), read_volume(labels_path).array
    boxes = [box_around_mask(labels == value, ct.geometry, 3 * max(ct.array.shape[1:]) / 256, 1, name)
             for value, name in ORGANS]
    write_roi_markups(Detections([Detection(box.center_lps, box.size_mm, 1.0, box.name) for box in boxes]),
                      roi_path)


def compose(segment_png: Path, liver_png: Path, report: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12.8, 4.4), dpi=100, facecolor="#1e1e1e")
    liver = report["summary"]
    panels = ((segment_png, "Box-prompted segmentation (LiteMedSAM, Ma et al. 2024): liver, spleen and kidneys,\n"
                            "one box each, 'radassist segment box'"),
              (liver_png, f"LiverSeg measurements, 'radassist liver quantify': liver "
                          f"{liver['liver_volume_ml']:.0f} mL, {liver['tumour_count']} tumours"))
    for axis, (png, title) in zip(axes, panels):
        axis.imshow(plt.imread(png))
        axis.set_title(title, color="white", fontsize=10)
        axis.axis("off")
    figure.text(0.5, 0.02, "Rendered by RadAssist from real results on the TotalSegmentator example CT (Apache-2.0); "
                           "not a capture of Slicer's window.", ha="center", color="#bbbbbb", fontsize=9)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, facecolor=figure.get_facecolor())
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("RADASSIST_TEST_DATA", ROOT.parent / "shared" / "data")))
    parser.add_argument("--out", type=Path, default=ROOT / "Resources" / "Screenshots" / "RadAssist-1.png")
    args = parser.parse_args()
    example = args.data / "ct" / "chest_abdomen_example"
    ct, labels = example / "example_ct_sm.nii.gz", example / "example_seg.nii.gz"  # the label map's own grid
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        organ_boxes(ct, labels, work / "organs.mrk.json")
        radassist("segment", "box", str(ct), "--roi", str(work / "organs.mrk.json"), "--out", str(work / "segment"))
        radassist("liver", "quantify", str(labels), "--image", str(ct), "--liver-label", "5", "--out",
                  str(work / "liver"))
        report = json.loads((work / "liver" / "result.json").read_text())
        compose(work / "segment" / "segmentation.png", work / "liver" / "segmentation.png", report, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
