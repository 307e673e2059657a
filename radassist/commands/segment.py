"""`radassist segment box`: draw a box, get the mask (LiteMedSAM), on a 2-D image or through a volume.

This is also exactly what a Slicer job process runs: the ROI comes as a Slicer ``.mrk.json`` (LPS or RAS), the
result goes back as ``segmentation.seg.nrrd`` with one segment per box, named after its ROI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from radassist.commands.inputs import load_input_volume
from radassist.commands.options import add_model_option
from radassist.commands.run_context import command_run
from radassist.errors import InputError
from radassist.runtime.progress import tqdm_progress

PNG_SUFFIXES = (".png",)


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    parser = commands.add_parser("segment", help="interactive segmentation: a box in, the object's mask out",
                                 formatter_class=formatter,
                                 description="Segment what a box holds with LiteMedSAM (Ma et al., MedSAM, Nature "
                                             "Communications 2024), on any modality, on the CPU. Install the model "
                                             "first: 'radassist models install litemedsam'.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    box = actions.add_parser(
        "box", help="segment the object in each box (one segment per box)", formatter_class=formatter,
        description="On a 2-D image a box gives the mask of the object in it; on a volume a 3-D box gives a 3-D "
                    "segment: the box's middle slice first, then slice by slice to both ends of the box, each slice "
                    "prompted by its neighbour's mask, stopping where the object ends. Writes "
                    "segmentation.seg.nrrd (one segment per box, named after its ROI), report.json/report.csv "
                    "(volume in mL, longest axial diameter, voxel count per segment), segmentation.png and "
                    "result.json. Slice embeddings are kept in the RadAssist cache, so running again after "
                    "moving a box costs only the mask decoder.")
    box.add_argument("input", type=Path, help="image: a volume (NIfTI, NRRD, MHA, DICOM folder) or a 2-D image "
                                              "(greyscale PNG, one-slice volume)")
    box.add_argument("--series", metavar="UID", help="SeriesInstanceUID when a DICOM folder holds several")
    where = box.add_argument_group("boxes (at least one)")
    where.add_argument("--box", action="append", default=[], metavar="NUMBERS",
                       help="x0,y0,z0,x1,y1,z1: two opposite corners in LPS mm; or x0,y0,x1,y1 in pixels (column, "
                            "row) of a 2-D image. Repeat for several boxes")
    where.add_argument("--name", action="append", default=[], metavar="NAME",
                       help="segment name of each --box, in order (default: Segment 1, Segment 2, ...)")
    where.add_argument("--roi", type=Path, metavar="FILE",
                       help="Slicer ROI markups (.mrk.json), one segment per ROI, named after it")
    box.add_argument("--out", type=Path, required=True, help="output folder (created if needed)")
    box.add_argument("--window", metavar="PRESET|LOW,HIGH",
                     help="intensity window: ct (level 40, width 400: the paper's), ct-lung, ct-bone, percentile "
                          "(0.5-99.5, the paper's for MR), or raw LOW,HIGH; default: by modality")
    box.add_argument("--modality", help="CT, MR, MG, ... (default: from DICOM, else CT for images in HU)")
    box.add_argument("--step-mm", type=float, default=3.0, metavar="MM",
                     help="on thin slices, segment slices about MM apart and interpolate between them (fewer "
                          "slices to encode); 0 segments every slice")
    box.add_argument("--context", type=float, default=3.0, metavar="X",
                     help="for an object small against its slice, the encoder sees a square about X times the box "
                          "instead of the whole slice (0: always the whole slice, as published)")
    box.add_argument("--backend", choices=("onnx", "torch"), default="onnx",
                     help="inference engine (the ONNX graphs are exported once and cached)")
    box.add_argument("--int8", action="store_true", help="run the image encoder with int8 weights (ONNX Runtime "
                                                         "dynamic quantisation): faster on a CPU, see benchmarks")
    add_model_option(box, "LiteMedSAM weights: a catalogue id (default: litemedsam, installed) or a "
                          "lite_medsam.pth / .safetensors file", old=("--weights",))
    box.add_argument("--no-cache", action="store_true", help="neither read nor write cached slice embeddings")
    box.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    box.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: all cores)")
    box.set_defaults(handler=run_box)


def read_image(path: Path, series: str | None = None):
    """A Volume from a volume file, a DICOM folder or file, or a greyscale PNG (one slice)."""
    if path.suffix.lower() in PNG_SUFFIXES:
        from radassist.io.mammogram import read_mammogram

        return read_mammogram(path).to_volume()  # refuses a missing file itself
    return load_input_volume(argparse.Namespace(input=path, series=series), require_3d=False)


def parse_boxes(args: argparse.Namespace, volume) -> list:
    """The BoxPrompts of ``--box``/``--name`` and ``--roi``; InputError names the option and the problem."""
    from radassist.interactive.boxes import DEFAULT_NAME, box_from_numbers, boxes_from_roi_file, parse_box_numbers

    if not args.box and args.roi is None:
        raise InputError(None, "give a box: --box x0,y0,z0,x1,y1,z1 (LPS mm), --box x0,y0,x1,y1 (pixels of a 2-D "
                               "image) or --roi FILE.mrk.json")
    if len(args.name) > len(args.box):
        raise InputError(None, f"{len(args.name)} --name for {len(args.box)} --box")
    boxes = []
    for index, text in enumerate(args.box):
        name = args.name[index] if index < len(args.name) else f"{DEFAULT_NAME} {index + 1}"
        try:
            boxes.append(box_from_numbers(parse_box_numbers(text), volume.geometry, name))
        except ValueError as error:
            raise InputError(None, f"--box {text}: {error}") from None
    if args.roi is not None:
        boxes += boxes_from_roi_file(args.roi)
    return boxes


def litemedsam_weights(value: str | None) -> tuple[Path | None, str]:
    """``(weights file or None, catalogue id)`` named by ``--model``: an existing file is read as it is, a folder
    must hold exactly one weights file, anything else is a catalogue id."""
    from radassist.interactive.weights import MODEL_ID

    if value is None:
        return None, MODEL_ID
    path = Path(value).expanduser()
    if path.is_file():
        return path, MODEL_ID
    if path.is_dir():
        found = sorted([*path.glob("*.pth"), *path.glob("*.safetensors")])
        if len(found) != 1:
            raise InputError(path, f"--model: expected one .pth or .safetensors weights file here, found {len(found)}")
        return found[0], MODEL_ID
    return None, str(value)


def box_engine(model: str | None, backend: str = "onnx", int8: bool = False, device: str = "cpu",
               threads: int | None = None):
    """The LiteMedSAM engine ``--model`` names (weights loaded and checked before any output is made)."""
    from radassist.interactive.engine import build_engine
    from radassist.interactive.weights import load_litemedsam

    if int8 and backend != "onnx":
        raise InputError(None, "--int8 runs through ONNX Runtime: use it with --backend onnx")
    weights, model_id = litemedsam_weights(model)
    loaded, sha256 = load_litemedsam(weights, model_id=model_id)
    return build_engine(loaded, sha256, backend, int8, device, threads)


def box_config(window: str | None = None, modality: str | None = None, step_mm: float = 3.0, context: float = 3.0):
    """The run's BoxSegmentationConfig from the command's (and the server task's) options."""
    from radassist.interactive.pipeline import BoxSegmentationConfig
    from radassist.interactive.preprocess import parse_window
    from radassist.interactive.propagate import PropagationConfig

    try:
        parsed = parse_window(window) if window else None
    except ValueError as error:
        raise InputError(None, f"--window: {error}") from None
    if step_mm < 0:
        raise InputError(None, "--step-mm must be 0 or more")
    if context < 0:
        raise InputError(None, "--context must be 0 or more")
    return BoxSegmentationConfig(window=parsed, modality=modality, context=context,
                                 propagation=PropagationConfig(step_mm=step_mm))


def check_boxes(volume, boxes, source) -> None:
    """Every box on the image, before the model is loaded; InputError names ``source`` (the ROI file or image)."""
    from radassist.interactive.pipeline import place_boxes

    try:
        place_boxes(volume, boxes)
    except ValueError as error:
        raise InputError(source, str(error)) from None


def run_box(args: argparse.Namespace) -> int:
    from radassist.interactive.embedding_cache import EmbeddingCache
    from radassist.interactive.pipeline import segment_boxes

    volume = read_image(args.input, args.series)
    boxes = parse_boxes(args, volume)
    check_boxes(volume, boxes, args.roi or args.input)
    config = box_config(args.window, args.modality, args.step_mm, args.context)
    engine = box_engine(args.model, args.backend, args.int8, args.device, args.threads)  # before any output
    cache = EmbeddingCache(limit_bytes=0) if args.no_cache else EmbeddingCache()
    with command_run(args.out, "segment box", args) as (output, record):
        record.inputs = [str(args.input)] + ([str(args.roi)] if args.roi else [])
        with record.timed("segment"), tqdm_progress("segment box") as progress:
            result = segment_boxes(volume, boxes, engine, config, cache, progress)
        with record.timed("write"):
            write_outputs(volume, result, output)
        record.summary = result.report.summary
    for row in result.report.rows:
        print(f"{row['segment']}: {row['volume_ml']:.2f} mL, longest axial diameter "
              f"{row['longest_axial_diameter_mm']:.1f} mm, {row['voxels']} voxels on {row['slices']} slice(s)")
    stats = result.stats
    print(f"{stats['encoded_slices']} slice(s) encoded, {stats['cached_slices']} from the cache ({engine.description})")
    print(f"wrote segmentation.seg.nrrd, report.json, report.csv and segmentation.png to {args.out}")
    return 0


def write_outputs(volume, result, output) -> None:
    """The command's files, staged in ``output``."""
    from radassist.interactive.preview import write_preview
    from radassist.results import write_report, write_seg_nrrd

    write_seg_nrrd(result.labelmap, output.path("segmentation.seg.nrrd"))
    write_report(result.report, output.path("report.json"), output.path("report.csv"))
    write_preview(volume, result, output.path("segmentation.png"))
