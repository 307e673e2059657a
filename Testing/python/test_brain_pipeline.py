"""The brain pipeline (both engines), its input checks, and the data readers (BraTS, BraTS 2015 sample names,
OASIS-style, tumour labels from .seg.nrrd or BraTS values), on synthetic phantoms and the real BraTS sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy.spatial.transform import Rotation
from torch import nn

from radassist.brain.datasets import (detect_layout, find_subject_files, load_subject, random_pairs,
                                      read_brain_input, read_layout, read_tumour_labels)
from radassist.brain.inference import JOINT_INPUTS, JOINT_OUTPUTS, JointRunner
from radassist.brain.model import BrainJointConfig, BrainJointNet, JointOutput
from radassist.brain.pipeline import (BrainImages, BrainPipelineConfig, paired_sequences, register_brain_pair,
                                      resolve_engine)
from radassist.brain.postprocess import tumour_labelmap
from radassist.brain.preprocess import (Box, brats_to_classes, modality_of, network_box, resample_onto,
                                        resampled_geometry, zscore_in_brain)
from radassist.brain.spatial import identity_grid
from radassist.errors import InputError
from radassist.io import write_volume
from radassist.metrics.registration import field_error
from radassist.results import write_seg_nrrd
from radassist.results.displacement import DisplacementField
from radassist.runtime.backends import make_backend
from radassist.synthetic.brain import BrainPhantomConfig, make_brain_pair
from radassist.volume import Geometry, Volume

SMALL = BrainPhantomConfig(shape=(40, 56, 48), spacing=(3.0, 3.0, 3.0))


@pytest.fixture(scope="module")
def pair():
    return make_brain_pair(0, SMALL)


def _images(images, labels) -> BrainImages:
    return BrainImages(dict(images), tumour=tumour_labelmap(brats_to_classes(labels.flattened()), labels.geometry))


def test_classic_pipeline_recovers_the_phantom_deformation(pair):
    reports = []
    from radassist.runtime.progress import Progress

    result = register_brain_pair(_images(pair.moving, pair.moving_labels), _images(pair.fixed, pair.fixed_labels),
                                 BrainPipelineConfig(engine="auto"), Progress(lambda f, m: reports.append(f)))
    assert result.engine == "classic"  # no network given
    zero = DisplacementField(np.zeros_like(result.field.vectors), result.field.geometry)
    before = field_error(zero, pair.deformation, pair.brain_mask)
    after = field_error(result.field, pair.deformation, pair.brain_mask)
    assert after.mean_mm < 0.3 * before.mean_mm, (before, after)
    assert result.field.geometry.same_grid(pair.fixed["flair"].geometry)
    assert set(result.warped) == {"flair", "t1", "t1ce", "t2"}
    assert result.jacobian.geometry.same_grid(result.field.geometry)
    summary = result.report.summary
    assert summary["folding_percent"] == 0.0 and summary["tumour_similarity"] == "robust"
    assert summary["registration_channel"] == "t1ce"
    expected = pair.fixed_labels.volume_ml("GD-enhancing tumour")
    assert summary["fixed enhancing tumour ml"] == pytest.approx(expected)
    assert reports[-1] == pytest.approx(1.0)


def test_joint_pipeline_handles_other_grids_and_returns_each_tumour_on_its_own_image(pair):
    """An untrained network is the identity: the field is zero, and every output lands on the right grid."""
    import torch

    torch.manual_seed(0)
    model = BrainJointNet(BrainJointConfig(channels_per_image=4, features=(4, 8, 8, 8, 8),
                                           convolutions=(1, 1, 1, 1, 1)))
    coarse = resampled_geometry(pair.moving["flair"].geometry, (4.0, 4.0, 4.0))
    moving = BrainImages({k: resample_onto(v, coarse) for k, v in pair.moving.items()})
    fixed = BrainImages(dict(pair.fixed))
    for config in (BrainPipelineConfig(), BrainPipelineConfig(working_spacing_mm=(5.0, 5.0, 5.0))):
        result = register_brain_pair(moving, fixed, config, model=model)
        assert result.engine == "joint"
        assert np.abs(result.field.vectors).max() < 1e-3
        assert result.field.geometry.same_grid(fixed.reference.geometry)
        assert result.fixed_tumour.geometry.same_grid(fixed.reference.geometry)
        assert result.moving_tumour.geometry.same_grid(coarse)
        assert [s.name for s in result.fixed_tumour.segments] == ["tumour necrosis", "oedema", "enhancing tumour"]
        assert result.warped["flair"].geometry.same_grid(fixed.reference.geometry)


class _KnownAnswer(nn.Module):
    """A stand-in joint network whose answer is known: every voxel samples the moving image 1.5 voxels further
    along i, and every voxel is oedema (class 2)."""

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor) -> JointOutput:
        batch, shape = moving.shape[0], tuple(moving.shape[2:])
        grid = identity_grid(shape, batch) + torch.tensor([0.0, 0.0, 1.5]).view(1, 3, 1, 1, 1)
        logits = torch.zeros(batch, 4, *shape)
        logits[:, 2] = 1.0
        return JointOutput(logits, logits, torch.ones(batch, 3, *shape), grid)


def test_joint_grid_becomes_the_right_field_in_the_brain_box_on_an_oblique_grid(pair):
    """Sampling 1.5 voxels further along i is D @ diag(spacing) @ (1.5, 0, 0) mm inside the network's box around the
    brain, the identity outside it; the segmentation lands in the same box."""
    rotation = Rotation.from_euler("xyz", [20, -10, 35], degrees=True).as_matrix()
    pad = 24  # zeros around the phantom, so the network's box is smaller than the image
    shape = tuple(n + 2 * pad for n in pair.fixed["flair"].shape)
    oblique = Geometry(shape=shape, spacing=(3.0, 2.5, 3.5), origin=(10.0, -20.0, 5.0),
                       direction=tuple(rotation.ravel()))

    def padded(images):
        return BrainImages({k: Volume.from_geometry(np.pad(v.array, pad), oblique) for k, v in images.items()})

    moving, fixed = padded(pair.moving), padded(pair.fixed)
    runner = JointRunner(make_backend(_KnownAnswer(), "torch", "cpu", input_names=JOINT_INPUTS,
                                      output_names=JOINT_OUTPUTS), BrainJointConfig(channels_per_image=4))
    result = register_brain_pair(moving, fixed, BrainPipelineConfig(engine="joint"), model=runner)
    classes = result.fixed_tumour.flattened()
    inside = classes == 2
    assert set(np.unique(classes)) == {0, 2}
    brain = np.zeros(shape, bool)
    for volume in (*fixed.images.values(), *moving.images.values()):
        brain |= volume.array != 0
    assert inside[brain].all() and inside.mean() < 0.6  # the box holds the brain, not the whole image
    expected = rotation @ np.diag([3.0, 2.5, 3.5]) @ np.array([1.5, 0.0, 0.0])
    assert np.allclose(result.field.vectors[inside], expected, atol=1e-9)
    assert not result.field.vectors[~inside].any()
    assert np.array_equal(result.moving_tumour.flattened(), classes)


def test_engine_choice():
    assert resolve_engine("auto", None) == "classic"
    assert resolve_engine("auto", object()) == "joint"
    with pytest.raises(InputError, match="trained weights"):
        resolve_engine("joint", None)
    with pytest.raises(ValueError):
        BrainPipelineConfig(engine="fast")


# -- bad input ----------------------------------------------------------------------------------------------------

def test_different_sequence_sets_are_refused(pair):
    moving = BrainImages({"flair": pair.moving["flair"]})
    with pytest.raises(InputError, match="same sequences"):
        register_brain_pair(moving, BrainImages(dict(pair.fixed)))


def test_a_2d_image_is_refused(pair):
    flat = Volume(np.ones((1, 32, 32), np.float32), source=pair.fixed["flair"].source)
    with pytest.raises(InputError, match="2-D"):
        register_brain_pair(BrainImages({"flair": flat}), BrainImages({"flair": pair.fixed["flair"]}))


def test_empty_masks_are_refused(pair):
    fixed = pair.fixed["flair"]
    empty_labels = tumour_labelmap(np.zeros(fixed.shape, np.uint8), fixed.geometry)
    with pytest.raises(InputError, match="tumour label map is empty"):
        register_brain_pair(BrainImages({"flair": pair.moving["flair"]}), BrainImages({"flair": fixed},
                                                                                      tumour=empty_labels))
    with pytest.raises(InputError, match="brain mask is empty"):
        register_brain_pair(BrainImages({"flair": pair.moving["flair"]}),
                            BrainImages({"flair": fixed}, brain_mask=np.zeros(fixed.shape, bool)))


def test_joint_model_needs_its_channels(pair):
    model = BrainJointNet(BrainJointConfig(channels_per_image=2, features=(4, 8), convolutions=(1, 1)))
    with pytest.raises(InputError, match="takes 2 sequence"):
        register_brain_pair(BrainImages(dict(pair.moving)), BrainImages(dict(pair.fixed)), model=model)
    with pytest.raises(InputError, match="missing"):
        register_brain_pair(BrainImages(dict(pair.moving)), BrainImages(dict(pair.fixed)),
                            BrainPipelineConfig(channels=("flair", "dwi")), model=model)


def test_paired_sequences_names_slots_from_the_node_names(pair):
    f, m = pair.fixed, pair.moving
    moving, fixed = paired_sequences([("Case 1 FLAIR", f["flair"], "follow-up", m["flair"]),
                                      ("", None, "", None),
                                      ("scan", f["t1"], "Later T1", m["t1"])])
    assert set(moving.images) == set(fixed.images) == {"flair", "t1"}
    with pytest.raises(InputError, match="only one of the two"):
        paired_sequences([("a", f["flair"], "b", None)])


# -- preprocessing ------------------------------------------------------------------------------------------------

def test_sequence_names_and_labels():
    names = {"BraTS20_Training_001_t1ce.nii.gz": "t1ce", "BraTS20_Training_001_t1.nii.gz": "t1",
             "Flair_subtrMeanDivStd.nii.gz": "flair", "T1c_subtrMeanDivStd.nii.gz": "t1ce", "case_T2.nrrd": "t2",
             "pair_0_fixed_flair.nii.gz": "flair", "sub-01_T1w.nii.gz": "t1", "brainmask.nii.gz": None,
             "OTMultiClass.nii.gz": None}
    assert {name: modality_of(name) for name in names} == names
    assert brats_to_classes(np.array([0, 1, 2, 3, 4])).tolist() == [0, 1, 2, 1, 3]
    with pytest.raises(ValueError):
        brats_to_classes(np.array([5]))


def test_zscore_and_boxes():
    array = np.zeros((8, 8, 8), np.float32)
    brain = np.zeros((8, 8, 8), bool)
    brain[2:6, 2:6, 2:6] = True
    array[brain] = np.arange(brain.sum())
    normalised = zscore_in_brain(array, brain)
    assert normalised[brain].mean() == pytest.approx(0, abs=1e-5) and normalised[brain].std() == pytest.approx(1)
    assert np.all(normalised[~brain] == 0)
    box = network_box(brain, multiple=8, margin=1)
    assert all(s % 8 == 0 for s in box.size)
    patch = box.extract(array)
    assert np.array_equal(box.insert(patch, array.shape), array)
    assert Box((-2, 0, 0), (4, 4, 4)).extract(np.ones((3, 3, 3))).sum() == 2 * 3 * 3


# -- data on disk -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def brats_folder(tmp_path_factory):
    from radassist.synthetic.datasets import write_dataset

    return write_dataset("brain", tmp_path_factory.mktemp("brats"), cases=1, seed=0, config=SMALL)


def test_brats_layout_and_subject_folders(brats_folder):
    layout, subjects = read_layout(brats_folder)
    assert layout == "brats" and [s.name for s in subjects] == ["pair_0_fixed", "pair_0_moving"]
    subject = load_subject(subjects[0])
    assert list(subject.images) == ["flair", "t1", "t1ce", "t2"]
    assert subject.tumour is not None and subject.tumour.labels.max() == 3  # BraTS 4 -> class 3
    assert set(read_brain_input(subjects[0].folder).images) == {"flair", "t1", "t1ce", "t2"}
    single = read_brain_input(subjects[0].folder / "pair_0_fixed_t2.nii.gz")
    assert list(single.images) == ["t2"]


def test_real_brats_2015_sample_folder(test_data: Path):
    folder = test_data / "brain" / "brats2015" / "brats_2013_pat0001_1"
    files = find_subject_files(folder)
    assert set(files.images) == {"flair", "t1ce"}
    assert files.tumour.name == "OTMultiClass.nii.gz" and files.brain_mask.name == "brainmask.nii.gz"
    subject = load_subject(files)
    assert subject.brain_mask.any() and set(np.unique(subject.tumour.labels)) <= {0, 1, 2, 3}
    assert detect_layout(folder.parent) == "brats"


def test_oasis_style_layout(tmp_path, pair):
    for name in ("OASIS_0001", "OASIS_0002"):
        write_volume(pair.fixed["t1"], tmp_path / name / "aligned_norm.nii.gz")
        labels = pair.fixed["t1"].with_array(pair.fixed_labels.flattened())
        write_volume(labels, tmp_path / name / "aligned_seg35.nii.gz")
    layout, subjects = read_layout(tmp_path)
    assert layout == "oasis" and subjects[0].anatomy.name == "aligned_seg35.nii.gz"
    assert list(subjects[0].images) == ["t1"]


def test_random_pairs_use_every_subject_once_as_moving():
    rng = np.random.default_rng(0)
    for count in (2, 3, 7):
        pairs = random_pairs(count, rng)
        assert sorted(m for m, _ in pairs) == list(range(count))
        assert all(m != f for m, f in pairs)
    with pytest.raises(ValueError):
        random_pairs(1, rng)


def test_tumour_labels_from_seg_nrrd_and_brats_values(tmp_path, pair):
    classes = brats_to_classes(pair.fixed_labels.flattened())
    labelmap = tumour_labelmap(classes, pair.fixed_labels.geometry)
    write_seg_nrrd(labelmap, tmp_path / "tumour.seg.nrrd")
    assert np.array_equal(read_tumour_labels(tmp_path / "tumour.seg.nrrd").flattened(), classes)
    write_volume(pair.fixed["flair"].with_array(pair.fixed_labels.flattened()), tmp_path / "seg.nii.gz")
    from_volume = read_tumour_labels(tmp_path / "seg.nii.gz")  # BraTS values are kept, named by their edition
    assert np.array_equal(from_volume.flattened(), pair.fixed_labels.flattened())
    assert np.array_equal(brats_to_classes(from_volume.flattened()), classes)
    write_volume(pair.fixed["flair"].with_array(np.zeros(classes.shape, np.uint8)), tmp_path / "empty.nii.gz")
    with pytest.raises(InputError, match="empty"):
        read_tumour_labels(tmp_path / "empty.nii.gz")
    write_volume(pair.fixed["flair"].with_array(np.full(classes.shape, 7, np.uint8)), tmp_path / "odd.nii.gz")
    with pytest.raises(InputError, match="not BraTS labels"):
        read_tumour_labels(tmp_path / "odd.nii.gz")
    assert sitk.ReadImage(str(tmp_path / "seg.nii.gz")).GetSize() == pair.fixed["flair"].shape[::-1]
