"""`radassist export TASK` (corrected labels into a training dataset, with provenance) and `radassist dataset stats`.

Heavy imports stay inside the run functions so ``--help`` stays fast. An export is all or nothing and never
overwrites an earlier one (see :mod:`radassist.annotation.export`).
"""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path
from typing import Any

from radassist.commands.inputs import load_input_volume, read_labels
from radassist.commands.options import add_model_option
from radassist.commands.run_context import KEEPS_OUT
from radassist.errors import InputError
from radassist.io.atomic import full_suffix
from radassist.io.json_files import read_json

EXPORT_TASKS = ("liver", "lung-infection", "lung", "brain", "mammo")
_DESCRIPTIONS = {
    "liver": "Export a corrected liver segmentation into an MSD / nnU-Net v2 dataset (imagesTr/<case>_0000.nii.gz, "
             "labelsTr/<case>.nii.gz, dataset.json; overlapping segments in labelsTr_layers/). A DICOM series as "
             "--image also gives dicomseg/<case>.dcm, a DICOM SEG referencing it.",
    "lung-infection": "Export a corrected lung infection segmentation into an MSD / nnU-Net v2 dataset (as for "
                      "liver).",
    "lung": "Export corrected nodule boxes into a LUNA16 dataset (subset0/<seriesuid>.mhd, annotations.csv, "
            "markups/<seriesuid>.mrk.json) that 'radassist train lung' reads.",
    "brain": "Export a corrected tumour segmentation into a BraTS layout (subjects/<case>/<case>_<sequence>.nii.gz, "
             "<case>_seg.nii.gz) with optional landmark pairs and their TRE before/after registration; train on it "
             "with 'radassist train brain --data DATASET'.",
    "mammo": "Export an exam's confirmed per-breast labels and drawn lesion masks into an exam list "
             "(exam_list.json / exam_list.csv, images/, masks/) that 'radassist train mammo' reads.",
}


def _common_arguments(parser: argparse.ArgumentParser, ai_help: str, corrected_help: str) -> None:
    parser.add_argument("--ai-result", type=Path, required=True, help=ai_help + " (kept unchanged in provenance)")
    parser.add_argument("--corrected", type=Path, required=True, help=corrected_help)
    parser.add_argument("--out", type=Path, required=True, metavar="DATASET",
                        help="dataset folder (created if needed; a new version is added for a case exported before)")
    parser.add_argument("--case", help="case name in the dataset (default: from the image)")
    parser.add_argument("--annotator", default=None, help="who corrected the result (default: the login name)")
    add_model_option(parser, "the model that made the AI result: catalogue id (ID or ID@VERSION) or checkpoint "
                             "folder", old=("--model-id",))
    parser.add_argument("--model-version", help="its version (default: from the catalogue or checkpoint)")
    parser.add_argument("--weights-sha256", help="sha256 of its weights (default: from the catalogue or checkpoint)")


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    export = commands.add_parser(
        "export", help="export corrected labels into a training dataset, with provenance", formatter_class=formatter,
        description="Add a corrected AI result to a dataset folder that 'radassist train TASK' reads. Each case "
                    "gets a provenance record (model, the AI result unchanged, annotator, time, how much changed); "
                    "exporting a case again adds a version and archives the previous one. Run 'radassist export "
                    "TASK --help' for a task's options.")
    tasks = export.add_subparsers(dest="task", metavar="TASK", required=True)
    for task in EXPORT_TASKS:
        parser = tasks.add_parser(task, help=f"export a {task} case", formatter_class=formatter,
                                  description=_DESCRIPTIONS[task])
        if task in ("liver", "lung-infection", "lung"):
            parser.add_argument("--image", type=Path, required=True, help="the image (file or DICOM folder)")
            parser.add_argument("--series", metavar="UID", help="series to read when the DICOM folder has several")
        if task in ("liver", "lung-infection"):
            _common_arguments(parser, "the AI segmentation (.seg.nrrd, NIfTI labels or DICOM SEG)",
                              "the corrected segmentation (.seg.nrrd, NIfTI labels or DICOM SEG)")
            parser.add_argument("--channel-name", default="CT", help="dataset.json channel name of the image")
            parser.add_argument("--no-dicom-seg", action="store_true",
                                help="do not write a DICOM SEG even when the image is a DICOM series")
        elif task == "lung":
            _common_arguments(parser, "the AI's boxes (.mrk.json or LUNA16 CSV)",
                              "the corrected boxes (.mrk.json or LUNA16 CSV)")
            parser.add_argument("--tolerance-mm", type=float, default=1.0,
                                help="a box moved or resized by more than this counts as changed")
        elif task == "brain":
            parser.add_argument("--image", type=Path, nargs="+", required=True,
                                help="the subject's sequences (files named *flair*, *t1*, *t1ce*, *t2*) or its folder")
            _common_arguments(parser, "the AI tumour segmentation (.seg.nrrd or NIfTI)",
                              "the corrected tumour segmentation (.seg.nrrd or NIfTI)")
            parser.add_argument("--fixed-landmarks", type=Path, help="landmarks on the fixed image (.mrk.json)")
            parser.add_argument("--moving-landmarks", type=Path,
                                help="the same landmarks, in the same order, on the moving image (.mrk.json)")
            parser.add_argument("--transform", type=Path,
                                help="the registration (ITK .h5 or displacement .nii.gz, fixed -> moving) for TRE")
        else:
            parser.add_argument("--image", action="append", required=True, metavar="VIEW=FILE",
                                help="a view and its file, e.g. L-CC=lcc.png (repeat for every view)")
            _common_arguments(parser, "the AI report (report.json of 'radassist mammo classify')",
                              "confirmed labels: JSON {\"L\": {\"benign\": 0, \"malignant\": 0}, \"R\": {...}}")
            parser.add_argument("--mask", action="append", default=[], metavar="VIEW:KIND=PNG",
                                help="a lesion mask drawn on a view, KIND benign or malignant (repeatable)")
        parser.set_defaults(handler=run_export, **{KEEPS_OUT: True})  # exports add versions, never overwrite

    dataset = commands.add_parser("dataset", help="look at an exported dataset", formatter_class=formatter,
                                  description="Commands on dataset folders written by 'radassist export'.")
    actions = dataset.add_subparsers(dest="action", metavar="ACTION", required=True)
    stats = actions.add_parser("stats", help="how much annotators changed, per label and per model version",
                               formatter_class=formatter,
                               description="Summarise an export: cases and versions, annotators, and per label and "
                                           "per model version the Dice, volume change and surface distance between "
                                           "AI and corrected segments, boxes kept/moved/deleted/added, labels "
                                           "changed and landmark TRE.")
    stats.add_argument("folder", type=Path, metavar="DIR", help="the exported dataset folder")
    stats.add_argument("--json", action="store_true", help="print the numbers as JSON")
    stats.set_defaults(handler=run_stats)


# -- readers ----------------------------------------------------------------------------------------------------

def read_boxes(path: Path, series_uid: str):
    """Boxes from a .mrk.json (ROIs) or a LUNA16 CSV (the rows of ``series_uid``, or of its only series)."""
    from radassist.results import Detections, read_detections_csv, read_roi_markups

    suffix = full_suffix(path).lower()
    if suffix == ".mrk.json":
        return read_roi_markups(path)
    if suffix == ".csv":
        per_series = read_detections_csv(path)
        if series_uid in per_series:
            return per_series[series_uid]
        if len(per_series) == 1:
            return next(iter(per_series.values()))
        if not per_series:
            return Detections(items=[])
        raise InputError(path, f"holds several series ({', '.join(per_series)}) and none is {series_uid}")
    raise InputError(path, "expected boxes: a .mrk.json of ROIs or a LUNA16 CSV")


def _annotator(args: argparse.Namespace) -> str:
    if args.annotator:
        return args.annotator
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _image_and_case(args: argparse.Namespace) -> tuple[Any, str]:
    """The --image volume and the case name: --case, else the DICOM series UID or the file name."""
    image = load_input_volume(argparse.Namespace(input=args.image, series=args.series))
    return image, args.case or (image.source.series_instance_uid if args.image.is_dir() else _stem(args.image))


def _stem(path: Path) -> str:
    from radassist.io.images import volume_suffix

    suffix = volume_suffix(path)
    return path.name[: -len(suffix)] if suffix and path.name.lower().endswith(suffix) else path.name


# -- export per task --------------------------------------------------------------------------------------------

def _export_segmentation(args: argparse.Namespace, common: dict[str, Any]):
    from radassist.annotation.export_msd import export_segmentation

    image, case = _image_and_case(args)
    dicom = args.image if args.image.is_dir() and not args.no_dicom_seg else None
    return export_segmentation(args.out, args.task, case, image, read_labels(args.ai_result),
                               read_labels(args.corrected), channel_name=args.channel_name, dicom_source=dicom,
                               **common)


def _export_lung(args: argparse.Namespace, common: dict[str, Any]):
    from radassist.annotation.export_luna16 import export_detections

    image, case = _image_and_case(args)
    return export_detections(args.out, case, image, read_boxes(args.ai_result, case),
                             read_boxes(args.corrected, case), tolerance_mm=args.tolerance_mm, **common)


def _brain_images(paths: list[Path]) -> tuple[dict, str]:
    from radassist.brain.datasets import find_subject_files
    from radassist.brain.preprocess import modality_of
    from radassist.io import read_volume

    if len(paths) == 1 and paths[0].is_dir():
        files = find_subject_files(paths[0])
        return {name: read_volume(path) for name, path in files.images.items()}, paths[0].name
    images = {}
    for path in paths:
        name = modality_of(path.name)
        if name is None:
            raise InputError(path, "cannot tell the sequence from the name (flair, t1, t1ce or t2 in the file name)")
        if name in images:
            raise InputError(path, f"a second {name} image")
        images[name] = read_volume(path)
    return images, _stem(paths[0])


def _export_brain(args: argparse.Namespace, common: dict[str, Any]):
    from radassist.annotation.export_brats import export_registration
    from radassist.results import read_displacement, read_point_markups

    images, fallback = _brain_images(args.image)
    fixed = moving = labels = field = None
    if args.fixed_landmarks or args.moving_landmarks:
        if not (args.fixed_landmarks and args.moving_landmarks):
            raise InputError(args.fixed_landmarks or args.moving_landmarks,
                             "landmarks come in pairs: give --fixed-landmarks and --moving-landmarks")
        fixed, labels = read_point_markups(args.fixed_landmarks)
        moving, _ = read_point_markups(args.moving_landmarks)
        if len(fixed) != len(moving):
            raise InputError(args.moving_landmarks, f"has {len(moving)} landmarks, the fixed file "
                                                    f"{len(fixed)}; they pair up by order")
    if args.transform:
        field = read_displacement(args.transform)
    return export_registration(args.out, args.case or fallback, images, read_labels(args.ai_result),
                               read_labels(args.corrected), fixed_landmarks=fixed, moving_landmarks=moving,
                               landmark_labels=labels, field=field, **common)


def breast_probabilities(report: Any, path: Path) -> dict[str, dict[str, float]]:
    """Per-breast probabilities {"L": {...}, "R": {...}} from a mammo classify report.json ("L breast" groups)."""
    if not isinstance(report, dict) or not isinstance(report.get("groups"), list):
        raise InputError(path, "not a 'radassist mammo classify' report (no 'groups' list)")
    out = {}
    for group in report["groups"]:
        name = str(group.get("image_id", ""))
        if name in ("L breast", "R breast"):
            out[name[0]] = {k: float(v) for k, v in (group.get("probabilities") or {}).items()}
    return out


def _export_mammo(args: argparse.Namespace, common: dict[str, Any]):
    from radassist.annotation.export_exam_list import export_mammography

    views = {}
    for text in args.image:
        view, sep, file = text.partition("=")
        if not sep:
            raise InputError(None, f"--image {text}: write VIEW=FILE, e.g. L-CC=lcc.png")
        views[view.strip().upper()] = Path(file)
    masks = {}
    for text in args.mask:
        key, sep, file = text.partition("=")
        view, colon, kind = key.partition(":")
        if not sep or not colon:
            raise InputError(None, f"--mask {text}: write VIEW:KIND=FILE, e.g. R-CC:benign=mask.png")
        masks[(view.strip().upper(), kind.strip().lower())] = Path(file)
    confirmed = read_json(args.corrected, "confirmed labels file")
    if not isinstance(confirmed, dict):
        raise InputError(args.corrected, "confirmed labels are a JSON object {\"L\": {...}, \"R\": {...}}")
    try:
        probabilities = breast_probabilities(read_json(args.ai_result, "classification report"), args.ai_result)
        case = args.case
        if not case:
            raise InputError(None, "give --case: the exam's id in the exam list")
        return export_mammography(args.out, case, views, confirmed, ai_probabilities=probabilities, masks=masks,
                                  **common)
    except InputError as error:
        if error.path is None and "confirmed" in error.problem:
            raise InputError(args.corrected, error.problem) from None
        raise


_EXPORTERS = {"liver": _export_segmentation, "lung-infection": _export_segmentation, "lung": _export_lung,
              "brain": _export_brain, "mammo": _export_mammo}


def run_export(args: argparse.Namespace) -> int:
    from radassist.annotation.provenance import model_info_for

    common = {"model": model_info_for(args.model, args.model_version, args.weights_sha256),
              "annotator": _annotator(args), "ai_files": [args.ai_result], "corrected_files": [args.corrected]}
    result = _EXPORTERS[args.task](args, common)
    print(f"exported {result.case} as {result.version} into {result.root} "
          f"(provenance: {result.provenance.relative_to(result.root)})")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from radassist.annotation.stats import dataset_stats, format_stats

    stats = dataset_stats(args.folder)
    print(json.dumps(stats.to_dict(), indent=2) if args.json else format_stats(stats))
    return 0
