"""The Segment Editor as a scripted effect sees it: the effect factory, the C++ adaptor of a Python effect
(``qSlicerSegmentEditorScriptedEffect``: parameters, options frame, undo, writing a labelmap into the selected
segment), the editor widget that owns the effects and their undo states, its parameter node, and the
``SegmentEditorEffects`` package a Python effect derives from. Every member is checked against the release."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np

from slicer_standin import qt_module as qw
from slicer_standin.mrml_core import vtkMRMLNode, register
from slicer_standin.mrml_segmentation import BINARY_LABELMAP, resample_mask
from slicer_standin.mrml_volumes import image_array, image_from_array, vtkOrientedImageData
from slicer_standin.qt_core import QObject
from slicer_standin.qt_slicer_widgets import StrictSlicerQt, qMRMLWidget
from slicer_standin.strict import active, vtk_matrix
from slicer_standin.surface import Refused


@register
class vtkMRMLSegmentEditorNode(vtkMRMLNode):
    _vtk_name = "vtkMRMLSegmentEditorNode"
    _tag = "SegmentEditor"

    def __init__(self) -> None:
        super().__init__()
        self._selected = ""

    def SetAndObserveSegmentationNode(self, node) -> None:
        self.SetNodeReferenceID("segmentation", node.GetID() if node is not None else None)

    def GetSegmentationNode(self):
        return self.GetNodeReference("segmentation")

    def SetAndObserveSourceVolumeNode(self, node) -> None:
        self.SetNodeReferenceID("sourceVolume", node.GetID() if node is not None else None)

    def GetSourceVolumeNode(self):
        return self.GetNodeReference("sourceVolume")

    def SetSelectedSegmentID(self, segment_id: str) -> None:
        self._selected = segment_id or ""
        self.Modified()

    def GetSelectedSegmentID(self) -> str:
        return self._selected


class qSlicerSegmentEditorEffectFactory(StrictSlicerQt, QObject):
    _qt_name = "qSlicerSegmentEditorEffectFactory"
    _slicer_qt_base = QObject
    _signals = ("effectRegistered(QString)",)
    _instance = None

    def __init__(self) -> None:
        super().__init__(None)
        self._effects: list = []

    @staticmethod
    def instance() -> "qSlicerSegmentEditorEffectFactory":
        if qSlicerSegmentEditorEffectFactory._instance is None:
            qSlicerSegmentEditorEffectFactory._instance = qSlicerSegmentEditorEffectFactory()
        return qSlicerSegmentEditorEffectFactory._instance

    def registerEffect(self, effect) -> bool:  # noqa: N802
        if any(existing.name == effect.name for existing in self._effects):
            return False
        self._effects.append(effect)
        self._emit("effectRegistered", effect.name)
        return True

    def registeredEffects(self) -> list:  # noqa: N802
        return list(self._effects)


class qSlicerSegmentEditorScriptedEffect(StrictSlicerQt, QObject):
    """The adaptor a Python effect talks to as ``self.scriptedEffect``."""

    _qt_name = "qSlicerSegmentEditorScriptedEffect"
    _slicer_qt_base = QObject
    _properties = {"name": "", "title": "", "perSegment": True, "requireSegments": True, "pythonSource": "",
                   "active": False, "showEffectCursorInSliceView": True, "showEffectCursorInThreeDView": False}

    def __init__(self, parent=None) -> None:
        super().__init__(None)
        self._python = None
        self._parameters: dict[str, str] = {}
        self._editor = None
        self._frame = qw.QWidget()
        self._layout = qw.QFormLayout(self._frame)

    def setPythonSource(self, path: str) -> bool:  # noqa: N802
        """Load the effect file and make its ``SegmentEditorEffect`` the Python side of this adaptor."""
        spec = importlib.util.spec_from_file_location(Path(path).stem + "_effect", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self._values["pythonSource"] = str(path)
        self._python = module.SegmentEditorEffect(self)
        return True

    def self(self):
        return self._python

    # parameters (Slicer keeps them on the segment editor node; one dictionary per effect here)
    def setParameter(self, name: str, value) -> None:  # noqa: N802
        self._parameters[name] = str(value)

    def setParameterDefault(self, name: str, value) -> None:  # noqa: N802
        self._parameters.setdefault(name, str(value))

    def parameter(self, name: str) -> str:
        return self._parameters.get(name, "")

    def parameterDefined(self, name: str) -> bool:  # noqa: N802
        return name in self._parameters

    def integerParameter(self, name: str) -> int:  # noqa: N802
        return int(float(self._parameters.get(name, "0") or 0))

    def doubleParameter(self, name: str) -> float:  # noqa: N802
        return float(self._parameters.get(name, "0") or 0)

    # the options frame and the editor
    def optionsLayout(self):  # noqa: N802
        return self._layout

    def optionsFrame(self):  # noqa: N802
        return self._frame

    def addOptionsWidget(self, widget) -> None:  # noqa: N802
        self._layout.addRow(widget)

    def parameterSetNode(self):  # noqa: N802
        return self._editor.mrmlSegmentEditorNode() if self._editor is not None else None

    def scene(self):
        import slicer

        return slicer.mrmlScene

    def saveStateForUndo(self) -> None:  # noqa: N802
        if self._editor is not None:
            self._editor.saveStateForUndo()

    def updateGUIFromMRML(self) -> None:  # noqa: N802
        if self._python is not None and hasattr(self._python, "updateGUIFromMRML"):
            self._python.updateGUIFromMRML()

    def selectEffect(self, name: str) -> None:  # noqa: N802
        if self._editor is not None:
            self._editor.setActiveEffectByName(name)

    def modifySelectedSegmentByLabelmap(self, labelmap, mode, bypassMasking=False) -> None:  # noqa: N802, N803
        """Write ``labelmap`` into the selected segment (Set replaces it, Add and Remove combine)."""
        node = self.parameterSetNode()
        segmentation = node.GetSegmentationNode()
        segment = segmentation.GetSegmentation().GetSegment(node.GetSelectedSegmentID())
        if segment is None:
            raise ValueError("no segment is selected")
        source = node.GetSourceVolumeNode()
        import vtk

        matrix = vtk.vtkMatrix4x4()
        source.GetIJKToRASMatrix(matrix)
        from slicer_standin.strict import matrix_array

        shape = tuple(reversed(source.GetImageData().GetDimensions()))
        new = resample_mask(image_array(labelmap) > 0, labelmap.image_to_world(), shape, matrix_array(matrix))
        old_image = segment.GetRepresentation(BINARY_LABELMAP)
        old = np.zeros(shape, bool) if old_image is None else resample_mask(
            image_array(old_image) > 0, old_image.image_to_world(), shape, matrix_array(matrix))
        modes = active().qt_classes["qSlicerSegmentEditorAbstractEffect"]["enums"]
        mode = int(mode)
        result = {modes["ModificationModeSet"]: new, modes["ModificationModeAdd"]: old | new,
                  modes["ModificationModeRemove"]: old & ~new}.get(mode)
        if result is None:
            raise ValueError(f"unsupported modification mode {mode}")
        image = vtkOrientedImageData()
        image_from_array(result.astype(np.uint8), image)
        image.SetImageToWorldMatrix(vtk_matrix(matrix_array(matrix)))
        segment.AddRepresentation(BINARY_LABELMAP, image)
        segmentation.Modified()


class qMRMLSegmentEditorWidget(qMRMLWidget):
    """The editor: its parameter node, the effects (copies of the registered ones), undo and redo."""

    _qt_name = "qMRMLSegmentEditorWidget"
    _slicer_qt_base = qw.QWidget

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._node = None
        self._effects: dict[str, qSlicerSegmentEditorScriptedEffect] = {}
        self._active = None
        self._undo: list[dict] = []
        self._redo: list[dict] = []

    def _editor_node(self):
        if self._node is None:
            import slicer

            self._node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        return self._node

    def setMRMLSegmentEditorNode(self, node) -> None:  # noqa: N802
        self._node = node

    def mrmlSegmentEditorNode(self):  # noqa: N802
        return self._editor_node()

    def setSegmentationNode(self, node) -> None:  # noqa: N802
        self._editor_node().SetAndObserveSegmentationNode(node)

    def segmentationNode(self):  # noqa: N802
        return self._editor_node().GetSegmentationNode()

    def setSourceVolumeNode(self, node) -> None:  # noqa: N802
        self._editor_node().SetAndObserveSourceVolumeNode(node)

    def sourceVolumeNode(self):  # noqa: N802
        return self._editor_node().GetSourceVolumeNode()

    def setCurrentSegmentID(self, segment_id: str) -> None:  # noqa: N802
        self._editor_node().SetSelectedSegmentID(segment_id)

    def currentSegmentID(self) -> str:  # noqa: N802
        return self._editor_node().GetSelectedSegmentID()

    def availableEffectNames(self) -> list[str]:  # noqa: N802
        return [effect.name for effect in qSlicerSegmentEditorEffectFactory.instance().registeredEffects()]

    def effectByName(self, name: str):  # noqa: N802
        if name not in self._effects:
            for registered in qSlicerSegmentEditorEffectFactory.instance().registeredEffects():
                if registered.name == name:  # each editor works on its own copy, as copyEffects makes them
                    copy = qSlicerSegmentEditorScriptedEffect()
                    copy.setPythonSource(registered.pythonSource)
                    copy._editor = self
                    if hasattr(copy.self(), "setupOptionsFrame"):
                        copy.self().setupOptionsFrame()
                    self._effects[name] = copy
        return self._effects.get(name)

    def setActiveEffectByName(self, name: str) -> None:  # noqa: N802
        effect = self.effectByName(name)
        if effect is None:
            raise Refused(f"no Segment Editor effect named {name!r} is registered")
        if self._active is not None and hasattr(self._active.self(), "deactivate"):
            self._active.self().deactivate()
        self._active = effect
        if hasattr(effect.self(), "activate"):
            effect.self().activate()

    def activeEffect(self):  # noqa: N802
        return self._active

    def _snapshot(self) -> dict:
        segmentation = self.segmentationNode().GetSegmentation()
        state = {}
        for segment_id, segment in segmentation._segments.items():
            image = segment.GetRepresentation(BINARY_LABELMAP)
            copy = None
            if image is not None:
                copy = vtkOrientedImageData()
                copy.DeepCopy(image)
            state[segment_id] = copy
        return state

    def _restore(self, state: dict) -> None:
        segmentation = self.segmentationNode().GetSegmentation()
        for segment_id, image in state.items():
            segment = segmentation.GetSegment(segment_id)
            if segment is not None:
                segment._representations.pop(BINARY_LABELMAP, None)
                if image is not None:
                    segment.AddRepresentation(BINARY_LABELMAP, image)
        segmentation.Modified()

    def saveStateForUndo(self) -> None:  # noqa: N802
        self._undo.append(self._snapshot())
        self._redo.clear()

    def undo(self) -> None:
        if self._undo:
            self._redo.append(self._snapshot())
            self._restore(self._undo.pop())

    def redo(self) -> None:
        if self._redo:
            self._undo.append(self._snapshot())
            self._restore(self._redo.pop())


class AbstractScriptedSegmentEditorEffect:
    """The base class of Python effects (``SegmentEditorEffects``); its methods are the release's."""

    def __init__(self, scriptedEffect) -> None:  # noqa: N803
        self.scriptedEffect = scriptedEffect

    def register(self) -> None:
        qSlicerSegmentEditorEffectFactory.instance().registerEffect(self.scriptedEffect)

    def cleanup(self) -> None:
        return None


def effects_module() -> types.ModuleType:
    """``import SegmentEditorEffects`` (the release's abstract effect only: what a scripted effect derives from)."""
    release = active().data["segment_editor_effects"]["classes"]["AbstractScriptedSegmentEditorEffect"]["methods"]
    ours = {name for name, value in vars(AbstractScriptedSegmentEditorEffect).items()
            if callable(value) and not name.startswith("__")}
    if ours - set(release):
        raise AssertionError(f"stand-in effect base offers {sorted(ours - set(release))}, Slicer does not")
    module = types.ModuleType("SegmentEditorEffects")
    module.AbstractScriptedSegmentEditorEffect = AbstractScriptedSegmentEditorEffect
    return module
