#!/usr/bin/env python3
"""Extract what Slicer's Python sees, for one Slicer release, from that release's source, into one JSON file.

The strict Slicer stand-in of the tests (``Testing/slicer_standin``) refuses every class, member, function or package
that is not in this file for the release under test, so a call the real Slicer would refuse fails a test here.

Usage (a Slicer checkout at the release tag; vtkAddon at the commit that tag's SuperBuild.cmake pins; a Python with
``vtk==<the release's VTK version>`` for the VTK base classes, made with ``--make-vtk-python`` if you have none)::

    git -C Slicer worktree add /tmp/slicer-5.10.0 v5.10.0
    python Testing/slicer_api/extract_slicer_api.py --slicer-source /tmp/slicer-5.10.0 \\
        --vtkaddon-source /tmp/vtkAddon-b1fa503 --make-vtk-python /tmp/vtk-9.5 \\
        --out Testing/slicer_api/slicer-5.10.0.json

What is read:
* C++ classes (MRML, Segmentations, Markups, Transforms, Tables, Terminologies, Volumes, Subject Hierarchy, vtkAddon)
  with their public members, VTK set/get/boolean macros expanded and enums with values; the VTK classes they derive
  from by introspecting VTK's own Python wrapping at the release's VTK version.
* Qt classes Slicer scripts use (qMRML widgets, qSlicer application and module classes): what PythonQt exposes
  (properties, slots, signals, Q_INVOKABLE methods).
* ``slicer.util`` functions with their signatures and classes with their methods; ``slicer.ScriptedLoadableModule``
  classes; the names ``slicer.parameterNodeWrapper`` exports and the members it adds to a wrapped class; the base
  class of scripted Segment Editor effects (``SegmentEditorEffects.AbstractScriptedSegmentEditorEffect``).
* The Python packages the release bundles, with versions, from its SuperBuild requirement files; the Python, Qt and
  VTK versions it builds with.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxx_headers import CxxClass, parse_decorators, parse_header  # noqa: E402

# Folders whose headers define the VTK-level classes scripts use (relative to the Slicer source root).
VTK_CLASS_FOLDERS = (
    "Libs/MRML/Core", "Libs/MRML/Logic", "Libs/vtkSegmentationCore", "Base/Logic",
    *(f"Modules/Loadable/{module}/{part}" for module in
      ("Segmentations", "Markups", "Transforms", "Tables", "Terminologies", "Volumes", "SubjectHierarchy", "Colors",
       "Data", "Models", "Sequences")
      for part in ("MRML", "Logic", "VTKWidgets")),
)
# Folders whose headers define Qt classes PythonQt exposes to scripts.
QT_CLASS_FOLDERS = ("Libs/MRML/Widgets", "Base/QTCore", "Base/QTGUI", "Modules/Loadable/Segmentations/Widgets",
                    "Modules/Loadable/Segmentations/EditorEffects",
                    "Modules/Loadable/Markups/Widgets", "Modules/Loadable/Terminologies/Widgets",
                    "Modules/Loadable/SubjectHierarchy/Widgets")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def parse_folders(root: Path, folders: tuple[str, ...]) -> dict[str, dict]:
    classes: dict[str, dict] = {}
    for folder in folders:
        for header in sorted((root / folder).glob("*.h")) if (root / folder).is_dir() else []:
            for cls in parse_header(read(header)):
                classes.setdefault(cls.name, _class_record(cls, header.relative_to(root)))
    return classes


def _class_record(cls: CxxClass, source: Path) -> dict:
    record = {"base": cls.base, "source": str(source)}
    if cls.is_qobject:
        record |= {"properties": sorted(cls.properties), "slots": sorted(cls.slots), "signals": sorted(cls.signals)}
        if cls.enums:
            record["enums"] = cls.enums
    else:
        record |= {"members": sorted(cls.members), "enums": cls.enums}
    return record


# -- VTK base classes, from VTK's own Python wrapping ---------------------------------------------------------------

def vtk_version(slicer_root: Path) -> str:
    """The VTK version the release builds by default (its dist-info version for the default minor)."""
    cmake = read(slicer_root / "CMakeLists.txt")
    minor = re.search(r'set\(_default_vtk_minor_version "(\d+)"\)', cmake).group(1)
    external = read(slicer_root / "SuperBuild" / "External_VTK.cmake")
    for match in re.finditer(r'set\(vtk_dist_info_version "(9\.(\d+)\.\d+)"\)', external):
        if match.group(2) == minor:
            return match.group(1)
    raise SystemExit(f"no VTK dist-info version for 9.{minor} in External_VTK.cmake")


def make_vtk_python(folder: Path, version: str) -> Path:
    """A virtual environment holding only vtk==version (for introspection)."""
    python = folder / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", f"vtk=={version}"], check=True)
    return python


_INTROSPECT = """
import json, sys, vtk
out = {"version": vtk.vtkVersion.GetVTKVersion(), "classes": {}}
for name in sys.argv[1:]:
    cls = getattr(vtk, name, None)
    if cls is None:
        continue
    base = cls.__bases__[0].__name__ if cls.__bases__ and cls.__bases__[0].__name__.startswith("vtk") else None
    members = sorted(n for n in cls.__dict__ if not n.startswith("_"))
    out["classes"][name] = {"base": base, "members": members}
print(json.dumps(out))
"""


def vtk_classes(python: Path, needed: set[str]) -> tuple[str, dict[str, dict]]:
    """Own members and base of each VTK class in ``needed`` and of all its VTK ancestors."""
    found: dict[str, dict] = {}
    version = ""
    pending = set(needed)
    while pending:
        run = subprocess.run([str(python), "-c", _INTROSPECT, *sorted(pending)], capture_output=True, text=True,
                             check=True)
        data = json.loads(run.stdout)
        version = data["version"]
        found |= {name: record | {"source": f"VTK {version} (Python wrapping)"}
                  for name, record in data["classes"].items()}
        pending = {record["base"] for record in data["classes"].values() if record["base"]} - set(found)
    return version, found


# -- Python sources -----------------------------------------------------------------------------------------------

def _signature(function: ast.FunctionDef) -> list[dict]:
    args = function.args
    params = []
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(positional, defaults):
        kind = "POSITIONAL_ONLY" if arg in args.posonlyargs else "POSITIONAL_OR_KEYWORD"
        params.append({"name": arg.arg, "kind": kind, "default": None if default is None else ast.unparse(default)})
    if args.vararg:
        params.append({"name": args.vararg.arg, "kind": "VAR_POSITIONAL", "default": None})
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append({"name": arg.arg, "kind": "KEYWORD_ONLY", "default": None if default is None else ast.unparse(default)})
    if args.kwarg:
        params.append({"name": args.kwarg.arg, "kind": "VAR_KEYWORD", "default": None})
    return params


def _python_class(node: ast.ClassDef) -> dict:
    methods = {item.name: _signature(item) for item in node.body if isinstance(item, (ast.FunctionDef,
                                                                                       ast.AsyncFunctionDef))}
    attributes = set()
    for item in ast.walk(node):
        if isinstance(item, ast.Attribute) and isinstance(item.ctx, ast.Store) and \
                isinstance(item.value, ast.Name) and item.value.id == "self":
            attributes.add(item.attr)
    attributes |= {t.id for item in node.body if isinstance(item, ast.Assign) for t in item.targets
                   if isinstance(t, ast.Name)}
    return {"bases": [ast.unparse(base) for base in node.bases], "methods": methods,
            "attributes": sorted(attributes - set(methods))}


def python_module(path: Path) -> dict:
    """Public functions (with signatures), classes (with methods) and module-level names of one Python file."""
    tree = ast.parse(read(path))
    functions, classes, names = {}, {}, set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions[node.name] = _signature(node)
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = _python_class(node)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {"functions": functions, "classes": classes, "names": sorted(names)}


def parameter_node_wrapper(folder: Path) -> dict:
    """Names the package exports and the members ``parameterNodeWrapper`` adds to a wrapped class."""
    exported = set()
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(read(path))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                exported |= {ast.literal_eval(element) for element in node.value.elts}
    init = ast.parse(read(folder / "__init__.py"))
    for node in init.body:
        if isinstance(node, ast.ImportFrom) and node.names[0].name != "*":
            exported |= {alias.asname or alias.name for alias in node.names}
    added = set()
    wrapper = ast.parse(read(folder / "wrapper.py"))
    for node in ast.walk(wrapper):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("checkedSetAttr", "setattr") and \
                len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
            added.add(node.args[1].value)
    connectors = sorted(name for name in exported if name.endswith("Connector") and name != "GuiConnector")
    return {"exports": sorted(exported), "wrapped_class_members": sorted(added - {"__init__"}),
            "gui_connectors": connectors}


# -- bundled packages ---------------------------------------------------------------------------------------------

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


def bundled_packages(root: Path) -> dict[str, dict]:
    """Every package a release's SuperBuild pip-installs (name -> version and the requirement file), plus the
    Python packages Slicer builds itself (VTK, SimpleITK when built from source)."""
    packages: dict[str, dict] = {}
    for path in sorted((root / "SuperBuild").glob("External_python-*.cmake")):
        for match in _PIN.finditer(read(path)):
            packages.setdefault(canonical(match.group(1)), {"version": match.group(2),
                                                           "source": f"SuperBuild/{path.name}"})
    if "simpleitk" not in packages:
        text = read(root / "SuperBuild" / "External_SimpleITK.cmake")
        # the pinned commit's comment names the SimpleITK release it is built from: "slicer-v2.5.2-2025-06-13-..."
        tag = re.search(r"Slicer_\$\{proj\}_GIT_TAG\s+\"\w+\"\s*#\s*slicer-v([\d.]+)", text)
        version = tag.group(1) if tag else None
        packages["simpleitk"] = {"version": version, "source": "SuperBuild/External_SimpleITK.cmake (built)"}
    packages["vtk"] = {"version": vtk_version(root), "source": "SuperBuild/External_VTK.cmake (built)"}
    return dict(sorted(packages.items()))


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def versions(root: Path) -> dict[str, str]:
    cmake = read(root / "CMakeLists.txt")
    python = re.search(r'set\(Slicer_REQUIRED_PYTHON_VERSION "([\d.]+)"\)', cmake).group(1)
    qt = re.findall(r'set\(_required_qt_version "([\d.]+)"\)', cmake)
    major = re.search(r'set\(Slicer_VERSION_MAJOR "?(\d+)"?\)', cmake)
    minor = re.search(r'set\(Slicer_VERSION_MINOR "?(\d+)"?\)', cmake)
    patch = re.search(r'set\(Slicer_VERSION_PATCH "?(\d+)"?\)', cmake)
    return {"slicer": ".".join(m.group(1) for m in (major, minor, patch) if m), "python": python,
            "qt": sorted(qt, key=lambda v: [int(x) for x in v.split(".")])}


def pinned_vtkaddon_commit(root: Path) -> str:
    match = re.search(r"Slicer_Remote_Add\(vtkAddon.*?GIT_TAG\s+(\w+)", read(root / "SuperBuild.cmake"), re.S)
    return match.group(1)


# -- main ---------------------------------------------------------------------------------------------------------

def extract(slicer_root: Path, vtkaddon_root: Path, vtk_python: Path) -> dict:
    classes = parse_folders(slicer_root, VTK_CLASS_FOLDERS)
    addon = parse_folders(vtkaddon_root, (".",))
    for name, record in addon.items():
        classes.setdefault(name, record | {"source": f"vtkAddon/{record['source']}"})
    qt_classes = {name: record for name, record in parse_folders(slicer_root, QT_CLASS_FOLDERS).items()
                  if "properties" in record}
    for header in sorted(slicer_root.rglob("*PythonQtDecorators.h")):
        for owner, methods in parse_decorators(read(header)).items():
            record = qt_classes.setdefault(owner, {"base": None, "source": str(header.relative_to(slicer_root)),
                                                   "properties": [], "slots": [], "signals": []})
            record["slots"] = sorted(set(record["slots"]) | methods)
            record.setdefault("decorated_by", []).append(str(header.relative_to(slicer_root)))
    vtk_needed = {record["base"] for record in classes.values()} - set(classes)
    vtk_needed = {name for name in vtk_needed if name.startswith("vtk")}
    version, vtk = vtk_classes(vtk_python, vtk_needed)
    python_root = slicer_root / "Base" / "Python" / "slicer"
    return {
        "versions": versions(slicer_root) | {"vtk": version},
        "vtkaddon_commit": pinned_vtkaddon_commit(slicer_root),
        "packages": bundled_packages(slicer_root),
        "classes": dict(sorted(classes.items())),
        "vtk_classes": dict(sorted(vtk.items())),
        "qt_classes": dict(sorted(qt_classes.items())),
        "util": python_module(python_root / "util.py"),
        "scripted_loadable_module": python_module(python_root / "ScriptedLoadableModule.py"),
        "parameter_node_wrapper": parameter_node_wrapper(python_root / "parameterNodeWrapper"),
        "i18n": python_module(python_root / "i18n.py"),
        "segment_editor_effects": python_module(slicer_root / "Modules" / "Loadable" / "Segmentations" /
                                                "EditorEffects" / "Python" / "SegmentEditorEffects" /
                                                "AbstractScriptedSegmentEditorEffect.py"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slicer-source", type=Path, required=True, help="Slicer source checkout at the release tag")
    parser.add_argument("--vtkaddon-source", type=Path, required=True,
                        help="vtkAddon source at the commit the release's SuperBuild.cmake pins")
    parser.add_argument("--vtk-python", type=Path, help="a Python with vtk==<the release's VTK version>")
    parser.add_argument("--make-vtk-python", type=Path, metavar="DIR",
                        help="make that Python: a virtual environment in DIR with only vtk installed")
    parser.add_argument("--tag", help="the release tag, recorded in the output (default: read from git)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.vtk_python is None and args.make_vtk_python is None:
        parser.error("give --vtk-python or --make-vtk-python")
    python = args.vtk_python or make_vtk_python(args.make_vtk_python, vtk_version(args.slicer_source))
    data = extract(args.slicer_source, args.vtkaddon_source, python)
    tag = args.tag or subprocess.run(["git", "-C", str(args.slicer_source), "describe", "--tags", "--exact-match"],
                                     capture_output=True, text=True).stdout.strip()
    data = {"release": data["versions"]["slicer"], "tag": tag, **data}
    expected_addon = data["vtkaddon_commit"]
    actual_addon = subprocess.run(["git", "-C", str(args.vtkaddon_source), "rev-parse", "HEAD"], capture_output=True,
                                  text=True).stdout.strip()
    if actual_addon and actual_addon != expected_addon:
        print(f"warning: vtkAddon checkout is {actual_addon}, the release pins {expected_addon}", file=sys.stderr)
    with tempfile.NamedTemporaryFile("w", dir=args.out.parent, suffix=".tmp", delete=False) as handle:
        json.dump(data, handle, indent=1, sort_keys=False)
        handle.write("\n")
    Path(handle.name).replace(args.out)
    counts = {key: len(data[key]) for key in ("classes", "vtk_classes", "qt_classes", "packages")}
    print(f"{args.out}: Slicer {data['release']} ({tag}), {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
