"""Brain registration study: RadAssist's classical engine beside the classical anchors, in one run, on real brains
warped by known smooth fields.

Pairs: each shared BraTS 2015 case (z-scored T1c and FLAIR as shipped, brain mask, expert labels) is the fixed
image; the moving image is the same brain moved by a smooth random field (40 mm correlation, largest displacement
inside the brain 3 to 8 mm, a seed per pair; :mod:`radassist.synthetic.known_warp`). The truth is the
fixed -> moving field, so every method is scored the same way. Two pairs are repeated with the tumour resolved in
the moving image (its tumour voxels set to the median of its normal brain): the truth is unchanged, the tumour's
intensities no longer correspond, which is what tumour-masked similarity is for.

Scores:

* Dice of the tumour labels (1 necrosis, 2 oedema, 3 non-enhancing, 4 enhancing; mean over the labels present and
  the whole tumour) and of the brain mask, after warping the moving labels with the method's field (nearest);
* end-point error inside the fixed brain (mean and 95th percentile, mm) against the true field, and its mean inside
  the fixed tumour and in the rest of the brain;
* folding: share of brain voxels whose Jacobian determinant is <= 0;
* wall time of the registration alone (reading, pair making and scoring are not timed), with the load average.

Methods (all on the full 240x240x155 1 mm grid, T1c, two threads):

* ``radassist``: :func:`radassist.brain.classic.register_classic` as the CLI runs it, given the brain masks and the
  tumour labels (its similarity is robust in the tumour, the default); ``radassist-masked``: the same with the
  tumour left out of the similarity (``--tumour-similarity masked``); ``radassist-unmasked``: the same without
  tumour labels;
* ``demons``: SimpleITK fast symmetric forces demons, 3 levels (shrink 4, 2, 1) x 50 iterations, field smoothing
  sigma 1.5 (the anchor the issue names);
* ``ants-syn``: ANTs SyN (antspyx ``ants.registration(type_of_transform="SyNOnly")``, its defaults otherwise:
  Mattes MI, 3 levels);
* ``elastix``: elastix B-spline (itk-elastix, its default ``bspline`` parameter map, what SlicerElastix runs).

Run: ``python -m benchmarks.brain_registration --out benchmarks/brain_registration.json`` (``--methods``,
``--pairs`` narrow it). The anchors need ``pip install -e ".[benchmarks]"``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PAIRS = (("brats_2013_pat0001_1", 8.0, 0, False), ("brats_2013_pat0002_1", 3.0, 1, False),
         ("brats_2013_pat0003_1", 5.5, 2, False), ("brats_2013_pat0004_1", 8.0, 3, False),
         ("brats_2013_pat0002_1", 3.0, 1, True), ("brats_2013_pat0003_1", 5.5, 2, True))
"""(case, largest displacement in mm, seed, tumour resolved in the moving image) of the recorded run."""
METHODS = ("radassist", "radassist-masked", "radassist-unmasked", "demons", "elastix", "ants-syn")
THREADS = 2


@dataclass
class Case:
    """One fixed brain with its labels and mask, as shipped."""

    name: str
    images: dict            # sequence -> Volume
    labels: object          # Volume of BraTS label values
    brain: np.ndarray       # bool


@dataclass
class PairResult:
    case: str
    amplitude_mm: float
    seed: int
    method: str
    seconds: float
    load_average: tuple[float, float, float]
    dice_tumour_mean: float
    dice_whole_tumour: float
    dice_brain: float
    dice_tumour_before: float
    dice_brain_before: float
    epe_mean_mm: float
    epe_p95_mm: float
    epe_before_mm: float
    epe_tumour_mm: float
    epe_outside_tumour_mm: float
    tumour_resolved: bool
    folding_percent: float
    jacobian_min: float


def load_case(root: Path, name: str) -> Case:
    from radassist.io import read_volume

    folder = root / "brain" / "brats2015" / name
    images = {"t1ce": read_volume(folder / "T1c_subtrMeanDivStd.nii.gz"),
              "flair": read_volume(folder / "Flair_subtrMeanDivStd.nii.gz")}
    labels = read_volume(folder / "OTMultiClass.nii.gz")
    labels = labels.with_array(np.rint(labels.array).astype(np.uint8))
    brain = read_volume(folder / "brainmask.nii.gz").array > 0.5
    return Case(name, images, labels, brain)


def make_pair(case: Case, amplitude_mm: float, seed: int, tumour_resolved: bool = False):
    """The known-warp pair; with ``tumour_resolved`` the moving image's tumour is filled with the median of its
    normal brain (a follow-up where the tumour has gone, as after treatment): the geometry and the truth are
    unchanged, but inside the tumour the intensities no longer correspond, which is what tumour-masked
    similarity is for."""
    from radassist.synthetic.known_warp import KnownWarpConfig, warp_known, with_tumour_resolved

    mask = case.labels.with_array(case.brain.astype(np.uint8))
    pair = warp_known(case.images, {"labels": case.labels, "brain": mask}, case.brain, seed,
                      KnownWarpConfig(max_displacement_mm=amplitude_mm))
    if tumour_resolved:
        tumour = pair.moving_labels["labels"].array > 0
        brain = pair.moving_labels["brain"].array > 0
        pair.moving = {name: with_tumour_resolved(volume, tumour, brain) for name, volume in pair.moving.items()}
    return pair


# -- methods: (fixed Volume, moving Volume, pair) -> DisplacementField (fixed -> moving, fixed grid) --------------

def run_radassist(fixed, moving, pair, tumour_similarity: str = "robust"):
    from radassist.brain.classic import ClassicConfig, register_classic

    result = register_classic(moving, fixed, ClassicConfig(tumour_similarity=tumour_similarity),
                              fixed_brain=pair.fixed_labels["brain"].array > 0,
                              moving_brain=pair.moving_labels["brain"].array > 0,
                              fixed_tumour=pair.fixed_labels["labels"].array > 0,
                              moving_tumour=pair.moving_labels["labels"].array > 0)
    return result.field


def run_radassist_masked(fixed, moving, pair):
    """The same engine with the tumour left out of the similarity altogether."""
    return run_radassist(fixed, moving, pair, "masked")


def run_radassist_unmasked(fixed, moving, pair):
    """The same engine given no tumour labels: the similarity covers the whole brain, as the anchors' does."""
    from radassist.brain.classic import register_classic

    return register_classic(moving, fixed, fixed_brain=pair.fixed_labels["brain"].array > 0,
                            moving_brain=pair.moving_labels["brain"].array > 0).field


def run_demons(fixed, moving, pair):
    """SimpleITK fast symmetric forces demons, 3 levels x 50 iterations, sigma 1.5 (SimpleITK's multiscale demons
    recipe: each coarser level is the image smoothed and shrunk, the field carried up by resampling)."""
    import SimpleITK as sitk

    from radassist.io.sitk_bridge import geometry_of, volume_to_sitk
    from radassist.results.displacement import DisplacementField

    fixed_image = sitk.Cast(volume_to_sitk(fixed), sitk.sitkFloat32)
    moving_image = sitk.Cast(volume_to_sitk(moving), sitk.sitkFloat32)

    def shrink(image, factor, sigma):
        smoothed = sitk.SmoothingRecursiveGaussian(image, sigma)
        size = [max(1, int(round(n / factor))) for n in image.GetSize()]
        spacing = [(n * s) / m for n, s, m in zip(image.GetSize(), image.GetSpacing(), size)]
        return sitk.Resample(smoothed, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing,
                             image.GetDirection(), 0.0, image.GetPixelID())

    levels = [(4, 8.0), (2, 4.0)]
    fixed_levels = [shrink(fixed_image, f, s) for f, s in levels] + [fixed_image]
    moving_levels = [shrink(moving_image, f, s) for f, s in levels] + [moving_image]
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(50)
    demons.SmoothDisplacementFieldOn()
    demons.SetStandardDeviations(1.5)
    demons.SetNumberOfThreads(THREADS)
    field = sitk.Image(fixed_levels[0].GetSize(), sitk.sitkVectorFloat64)
    field.CopyInformation(fixed_levels[0])
    for f_image, m_image in zip(fixed_levels, moving_levels):
        field = sitk.Resample(field, f_image)
        field = demons.Execute(f_image, m_image, field)
    return DisplacementField(sitk.GetArrayFromImage(field), geometry_of(field))


def _ants_image(volume):
    import ants

    g = volume.geometry
    return ants.from_numpy(np.ascontiguousarray(np.asarray(volume.array, dtype=np.float32).transpose(2, 1, 0)),
                           origin=list(g.origin), spacing=list(g.spacing), direction=g.direction_matrix)


def run_ants(fixed, moving, pair):
    import ants

    from radassist.results.transforms import read_displacement

    with tempfile.TemporaryDirectory(prefix="ants-") as folder:
        fixed_image, moving_image = _ants_image(fixed), _ants_image(moving)
        result = ants.registration(fixed_image, moving_image, type_of_transform="SyNOnly",
                                   outprefix=str(Path(folder) / "syn_"))
        composed = ants.apply_transforms(fixed_image, moving_image, result["fwdtransforms"],
                                         compose=str(Path(folder) / "composed_"))
        return read_displacement(composed)


def run_elastix(fixed, moving, pair):
    import itk

    from radassist.results.displacement import DisplacementField

    def image(volume):
        result = itk.image_from_array(np.ascontiguousarray(np.asarray(volume.array, dtype=np.float32)))
        result.SetSpacing(volume.geometry.spacing)
        result.SetOrigin(volume.geometry.origin)
        result.SetDirection(itk.matrix_from_array(volume.geometry.direction_matrix))
        return result

    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(THREADS)  # its number_of_threads argument crashes 0.25
    itk.MultiThreaderBase.SetGlobalMaximumNumberOfThreads(THREADS)
    parameters = itk.ParameterObject.New()
    parameters.AddParameterMap(parameters.GetDefaultParameterMap("bspline"))
    fixed_image, moving_image = image(fixed), image(moving)
    with tempfile.TemporaryDirectory(prefix="elastix-") as folder:  # transformix writes its field file there
        _, transform = itk.elastix_registration_method(fixed_image, moving_image, parameter_object=parameters,
                                                       log_to_console=False, output_directory=folder)
        field = itk.transformix_deformation_field(moving_image, transform, output_directory=folder)
    return DisplacementField(itk.array_from_image(field).astype(np.float64), fixed.geometry)


RUNNERS: dict[str, Callable] = {"radassist": run_radassist, "radassist-masked": run_radassist_masked,
                                "radassist-unmasked": run_radassist_unmasked, "demons": run_demons,
                                "ants-syn": run_ants, "elastix": run_elastix}


# -- scoring ------------------------------------------------------------------------------------------------------

def score(case: Case, pair, amplitude: float, seed: int, method: str, field, seconds: float,
          load: tuple[float, float, float], tumour_resolved: bool = False) -> PairResult:
    from radassist.brain.postprocess import jacobian_determinant
    from radassist.metrics.registration import dice, dice_per_label, field_error, mean_dice
    from radassist.results.displacement import DisplacementField
    from radassist.results.transforms import warp_volume

    fixed_labels = pair.fixed_labels["labels"].array
    moving_labels = pair.moving_labels["labels"]
    brain = case.brain
    warped = warp_volume(moving_labels, field, interpolator="nearest").array
    warped_brain = warp_volume(pair.moving_labels["brain"], field, interpolator="nearest").array > 0
    determinant = jacobian_determinant(field)
    zero = DisplacementField(np.zeros_like(field.vectors), field.geometry)
    inside = determinant[brain]
    error = field_error(field, pair.truth, brain)
    return PairResult(
        case=case.name, amplitude_mm=amplitude, seed=seed, method=method, seconds=seconds, load_average=load,
        dice_tumour_mean=mean_dice(dice_per_label(warped, fixed_labels)),
        dice_whole_tumour=dice(warped > 0, fixed_labels > 0), dice_brain=dice(warped_brain, brain),
        dice_tumour_before=mean_dice(dice_per_label(moving_labels.array, fixed_labels)),
        dice_brain_before=dice(pair.moving_labels["brain"].array > 0, brain),
        epe_mean_mm=error.mean_mm,
        epe_p95_mm=error.p95_mm,
        epe_before_mm=field_error(zero, pair.truth, brain).mean_mm,
        epe_tumour_mm=field_error(field, pair.truth, brain & (fixed_labels > 0)).mean_mm,
        epe_outside_tumour_mm=field_error(field, pair.truth, brain & (fixed_labels == 0)).mean_mm,
        tumour_resolved=tumour_resolved,
        folding_percent=float(100.0 * np.count_nonzero(inside <= 0) / inside.size),
        jacobian_min=float(inside.min()))


def run_study(root: Path, pairs, methods, out: Path | None, sequence: str = "t1ce") -> list[PairResult]:
    import SimpleITK as sitk

    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(THREADS))
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(THREADS)
    results: list[PairResult] = []
    for case_name, amplitude, seed, resolved in pairs:
        case = load_case(root, case_name)
        pair = make_pair(case, amplitude, seed, resolved)
        fixed, moving = pair.fixed[sequence], pair.moving[sequence]
        for method in methods:
            load = os.getloadavg()
            start = time.perf_counter()
            field = RUNNERS[method](fixed, moving, pair)
            seconds = time.perf_counter() - start
            result = score(case, pair, amplitude, seed, method, field, seconds, load, resolved)
            results.append(result)
            print(json.dumps(asdict(result)), flush=True)
            if out is not None:
                out.write_text(json.dumps({"machine": machine(), "results": [asdict(r) for r in results]},
                                          indent=1) + "\n")
    return results


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "threads": THREADS, "date": time.strftime("%Y-%m-%d")}


def table(results: list[dict]) -> str:
    """Markdown: one row per pair and method, then the mean per method over the pairs every method finished."""
    header = ("| pair | method | time s (load 1 min) | tumour Dice mean / whole | brain Dice | EPE mean / p95 mm | "
              "EPE tumour / outside mm | folding % (min det J) |\n|---|---|---|---|---|---|---|---|\n")
    rows = []
    for r in results:
        pair = f"{r['case'][-6:]} {r['amplitude_mm']:g} mm" + (", tumour resolved" if r.get("tumour_resolved") else "")
        rows.append(f"| {pair} | {r['method']} | {r['seconds']:.0f} "
                    f"({r['load_average'][0]:.1f}) | {r['dice_tumour_mean']:.3f} / {r['dice_whole_tumour']:.3f} "
                    f"(before {r['dice_tumour_before']:.3f} / -) | {r['dice_brain']:.4f} (before "
                    f"{r['dice_brain_before']:.4f}) | {r['epe_mean_mm']:.3f} / {r['epe_p95_mm']:.3f} (before "
                    f"{r['epe_before_mm']:.2f}) | {r.get('epe_tumour_mm', float('nan')):.3f} / "
                    f"{r.get('epe_outside_tumour_mm', float('nan')):.3f} | {r['folding_percent']:.3f} "
                    f"({r['jacobian_min']:.2f}) |")
    return header + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("RADASSIST_TEST_DATA", "../shared/data")))
    parser.add_argument("--pairs", type=int, default=len(PAIRS), help="run the first N pairs of PAIRS")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--table", type=Path, help="print the markdown table of a results JSON and stop")
    args = parser.parse_args(argv)
    if args.table is not None:
        print(table(json.loads(args.table.read_text())["results"]), end="")
        return 0
    run_study(args.data, PAIRS[:args.pairs], args.methods, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
