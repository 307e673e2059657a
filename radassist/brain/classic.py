"""The classical engine: SimpleITK affine then B-spline registration, multi-resolution, with a metric mask that
leaves the tumour out. It needs no trained weights, so it is the default until joint-model weights are installed.

The metric is evaluated only where both images show anatomy that can correspond: inside the brain (when a brain
mask is known) and outside the tumour of each image (from a given label map or the joint model's segmentation).
The B-spline's smoothness carries the deformation through the tumour from the healthy tissue around it, the same
idea as the joint network's masked similarity. The result is a dense fixed -> moving displacement field (LPS mm).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from radassist.errors import InputError
from radassist.io.sitk_bridge import array_to_sitk, volume_to_sitk
from radassist.results.displacement import DisplacementField
from radassist.runtime.progress import Progress
from radassist.volume import Volume

METRICS = ("mattes", "meansquares", "correlation")


@dataclass(frozen=True)
class ClassicConfig:
    """Settings of the classical registration (ITK's usual multi-resolution choices)."""

    affine: bool = True                             # affine stage before the deformable one
    deformable: bool = True                         # B-spline stage
    metric: str = "correlation"                     # affine stage: correlation, mattes (MI) or meansquares
    deformable_metric: str = "correlation"          # B-spline stage; Mattes MI is ~10x slower with many parameters
    histogram_bins: int = 32                        # Mattes MI bins
    sampling_percentage: float = 0.25               # random share of mask voxels the metric samples per iteration
    shrink_factors: tuple[int, ...] = (4, 2, 1)     # image pyramid, coarse to fine
    smoothing_sigmas_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    affine_iterations: int = 200
    bspline_grid_mm: float = 50.0                   # coarsest control-point spacing; halved at each finer level
    bspline_iterations: int = 60
    bspline_sampling_percentage: float = 0.05       # B-spline gradients cost far more per sample
    bspline_levels: int = 2                         # control grid refinements (the finest pyramid levels)
    seed: int = 1                                   # metric sampling seed: the same inputs give the same result

    def __post_init__(self) -> None:
        if self.metric not in METRICS or self.deformable_metric not in METRICS:
            raise ValueError(f"metrics must be among {METRICS}, got {self.metric!r}, {self.deformable_metric!r}")
        if len(self.shrink_factors) != len(self.smoothing_sigmas_mm) or not self.shrink_factors:
            raise ValueError("shrink_factors and smoothing_sigmas_mm need one value per level")
        if not (0 < self.sampling_percentage <= 1 and 0 < self.bspline_sampling_percentage <= 1):
            raise ValueError("sampling percentages must be in (0, 1]")
        if not 1 <= self.bspline_levels <= len(self.shrink_factors):
            raise ValueError(f"bspline_levels must be 1..{len(self.shrink_factors)}, got {self.bspline_levels}")
        if not (self.affine or self.deformable):
            raise ValueError("enable the affine stage, the deformable stage or both")


@dataclass
class ClassicResult:
    """The dense field (fixed -> moving, on the fixed grid) and what the optimisers said."""

    field: DisplacementField
    transform: sitk.Transform
    stages: dict[str, dict] = field(default_factory=dict)


def metric_mask(shape: tuple[int, int, int], brain: np.ndarray | None, tumour: np.ndarray | None) -> np.ndarray | None:
    """Voxels the metric may use: the brain (or everything) minus the tumour; None when nothing is excluded."""
    if brain is None and tumour is None:
        return None
    keep = np.ones(shape, dtype=bool) if brain is None else np.asarray(brain, dtype=bool).copy()
    if tumour is not None:
        keep &= ~np.asarray(tumour, dtype=bool)
    return keep


def _set_metric(method: sitk.ImageRegistrationMethod, config: ClassicConfig, metric: str, sampling: float) -> None:
    if metric == "mattes":
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=config.histogram_bins)
    elif metric == "meansquares":
        method.SetMetricAsMeanSquares()
    else:
        method.SetMetricAsCorrelation()
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(sampling, config.seed)


def _pyramid(method: sitk.ImageRegistrationMethod, config: ClassicConfig, levels: int | None = None) -> None:
    """The image pyramid, or its ``levels`` finest levels."""
    first = 0 if levels is None else len(config.shrink_factors) - levels
    method.SetShrinkFactorsPerLevel(list(config.shrink_factors[first:]))
    method.SetSmoothingSigmasPerLevel(list(config.smoothing_sigmas_mm[first:]))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()


def _watch(method: sitk.ImageRegistrationMethod, progress: Progress, iterations: int, levels: int,
           message: str) -> None:
    """Report each iteration; on cancel, stop the optimiser (raising inside ITK's callback is not safe)."""
    def on_iteration() -> None:
        if progress.cancelled:
            method.StopRegistration()
            return
        level = min(method.GetCurrentLevel(), levels - 1)
        within = min(method.GetOptimizerIteration() / max(iterations, 1), 1.0)
        progress.update((level + within) / levels, f"{message}, level {level + 1}/{levels}")

    method.AddCommand(sitk.sitkIterationEvent, on_iteration)


def _masks(method: sitk.ImageRegistrationMethod, fixed_mask: sitk.Image | None,
           moving_mask: sitk.Image | None) -> None:
    if fixed_mask is not None:
        method.SetMetricFixedMask(fixed_mask)
    if moving_mask is not None:
        method.SetMetricMovingMask(moving_mask)


def _affine_stage(fixed: sitk.Image, moving: sitk.Image, masks: tuple, config: ClassicConfig,
                  progress: Progress) -> tuple[sitk.Transform, dict]:
    initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.AffineTransform(3),
                                                sitk.CenteredTransformInitializerFilter.GEOMETRY)
    method = sitk.ImageRegistrationMethod()
    _set_metric(method, config, config.metric, config.sampling_percentage)
    _masks(method, *masks)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4,
                                                    numberOfIterations=config.affine_iterations,
                                                    relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    _pyramid(method, config)
    method.SetInitialTransform(initial, inPlace=False)
    _watch(method, progress, config.affine_iterations, len(config.shrink_factors), "affine registration")
    transform = method.Execute(fixed, moving)
    progress.check_cancelled()
    return transform, {"metric": method.GetMetricValue(), "stop": method.GetOptimizerStopConditionDescription()}


def _bspline_stage(fixed: sitk.Image, moving: sitk.Image, masks: tuple, initial: sitk.Transform | None,
                   config: ClassicConfig, progress: Progress) -> tuple[sitk.Transform, dict]:
    levels = config.bspline_levels
    extent = np.array(fixed.GetSize()) * np.array(fixed.GetSpacing())
    mesh = [max(1, int(round(e / config.bspline_grid_mm))) for e in extent]
    bspline = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
    method = sitk.ImageRegistrationMethod()
    _set_metric(method, config, config.deformable_metric, config.bspline_sampling_percentage)
    _masks(method, *masks)
    method.SetInterpolator(sitk.sitkLinear)
    # LBFGSB refuses the control grid refined between levels (its scales keep the first level's size)
    method.SetOptimizerAsLBFGS2(solutionAccuracy=1e-5, numberOfIterations=config.bspline_iterations,
                                hessianApproximateAccuracy=5, deltaConvergenceDistance=0,
                                deltaConvergenceTolerance=1e-5, lineSearchMaximumEvaluations=10)
    _pyramid(method, config, levels)
    if initial is not None:
        method.SetMovingInitialTransform(initial)
    method.SetInitialTransformAsBSpline(bspline, inPlace=True, scaleFactors=[2 ** level for level in range(levels)])
    _watch(method, progress, config.bspline_iterations, levels, "deformable registration")
    method.Execute(fixed, moving)
    progress.check_cancelled()
    return bspline, {"metric": method.GetMetricValue(), "stop": method.GetOptimizerStopConditionDescription(),
                     "control_points": [m + 3 for m in mesh]}


def _mask_image(mask: np.ndarray | None, volume: Volume, role: str) -> sitk.Image | None:
    if mask is None:
        return None
    if not mask.any():
        raise InputError(volume.source.path, f"the {role} image has no voxel left for registration once the "
                                             f"tumour is excluded: check its brain mask and tumour labels")
    return array_to_sitk(mask.astype(np.uint8), volume.geometry)


def register_classic(moving: Volume, fixed: Volume, config: ClassicConfig | None = None,
                     progress: Progress | None = None, *, fixed_brain: np.ndarray | None = None,
                     moving_brain: np.ndarray | None = None, fixed_tumour: np.ndarray | None = None,
                     moving_tumour: np.ndarray | None = None) -> ClassicResult:
    """Register ``moving`` to ``fixed`` (one sequence each; any grids) and return the fixed -> moving field.

    Masks are boolean arrays on their own image's grid: the metric uses brain minus tumour of each image.
    """
    config = config or ClassicConfig()
    progress = progress or Progress()
    fixed_image = sitk.Cast(volume_to_sitk(fixed), sitk.sitkFloat32)
    moving_image = sitk.Cast(volume_to_sitk(moving), sitk.sitkFloat32)
    masks = (_mask_image(metric_mask(fixed.shape, fixed_brain, fixed_tumour), fixed, "fixed"),
             _mask_image(metric_mask(moving.shape, moving_brain, moving_tumour), moving, "moving"))
    stages: dict[str, dict] = {}
    transforms: list[sitk.Transform] = []
    affine_share = 0.3 if config.deformable else 0.95
    if config.affine:
        affine, stages["affine"] = _affine_stage(fixed_image, moving_image, masks, config,
                                                 progress.sub(0.0, affine_share))
        transforms.append(affine)
    if config.deformable:
        initial = transforms[0] if transforms else None
        bspline, stages["bspline"] = _bspline_stage(fixed_image, moving_image, masks, initial, config,
                                                    progress.sub(affine_share if config.affine else 0.0, 0.95))
        transforms.append(bspline)
    composite = sitk.CompositeTransform(transforms)  # the last one is applied first: affine(bspline(p))
    progress.update(0.96, "dense displacement field")
    vectors = sitk.TransformToDisplacementField(composite, sitk.sitkVectorFloat64, fixed_image.GetSize(),
                                                fixed_image.GetOrigin(), fixed_image.GetSpacing(),
                                                fixed_image.GetDirection())
    field_ = DisplacementField(sitk.GetArrayFromImage(vectors), fixed.geometry,
                               metadata={"direction": "fixed->moving", "engine": "classic"})
    progress.update(1.0, "registration done")
    return ClassicResult(field=field_, transform=composite, stages=stages)
