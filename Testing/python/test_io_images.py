"""Volume files: real NIfTI/NRRD read, geometry round trips in every format, and every kind of bad input refused."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radassist.errors import InputError, OutputError
from radassist.io import read_volume, write_volume
from radassist.volume import Geometry, Volume

FORMATS = [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"]


def rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """A proper rotation matrix about ``axis`` (Rodrigues), to get a non-axis-aligned direction."""
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    angle = np.deg2rad(degrees)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def rotated_volume(dtype: type = np.float32) -> Volume:
    rng = np.random.default_rng(7)
    array = (rng.normal(size=(5, 6, 7)) * 100).astype(dtype)
    return Volume(array=array, spacing=(0.7, 1.3, 2.9), origin=(-12.5, 33.25, 107.0),
                  direction=tuple(rotation((1.0, 2.0, 3.0), 37.0).ravel()))


def assert_same_geometry(actual: Geometry, expected: Geometry) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual.spacing, expected.spacing, atol=1e-5)
    np.testing.assert_allclose(actual.origin, expected.origin, atol=1e-4)
    np.testing.assert_allclose(actual.direction, expected.direction, atol=1e-5)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".radassist-tmp")]


# -- real files ----------------------------------------------------------------------------------------------------
def test_reads_real_nifti_with_the_geometry_simpleitk_reports(test_data: Path) -> None:
    path = test_data / "ct/chest_abdomen_example/example_ct.nii.gz"
    volume = read_volume(path)
    reference = sitk.ReadImage(str(path))
    assert volume.shape == (112, 101, 122)
    np.testing.assert_allclose(volume.spacing, reference.GetSpacing())
    np.testing.assert_allclose(volume.origin, reference.GetOrigin())
    np.testing.assert_allclose(volume.direction, reference.GetDirection())
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(reference))
    assert volume.source.path == str(path)
    assert volume.array.min() < -900 and volume.array.max() > 300  # air and bone in HU


def test_reads_real_nrrd_in_lps(test_data: Path) -> None:
    volume = read_volume(test_data / "slicer/CTChest4.nrrd")
    assert volume.shape == (34, 128, 128)
    assert volume.array.dtype == np.int32
    np.testing.assert_allclose(volume.spacing, (3.046875954, 3.046875954, 10.0), atol=1e-6)
    np.testing.assert_allclose(volume.origin, (193.095993, 216.395996, -340.25), atol=1e-4)
    np.testing.assert_allclose(volume.geometry.direction_matrix, np.diag([-1.0, -1.0, 1.0]), atol=1e-9)


@pytest.mark.parametrize("suffix", FORMATS)
def test_real_ct_survives_a_round_trip(test_data: Path, tmp_path: Path, suffix: str) -> None:
    original = read_volume(test_data / "slicer/CTChest4.nrrd")
    target = tmp_path / f"chest{suffix}"
    write_volume(original, target)
    again = read_volume(target)
    assert_same_geometry(again.geometry, original.geometry)
    np.testing.assert_array_equal(again.array, original.array)
    assert leftovers(tmp_path) == []


# -- geometry round trips ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", FORMATS)
def test_rotated_geometry_round_trip(tmp_path: Path, suffix: str) -> None:
    volume = rotated_volume()
    target = tmp_path / f"rotated{suffix}"
    assert write_volume(volume, target) == target
    again = read_volume(target)
    assert_same_geometry(again.geometry, volume.geometry)
    np.testing.assert_allclose(again.array, volume.array)
    assert again.array.dtype == np.float32
    # A world point maps to the same voxel before and after.
    point = volume.ijk_to_world(np.array([3.0, 2.0, 4.0]))
    np.testing.assert_allclose(again.world_to_ijk(point), [3.0, 2.0, 4.0], atol=1e-4)


@pytest.mark.parametrize("suffix, data_suffix", [(".mhd", (".raw", ".zraw")), (".nhdr", (".raw", ".raw.gz"))])
def test_detached_formats_publish_header_and_data_under_final_names(tmp_path: Path, suffix: str,
                                                                    data_suffix: tuple[str, ...]) -> None:
    write_volume(rotated_volume(np.int16), tmp_path / f"scan{suffix}")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and f"scan{suffix}" in names
    data_name = next(n for n in names if n != f"scan{suffix}")
    assert data_name.startswith("scan") and data_name.endswith(data_suffix)
    assert data_name in (tmp_path / f"scan{suffix}").read_text(errors="replace")


def test_metaimage_modality_field_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ct.mha"
    write_volume(rotated_volume(), path, compress=False)
    assert read_volume(path).source.modality is None
    data = path.read_bytes()
    path.write_bytes(data.replace(b"ObjectType = Image\n", b"ObjectType = Image\nModality = MET_MOD_CT\n", 1))
    assert read_volume(path).source.modality == "CT"


def test_unknown_output_extension_is_refused_and_nothing_written(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="unknown volume file type"):
        write_volume(rotated_volume(), tmp_path / "volume.png")
    assert list(tmp_path.iterdir()) == []


def test_volume_is_not_written_as_a_slicer_segmentation(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="segmentation"):
        write_volume(rotated_volume(np.uint8), tmp_path / "labels.seg.nrrd")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "v.nrrd"
    write_volume(rotated_volume(), target)
    second = rotated_volume().with_array(np.zeros((5, 6, 7), np.float32))
    write_volume(second, target)
    assert read_volume(target).array.max() == 0
    assert leftovers(tmp_path) == []


# -- bad input -----------------------------------------------------------------------------------------------------
def cut(source: Path, target: Path, fraction: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def test_truncated_nii_gz_is_refused(test_data: Path, tmp_path: Path) -> None:
    path = cut(test_data / "ct/chest_abdomen_example/example_ct.nii.gz", tmp_path / "cut.nii.gz")
    with pytest.raises(InputError, match="truncated") as error:
        read_volume(path)
    assert error.value.path == str(path)


def test_truncated_uncompressed_nii_is_refused(test_data: Path, tmp_path: Path) -> None:
    raw = tmp_path / "whole.nii"
    with gzip.open(test_data / "ct/chest_abdomen_example/example_ct.nii.gz", "rb") as source:
        raw.write_bytes(source.read())
    assert read_volume(raw).shape == (112, 101, 122)
    with pytest.raises(InputError, match="truncated"):
        read_volume(cut(raw, tmp_path / "cut.nii", 0.9))


def test_truncated_nrrd_is_refused(test_data: Path, tmp_path: Path) -> None:
    path = cut(test_data / "slicer/CTChest4.nrrd", tmp_path / "cut.nrrd")
    with pytest.raises(InputError, match="truncated or corrupt") as error:
        read_volume(path)
    assert error.value.path == str(path)


@pytest.mark.parametrize("suffix", [".mha", ".mhd", ".nhdr"])
def test_truncated_metaimage_and_detached_nrrd_are_refused(tmp_path: Path, suffix: str) -> None:
    write_volume(rotated_volume(), tmp_path / f"v{suffix}", compress=False)
    data_file = max(tmp_path.iterdir(), key=lambda p: p.stat().st_size)
    data = data_file.read_bytes()
    data_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_volume(tmp_path / f"v{suffix}")


def test_header_only_nrrd_is_refused(test_data: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a readable NRRD"):
        read_volume(cut(test_data / "slicer/CTChest4.nrrd", tmp_path / "header.nrrd", 0.0004))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as error:
        read_volume(tmp_path / "nothing.nii.gz")
    assert error.value.path == str(tmp_path / "nothing.nii.gz")


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    with pytest.raises(InputError, match="unknown file type '.txt'"):
        read_volume(path)


def test_text_file_named_like_nifti(tmp_path: Path) -> None:
    path = tmp_path / "fake.nii.gz"
    path.write_text("not an image")
    with pytest.raises(InputError, match="not a readable NIfTI"):
        read_volume(path)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no DICOM images"):
        read_volume(tmp_path)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="no DICOM images"):
        read_volume(tmp_path)


def test_single_dicom_file_reads_its_whole_series(test_data: Path) -> None:
    folder = test_data / "ct/chest_abdomen_example/dicom"
    one_file = sorted(folder.iterdir())[5]
    volume = read_volume(one_file)
    assert volume.shape == (20, 512, 512)
    assert volume.source.modality == "CT"


def write_sitk(image: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(image, str(path))
    return path


def test_2d_image_is_refused_where_a_volume_is_needed(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.arange(20, dtype=np.int16).reshape(4, 5))
    image.SetSpacing((0.5, 0.25))
    path = write_sitk(image, tmp_path / "flat.nrrd")
    with pytest.raises(InputError, match="2-D image or a single slice"):
        read_volume(path)
    flat = read_volume(path, require_3d=False)
    assert flat.shape == (1, 4, 5) and flat.is_2d
    np.testing.assert_allclose(flat.spacing[:2], (0.5, 0.25))


def test_single_slice_volume_is_refused_where_a_volume_is_needed(tmp_path: Path) -> None:
    path = write_sitk(sitk.GetImageFromArray(np.zeros((1, 4, 5), np.float32)), tmp_path / "slice.nii.gz")
    with pytest.raises(InputError, match="single slice"):
        read_volume(path)
    assert read_volume(path, require_3d=False).shape == (1, 4, 5)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_non_finite_voxels_are_refused(tmp_path: Path, bad_value: float, suffix: str) -> None:
    array = np.zeros((3, 4, 5), np.float32)
    array[1, 2, 3] = bad_value
    path = write_sitk(sitk.GetImageFromArray(array), tmp_path / f"bad{suffix}")
    with pytest.raises(InputError, match="1 NaN or infinite"):
        read_volume(path)


def test_vector_image_is_refused(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.zeros((3, 4, 5, 3), np.uint8), isVector=True)
    path = write_sitk(image, tmp_path / "colour.nrrd")
    with pytest.raises(InputError, match="3 values per voxel"):
        read_volume(path)


def test_four_dimensional_image_is_refused(tmp_path: Path) -> None:
    path = write_sitk(sitk.Image([4, 4, 4, 2], sitk.sitkFloat32), tmp_path / "series.nii.gz")
    with pytest.raises(InputError, match="4-D image"):
        read_volume(path)



def test_big_endian_nifti_is_scanned(tmp_path: Path) -> None:
    """The voxel scan reads the header with nibabel, whatever its byte order."""
    import nibabel

    def save(array: np.ndarray, path: Path) -> None:
        nibabel.save(nibabel.Nifti1Image(array, np.eye(4), nibabel.Nifti1Header(endianness=">")), path)

    array = np.zeros((5, 4, 3), np.float32)
    array[1, 2, 0] = np.nan
    save(array, tmp_path / "nan.nii")
    assert nibabel.load(tmp_path / "nan.nii").header.endianness == ">"
    with pytest.raises(InputError, match="1 NaN or infinite"):
        read_volume(tmp_path / "nan.nii")
    array[1, 2, 0] = 7.0
    save(array, tmp_path / "fine.nii")
    assert read_volume(tmp_path / "fine.nii").array[0, 2, 1] == 7.0
    with pytest.raises(InputError, match="truncated"):
        read_volume(cut(tmp_path / "fine.nii", tmp_path / "cut.nii", 0.9))
