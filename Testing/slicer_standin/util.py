"""``slicer.util`` for the stand-in. Every name is checked against the release's ``util.py`` and every call is bound
to that release's signature before it reaches the implementation here, so a misspelt function or a keyword argument
the release does not take fails as it would in Slicer."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import tempfile
import types
from typing import Any

import numpy as np
import vtk

from slicer_standin import qt_module as qw
from slicer_standin.mrml_segmentation import reference_shape_and_matrix, resample_mask, segment_mask
from slicer_standin.mrml_volumes import image_array, image_from_array, vtkOrientedImageData
from slicer_standin.strict import active, copy_into, matrix_array, vtk_matrix
from slicer_standin.surface import Refused, StandInGap
from slicer_standin.ui_loader import load_ui


def _app():
    import slicer

    return slicer.app


# -- widgets -------------------------------------------------------------------------------------------------------

def loadUI(path):  # noqa: N802
    return load_ui(path)


def childWidgetVariables(widget):  # noqa: N802
    ui = types.SimpleNamespace()
    for child in widget.findChildren(qw.QWidget):
        if child.objectName:
            setattr(ui, child.objectName, child)
    return ui


def mainWindow():  # noqa: N802
    return _app()._main_window


def findChild(widget, name):  # noqa: N802
    found = widget.findChildren(None, name)
    if not found:
        raise RuntimeError(f"Widget named {name} does not exist")
    return found[0]


def findChildren(widget=None, name="", text="", title="", className=""):  # noqa: N802
    root = widget or mainWindow()
    return [w for w in root.findChildren(None) if (not name or w.objectName == name)]


# -- arrays and matrices -------------------------------------------------------------------------------------------

def arrayFromVolume(volumeNode):  # noqa: N802, N803
    return image_array(volumeNode.GetImageData())


def updateVolumeFromArray(volumeNode, narray):  # noqa: N802, N803
    image = volumeNode.GetImageData()
    if image is None:
        image = vtk.vtkImageData()
    image_from_array(np.asarray(narray), image)
    volumeNode.SetAndObserveImageData(image)
    volumeNode.Modified()


def arrayFromVTKMatrix(vmatrix):  # noqa: N802
    if isinstance(vmatrix, vtk.vtkMatrix3x3):
        return np.array([[vmatrix.GetElement(r, c) for c in range(3)] for r in range(3)])
    return matrix_array(vmatrix)


def vtkMatrixFromArray(narray):  # noqa: N802
    narray = np.asarray(narray, dtype=float)
    if narray.shape == (4, 4):
        return vtk_matrix(narray)
    if narray.shape == (3, 3):
        matrix = vtk.vtkMatrix3x3()
        for r in range(3):
            for c in range(3):
                matrix.SetElement(r, c, float(narray[r, c]))
        return matrix
    raise RuntimeError("Unsupported numpy array shape: " + str(narray.shape) + " expected (4, 4)")


def updateVTKMatrixFromArray(vmatrix, narray):  # noqa: N802
    copy_into(vmatrix, np.asarray(narray, dtype=float))


def arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, referenceVolumeNode=None):  # noqa: N802, N803
    mask = segment_mask(segmentationNode, segmentId)
    if mask is None:
        raise ValueError(f"segment {segmentId} has no binary labelmap")
    array, image_to_world = mask
    if referenceVolumeNode is None:
        return array.astype(np.uint8)
    shape, ijk_to_ras = reference_shape_and_matrix(referenceVolumeNode)
    return resample_mask(array, image_to_world, shape, ijk_to_ras).astype(np.uint8)


def updateSegmentBinaryLabelmapFromArray(narray, segmentationNode, segmentId, referenceVolumeNode=None):  # noqa: N802
    image = vtkOrientedImageData()
    image_from_array(np.asarray(narray, dtype=np.uint8), image)
    if referenceVolumeNode is not None:
        _, ijk_to_ras = reference_shape_and_matrix(referenceVolumeNode)
        image.SetImageToWorldMatrix(vtk_matrix(ijk_to_ras))
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
    segment.AddRepresentation("Binary labelmap", image)
    segmentationNode.Modified()


def arrayFromTableColumn(tableNode, columnName):  # noqa: N802, N803
    from vtk.util import numpy_support

    return numpy_support.vtk_to_numpy(tableNode.GetTable().GetColumnByName(columnName))


# -- scene ---------------------------------------------------------------------------------------------------------

def getNodesByClass(className, scene=None):  # noqa: N802, N803
    import slicer

    scene = scene or slicer.mrmlScene
    return [node for node in scene._nodes if node.IsA(className)]


def getNode(pattern="*", index=0, scene=None):  # noqa: N802
    import fnmatch

    import slicer

    scene = scene or slicer.mrmlScene
    nodes = [node for node in scene._nodes if fnmatch.fnmatchcase(node.GetName() or "", pattern) or
             node.GetID() == pattern]
    if not nodes:
        raise MRMLNodeNotFoundException(f"could not find nodes in the scene by name or id '{pattern}'")
    return nodes[index]


class MRMLNodeNotFoundException(Exception):
    pass


def setSliceViewerLayers(background="keep-current", foreground="keep-current", label="keep-current",  # noqa: N802
                         foregroundOpacity=None, labelOpacity=None, fit=False, rotateToVolumePlane=False):  # noqa: N803
    layers = _app()._slice_layers
    for role, value in (("background", background), ("foreground", foreground), ("label", label)):
        if value != "keep-current":
            layers[role] = value if (value is None or isinstance(value, str)) else value.GetID()
    layers["fit"] = bool(fit)


@contextlib.contextmanager
def _node_modify(node):
    was = node.StartModify()
    try:
        yield node
    finally:
        node.EndModify(was)


class NodeModify:
    def __init__(self, node) -> None:
        self._context = _node_modify(node)

    def __enter__(self):
        return self._context.__enter__()

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)


class WaitCursor:
    def __init__(self, show=True) -> None:
        self._show = show

    def __enter__(self):
        if self._show:
            qw.QApplication.setOverrideCursor(qw.QCursor(qw.Qt.WaitCursor))
        return self

    def __exit__(self, *exc):
        if self._show:
            qw.QApplication.restoreOverrideCursor()
        return False


class VTKObservationMixin:
    """Observers kept per (object, event, method), removed together (Slicer's semantics)."""

    def __init__(self) -> None:
        self.Observations = []

    def removeObservers(self, method=None) -> None:  # noqa: N802
        for observed, event, observed_method, group, tag, priority in list(self.Observations):
            if method in (None, observed_method):
                observed.RemoveObserver(tag)
                self.Observations.remove((observed, event, observed_method, group, tag, priority))

    def addObserver(self, object, event, method, group="none", priority=0.0) -> None:  # noqa: N802, A002
        if any(o is object and e == event and m == method for o, e, m, *_ in self.Observations):
            return
        tag = object.AddObserver(event, method, priority)
        self.Observations.append((object, event, method, group, tag, priority))

    def removeObserver(self, object, event, method) -> None:  # noqa: N802, A002
        for entry in list(self.Observations):
            observed, observed_event, observed_method, _, tag, _ = entry
            if observed is object and observed_event == event and observed_method == method:
                observed.RemoveObserver(tag)
                self.Observations.remove(entry)

    def hasObserver(self, object, event, method) -> bool:  # noqa: N802, A002
        return any(o is object and e == event and m == method for o, e, m, *_ in self.Observations)

    def observer(self, event, method):
        return next((o for o, e, m, *_ in self.Observations if e == event and m == method), None)


# -- dialogs and messages ------------------------------------------------------------------------------------------

def _dialog(kind: str, text, windowTitle=None, **details) -> Any:  # noqa: N803
    return qw.DIALOGS.take(kind, {"text": text, "title": windowTitle, **details})


def errorDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):  # noqa: N802, N803
    _app()._errors.append(str(text))
    _dialog("error", text, windowTitle, detailed=kwargs.get("detailedText"))


def warningDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):  # noqa: N802, N803
    _dialog("warning", text, windowTitle)


def infoDisplay(text, windowTitle=None, parent=None, standardButtons=None, **kwargs):  # noqa: N802, N803
    _dialog("information", text, windowTitle)


def confirmOkCancelDisplay(text, windowTitle=None, parent=None, **kwargs):  # noqa: N802, N803
    return bool(_dialog("ok/cancel", text, windowTitle))


def confirmYesNoDisplay(text, windowTitle=None, parent=None, **kwargs):  # noqa: N802, N803
    return bool(_dialog("yes/no", text, windowTitle))


def showStatusMessage(message, duration=0):  # noqa: N802
    _app()._status_messages.append(str(message))


def delayDisplay(message, autoCloseMsec=1000, parent=None, **kwargs):  # noqa: N802, N803
    _app().processEvents()


# -- settings, paths, modules --------------------------------------------------------------------------------------

def toBool(value):  # noqa: N802
    if isinstance(value, str):
        return value.lower() in ("true", "1", "on", "yes")
    return bool(value)


def settingsValue(key, default, converter=lambda v: v, settings=None):  # noqa: N802
    settings = settings or qw.QSettings()
    return converter(settings.value(key)) if settings.contains(key) else default


def modulePath(moduleName):  # noqa: N802, N803
    return _app()._module_paths[moduleName]


def getModule(moduleName):  # noqa: N802, N803
    import slicer

    return getattr(slicer.modules, moduleName.lower(), None)


def getModuleWidget(module):  # noqa: N802
    module = getModule(module) if isinstance(module, str) else module
    return module.widgetRepresentation().self()


def getModuleLogic(module):  # noqa: N802
    module = getModule(module) if isinstance(module, str) else module
    return module.logic()


def selectModule(module):  # noqa: N802
    name = module if isinstance(module, str) else module.name
    _app()._enter_module(name)


def tempDirectory(key="__SlicerTemp__", tempDir=None, includeDateTime=True):  # noqa: N802, N803
    root = tempDir or _app().temporaryPath
    return tempfile.mkdtemp(prefix=key.strip("_") + "-", dir=root)


# -- processes -----------------------------------------------------------------------------------------------------

def launchConsoleProcess(args, useStartupEnvironment=True, updateEnvironment=None, cwd=None):  # noqa: N802, N803
    environment = dict(os.environ)
    if updateEnvironment:
        environment.update(updateEnvironment)
    return subprocess.Popen(args, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, cwd=cwd)


def logProcessOutput(proc):  # noqa: N802
    lines = []
    for line in proc.stdout:
        lines.append(line)
    proc.wait()
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, output="".join(lines))


def pip_install(requirements):
    raise StandInGap("slicer.util.pip_install blocks Slicer; RadAssist's installer runs pip in its own process "
                     "instead, and the stand-in offers no blocking pip")


IMPLEMENTED = {name: value for name, value in dict(globals()).items()
               if not name.startswith("_") and callable(value) and getattr(value, "__module__", "") == __name__}
CONSTANTS = {"EXIT_SUCCESS": 0, "EXIT_FAILURE": 1}


def _checked(name: str, implementation):
    signature = active().util_signature(name)
    if signature is None or isinstance(implementation, type):
        return implementation

    @functools.wraps(implementation)
    def call(*args, **kwargs):
        try:
            signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"slicer.util.{name}{signature} in Slicer {active().release}: {error}") from None
        return implementation(*args, **kwargs)

    return call


class UtilModule(types.ModuleType):
    """``slicer.util``: names outside the release's util.py are refused; calls are bound to its signatures."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        surface = active()
        if name not in surface.util_names():
            raise Refused(f"module 'slicer.util' has no attribute {name!r} in Slicer {surface.release}")
        if name in IMPLEMENTED:
            return _checked(name, IMPLEMENTED[name])
        if name in CONSTANTS:
            return CONSTANTS[name]
        raise StandInGap(f"the stand-in does not implement slicer.util.{name} (it exists in Slicer "
                         f"{surface.release})")


def make_module() -> UtilModule:
    return UtilModule("slicer.util", "slicer.util of the strict Slicer stand-in")
