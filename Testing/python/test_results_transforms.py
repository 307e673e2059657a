"""Displacement fields: ITK .h5 and NIfTI DISPVECT files read by ITK itself, and warping with SimpleITK."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radassist.errors import InputError
from radassist.results import (DisplacementField, read_displacement, warp_volume, write_displacement_nifti,
                               write_itk_displacement_h5)
from radassist.results.transforms import FIELD_STEP_MM, stored_vectors
from radassist.volume import Geometry, Volume

# A grid whose voxel axes point to R, A, S (as in many scanner files), so axis flips would show.
GEOMETRY = Geometry(shape=(8, 10, 12), spacing=(2.0, 1.5, 3.0), origin=(30.0, -12.0, 7.5),
                    direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))


def _varying_field() -> DisplacementField:
    z, y, x = np.mgrid[0:8, 0:10, 0:12].astype(float)
    vectors = np.stack([1.0 + 0.25 * x, -2.0 + 0.1 * y, 0.5 * z], axis=-1)
    return DisplacementField(vectors, GEOMETRY)


def _check_itk_moves_points(transform: sitk.Transform, field: DisplacementField) -> None:
    for zyx in ([0, 0, 0], [3, 4, 5], [7, 9, 11]):
        point = GEOMETRY.zyx_to_world(np.array(zyx, dtype=float))
        expected = point + field.vectors[tuple(zyx)]
        assert np.allclose(transform.TransformPoint(point.tolist()), expected, atol=FIELD_STEP_MM), zyx


def test_h5_is_read_by_itk_as_fixed_to_moving(tmp_path: Path) -> None:
    field = _varying_field()
    path = write_itk_displacement_h5(field, tmp_path / "field.h5")
    transform = sitk.ReadTransform(str(path))
    _check_itk_moves_points(transform, field)
    again = read_displacement(path)
    assert again.geometry.same_grid(GEOMETRY) and np.allclose(again.vectors, field.vectors, atol=FIELD_STEP_MM)


def test_nifti_has_dispvect_intent_ras_vectors_and_itk_reads_lps(tmp_path: Path) -> None:
    field = _varying_field()
    path = write_displacement_nifti(field, tmp_path / "field.nii.gz")
    raw = gzip.open(path).read()
    assert struct.unpack_from("<i", raw, 0)[0] == 348
    assert struct.unpack_from("<h", raw, 68)[0] == 1006  # NIFTI_INTENT_DISPVECT
    # On disk the vectors are RAS: the first component is stored negated.
    (offset,) = struct.unpack_from("<f", raw, 108)
    stored = np.frombuffer(raw[int(offset):], dtype=np.float32)  # float32 on disk
    assert stored[0] == pytest.approx(-field.vectors[0, 0, 0, 0])
    # ITK reads them back as LPS: the same displacement, whichever way we ask.
    image = sitk.ReadImage(str(path))
    assert np.allclose(sitk.GetArrayFromImage(image), field.vectors, atol=FIELD_STEP_MM)
    transform = sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64))
    _check_itk_moves_points(transform, field)
    again = read_displacement(path)
    assert again.geometry.same_grid(GEOMETRY) and np.allclose(again.vectors, field.vectors, atol=FIELD_STEP_MM)


def test_plain_vector_nifti_is_taken_as_lps(tmp_path: Path) -> None:
    field = _varying_field()
    image = sitk.GetImageFromArray(field.vectors, isVector=True)
    image.SetOrigin(GEOMETRY.origin)
    image.SetSpacing(GEOMETRY.spacing)
    image.SetDirection(GEOMETRY.direction)
    sitk.WriteImage(image, str(tmp_path / "ants_like.nii.gz"))  # intent 1007, as ANTs writes
    assert np.allclose(read_displacement(tmp_path / "ants_like.nii.gz").vectors, field.vectors)


def test_warp_moves_a_blob_by_the_constant_shift() -> None:
    geometry = Geometry(shape=(20, 24, 28), spacing=(1.0, 1.0, 2.0), origin=(-10.0, 5.0, 0.0))
    z, y, x = np.mgrid[0:20, 0:24, 0:28]
    blob = (((x - 14) ** 2 + (y - 12) ** 2 + (z - 10) ** 2) <= 9).astype(np.float32) * 100
    moving = Volume.from_geometry(blob, geometry)
    shift = np.array([4.0, -3.0, 4.0])  # LPS mm: 4 voxels in x, -3 in y, 2 in z
    field = DisplacementField(np.broadcast_to(shift, (*geometry.shape, 3)), geometry)
    warped = warp_volume(moving, field)
    # warped(p) = moving(p + shift): the blob appears at its old place minus the shift.
    centre_moving = np.array(np.nonzero(blob)).mean(axis=1)
    centre_warped = np.array(np.nonzero(warped.array > 50)).mean(axis=1)
    assert np.allclose(centre_moving - centre_warped, [2.0, -3.0, 4.0], atol=1e-6)
    assert warped.array.dtype == np.float32 and warped.geometry.same_grid(geometry)
    labels = warp_volume(Volume.from_geometry((blob > 0).astype(np.uint8), geometry), field, "nearest")
    assert labels.array.dtype == np.uint8 and set(np.unique(labels.array)) == {0, 1}
    with pytest.raises(ValueError):
        warp_volume(moving, field, "cubic-ish")


def test_bad_displacement_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_displacement(tmp_path / "none.h5")
    scalar = tmp_path / "scalar.nii.gz"
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkFloat32), str(scalar))
    with pytest.raises(InputError, match="3-vectors"):
        read_displacement(scalar)
    affine = tmp_path / "affine.h5"
    sitk.WriteTransform(sitk.AffineTransform(3), str(affine))
    with pytest.raises(InputError, match="not a displacement field"):
        read_displacement(affine)
    with pytest.raises(ValueError):
        write_displacement_nifti(_varying_field(), tmp_path / "field.mha")
    assert not (tmp_path / "field.mha").exists()


def test_a_brain_field_is_one_small_float32_file_that_simpleitk_applies_as_before(test_data: Path, tmp_path):
    """A smooth field on a real BraTS grid (240x240x155, 1 mm): transform.h5 is float32 and compressed, a few tens of
    MB instead of SimpleITK's 214 MB, and resampling with what SimpleITK reads back gives the image that the
    float32 field itself gives, voxel for voxel."""
    from radassist.io import read_volume
    from radassist.synthetic.known_warp import KnownWarpConfig, smooth_field

    folder = test_data / "brain" / "brats2015" / "brats_2013_pat0001_1"
    flair = read_volume(folder / "Flair_subtrMeanDivStd.nii.gz")
    brain = read_volume(folder / "brainmask.nii.gz").array > 0.5
    field = smooth_field(flair.geometry, brain, 0, KnownWarpConfig(max_displacement_mm=8.0))
    path = write_itk_displacement_h5(field, tmp_path / "transform.h5")
    assert np.abs(stored_vectors(field.vectors) - field.vectors).max() <= FIELD_STEP_MM / 2
    field = DisplacementField(stored_vectors(field.vectors), field.geometry)  # what the files hold
    assert path.stat().st_size < 60e6, path.stat().st_size
    nifti = write_displacement_nifti(field, tmp_path / "displacement.nii.gz")
    assert nifti.stat().st_size < 60e6, nifti.stat().st_size

    read = sitk.ReadTransform(str(path))
    assert read.GetName() == "DisplacementFieldTransform"
    image = sitk.ReadImage(str(folder / "Flair_subtrMeanDivStd.nii.gz"))
    reference = sitk.Image(image)
    reference_field = sitk.GetImageFromArray(field.vectors.astype(np.float64), isVector=True)
    reference_field.CopyInformation(image)
    expected = sitk.DisplacementFieldTransform(reference_field)
    from_file = sitk.GetArrayFromImage(sitk.Resample(image, reference, read, sitk.sitkLinear, -3.6))
    from_memory = sitk.GetArrayFromImage(sitk.Resample(image, reference, expected, sitk.sitkLinear, -3.6))
    assert np.array_equal(from_file, from_memory)
    assert np.abs(sitk.GetArrayFromImage(sitk.DisplacementFieldTransform(read).GetDisplacementField())
                  - field.vectors).max() == 0.0
    assert np.allclose(read_displacement(nifti).vectors, field.vectors, atol=1e-6)
