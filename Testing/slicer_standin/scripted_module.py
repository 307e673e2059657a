"""``slicer.ScriptedLoadableModule`` for the stand-in: the four base classes a module file derives from, with the
behaviour of Slicer's (module metadata on the parent, resource paths next to the module file, the singleton
parameter node, self-test registration). Every public member they offer is checked against the release's data."""

from __future__ import annotations

import importlib
import logging
import os
import unittest

from slicer_standin.strict import active


def _slicer():
    import slicer

    return slicer


class ScriptedLoadableModule:
    def __init__(self, parent) -> None:
        self.parent = parent
        self.moduleName = self.__class__.__name__
        parent.title = ""
        parent.categories = []
        parent.dependencies = []
        parent.contributors = []
        parent.helpText = ""
        parent.acknowledgementText = ""
        slicer = _slicer()
        slicer.selfTests[self.moduleName] = self.runTest

    def resourcePath(self, filename: str) -> str:  # noqa: N802
        return os.path.join(os.path.dirname(self.parent.path), "Resources", filename)

    def getDefaultModuleDocumentationLink(self, docPage=None) -> str:  # noqa: N802, N803
        return ""

    def runTest(self, msec=100, **kwargs) -> None:  # noqa: N802
        module = importlib.import_module(self.__module__)
        test_class = getattr(module, self.moduleName + "Test")
        test = test_class()
        test.messageDelay = msec
        test.runTest(**kwargs)


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None) -> None:
        slicer = _slicer()
        self.moduleName = self.__class__.__name__
        if self.moduleName.endswith("Widget"):
            self.moduleName = self.moduleName[:-len("Widget")]
        self.developerMode = slicer.util.settingsValue("Developer/DeveloperMode", False,
                                                       converter=slicer.util.toBool)
        if parent is None:
            import qt

            self.parent = slicer.qMRMLWidget()
            self.parent.setLayout(qt.QVBoxLayout())
            self.parent.setMRMLScene(slicer.mrmlScene)
        else:
            self.parent = parent
        self.layout = self.parent.layout()
        if parent is None:
            self.setup()
            self.parent.show()

    def resourcePath(self, filename: str) -> str:  # noqa: N802
        slicer = _slicer()
        module_path = slicer.util.modulePath(self.moduleName)
        return os.path.join(os.path.dirname(module_path), "Resources", filename)

    def cleanup(self) -> None:
        return None

    def setupDeveloperSection(self) -> None:  # noqa: N802
        return None

    def setup(self) -> None:
        if self.developerMode:
            self.setupDeveloperSection()

    def onReload(self) -> None:  # noqa: N802
        return None


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None) -> None:
        self.moduleName = self.__class__.__name__
        if self.moduleName.endswith("Logic"):
            self.moduleName = self.moduleName[:-len("Logic")]
        self.isSingletonParameterNode = True

    def getParameterNode(self):  # noqa: N802
        scene = _slicer().mrmlScene
        if self.isSingletonParameterNode:
            node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
            if node is not None:
                if node.GetAttribute("ModuleName") != self.moduleName:
                    node.SetAttribute("ModuleName", self.moduleName)
                return node
        else:
            for index in range(scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode")):
                node = scene.GetNthNodeByClass(index, "vtkMRMLScriptedModuleNode")
                if node.GetAttribute("ModuleName") == self.moduleName:
                    return node
        return scene.AddNode(self.createParameterNode())

    def createParameterNode(self):  # noqa: N802
        node = _slicer().mrmlScene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
        if self.isSingletonParameterNode:
            node.SetSingletonTag(self.moduleName)
        node.SetName(_slicer().mrmlScene.GenerateUniqueName(self.moduleName))
        node.SetAttribute("ModuleName", self.moduleName)
        return node

    def getAllParameterNodes(self) -> list:  # noqa: N802
        scene = _slicer().mrmlScene
        return [scene.GetNthNodeByClass(i, "vtkMRMLScriptedModuleNode")
                for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode"))
                if scene.GetNthNodeByClass(i, "vtkMRMLScriptedModuleNode").GetAttribute("ModuleName") ==
                self.moduleName]


class ScriptedLoadableModuleTest(unittest.TestCase):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.messageDelay = 0
        self.enableScreenshots = False
        self.screenshotScaleFactor = 1.0

    def delayDisplay(self, message: str, requestedDelay=None, msec=None) -> None:  # noqa: N802, N803
        logging.info(message)
        _slicer().app.processEvents()

    def takeScreenshot(self, name: str, description: str, type=-1) -> None:  # noqa: N802, A002
        return None

    def setUp(self) -> None:  # noqa: N802
        return None

    def tearDown(self) -> None:  # noqa: N802
        return None

    def runTest(self) -> None:  # noqa: N802
        return None


def check_against_release() -> None:
    """Every public method the stand-in's classes offer must exist in the release's ScriptedLoadableModule.py."""
    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        release = active().scripted_module_class(cls.__name__)
        ours = {name for name, value in vars(cls).items() if callable(value) and not name.startswith("__")}
        extra = ours - set(release["methods"])
        if extra:
            raise AssertionError(f"stand-in {cls.__name__} offers {sorted(extra)}, which Slicer "
                                 f"{active().release} does not")
