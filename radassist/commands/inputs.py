"""`radassist inspect` and `radassist convert`: look at an image or DICOM folder, turn it into NRRD/NIfTI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from radassist.commands.run_context import command_run
from radassist.errors import InputError
from radassist.io.atomic import full_suffix
from radassist.volume import Geometry, Volume

FORMATS = {"nrrd": ".nrrd", "nifti": ".nii.gz", "mha": ".mha"}


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The input options every command that reads a volume shares."""
    parser.add_argument("input", type=Path, help="image file (NIfTI, NRRD, MHA/MHD) or a DICOM folder")
    parser.add_argument("--series", metavar="UID", help="SeriesInstanceUID to read when a DICOM folder holds several")


def load_input_volume(args: argparse.Namespace, require_3d: bool = True) -> Volume:
    """Read the command's input; a folder with several DICOM series lists them in the error message."""
    from radassist.io import MultipleSeriesError, read_dicom_series, read_volume

    try:
        if args.input.is_dir():
            volume = read_dicom_series(args.input, series_uid=args.series)
            if require_3d and volume.array.shape[0] < 2:
                raise InputError(args.input, "holds a single 2-D slice, but a 3-D volume is needed")
            return volume
        return read_volume(args.input, require_3d=require_3d)
    except MultipleSeriesError as error:
        listing = "\n".join(f"  {s.series_instance_uid}  {s.slice_count:>4} slices  {s.modality or '?':<3} "
                            f"{s.series_description or ''}" for s in error.series)
        raise InputError(args.input, f"holds {len(error.series)} DICOM series; choose one with --series UID:\n"
                                     f"{listing}") from None


def read_labels(path: Path):
    """A segmentation file as a LabelMap: Slicer .seg.nrrd, NIfTI labels (+ label table sidecar) or DICOM SEG."""
    from radassist.results import read_labelmap_nifti, read_seg_nrrd

    suffix = full_suffix(path).lower()
    if suffix == ".seg.nrrd":
        return read_seg_nrrd(path)
    if suffix in (".nii", ".nii.gz"):
        return read_labelmap_nifti(path)
    if suffix == ".dcm":
        from radassist.annotation.dicom_seg import read_dicom_seg

        return read_dicom_seg(path)
    raise InputError(path, "expected a segmentation: .seg.nrrd, .nii/.nii.gz labels or a DICOM SEG .dcm")


def describe(volume: Volume) -> dict:
    array = volume.array
    return {
        "shape_zyx": list(array.shape), "dtype": str(array.dtype),
        "spacing_xyz_mm": list(volume.spacing), "origin_lps_mm": list(volume.origin),
        "direction": list(volume.direction), "ijk_to_ras": np.round(volume.ijk_to_ras, 6).tolist(),
        "intensity": {"min": float(array.min()), "max": float(array.max()), "mean": float(array.mean())},
        "source": volume.source.to_dict() | {"sop_instance_uids": len(volume.source.sop_instance_uids)},
    }


def orientation_code(geometry: Geometry) -> str:
    """Where the i, j, k voxel axes point, as three letters ("LPS": i to the patient's left, j posterior, k
    superior); a lower-case letter marks an axis that is oblique (more than 1 degree off the nearest one)."""
    from radassist.reorient import axis_codes

    alignment = np.abs(geometry.direction_matrix).max(axis=0)
    return "".join(letter if cosine > np.cos(np.radians(1.0)) else letter.lower()
                   for letter, cosine in zip(axis_codes(geometry), alignment))


def summary_lines(volume: Volume, name: str) -> list[str]:
    """What `radassist inspect` prints for people: grid, spacing, extent, placement, orientation, values, source."""
    array = volume.array
    nz, ny, nx = array.shape
    sx, sy, sz = volume.spacing
    source = volume.source
    described = ", ".join(part for part in (source.modality, source.series_description) if part)
    lines = [name + (f": {described}" if described else ""),
             f"  grid        {nx} x {ny} x {nz} voxels (x, y, z), {array.dtype}",
             f"  spacing     {sx:g} x {sy:g} x {sz:g} mm; extent {nx * sx:.1f} x {ny * sy:.1f} x {nz * sz:.1f} mm",
             f"  origin      ({', '.join(f'{v:.2f}' for v in volume.origin)}) mm, LPS",
             f"  orientation {orientation_code(volume.geometry)} (voxel axes i, j, k point to these sides of the "
             f"patient)",
             f"  values      min {float(array.min()):g}, max {float(array.max()):g}, mean {float(array.mean()):.4g}"]
    if source.series_instance_uid:
        lines.append(f"  series      {source.series_instance_uid} ({len(source.sop_instance_uids)} files)")
    if source.patient_id:
        lines.append(f"  patient     {source.patient_id}")
    return lines


def register(commands: argparse._SubParsersAction, formatter: type[argparse.HelpFormatter]) -> None:
    inspect = commands.add_parser(
        "inspect", help="show an image's geometry and metadata, or list a DICOM folder's series",
        formatter_class=formatter,
        description="Read an image file or DICOM folder and print a short summary: grid, spacing, extent, LPS "
                    "placement and orientation, value range and DICOM identifiers. --json prints everything as "
                    "JSON, with Slicer's IJK-to-RAS matrix. For a DICOM folder, --list-series lists every series.")
    add_input_arguments(inspect)
    inspect.add_argument("--list-series", action="store_true", help="list the DICOM series in the folder and stop")
    inspect.add_argument("--json", action="store_true", help="print machine-readable JSON instead of the summary")
    inspect.set_defaults(handler=run_inspect)

    convert = commands.add_parser(
        "convert", help="convert an image or DICOM series to NRRD, NIfTI or MHA", formatter_class=formatter,
        description="Read an image file or one DICOM series and write it as a volume Slicer opens directly.")
    add_input_arguments(convert)
    convert.add_argument("--out", type=Path, required=True, help="output folder")
    convert.add_argument("--format", choices=sorted(FORMATS), default="nrrd", help="output file format")
    convert.add_argument("--name", help="output file name without extension (default: from the input)")
    convert.set_defaults(handler=run_convert)


def run_inspect(args: argparse.Namespace) -> int:
    if args.list_series:
        from radassist.io import list_series

        if not args.input.is_dir():
            raise InputError(args.input, "--list-series needs a DICOM folder")
        series = list_series(args.input)
        if not series:
            raise InputError(args.input, "contains no DICOM series")
        if args.json:
            print(json.dumps([{"series_instance_uid": s.series_instance_uid, "slices": s.slice_count,
                               "modality": s.modality, "description": s.series_description} for s in series],
                             indent=2))
            return 0
        for s in series:
            print(f"{s.series_instance_uid}  {s.slice_count:>4} slices  {s.modality or '?':<3} "
                  f"{s.series_description or ''}")
        return 0
    volume = load_input_volume(args, require_3d=False)
    if args.json:
        print(json.dumps(describe(volume) | {"orientation": orientation_code(volume.geometry)}, indent=2))
    else:
        print("\n".join(summary_lines(volume, str(args.input))))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from radassist.io import write_volume

    with command_run(args.out, "convert", args) as (output, record):
        with record.timed("read"):
            volume = load_input_volume(args)
        name = args.name or (volume.source.series_instance_uid if args.input.is_dir() else
                             args.input.name.split(".")[0]) or "volume"
        filename = name + FORMATS[args.format]
        with record.timed("write"):
            write_volume(volume, output.path(filename))
        record.inputs = [str(args.input)]
        record.summary = describe(volume)
    print(f"wrote {args.out / filename}")
    return 0
