"""Volume <-> SimpleITK image. SimpleITK already speaks LPS and (x, y, z) geometry, so this is a copy of fields."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from radassist.volume import Geometry, SourceInfo, Volume


def geometry_of(image: sitk.Image) -> Geometry:
    """The 3-D geometry of a SimpleITK image (a 2-D image becomes a one-slice grid)."""
    size = image.GetSize()
    if image.GetDimension() == 2:
        d = image.GetDirection()
        direction = (d[0], d[1], 0.0, d[2], d[3], 0.0, 0.0, 0.0, 1.0)
        return Geometry(shape=(1, size[1], size[0]), spacing=(*image.GetSpacing(), 1.0),
                        origin=(*image.GetOrigin(), 0.0), direction=direction)
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 2-D or 3-D image, got {image.GetDimension()}-D")
    return Geometry(shape=(size[2], size[1], size[0]), spacing=image.GetSpacing(), origin=image.GetOrigin(),
                    direction=image.GetDirection())


def sitk_to_volume(image: sitk.Image, source: SourceInfo | None = None) -> Volume:
    """Copy a SimpleITK image into a Volume (vector images keep their components in the last axis)."""
    array = sitk.GetArrayFromImage(image)
    geometry = geometry_of(image)
    if image.GetDimension() == 2:
        array = array[np.newaxis]
    return Volume.from_geometry(array, geometry, source)


def apply_geometry(image: sitk.Image, geometry: Geometry) -> sitk.Image:
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def reference_image(geometry: Geometry) -> sitk.Image:
    """An empty image on ``geometry``: the output grid to give sitk.Resample."""
    return apply_geometry(sitk.Image(*geometry.shape[::-1], sitk.sitkUInt8), geometry)


def array_to_sitk(array: np.ndarray, geometry: Geometry, is_vector: bool = False) -> sitk.Image:
    """A SimpleITK image holding ``array`` (z, y, x[, c]) on ``geometry``."""
    array = np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    image = sitk.GetImageFromArray(array, isVector=is_vector)
    return apply_geometry(image, geometry)


def volume_to_sitk(volume: Volume) -> sitk.Image:
    return array_to_sitk(volume.array, volume.geometry, is_vector=volume.array.ndim == 4)
