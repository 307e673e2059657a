"""DisplacementField <-> ITK transform files Slicer loads as a grid transform, and warping with it.

Both files describe the resampling direction, fixed -> moving: a fixed-space point p maps to p + u(p) in the
moving image, as ITK's DisplacementFieldTransform and Slicer's transform files mean it.

* ``.h5``: ITK's HDF5 DisplacementFieldTransform layout, float32 (to :data:`FIELD_STEP_MM`) and gzip-compressed,
  written with h5py because SimpleITK writes only uncompressed float64 (214 MB for a 240x240x155 field, against
  about 30 MB); ITK, SimpleITK and Slicer read it (ITK converts a float transform to double). ITK transform files
  are LPS, as RadAssist is. ``.tfm`` (text) is written by SimpleITK.
* ``.nii.gz`` (float32) with intent 1006 (NIFTI_INTENT_DISPVECT): NIfTI vectors are RAS, and ITK's NIfTI reader
  (SimpleITK 2.5, checked by a round trip in the tests) negates their first two components when reading, so this
  writer stores (-ux, -uy, uz) and ITK, Slicer and NIfTI tools all read the displacement right. nibabel writes it:
  ITK refuses to write DISPVECT from a vector image. Vectors in files with any other intent (ANTs writes 1007)
  are taken as LPS, which is what ITK-based tools write.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radassist.errors import InputError
from radassist.io.atomic import atomic_path, full_suffix
from radassist.io.sitk_bridge import array_to_sitk, geometry_of, reference_image, sitk_to_volume, volume_to_sitk
from radassist.results.displacement import DisplacementField
from radassist.volume import Volume

NIFTI_INTENT_DISPVECT = 1006
_INTERPOLATORS = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor, "bspline": sitk.sitkBSpline,
                  "label": sitk.sitkLabelGaussian}
_TRANSFORM_SUFFIXES = (".h5", ".hdf5", ".tfm", ".txt", ".mat")
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


FIELD_STEP_MM = 2.0 ** -10
"""Files hold displacements to 1/1024 mm (about a micrometre): far below any registration's accuracy, and
the zeroed low bits let gzip shrink a 1 mm brain field about three times more than full float32 noise would."""


def stored_vectors(vectors: np.ndarray) -> np.ndarray:
    """The float32 vectors a file holds: rounded to :data:`FIELD_STEP_MM` (exact in float32 up to 8192 mm)."""
    return (np.round(np.asarray(vectors, dtype=np.float64) / FIELD_STEP_MM) * FIELD_STEP_MM).astype(np.float32)


def displacement_transform(field: DisplacementField) -> sitk.DisplacementFieldTransform:
    """An ITK DisplacementFieldTransform (fixed -> moving) holding a float64 copy of the field (LPS mm)."""
    return sitk.DisplacementFieldTransform(array_to_sitk(field.vectors.astype(np.float64), field.geometry,
                                                         is_vector=True))


def write_itk_displacement_h5(field: DisplacementField, path: str | Path) -> Path:
    """Write an ITK displacement field transform file: ``.h5`` float32 and compressed; ``.tfm`` through SimpleITK."""
    path = Path(path)
    with atomic_path(path) as temp:
        if path.suffix.lower() in (".h5", ".hdf5"):
            _write_h5(field, temp)
        else:
            sitk.WriteTransform(displacement_transform(field), str(temp))
    return path


def _write_h5(field: DisplacementField, path: Path) -> None:
    """ITK's HDF5 transform layout: TransformGroup/0/{TransformType, TransformFixedParameters (size, origin,
    spacing, direction), TransformParameters (the vectors, x fastest, components interleaved)}."""
    import h5py

    geometry = field.geometry
    fixed = np.concatenate([np.array(geometry.shape[::-1], dtype=float), geometry.origin, geometry.spacing,
                            np.asarray(geometry.direction, dtype=float)])
    text = h5py.string_dtype(encoding="ascii")
    with h5py.File(path, "w") as handle:
        handle.create_dataset("ITKVersion", data=[b"5.4"], dtype=text)
        handle.create_dataset("HDFVersion", data=[f"HDF5 library version: {h5py.version.hdf5_version}".encode()],
                              dtype=text)
        group = handle.create_group("TransformGroup/0")
        group.create_dataset("TransformType", data=[b"DisplacementFieldTransform_float_3_3"], dtype=text)
        group.create_dataset("TransformFixedParameters", data=fixed)
        group.create_dataset("TransformParameters", data=stored_vectors(field.vectors).ravel(),
                             compression="gzip", compression_opts=6, shuffle=True, chunks=True)


def write_displacement_nifti(field: DisplacementField, path: str | Path) -> Path:
    """Write ``.nii.gz`` (or ``.nii``) with intent 1006 and RAS vectors, as explained in the module docstring."""
    import nibabel

    path = Path(path)
    suffix = full_suffix(path).lower()
    if suffix not in (".nii.gz", ".nii"):
        raise ValueError(f"{path}: a NIfTI displacement field must end in .nii.gz or .nii")
    ras_vectors = stored_vectors(field.vectors) * np.array([-1.0, -1.0, 1.0], dtype=np.float32)
    affine = field.geometry.ijk_to_ras
    image = nibabel.Nifti1Image(ras_vectors.transpose(2, 1, 0, 3)[:, :, :, None, :], affine)  # (x, y, z, t, vector)
    image.set_qform(affine, code=1)  # scanner coordinates, as ITK writes them
    image.set_sform(affine, code=1)
    image.header.set_intent(NIFTI_INTENT_DISPVECT)
    image.header.set_xyzt_units("mm")
    with atomic_path(path) as temp, (gzip.open(temp, "wb", compresslevel=6) if suffix == ".nii.gz"
                                     else open(temp, "wb")) as handle:
        image.to_stream(handle)
    return path


def _field_from_image(image: sitk.Image, path: Path) -> DisplacementField:
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 3:
        raise InputError(path, f"a displacement field is a 3-D image of 3-vectors, got {image.GetDimension()}-D "
                               f"with {image.GetNumberOfComponentsPerPixel()} component(s)")
    vectors = sitk.GetArrayFromImage(image).astype(np.float64)
    try:
        return DisplacementField(vectors=vectors, geometry=geometry_of(image), metadata={"path": str(path)})
    except ValueError as exc:
        raise InputError(path, str(exc)) from None


def _displacement_from_transform(transform: sitk.Transform, path: Path) -> sitk.Image:
    if transform.GetName() == "CompositeTransform":
        composite = sitk.CompositeTransform(transform)
        if composite.GetNumberOfTransforms() != 1:
            raise InputError(path, f"holds {composite.GetNumberOfTransforms()} chained transforms, expected one "
                                   "displacement field")
        transform = composite.GetNthTransform(0)
    if transform.GetName() != "DisplacementFieldTransform":
        raise InputError(path, f"holds a {transform.GetName()}, not a displacement field transform")
    return sitk.DisplacementFieldTransform(transform).GetDisplacementField()


def read_displacement(path: str | Path) -> DisplacementField:
    """Read a displacement field from an ITK transform file (.h5, .tfm) or a vector image (.nii.gz, .nrrd, .mha)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    suffix = full_suffix(path).lower()
    try:
        if suffix in _TRANSFORM_SUFFIXES:
            image = _displacement_from_transform(sitk.ReadTransform(str(path)), path)
        elif suffix in _IMAGE_SUFFIXES:
            image = sitk.ReadImage(str(path))  # ITK turns NIfTI DISPVECT (RAS) vectors into LPS itself
        else:
            raise InputError(path, f"unknown displacement field format {suffix!r}; use .h5 or .nii.gz")
    except RuntimeError as exc:
        raise InputError(path, f"cannot be read ({str(exc).strip().splitlines()[-1]})") from None
    return _field_from_image(image, path)


def warp_volume(moving: Volume, field: DisplacementField, interpolator: str = "linear",
                default_value: float = 0.0) -> Volume:
    """Resample ``moving`` onto the field's (fixed) grid: warped(p) = moving(p + u(p)); keeps the pixel type."""
    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"interpolator must be one of {sorted(_INTERPOLATORS)}, got {interpolator!r}")
    moving_image = volume_to_sitk(moving)
    warped = sitk.Resample(moving_image, reference_image(field.geometry), displacement_transform(field),
                           _INTERPOLATORS[interpolator], float(default_value), moving_image.GetPixelID())
    return sitk_to_volume(warped, moving.source)
