"""A strict stand-in for 3D Slicer's Python, one supported release at a time.

``with SlicerStandIn("5.10.0", tmp_path) as standin:`` puts ``slicer``, ``qt`` and ``ctk`` modules into
``sys.modules`` that offer exactly the classes, members, functions and packages of that release (read from
``Testing/slicer_api/slicer-<release>.json``, extracted from Slicer's source), with working MRML nodes, widgets built
from the modules' .ui files, a parameter node wrapper, and Slicer's scripted-module loading. Everything else is
refused the way the real Slicer refuses it; what the release has but the stand-in does not implement raises
:class:`StandInGap`. RadAssist's modules are re-imported under the release's package rules, so an import of a package
Slicer does not bundle fails until the installer has installed it.
"""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import types
from pathlib import Path

from slicer_standin import application, mrml_core, qt_core, qt_module, strict
from slicer_standin import qt_slicer_widgets as sw
from slicer_standin.packages import PackageGuard
from slicer_standin.surface import SUPPORTED_RELEASES, Refused, StandInGap, surface

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODULES = ("LungTumorAI", "LiverSeg", "BrainRegSeg", "MammoGMIC")
EXTRA_MODULES: tuple[str, ...] = ()  # hidden helper modules (a Segment Editor effect's), loaded with the four

__all__ = ["SlicerStandIn", "SUPPORTED_RELEASES", "Refused", "StandInGap", "PROJECT_ROOT", "MODULES"]


def _import_node_modules() -> None:
    from slicer_standin import (mrml_markups, mrml_segmentation, mrml_tables_transforms,  # noqa: F401
                                mrml_volumes, segment_editor)


class _SlicerModule(types.ModuleType):
    """``import slicer``: its documented attributes, and the release's classes by name."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        surface = strict.active()
        special = _special_classes()
        if name in special and surface.has_class(name):
            return special[name]
        if name in surface.classes:
            return mrml_core.node_class(name)
        if name in surface.qt_classes:
            from slicer_standin import segment_editor

            implemented = {"qMRMLNodeComboBox": sw.qMRMLNodeComboBox, "qMRMLWidget": sw.qMRMLWidget,
                           "qMRMLTableView": sw.qMRMLTableView,
                           "qMRMLSegmentEditorWidget": segment_editor.qMRMLSegmentEditorWidget,
                           "qSlicerSegmentEditorScriptedEffect": segment_editor.qSlicerSegmentEditorScriptedEffect,
                           "qSlicerSegmentEditorEffectFactory": segment_editor.qSlicerSegmentEditorEffectFactory}
            if name in implemented:
                return implemented[name]
            raise StandInGap(f"the stand-in does not implement slicer.{name} (it exists in Slicer "
                             f"{surface.release})")
        raise Refused(f"module 'slicer' has no attribute {name!r} in Slicer {surface.release}")


def _special_classes() -> dict[str, type]:
    from slicer_standin.mrml_markups import vtkSlicerMarkupsLogic
    from slicer_standin.mrml_segmentation import vtkSegment, vtkSegmentation, vtkSlicerSegmentationsModuleLogic
    from slicer_standin.mrml_tables_transforms import vtkOrientedGridTransform
    from slicer_standin.mrml_volumes import vtkOrientedImageData

    return {cls._vtk_name: cls for cls in (vtkSlicerMarkupsLogic, vtkSegment, vtkSegmentation,
                                           vtkSlicerSegmentationsModuleLogic, vtkOrientedGridTransform,
                                           vtkOrientedImageData)}


class _StrictNamespaceModule(types.ModuleType):
    """A module whose names are limited to ``allowed`` (the release's), implemented from ``implemented``."""

    def __init__(self, name: str, allowed: set[str], implemented: dict) -> None:
        super().__init__(name)
        object.__setattr__(self, "_allowed", allowed)
        object.__setattr__(self, "_implemented", implemented)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._allowed:
            raise Refused(f"module {self.__name__!r} has no attribute {name!r} in Slicer {strict.active().release}")
        if name not in self._implemented:
            raise StandInGap(f"the stand-in does not implement {self.__name__}.{name}")
        return self._implemented[name]


class _QtModule(types.ModuleType):
    def __init__(self, name: str, classes: dict) -> None:
        super().__init__(name)
        object.__setattr__(self, "_classes", classes)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._classes:
            return self._classes[name]
        raise AttributeError(f"module {self.__name__!r} of the stand-in has no {name!r}: either PythonQt has no "
                             "such name, or the stand-in does not implement it yet")


def _qt_module() -> _QtModule:
    return _QtModule("qt", qt_module.public_classes())


def _ctk_module() -> _QtModule:
    return _QtModule("ctk", {cls._qt_name: cls for cls in (sw.ctkCollapsibleButton, sw.ctkPathLineEdit,
                                                             sw.ctkDirectoryButton, sw.ctkSliderWidget)})


PYTHON_SLICER = """#!{python}
# PythonSlicer of the Slicer stand-in: Slicer's Python without the application (no slicer.app), as in a real
# Slicer. "-m pip" is answered by the stand-in's pip, which refuses to touch a package the release bundles.
import os, runpy, sys
if sys.argv[1:3] == ["-m", "pip"]:
    sys.path.insert(0, {standin!r})
    from slicer_standin.fake_pip import main
    sys.exit(main(sys.argv[3:]))
sys.argv = sys.argv[1:]
if sys.argv and sys.argv[0] == "-m":
    module = sys.argv[1]
    sys.argv = [module] + sys.argv[2:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
elif sys.argv and sys.argv[0] == "-c":
    code = sys.argv[1]
    sys.argv = ["-c"] + sys.argv[2:]
    exec(compile(code, "<string>", "exec"), {{"__name__": "__main__"}})
else:
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


class SlicerStandIn:
    """The stand-in as a context manager; see the module docstring."""

    def __init__(self, release: str, workdir: Path, pytorch_extension: bool = True,
                 installed: tuple[str, ...] = (), version: tuple[int, int] | None = None) -> None:
        if release not in SUPPORTED_RELEASES:
            raise ValueError(f"no API data for Slicer {release}; supported: {SUPPORTED_RELEASES}")
        self.release = release
        self.surface = surface(release)
        self.workdir = Path(workdir)
        self.pytorch_extension = pytorch_extension
        self.preinstalled = installed
        self.version = version
        self.guard: PackageGuard | None = None
        self._saved_modules: dict[str, object] = {}
        self._saved_env: dict[str, str | None] = {}

    # -- context ------------------------------------------------------------------------------------------------------
    def __enter__(self) -> "SlicerStandIn":
        strict.activate(self.surface)
        _import_node_modules()
        from slicer_standin import scripted_module

        scripted_module.check_against_release()
        self._reset_globals()
        home = self.workdir / "Slicer"
        (home / "bin").mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        self._write_python_slicer(home / "bin" / "PythonSlicer")
        self._set_env("PATH", f"{home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        self._set_env("RADASSIST_STANDIN_PIP_LOG", str(self.workdir / "pip-log.jsonl"))
        self._set_env("RADASSIST_STANDIN_RELEASE", self.release)

        self.guard = PackageGuard(self.surface, {"radassist", *MODULES, *EXTRA_MODULES})
        self.guard.install()
        self.guard.mark_installed(self.preinstalled)
        for name in ("slicer", "slicer.util", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper",
                     "slicer.i18n", "qt", "ctk", "PyTorchUtils", "SegmentEditorEffects", *MODULES, *EXTRA_MODULES):
            if name in sys.modules:
                self._saved_modules[name] = sys.modules.pop(name)
        self._install_modules(home)
        return self

    def __exit__(self, *exc) -> None:
        for name in ("slicer", "slicer.util", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper",
                     "slicer.i18n", "qt", "ctk", "PyTorchUtils", "SegmentEditorEffects", *MODULES, *EXTRA_MODULES):
            sys.modules.pop(name, None)
        sys.modules.update(self._saved_modules)
        for folder in [str(PROJECT_ROOT / module) for module in (*MODULES, *EXTRA_MODULES)]:
            while folder in sys.path:
                sys.path.remove(folder)
        if self.guard is not None:
            self.guard.uninstall()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._reset_globals()
        strict.activate(None)

    def _set_env(self, key: str, value: str) -> None:
        self._saved_env.setdefault(key, os.environ.get(key))
        os.environ[key] = value

    @staticmethod
    def _reset_globals() -> None:
        from slicer_standin.segment_editor import qSlicerSegmentEditorEffectFactory

        qSlicerSegmentEditorEffectFactory._instance = None
        qt_core.LOOP.timers.clear()
        qt_core.LOOP.single_shots.clear()
        qt_module.DIALOGS.queue.clear()
        qt_module.DIALOGS.shown.clear()
        qt_module.SETTINGS.values.clear()
        qt_module.QDesktopServices.opened.clear()
        qt_module.QApplication.override_cursors.clear()

    def _write_python_slicer(self, path: Path) -> None:
        path.write_text(PYTHON_SLICER.format(python=sys.executable, standin=str(Path(__file__).parent.parent)))
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def _install_modules(self, home: Path) -> None:
        from slicer_standin import parameter_node, scripted_module, util
        from slicer_standin.mrml_markups import vtkSlicerMarkupsLogic
        from slicer_standin.mrml_segmentation import vtkSlicerSegmentationsModuleLogic

        slicer = _SlicerModule("slicer")
        slicer.__path__ = []  # a package, so "import slicer.util" works
        scene = mrml_core.vtkMRMLScene()
        slicer.mrmlScene = scene
        slicer.app = application.qSlicerApplication(scene, home, self.workdir / "tmp")
        if self.version is not None:
            slicer.app._values.update(majorVersion=self.version[0], minorVersion=self.version[1])
        slicer.modules = types.SimpleNamespace(
            markups=application.LoadableModule("Markups", vtkSlicerMarkupsLogic()),
            segmentations=application.LoadableModule("Segmentations", vtkSlicerSegmentationsModuleLogic()),
            segmenteditor=application.SegmentEditorModule())
        slicer.selfTests = {}
        slicer.dicomDatabase = application.ctkDICOMDatabase()
        slicer.util = util.make_module()

        names = self.surface.scripted_module_class  # noqa: F841 -- the classes are checked in check_against_release
        loadable = types.ModuleType("slicer.ScriptedLoadableModule")
        for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                     "ScriptedLoadableModuleTest"):
            setattr(loadable, name, getattr(scripted_module, name))
        slicer.ScriptedLoadableModule = loadable
        wrapper = _StrictNamespaceModule("slicer.parameterNodeWrapper",
                                         set(self.surface.parameter_node_wrapper["exports"]),
                                         parameter_node.IMPLEMENTED)
        slicer.parameterNodeWrapper = wrapper
        i18n = types.ModuleType("slicer.i18n")
        i18n.tr = lambda text: text
        i18n.translate = lambda context, text: text
        slicer.i18n = i18n
        from slicer_standin.segment_editor import effects_module

        sys.modules.update({"slicer": slicer, "slicer.util": slicer.util, "slicer.ScriptedLoadableModule": loadable,
                            "slicer.parameterNodeWrapper": wrapper, "slicer.i18n": i18n, "qt": _qt_module(),
                            "ctk": _ctk_module(), "SegmentEditorEffects": effects_module()})
        if self.pytorch_extension:
            from slicer_standin.pytorch_utils import make_module

            sys.modules["PyTorchUtils"] = make_module(self)
        self.slicer = slicer

    # -- what tests use -----------------------------------------------------------------------------------------------
    @property
    def app(self):
        return self.slicer.app

    @property
    def scene(self):
        return self.slicer.mrmlScene

    @property
    def dialogs(self) -> qt_module.DialogAnswers:
        return qt_module.DIALOGS

    @property
    def settings(self) -> dict:
        return qt_module.SETTINGS.values

    def load_modules(self, names=(*MODULES, *EXTRA_MODULES)) -> None:
        """Load module files as Slicer does at startup, then announce the end of startup."""
        for name in names:
            if getattr(self.slicer.modules, name.lower(), None) is None:
                application.load_scripted_module(PROJECT_ROOT / name / f"{name}.py")
        self.app._emit("startupCompleted")

    def open_module(self, name: str):
        """Select a module as a user does: its panel is created (setup) and entered; returns the Widget."""
        module = getattr(self.slicer.modules, name.lower(), None)
        if module is None:
            self.load_modules()
        self.app._enter_module(name)
        return getattr(self.slicer.modules, name.lower()).widgetRepresentation().self()

    def process_events(self) -> None:
        qt_core.LOOP.process()

    def run_until(self, condition, timeout_s: float = 60.0) -> bool:
        return qt_core.LOOP.run_until(condition, timeout_s)


def describe() -> str:
    return textwrap.dedent(__doc__)
