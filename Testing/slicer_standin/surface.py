"""One Slicer release's Python surface, read from the JSON that ``Testing/slicer_api/extract_slicer_api.py`` wrote
from that release's source: which classes, members, enums, ``slicer.util`` functions and packages exist."""

from __future__ import annotations

import functools
import inspect
import json
import re
from pathlib import Path

API_FOLDER = Path(__file__).resolve().parents[1] / "slicer_api"
SUPPORTED_RELEASES = ("5.10.0", "5.12.3")


class Refused(AttributeError):
    """What the real Slicer would refuse: a class, member, function or argument its release does not have."""


class StandInGap(NotImplementedError):
    """The release has it, but this stand-in does not implement it yet: a hole in the test bed, not in RadAssist."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Surface:
    """Lookups over one release's extracted API (inherited members resolved through the class chain)."""

    def __init__(self, release: str) -> None:
        path = API_FOLDER / f"slicer-{release}.json"
        self.data = json.loads(path.read_text(encoding="utf-8"))
        self.release = self.data["release"]
        self.classes: dict[str, dict] = self.data["classes"]
        self.vtk_classes: dict[str, dict] = self.data["vtk_classes"]
        self.qt_classes: dict[str, dict] = self.data["qt_classes"]
        self.packages: dict[str, str | None] = {name: record["version"]
                                                for name, record in self.data["packages"].items()}

    def __repr__(self) -> str:
        return f"<Slicer {self.release} surface>"

    # -- VTK-level classes (MRML, logic, vtkAddon, VTK) ---------------------------------------------------------
    def has_class(self, name: str) -> bool:
        return name in self.classes or name in self.vtk_classes

    def _record(self, name: str) -> dict | None:
        return self.classes.get(name) or self.vtk_classes.get(name)

    def chain(self, name: str) -> list[str]:
        """The class and its ancestors, most derived first."""
        chain = []
        while name and name not in chain:
            record = self._record(name)
            if record is None:
                break
            chain.append(name)
            name = record.get("base")
        return chain

    @functools.cache
    def members(self, name: str) -> frozenset[str]:
        return frozenset(m for cls in self.chain(name) for m in self._record(cls).get("members", ()))

    @functools.cache
    def enums(self, name: str) -> dict[str, int | None]:
        values: dict[str, int | None] = {}
        for cls in reversed(self.chain(name)):
            values |= self._record(cls).get("enums", {})
        return values

    def has_member(self, class_name: str, member: str) -> bool:
        return member in self.members(class_name) or member in self.enums(class_name)

    # -- Qt classes (what PythonQt exposes of Slicer's qMRML / qSlicer widgets) ---------------------------------
    @functools.cache
    def qt_members(self, name: str) -> frozenset[str]:
        names: set[str] = set()
        while name in self.qt_classes:
            record = self.qt_classes[name]
            names |= set(record["properties"]) | set(record["slots"]) | set(record["signals"])
            names |= set(record.get("enums", {}))
            name = record["base"]
        return frozenset(names)

    def qt_base(self, name: str) -> str:
        """The first base of a Slicer Qt class that is not itself a Slicer class (QWidget, ctkCollapsibleButton...)."""
        while name in self.qt_classes:
            name = self.qt_classes[name]["base"]
        return name

    # -- Python modules -----------------------------------------------------------------------------------------
    @functools.cache
    def util_signature(self, name: str) -> inspect.Signature | None:
        params = self.data["util"]["functions"].get(name)
        return None if params is None else _signature(params)

    def util_names(self) -> set[str]:
        util = self.data["util"]
        return set(util["functions"]) | set(util["classes"]) | set(util["names"])

    def scripted_module_class(self, name: str) -> dict:
        return self.data["scripted_loadable_module"]["classes"][name]

    @property
    def parameter_node_wrapper(self) -> dict:
        return self.data["parameter_node_wrapper"]

    @property
    def versions(self) -> dict:
        return self.data["versions"]


def _signature(params: list[dict]) -> inspect.Signature:
    kinds = {"POSITIONAL_ONLY": inspect.Parameter.POSITIONAL_ONLY,
             "POSITIONAL_OR_KEYWORD": inspect.Parameter.POSITIONAL_OR_KEYWORD,
             "VAR_POSITIONAL": inspect.Parameter.VAR_POSITIONAL, "KEYWORD_ONLY": inspect.Parameter.KEYWORD_ONLY,
             "VAR_KEYWORD": inspect.Parameter.VAR_KEYWORD}
    parameters = []
    for param in params:
        default = inspect.Parameter.empty if param["default"] is None else param["default"]
        parameters.append(inspect.Parameter(param["name"], kinds[param["kind"]], default=default))
    return inspect.Signature(parameters)


@functools.cache
def surface(release: str) -> Surface:
    return Surface(release)
