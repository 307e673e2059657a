"""The classical engine: affine then coarse-to-fine free-form registration (:mod:`radassist.brain.deformable`),
tumour-aware. It needs no trained weights, so it is the default until joint-model weights are installed.

The similarity is evaluated inside the brain of each image. In the tumour (from a given label map or the joint
model's segmentation) it is robust by default: the tumour pulls where it still looks the same in both images and
hardly at all where it has changed, so a changed tumour is carried by the healthy tissue around it, as the joint
network's masked similarity does; ``tumour_similarity="masked"`` leaves the tumour out altogether. The result is a
dense fixed -> moving displacement field (LPS mm, float32).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radassist.brain.deformable import DeformableConfig, register_deformable
from radassist.results.displacement import DisplacementField
from radassist.runtime.progress import Progress
from radassist.volume import Volume

ClassicConfig = DeformableConfig
"""Settings of the classical engine (see :class:`radassist.brain.deformable.DeformableConfig`)."""


@dataclass
class ClassicResult:
    """The dense field (fixed -> moving, on the fixed grid), the affine part (4x4, fixed world -> moving world) and
    what each stage's optimiser ended with."""

    field: DisplacementField
    affine: np.ndarray
    stages: dict[str, dict] = field(default_factory=dict)


def metric_mask(shape: tuple[int, int, int], brain: np.ndarray | None, tumour: np.ndarray | None) -> np.ndarray:
    """Voxels where the similarity pulls in full: the brain (or everything) minus the tumour."""
    keep = np.ones(shape, dtype=bool) if brain is None else np.asarray(brain, dtype=bool).copy()
    if tumour is not None:
        keep &= ~np.asarray(tumour, dtype=bool)
    return keep


def robust_mask(brain: np.ndarray | None, tumour: np.ndarray | None) -> np.ndarray | None:
    """Voxels that pull only as far as they still match (``tumour_similarity="robust"``): the tumour in the brain."""
    if tumour is None:
        return None
    tumour = np.asarray(tumour, dtype=bool)
    return tumour if brain is None else tumour & np.asarray(brain, dtype=bool)


def register_classic(moving: Volume | list[Volume], fixed: Volume | list[Volume],
                     config: ClassicConfig | None = None, progress: Progress | None = None, *,
                     fixed_brain: np.ndarray | None = None, moving_brain: np.ndarray | None = None,
                     fixed_tumour: np.ndarray | None = None,
                     moving_tumour: np.ndarray | None = None) -> ClassicResult:
    """Register ``moving`` to ``fixed`` (one sequence each, or the same list of sequences; any grids) and return the
    fixed -> moving field. Masks are boolean arrays on their own image's grid."""
    moving_list = moving if isinstance(moving, list) else [moving]
    fixed_list = fixed if isinstance(fixed, list) else [fixed]
    config = config or ClassicConfig()
    robust = config.tumour_similarity == "robust"
    result = register_deformable(fixed_list, moving_list,
                                 metric_mask(fixed_list[0].shape, fixed_brain, fixed_tumour),
                                 metric_mask(moving_list[0].shape, moving_brain, moving_tumour),
                                 config, progress,
                                 robust_mask(fixed_brain, fixed_tumour) if robust else None,
                                 robust_mask(moving_brain, moving_tumour) if robust else None)
    field_ = DisplacementField(result.vectors, fixed_list[0].geometry,
                               metadata={"direction": "fixed->moving", "engine": "classic"})
    return ClassicResult(field=field_, affine=result.affine, stages=result.stages)
