"""The Slicer-only files of the shared panel sections (review and export, where to run, infection) and of the run
kept for export, checked without Slicer: they compile, every radassist name they import exists, every Qt signal
they connect goes to a method of their class, and the panel and modules call what these files define."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SLICER = PROJECT_ROOT / "radassist" / "slicer"
SLICER_ONLY = ("review_section.py", "remote_section.py", "infection_section.py", "ai_run.py", "review.py",
               "remote.py", "panel.py")
MODULE_FILES = [PROJECT_ROOT / m / f"{m}.py" for m in ("LungTumorAI", "LiverSeg", "BrainRegSeg", "MammoGMIC")]


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def defined_names(module: str) -> set[str]:
    """Top-level names of a radassist module: read from the source for the Slicer bridge (much of which needs
    Slicer to import), else from the imported module."""
    path = PROJECT_ROOT / Path(*module.split(".")).with_suffix(".py")
    if module.startswith("radassist.slicer.") and path.is_file():
        tree = parse(path)
        names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        names |= {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                  for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
        names |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
        return names
    return set(dir(importlib.import_module(module)))


@pytest.mark.parametrize("path", [SLICER / f for f in SLICER_ONLY] + MODULE_FILES, ids=lambda p: p.name)
def test_radassist_names_imported_exist(path: Path):
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("radassist"):
            module_path = PROJECT_ROOT / Path(*node.module.split("."))
            if module_path.is_dir():  # from radassist.slicer import review: a submodule
                for alias in node.names:
                    assert (module_path / f"{alias.name}.py").is_file() or alias.name in defined_names(node.module)
                continue
            names = defined_names(node.module)
            for alias in node.names:
                assert alias.name in names, f"{path.name}:{node.lineno}: {node.module} has no {alias.name}"


@pytest.mark.parametrize("name", ["models_section.py", "review_section.py", "remote_section.py",
                                  "infection_section.py"])
def test_connected_signals_go_to_methods_of_the_section(name: str):
    tree = parse(SLICER / name)
    section = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Section"))
    members = {n.name for n in section.body if isinstance(n, ast.FunctionDef)}
    handlers = []
    for node in ast.walk(section):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect":
            signal, handler = node.args
            assert isinstance(signal, ast.Constant) and signal.value.endswith(")"), "Qt signals are 'name(args)'"
            assert isinstance(handler, ast.Attribute) and handler.value.id == "self"
            handlers.append(handler.attr)
    assert handlers and set(handlers) <= members, set(handlers) - members


def _calls(tree: ast.AST) -> set[str]:
    return {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            for n in ast.walk(tree) if isinstance(n, ast.Call)}


def test_panel_adds_the_shared_sections_and_runs_remotely_through_the_logic():
    tree = parse(SLICER / "panel.py")
    calls = _calls(tree)
    assert {"RemoteSection", "ReviewSection", "confirm_upload", "compute_remotely", "remoteRequest",
            "newRun"} <= calls
    logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RadAssistLogic")
    assert {"remoteRequest", "computeRemotely", "missingInputs"} <= {n.name for n in logic.body
                                                                    if isinstance(n, ast.FunctionDef)}


@pytest.mark.parametrize("path", MODULE_FILES, ids=lambda p: p.stem)
def test_every_module_offers_a_server_task_and_keeps_its_run_for_export(path: Path):
    from radassist.server.tasks import TASKS

    tree = parse(path)
    logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == f"{path.stem}Logic")
    attributes = {t.id: n.value.value for n in logic.body if isinstance(n, ast.Assign)
                  and isinstance(n.value, ast.Constant) for t in n.targets if isinstance(t, ast.Name)}
    assert attributes.get("serverTask") in TASKS
    methods = {n.name: n for n in logic.body if isinstance(n, ast.FunctionDef)}
    assert "remoteRequest" in methods
    assert "AiRun" in _calls(methods["showResult"]), "showResult must keep the run (AI result, model) for export"


def test_lung_panel_has_the_infection_part():
    calls = _calls(parse(PROJECT_ROOT / "LungTumorAI" / "LungTumorAI.py"))
    assert "InfectionSection" in calls
    section = parse(SLICER / "infection_section.py")
    assert {"load_infection_model", "segment_infection", "labelmap_to_segmentation_node", "report_to_table_node",
            "AiRun", "remoteWork"} <= _calls(section)
