"""The same voxels, other storage: a label map of the TotalSegmentator DICOM example written with an axis flipped
(or its axes swapped) is put back on the series' grid exactly; a label map on another lattice is refused with a
message that says what differs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radassist.errors import InputError
from radassist.io import read_volume, write_volume
from radassist.liver.grid import align_to_grid
from radassist.reorient import axis_codes, reorient_like
from radassist.results.labelmap import LabelMap
from radassist.results.segments import Segment
from radassist.volume import Geometry, Volume


@pytest.fixture(scope="module")
def series(test_data: Path) -> Volume:
    return read_volume(test_data / "ct" / "chest_abdomen_example" / "dicom")


def _stored(array: np.ndarray, geometry: Geometry, flip: tuple[int, ...], swap: bool) -> tuple[np.ndarray, Geometry]:
    """The same voxels with array axes ``flip`` reversed (and x and y swapped): what another writer might store."""
    matrix = geometry.ijk_to_lps.copy()
    stored = array
    for axis in flip:  # array axis -> ijk axis 2 - axis: that column turns round, the origin moves to the far end
        ijk = 2 - axis
        matrix[:3, 3] += matrix[:3, ijk] * (array.shape[axis] - 1)
        matrix[:3, ijk] *= -1
        stored = np.flip(stored, axis=axis)
    if swap:
        stored = np.swapaxes(stored, 1, 2)
        matrix[:, [0, 1]] = matrix[:, [1, 0]]
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    return np.ascontiguousarray(stored), Geometry(shape=stored.shape, spacing=tuple(spacing),
                                                  origin=tuple(matrix[:3, 3]),
                                                  direction=tuple((matrix[:3, :3] / spacing).ravel()))


@pytest.mark.parametrize("flip, swap", [((0,), False), ((1,), False), ((0, 2), True)])
def test_a_flipped_or_transposed_label_map_of_the_dicom_series_is_accepted_exactly(series, tmp_path, flip, swap):
    body = (series.array > -300).astype(np.uint8)
    stored, geometry = _stored(body, series.geometry, flip, swap)
    assert not geometry.same_grid(series.geometry) and axis_codes(geometry) != axis_codes(series.geometry)
    path = write_volume(Volume.from_geometry(stored, geometry), tmp_path / "body.nii.gz")
    read = read_volume(path)
    labelmap = LabelMap(labels=np.rint(read.array).astype(np.uint8), geometry=read.geometry,
                        segments=[Segment("body", 1)])
    aligned = align_to_grid(labelmap, series.geometry, path)
    assert aligned.geometry.same_grid(series.geometry)
    assert np.array_equal(aligned.labels[0], body)


def test_the_cli_quantifies_a_flipped_label_map_against_the_dicom_series(series, test_data, tmp_path, capsys):
    from radassist.cli import main

    labels = np.zeros(series.shape, np.uint8)
    labels[5:15, 200:300, 150:260] = 5  # a block called liver: 10 x 100 x 110 voxels
    stored, geometry = _stored(labels, series.geometry, (0,), False)
    path = write_volume(Volume.from_geometry(stored, geometry), tmp_path / "seg.nii.gz")
    code = main(["liver", "quantify", str(path), "--image", str(test_data / "ct/chest_abdomen_example/dicom"),
                 "--liver-label", "5"])
    assert code == 0
    expected = 10 * 100 * 110 * series.geometry.voxel_volume_mm3 / 1000.0
    assert f"{expected:.1f}" in capsys.readouterr().out


def test_another_lattice_is_refused_with_what_differs(series):
    body = (series.array > -300).astype(np.uint8)
    geometry = series.geometry
    shifted = Geometry(shape=geometry.shape, spacing=geometry.spacing,
                       origin=tuple(np.asarray(geometry.origin) + np.array([0.4, 0.0, 0.0])),
                       direction=geometry.direction)
    with pytest.raises(InputError, match="does not match") as error:
        align_to_grid(LabelMap(body, shifted, [Segment("body", 1)]), geometry, "seg.nii.gz")
    assert "axes LPS" in str(error.value) or "axes" in str(error.value)
    other = Geometry(shape=geometry.shape, spacing=(geometry.spacing[0] * 2, *geometry.spacing[1:]),
                     origin=geometry.origin, direction=geometry.direction)
    assert reorient_like(body, other, geometry) is None or not reorient_like(body, other, geometry)[1].same_grid(
        geometry)


def test_a_flipped_brain_mask_of_a_brats_case_is_read_onto_its_image(test_data: Path, tmp_path):
    from radassist.brain.datasets import read_mask

    folder = test_data / "brain" / "brats2015" / "brats_2013_pat0001_1"
    flair = read_volume(folder / "Flair_subtrMeanDivStd.nii.gz")
    mask = read_volume(folder / "brainmask.nii.gz").array > 0.5
    stored, geometry = _stored(mask.astype(np.uint8), flair.geometry, (2,), True)
    path = write_volume(Volume.from_geometry(stored, geometry), tmp_path / "mask.nii.gz")
    assert np.array_equal(read_mask(path, flair), mask)
    shifted = Geometry(shape=geometry.shape, spacing=geometry.spacing, direction=geometry.direction,
                       origin=tuple(np.asarray(geometry.origin) + 0.5))
    path = write_volume(Volume.from_geometry(stored, shifted), tmp_path / "shifted.nii.gz")
    with pytest.raises(InputError, match="brain mask is not on the grid of its image: brain mask 240x240x155 .* axes PRS, image .* axes LPS"):
        read_mask(path, flair)


def test_a_lits_label_map_stored_in_another_axis_order_is_read_onto_its_ct(test_data: Path, tmp_path):
    """TotalSegmentator's example crop and its organ map (liver = 5) as a LiTS case: the segmentation written with
    its axes swapped and two flipped is read onto the CT exactly; moved by half a voxel it is refused, naming both
    grids."""
    from radassist.liver.datasets import LitsCase, read_lits_case

    folder = test_data / "ct" / "chest_abdomen_example"
    ct = read_volume(folder / "example_ct_sm.nii.gz")
    liver = (np.rint(read_volume(folder / "example_seg.nii.gz").array) == 5).astype(np.uint8)
    assert liver.sum() == 38634
    stored, geometry = _stored(liver, ct.geometry, (0, 2), True)
    assert axis_codes(geometry) != axis_codes(ct.geometry)
    image = write_volume(ct, tmp_path / "volume-0.nii.gz")
    labels = write_volume(Volume.from_geometry(stored, geometry), tmp_path / "segmentation-0.nii.gz")
    case = read_lits_case(LitsCase(0, image, labels))
    assert case.labels.shape == ct.shape and np.array_equal(case.labels, liver)
    shifted = Geometry(shape=geometry.shape, spacing=geometry.spacing, direction=geometry.direction,
                       origin=tuple(np.asarray(geometry.origin) + 0.5 * np.asarray(geometry.spacing)))
    moved = write_volume(Volume.from_geometry(stored, shifted), tmp_path / "segmentation-1.nii.gz")
    with pytest.raises(InputError, match="label map of volume-0.nii.gz is not on the grid of its image") as error:
        read_lits_case(LitsCase(1, image, moved))
    message = str(error.value)
    assert "segmentation-1.nii.gz" in message and f"axes {axis_codes(geometry)}" in message
    assert f"axes {axis_codes(ct.geometry)}" in message


def test_a_brats_export_puts_a_sequence_and_labels_stored_in_another_axis_order_on_the_first_sequence(
        test_data: Path, tmp_path):
    """A real BraTS case exported for training: its T1c and its tumour labels written with axes swapped and flipped
    land on the FLAIR's grid exactly; a label map half a voxel off is refused, naming both grids."""
    from radassist.annotation.export_brats import export_registration
    from radassist.results.terminology import terminology_for

    folder = test_data / "brain" / "brats2015" / "brats_2013_pat0001_1"
    flair = read_volume(folder / "Flair_subtrMeanDivStd.nii.gz")
    t1c = read_volume(folder / "T1c_subtrMeanDivStd.nii.gz")
    tumour = np.rint(read_volume(folder / "OTMultiClass.nii.gz").array) > 0
    assert tumour.any()
    stored, geometry = _stored(t1c.array, t1c.geometry, (0,), True)
    t1c_path = write_volume(Volume.from_geometry(stored, geometry), tmp_path / "t1c.nii.gz")
    labels, label_geometry = _stored(tumour.astype(np.uint8), flair.geometry, (1, 2), True)
    oedema = [Segment("oedema", 1, terminology=terminology_for("oedema"))]
    corrected = LabelMap(labels=labels, geometry=label_geometry, segments=oedema)
    export_registration(tmp_path / "export", "pat1", {"flair": flair, "t1ce": read_volume(t1c_path)}, corrected,
                        corrected)
    subject = tmp_path / "export" / "subjects" / "pat1"
    written = read_volume(subject / "pat1_t1ce.nii.gz")
    assert written.geometry.same_grid(flair.geometry, tolerance=1e-3)
    assert np.allclose(written.array, t1c.array)
    seg = read_volume(subject / "pat1_seg.nii.gz")
    assert np.array_equal(np.rint(seg.array) == 2, tumour)  # oedema is BraTS value 2
    shifted = Geometry(shape=label_geometry.shape, spacing=label_geometry.spacing, direction=label_geometry.direction,
                       origin=tuple(np.asarray(label_geometry.origin) + 0.5))
    moved = LabelMap(labels=labels, geometry=shifted, segments=oedema)
    with pytest.raises(InputError, match="does not match the image") as error:
        export_registration(tmp_path / "export", "pat2", {"flair": flair}, moved, moved)
    message = str(error.value)
    assert f"axes {axis_codes(shifted)}" in message and f"axes {axis_codes(flair.geometry)}" in message
