"""``slicer.app``, ``slicer.modules`` and scripted-module loading as Slicer does it: the module file is imported,
its module class is given a qSlicerScriptedLoadableModule parent, and the widget is created (``setup()``) the first
time its representation is asked for; entering a module calls the widget's ``enter()``."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

from slicer_standin import qt_module as qw
from slicer_standin.qt_core import LOOP, QObject
from slicer_standin.qt_slicer_widgets import StrictSlicerQt, qMRMLWidget
from slicer_standin.strict import active


class qSlicerApplication(StrictSlicerQt, QObject):
    _qt_name = "qSlicerApplication"
    _slicer_qt_base = qw.QApplication
    _properties = {"majorVersion": 5, "minorVersion": 10, "slicerHome": "", "temporaryPath": "",
                   "cachePath": "", "isInstalled": True, "releaseType": "Stable", "platform": "linux-amd64",
                   "os": "linux", "arch": "amd64", "revision": "", "defaultScenePath": "",
                   "slicerUserSettingsFilePath": "", "applicationLocaleName": "en_US",
                   "extensionsInstallPath": "", "documentationBaseUrl": "", "repositoryRevision": ""}
    _signals = ("mrmlSceneChanged(vtkMRMLScene*)", "startupCompleted()")

    def __init__(self, scene, home: Path, temporary: Path) -> None:
        super().__init__(None)
        release = active().release.split(".")
        self._values.update(majorVersion=int(release[0]), minorVersion=int(release[1]), slicerHome=str(home),
                            temporaryPath=str(temporary), cachePath=str(temporary / "cache"))
        self._scene = scene
        self._main_window = qw.QWidget()
        self._main_window.objectName = "qSlicerMainWindow"
        self._slice_layers: dict = {}
        self._errors: list[str] = []
        self._status_messages: list[str] = []
        self._module_paths: dict[str, str] = {}
        self._entered: str | None = None
        self._module_manager = qSlicerModuleManager()

    def processEvents(self, *args) -> None:  # noqa: N802
        LOOP.process()

    def mrmlScene(self):  # noqa: N802
        return self._scene

    def moduleManager(self):  # noqa: N802
        return self._module_manager

    def settings(self):
        return qw.QSettings()

    def _enter_module(self, name: str) -> None:
        import slicer

        if self._entered is not None:
            previous = getattr(slicer.modules, self._entered.lower(), None)
            if previous is not None and previous._widget is not None:
                previous._widget.exit()
        module = getattr(slicer.modules, name.lower())
        module.widgetRepresentation().enter()
        self._entered = name


class qSlicerModuleManager(StrictSlicerQt, QObject):
    _qt_name = "qSlicerModuleManager"
    _slicer_qt_base = QObject
    _signals = ("moduleAboutToBeUnloaded(QString)", "moduleLoaded(QString)")


class qSlicerScriptedLoadableModuleWidget(qMRMLWidget):
    """The C++ side of a scripted module's panel; ``self()`` is the module file's Widget instance."""

    _qt_name = "qSlicerScriptedLoadableModuleWidget"
    _slicer_qt_base = qw.QWidget
    _properties = {"isEntered": False, "moduleName": ""}

    def __init__(self, module: "qSlicerScriptedLoadableModule") -> None:
        super().__init__(None)
        self._module = module
        self._values["moduleName"] = module.name
        self.setLayout(qw.QVBoxLayout())
        self._python = None

    def self(self):
        return self._python

    def enter(self) -> None:
        self._values["isEntered"] = True
        if hasattr(self._python, "enter"):
            self._python.enter()

    def exit(self) -> None:
        if hasattr(self._python, "exit"):
            self._python.exit()
        self._values["isEntered"] = False

    def setMRMLScene(self, scene) -> None:  # noqa: N802
        qMRMLWidget.setMRMLScene(self, scene)

    def module(self):
        return self._module


class qSlicerScriptedLoadableModule(StrictSlicerQt, QObject):
    _qt_name = "qSlicerScriptedLoadableModule"
    _slicer_qt_base = QObject
    _properties = {"title": "", "categories": [], "dependencies": [], "contributors": [], "helpText": "",
                   "acknowledgementText": "", "hidden": False, "icon": None, "index": -1, "path": "", "name": "",
                   "associatedNodeTypes": [], "isInstalled": False, "isBuiltIn": False, "extensions": [],
                   "widgetRepresentationCreationEnabled": True}

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(None)
        self._values.update(name=name, path=str(path))
        self._python_module = None
        self._instance = None
        self._widget: qSlicerScriptedLoadableModuleWidget | None = None
        self._logic = None

    def widgetRepresentation(self):  # noqa: N802
        import slicer

        if self._widget is None:
            representation = qSlicerScriptedLoadableModuleWidget(self)
            representation.setMRMLScene(slicer.mrmlScene)
            widget_class = getattr(self._python_module, f"{self.name}Widget")
            representation._python = widget_class(representation)
            self._widget = representation
            representation._python.setup()
            setattr(slicer.modules, f"{self.name}Widget", representation._python)
        return self._widget

    def createNewWidgetRepresentation(self):  # noqa: N802
        return self.widgetRepresentation()

    def logic(self):
        return self._logic

    def mrmlScene(self):  # noqa: N802
        import slicer

        return slicer.mrmlScene


class LoadableModule(StrictSlicerQt, QObject):
    """A built-in loadable module (Markups, Segmentations, ...) as scripts see it: its logic."""

    _qt_name = "qSlicerAbstractModule"
    _slicer_qt_base = QObject
    _properties = {"name": "", "title": "", "hidden": False}

    def __init__(self, name: str, logic) -> None:
        super().__init__(None)
        self._values.update(name=name, title=name)
        self._logic = logic

    def logic(self):
        return self._logic


class SegmentEditorModule(LoadableModule):
    """Slicer's Segment Editor is a scripted module whose widget keeps the editor in ``.editor``."""

    def __init__(self) -> None:
        from slicer_standin.segment_editor import qMRMLSegmentEditorWidget

        super().__init__("SegmentEditor", None)
        editor = qMRMLSegmentEditorWidget()
        self._python = types.SimpleNamespace(editor=editor)
        self._representation = qSlicerScriptedLoadableModuleWidget.__new__(qSlicerScriptedLoadableModuleWidget)
        qw.QWidget.__init__(self._representation)
        self._representation._python = self._python
        self._representation._module = self

    def widgetRepresentation(self):  # noqa: N802
        return self._representation


class ctkDICOMDatabase(QObject):
    _qt_name = "ctkDICOMDatabase"
    _properties = {"isOpen": False, "databaseFilename": ""}

    def __init__(self) -> None:
        super().__init__(None)
        self._files: dict[str, list[str]] = {}
        self._values_by_uid: dict[tuple[str, str], str] = {}

    def filesForSeries(self, series_uid: str, hits: int = -1) -> list[str]:  # noqa: N802
        return list(self._files.get(series_uid, []))

    def instanceValue(self, uid: str, tag: str) -> str:  # noqa: N802
        return self._values_by_uid.get((uid, tag), "")


def load_scripted_module(module_file: Path):
    """Import a module file and register it the way Slicer's scripted module factory does."""
    import slicer

    name = module_file.stem
    folder = str(module_file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    python_module = importlib.import_module(name)
    module = qSlicerScriptedLoadableModule(name, module_file)
    module._python_module = python_module
    slicer.app._module_paths[name] = str(module_file)
    module._instance = getattr(python_module, name)(module)
    setattr(slicer.modules, name.lower(), module)
    setattr(slicer.modules, f"{name}Instance", module._instance)
    return module
