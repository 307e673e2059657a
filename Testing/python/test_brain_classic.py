"""The classical engine on a real brain: a BraTS 2015 case (T1c, expert tumour labels) deformed by a known smooth
field is registered back; the tumour overlap, the intensity error and the field error must
all improve clearly over no registration. Also: progress, cancel, and refusing a mask with nothing left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from radassist.brain.classic import ClassicConfig, register_classic
from radassist.brain.preprocess import resample_onto, resampled_geometry
from radassist.errors import InputError
from radassist.io import read_volume
from radassist.io.sitk_bridge import array_to_sitk, geometry_of, sitk_to_volume, volume_to_sitk
from radassist.metrics.registration import dice, field_error, intensity_error
from radassist.results.displacement import DisplacementField
from radassist.results.transforms import warp_volume
from radassist.runtime.progress import Cancelled, Progress
from radassist.synthetic.known_warp import with_tumour_resolved
from radassist.volume import Volume

CASE = "brain/brats2015/brats_2013_pat0001_1"


def _known_deformation(geometry) -> sitk.Image:
    """A smooth field (up to ~5 mm) as a SimpleITK displacement image on ``geometry``."""
    z, y, x = np.meshgrid(*[np.linspace(0, 1, n) for n in geometry.shape], indexing="ij")
    vectors = np.stack([4.0 * np.sin(2 * np.pi * z) * np.cos(2 * np.pi * y), 3.5 * np.cos(2 * np.pi * x),
                        2.5 * np.sin(2 * np.pi * y)], axis=-1)
    return array_to_sitk(vectors, geometry, is_vector=True)


@pytest.fixture(scope="module")
def deformed_case(test_data: Path):
    folder = test_data / CASE
    t1c = read_volume(folder / "T1c_subtrMeanDivStd.nii.gz")
    grid = resampled_geometry(t1c.geometry, (2.0, 2.0, 2.0))  # 120 x 120 x 78: fast, still a real brain
    fixed = resample_onto(t1c, grid)
    labels = resample_onto(read_volume(folder / "OTMultiClass.nii.gz"), grid, sitk.sitkNearestNeighbor)
    brain = resample_onto(read_volume(folder / "brainmask.nii.gz"), grid, sitk.sitkNearestNeighbor)

    deformation = _known_deformation(grid)  # moving(q) = fixed(q + w(q))
    transform = sitk.DisplacementFieldTransform(sitk.Image(deformation))

    def deform(volume: Volume, interpolator) -> Volume:
        image = volume_to_sitk(volume)
        return sitk_to_volume(sitk.Resample(image, image, transform, interpolator, 0.0), volume.source)

    moving = deform(fixed, sitk.sitkLinear)
    moving_labels = deform(labels, sitk.sitkNearestNeighbor)
    moving_brain = deform(brain, sitk.sitkNearestNeighbor)
    inverse = sitk.InvertDisplacementField(deformation, maximumNumberOfIterations=50,
                                           meanErrorToleranceThreshold=1e-4, maxErrorToleranceThreshold=1e-3)
    truth = DisplacementField(sitk.GetArrayFromImage(inverse), geometry_of(inverse))  # fixed -> moving
    return dict(fixed=fixed, moving=moving, labels=labels.array > 0, moving_labels=moving_labels,
                brain=brain.array > 0, moving_brain=moving_brain.array > 0, truth=truth)


def test_classic_engine_recovers_a_known_deformation_of_a_real_brain(deformed_case):
    case = deformed_case
    reports = []
    result = register_classic(case["moving"], case["fixed"], ClassicConfig(), Progress(lambda f, m: reports.append(f)),
                              fixed_brain=case["brain"], moving_brain=case["moving_brain"],
                              fixed_tumour=case["labels"], moving_tumour=case["moving_labels"].array > 0)
    brain = case["brain"]
    before_dice = dice(case["moving_labels"].array > 0, case["labels"])
    warped_labels = warp_volume(case["moving_labels"], result.field, interpolator="nearest")
    after_dice = dice(warped_labels.array > 0, case["labels"])
    before_error = intensity_error(case["moving"].array, case["fixed"].array, brain)
    after_error = intensity_error(warp_volume(case["moving"], result.field).array, case["fixed"].array, brain)
    zero = DisplacementField(np.zeros_like(result.field.vectors), result.field.geometry)
    before_field = field_error(zero, case["truth"], brain)
    after_field = field_error(result.field, case["truth"], brain)

    assert before_dice < 0.9 and after_dice > 0.93, (before_dice, after_dice)
    assert after_error < 0.5 * before_error, (before_error, after_error)
    assert after_field.mean_mm < 0.4 * before_field.mean_mm, (before_field, after_field)
    assert result.field.geometry.same_grid(case["fixed"].geometry)
    assert set(result.stages) == {"affine", "deformable"}
    assert result.field.vectors.dtype == np.float32
    assert reports and reports[-1] == pytest.approx(1.0) and max(reports) <= 1.0


def _tumour_aware(case, moving: Volume, similarity: str) -> DisplacementField:
    return register_classic(moving, case["fixed"], ClassicConfig(tumour_similarity=similarity),
                            fixed_brain=case["brain"], moving_brain=case["moving_brain"], fixed_tumour=case["labels"],
                            moving_tumour=case["moving_labels"].array > 0).field


def test_a_tumour_that_changed_does_not_pull_the_brain_around_it(deformed_case):
    """A follow-up where the tumour has gone (the moving tumour filled with normal brain intensity; the geometry and
    the truth unchanged): masked or robust in the similarity, the tumour cannot drag tissue into its old place, so
    the field in and around it stays closer to the truth than the same engine's without the tumour labels."""
    case = deformed_case
    moving = with_tumour_resolved(case["moving"], case["moving_labels"].array > 0, case["moving_brain"])
    unmasked = register_classic(moving, case["fixed"], fixed_brain=case["brain"],
                                moving_brain=case["moving_brain"]).field
    near_tumour = ndimage.binary_dilation(case["labels"], iterations=3) & case["brain"]
    unmasked_error = field_error(unmasked, case["truth"], near_tumour).mean_mm
    for similarity in ("robust", "masked"):
        error = field_error(_tumour_aware(case, moving, similarity), case["truth"], near_tumour).mean_mm
        assert error < 0.5 * unmasked_error, (similarity, error, unmasked_error)


def test_a_tumour_that_still_matches_is_aligned_by_its_own_contrast(deformed_case):
    """The same tumour in both images: the robust similarity lets it pull, so the field inside it is closer to the
    truth than with the tumour masked, whose field there is only carried in from the tissue around it."""
    case = deformed_case
    inside = case["labels"] & case["brain"]
    robust = field_error(_tumour_aware(case, case["moving"], "robust"), case["truth"], inside).mean_mm
    masked = field_error(_tumour_aware(case, case["moving"], "masked"), case["truth"], inside).mean_mm
    assert robust < 0.9 * masked, (robust, masked)  # 0.55 against 0.68 mm here


def _small_pair() -> tuple[Volume, Volume]:
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.standard_normal((24, 24, 24)), 2.0).astype(np.float32)
    return Volume(image), Volume(np.roll(image, 1, axis=2))


def test_cancel_stops_the_registration():
    moving, fixed = _small_pair()
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        register_classic(moving, fixed, ClassicConfig(image_sigmas_mm=(1.0,), sample_spacing_mm=(1.0,)), progress)


def test_a_mask_with_nothing_left_is_refused():
    moving, fixed = _small_pair()
    with pytest.raises(InputError, match="no voxel left"):
        register_classic(moving, fixed, fixed_brain=np.ones(fixed.shape, bool),
                         fixed_tumour=np.ones(fixed.shape, bool))


def test_config_checks():
    with pytest.raises(ValueError):
        ClassicConfig(image_sigmas_mm=(2.0, 1.0), sample_spacing_mm=(2.0,))
    with pytest.raises(ValueError):
        ClassicConfig(control_spacing_mm=0.0)
    with pytest.raises(ValueError):
        ClassicConfig(affine=False, deformable=False)
    with pytest.raises(ValueError):
        ClassicConfig(regularisation=())
    with pytest.raises(ValueError):
        ClassicConfig(bending=-1.0)
    with pytest.raises(ValueError, match="tumour_similarity"):
        ClassicConfig(tumour_similarity="ignored")
    with pytest.raises(ValueError, match="robust_scale"):
        ClassicConfig(robust_scale=0.0)
    assert ClassicConfig(regularisation=(0.1, 0.3)).regularisation_at(5) == 0.3
