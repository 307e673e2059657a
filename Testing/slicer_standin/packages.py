"""What a fresh Slicer's Python can import: the standard library, what Slicer itself provides (slicer, vtk, qt, ctk,
its scripted modules), the packages the release bundles, and what RadAssist's installer has installed since.

While the stand-in is active, modules that are not importable in that Slicer are hidden from ``sys.modules`` and an
import of them raises ModuleNotFoundError naming the release, as it would in Slicer. RadAssist's own modules are
re-imported under these rules, so an import chain that reaches a package Slicer lacks fails here too.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata
import sys

from slicer_standin.surface import Surface, canonical

# Modules Slicer's Python provides besides the pip-installed packages of the SuperBuild.
SLICER_PROVIDED = {"slicer", "vtk", "vtkmodules", "qt", "ctk", "ctkqt", "PythonQt", "sitkUtils", "mrml", "vtkAddon",
                   "vtkSegmentationCore", "vtkITK", "DICOMLib", "SegmentEditorEffects", "SubjectHierarchyPlugins",
                   "SimpleITK", "itk"}
# Test infrastructure running in the same process (pytest and the stand-in itself).
TEST_INFRASTRUCTURE = {"slicer_standin", "_pytest", "pytest", "pluggy", "iniconfig", "py", "conftest", "hypothesis",
                       "_hypothesis_pytestplugin", "_hypothesis_globals", "sortedcontainers", "attr", "attrs",
                       "exceptiongroup", "tomli", "typing_extensions", "_distutils_hack", "pkg_resources",
                       "google", "coverage", "__editable___radassist_0_1_0_finder"}


def top_level(name: str) -> str:
    return name.split(".", 1)[0]


class PackageGuard(importlib.abc.MetaPathFinder):
    """Refuses imports of packages that the active Slicer release does not have."""

    def __init__(self, surface: Surface, project_packages: set[str]) -> None:
        self.surface = surface
        self.project = set(project_packages)
        self.installed: set[str] = set()  # distributions the installer added
        self.refused: list[str] = []
        self._stash: dict[str, object] = {}
        self._distributions = importlib.metadata.packages_distributions()

    # -- policy -------------------------------------------------------------------------------------------------------
    def distributions_of(self, module: str) -> set[str]:
        return {canonical(name) for name in self._distributions.get(module, [])}

    def _read_pip_log(self) -> None:
        """Distributions the stand-in's pip (run by the installer in its own process) reported as installed."""
        import json
        import os

        path = os.environ.get("RADASSIST_STANDIN_PIP_LOG")
        if not path or not os.path.exists(path):
            return
        stamp = os.stat(path).st_mtime_ns
        if stamp == getattr(self, "_pip_log_stamp", None):
            return
        self._pip_log_stamp = stamp
        with open(path, encoding="utf-8") as log:
            names = {name for line in log if line.strip() for name in json.loads(line)["installed"]}
        if names - self.installed:
            self.mark_installed(names)

    def allowed(self, module: str) -> bool:
        self._read_pip_log()
        name = top_level(module)
        if name in sys.stdlib_module_names or name in SLICER_PROVIDED or name in self.project or \
                name in TEST_INFRASTRUCTURE or name.startswith("_"):
            return True
        distributions = self.distributions_of(name)
        return bool(distributions & (set(self.surface.packages) | self.installed))

    def mark_installed(self, distributions) -> None:
        """The installer put these distributions into Slicer's Python: allow them and bring back their modules."""
        self.installed |= {canonical(name) for name in distributions}
        for name in list(self._stash):  # the project's own modules stay stashed: Slicer imports them afresh
            if top_level(name) not in self.project and self.allowed(name):
                sys.modules[name] = self._stash.pop(name)

    # -- import machinery ---------------------------------------------------------------------------------------------
    def find_spec(self, fullname, path=None, target=None):
        if self.allowed(fullname):
            return None
        self.refused.append(fullname)
        raise ModuleNotFoundError(
            f"No module named '{top_level(fullname)}' (Slicer {self.surface.release} does not bundle it, and "
            "RadAssist's installer has not installed it)", name=fullname)

    def distribution_allowed(self, name: str) -> bool:
        self._read_pip_log()
        return canonical(name) in set(self.surface.packages) | self.installed

    def _metadata_functions(self) -> dict:
        """importlib.metadata as Slicer's Python answers it: distributions Slicer lacks are not found."""
        original = {name: getattr(importlib.metadata, name) for name in
                    ("version", "distribution", "metadata", "files", "requires", "distributions")}

        def checked(function):
            def lookup(name, *args, **kwargs):
                if not self.distribution_allowed(name):
                    raise importlib.metadata.PackageNotFoundError(name)
                return function(name, *args, **kwargs)
            return lookup

        def distributions(**kwargs):
            return (d for d in original["distributions"](**kwargs)
                    if d.metadata.get("Name") and self.distribution_allowed(d.metadata["Name"]))

        self._original_metadata = original
        return {"version": checked(original["version"]), "distribution": checked(original["distribution"]),
                "metadata": checked(original["metadata"]), "files": checked(original["files"]),
                "requires": checked(original["requires"]), "distributions": distributions}

    def install(self) -> None:
        for name in list(sys.modules):
            if not self.allowed(name) or top_level(name) in self.project:
                self._stash[name] = sys.modules.pop(name)
        sys.meta_path.insert(0, self)
        for name, function in self._metadata_functions().items():
            setattr(importlib.metadata, name, function)

    def uninstall(self) -> None:
        for name, function in getattr(self, "_original_metadata", {}).items():
            setattr(importlib.metadata, name, function)
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for name in [n for n in sys.modules if top_level(n) in self.project or n in self._stash]:
            del sys.modules[name]
        sys.modules.update(self._stash)
        self._stash.clear()
