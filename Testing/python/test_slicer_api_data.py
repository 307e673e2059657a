"""Slicer's Python API as data: the committed extraction for each supported release says what the real Slicer has,
and the extractor reads a header the way VTK's wrapper and PythonQt expose it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slicer_standin.surface import API_FOLDER, SUPPORTED_RELEASES, surface

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("release", SUPPORTED_RELEASES)
def test_each_release_has_its_data_from_its_tag(release: str):
    data = json.loads((API_FOLDER / f"slicer-{release}.json").read_text())
    assert data["release"] == release and data["tag"] == f"v{release}"
    assert data["versions"]["python"].startswith("3.12")
    assert len(data["classes"]) > 200 and len(data["qt_classes"]) > 200
    assert {"numpy", "scipy", "simpleitk", "pydicom", "requests", "vtk"} <= set(data["packages"])
    assert not {"torch", "monai", "slicerio", "pynrrd", "jsonschema"} & set(data["packages"])


@pytest.mark.parametrize("release", SUPPORTED_RELEASES)
def test_members_come_with_inheritance_macros_and_enums(release: str):
    api = surface(release)
    display = "vtkMRMLTransformDisplayNode"
    # the two calls the old BrainRegSeg made, and what Slicer has instead
    assert not api.has_member(display, "SetRegionNode") and not api.has_member(display, "SetVisualizationModeToGrid")
    assert api.has_member(display, "SetAndObserveRegionNode") and api.has_member(display, "SetVisualizationMode")
    assert api.enums(display)["VIS_MODE_GRID"] == 1
    assert api.has_member(display, "SetVisibility")  # inherited from vtkMRMLDisplayNode
    assert api.has_member(display, "AddObserver")  # inherited from VTK's vtkObject
    assert api.has_member("vtkMRMLNode", "HideFromEditorsOn")  # vtkBooleanMacro
    assert api.has_member("vtkMRMLNode", "GetName") and api.has_member("vtkMRMLNode", "SetName")  # string macros
    assert api.enums("vtkMRMLScene")["StartCloseEvent"] == 0x2000 | 0x100 | 3  # computed from the enum's expression
    assert api.has_member("vtkOrientedGridTransform", "SetGridDirectionMatrix")  # vtkAddon, pinned commit
    assert "widgetRepresentation" in api.qt_members("qSlicerScriptedLoadableModule")  # PythonQt decorator
    assert "currentNodeChanged" in api.qt_members("qMRMLNodeComboBox")
    assert "isEntered" in api.qt_members("qSlicerScriptedLoadableModuleWidget")


@pytest.mark.parametrize("release", SUPPORTED_RELEASES)
def test_util_signatures_and_module_classes(release: str):
    api = surface(release)
    signature = api.util_signature("launchConsoleProcess")
    assert list(signature.parameters)[:4] == ["args", "useStartupEnvironment", "updateEnvironment", "cwd"]
    assert api.util_signature("no_such_function") is None
    assert "getParameterNode" in api.scripted_module_class("ScriptedLoadableModuleLogic")["methods"]
    assert {"parameterNodeWrapper", "Choice", "Default"} <= set(api.parameter_node_wrapper["exports"])
    assert "connectGui" in api.parameter_node_wrapper["wrapped_class_members"]


def test_releases_differ_where_slicer_changed():
    old, new = surface("5.10.0"), surface("5.12.3")
    assert old.packages["pydicom"].startswith("2.") and new.packages["pydicom"].startswith("3.")
    assert "highdicom" not in old.packages and "highdicom" in new.packages
    assert old.versions["vtk"] != new.versions["vtk"]


HEADER = '''
#include "vtkMRMLNode.h"
class VTK_MRML_EXPORT vtkMRMLExampleNode : public vtkMRMLDisplayableNode
{
public:
  static vtkMRMLExampleNode* New();
  vtkTypeMacro(vtkMRMLExampleNode, vtkMRMLDisplayableNode);
  /// a comment with a "quote" and a // in it
  const char* GetNodeTagName() override { return "http://example"; }
  vtkSetMacro(Level, int);
  vtkGetMacro(Level, int);
  vtkBooleanMacro(Level, int);
  VTK_NEWINSTANCE vtkMatrix4x4* MakeMatrix();
  enum Modes { ModeA, ModeB = 4, ModeC, ModeLast = ModeA | 8 };
#ifndef __VTK_WRAP__
  void HiddenFromPython();
#endif
protected:
  void NotForScripts();
};
'''


def test_a_header_reads_as_vtk_wraps_it():
    import sys

    sys.path.insert(0, str(PROJECT_ROOT / "Testing" / "slicer_api"))
    from cxx_headers import parse_header

    (cls,) = parse_header(HEADER)
    assert cls.name == "vtkMRMLExampleNode" and cls.base == "vtkMRMLDisplayableNode"
    assert {"New", "GetNodeTagName", "SetLevel", "GetLevel", "LevelOn", "LevelOff", "MakeMatrix", "IsA",
            "SafeDownCast"} <= cls.members
    assert "HiddenFromPython" not in cls.members and "NotForScripts" not in cls.members
    assert cls.enums == {"ModeA": 0, "ModeB": 4, "ModeC": 5, "ModeLast": 8}


QT_HEADER = '''
class Q_EXPORT qMRMLExampleWidget : public QWidget
{
  Q_OBJECT
  Q_PROPERTY(bool noneEnabled READ noneEnabled WRITE setNoneEnabled)
public:
  Q_INVOKABLE vtkMRMLNode* currentNode() const;
  bool noneEnabled() const;
public slots:
  void setMRMLScene(vtkMRMLScene* scene);
signals:
  void currentNodeChanged(vtkMRMLNode*);
};
'''


def test_a_qt_header_reads_as_pythonqt_exposes_it():
    import sys

    sys.path.insert(0, str(PROJECT_ROOT / "Testing" / "slicer_api"))
    from cxx_headers import parse_header

    (cls,) = parse_header(QT_HEADER)
    assert cls.is_qobject and cls.properties == {"noneEnabled"}
    assert cls.slots == {"currentNode", "setMRMLScene"}  # plain public methods are not exposed
    assert cls.signals == {"currentNodeChanged"}
