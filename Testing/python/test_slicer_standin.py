"""The strict stand-in bites: a class, member, function, argument or package the release lacks is refused with a
message naming it and the release, as the real Slicer would refuse it. Each check runs once per supported release."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from slicer_bed import open_standin, releases
from slicer_standin import SUPPORTED_RELEASES, Refused, StandInGap


@releases
def test_a_planted_call_of_a_member_that_does_not_exist_is_refused(release: str, tmp_path: Path):
    """The bug the old BrainRegSeg shipped: SetRegionNode on a transform display node."""
    with open_standin(release, tmp_path, installed=False) as standin:
        import slicer

        transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLGridTransformNode", "t")
        transform.CreateDefaultDisplayNodes()
        display = transform.GetDisplayNode()
        region = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "region")
        with pytest.raises(Refused, match=rf"vtkMRMLTransformDisplayNode.SetRegionNode does not exist in Slicer "
                                          rf"{release}"):
            display.SetRegionNode(region)
        with pytest.raises(AttributeError, match="SetVisualizationModeToGrid"):
            display.SetVisualizationModeToGrid()
        display.SetAndObserveRegionNode(region)  # what Slicer has
        display.SetVisualizationMode(display.VIS_MODE_GRID)
        assert display.GetRegionNode() is region and display.GetVisualizationMode() == 1
        assert standin.release == release


@releases
def test_classes_functions_and_arguments_outside_the_release_are_refused(release: str, tmp_path: Path):
    with open_standin(release, tmp_path, installed=False):
        import slicer

        with pytest.raises(Refused, match=f"vtkMRMLNoSuchNode does not exist in Slicer {release}"):
            slicer.mrmlScene.AddNewNodeByClass("vtkMRMLNoSuchNode")
        with pytest.raises(Refused, match="no attribute 'vtkMRMLNoSuchNode'"):
            slicer.vtkMRMLNoSuchNode  # noqa: B018
        with pytest.raises(Refused, match="'slicer.util' has no attribute 'arrayFromEverything'"):
            slicer.util.arrayFromEverything
        with pytest.raises(TypeError, match=r"slicer.util.setSliceViewerLayers.*unexpected keyword"):
            slicer.util.setSliceViewerLayers(background=None, zoom=2)
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "v")
        with pytest.raises(Refused, match="take no new attribute 'notes'"):
            volume.notes = "a Python attribute Qt/VTK would lose"
        combo = slicer.qMRMLNodeComboBox()
        with pytest.raises(Refused, match="qMRMLNodeComboBox.currentNodeChangedLater does not exist"):
            combo.currentNodeChangedLater
        with pytest.raises(Refused, match=f"currentNodeChangedLater does not exist in Slicer {release}"):
            combo.connect("currentNodeChangedLater(vtkMRMLNode*)", lambda node: None)


@releases
def test_a_member_the_release_has_but_the_stand_in_lacks_is_a_loud_gap(release: str, tmp_path: Path):
    with open_standin(release, tmp_path, installed=False):
        import slicer

        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "v")
        with pytest.raises(StandInGap, match="does not implement vtkMRMLScalarVolumeNode.GetVoxelValueUnits"):
            volume.GetVoxelValueUnits()


@releases
def test_packages_slicer_does_not_bundle_cannot_be_imported_until_installed(release: str, tmp_path: Path):
    with open_standin(release, tmp_path, installed=False) as standin:
        with pytest.raises(ModuleNotFoundError, match=f"'slicerio' .*Slicer {release} does not bundle it"):
            import slicerio  # noqa: F401
        import importlib.metadata

        with pytest.raises(importlib.metadata.PackageNotFoundError):
            importlib.metadata.version("slicerio")
        import numpy  # bundled
        import SimpleITK  # noqa: F401 -- bundled
        import pydicom  # noqa: F401 -- bundled
        assert numpy is np
        standin.guard.mark_installed({"slicerio", "pynrrd"})
        import slicerio  # noqa: F401,F811 -- now installed
    assert "slicerio" in sys.modules  # the test environment is itself again afterwards


@releases
def test_mrml_nodes_hold_voxels_geometry_and_segments(release: str, tmp_path: Path):
    """The stand-in's own behaviour that the flow tests rely on, checked against numbers."""
    with open_standin(release, tmp_path, installed=False):
        import slicer
        import vtk

        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "ct")
        matrix = np.array([[-2.0, 0, 0, 10], [0, -1.5, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])
        node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
        slicer.util.updateVolumeFromArray(node, np.arange(24, dtype=np.int16).reshape(2, 3, 4))
        out = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(out)
        assert np.allclose(slicer.util.arrayFromVTKMatrix(out), matrix)
        assert node.GetSpacing() == pytest.approx((2.0, 1.5, 3.0))
        assert slicer.util.arrayFromVolume(node).shape == (2, 3, 4)
        assert slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLVolumeNode") is node  # IsA through the class chain

        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
        image = slicer.vtkOrientedImageData()
        image.SetDimensions(4, 3, 2)
        image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        from vtk.util import numpy_support

        voxels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
        voxels[:] = 0  # VTK leaves new scalars uninitialised
        voxels[5] = 1
        image.SetImageToWorldMatrix(slicer.util.vtkMatrixFromArray(matrix))
        segment_id = segmentation.AddSegmentFromBinaryLabelmapRepresentation(image, "spot", [1, 0, 0], "spot")
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segment_id, node)
        assert mask.sum() == 1 and mask[0, 1, 1] == 1
        status = slicer.vtkSlicerSegmentationsModuleLogic
        status.SetSegmentStatus(segmentation.GetSegmentation().GetSegment(segment_id), 3)
        assert status.GetSegmentStatus(segmentation.GetSegmentation().GetSegment(segment_id)) == 3


def test_the_standin_imports_the_project_afresh_and_gives_the_old_modules_back(tmp_path: Path):
    """Inside, Slicer imports radassist itself (nothing of the test process leaks in); after, every module the tests
    imported before is the one in sys.modules again (an exception class compared later must be the same class)."""
    from radassist.errors import InputError

    with open_standin(SUPPORTED_RELEASES[0], tmp_path / "slicer", installed=True):
        import importlib

        assert importlib.import_module("radassist.errors").InputError is not InputError
    assert sys.modules["radassist.errors"].InputError is InputError
