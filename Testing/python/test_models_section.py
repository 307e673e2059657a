"""The Slicer "Models" section, checked without Slicer: it compiles, every engine function, field and signal handler
it uses exists with the arguments it passes (so a rename in model_status, registry, download or the job runner
breaks this test, not a user's Slicer), and panel.py adds it for modules that declare ``modelTask``."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
from pathlib import Path

import pytest

from radassist.runtime import download, model_status, registry

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECTION = PROJECT_ROOT / "radassist" / "slicer" / "models_section.py"
WORKER = PROJECT_ROOT / "radassist" / "slicer" / "worker.py"
PANEL = PROJECT_ROOT / "radassist" / "slicer" / "panel.py"
ENGINE_MODULES = {"model_status": model_status, "download": download, "registry": registry}
# Local names in the section that always hold one engine type, and that type.
TYPED_NAMES = {"row": model_status.ModelRow, "selected": model_status.ModelRow, "r": model_status.ModelRow,
               "actions": model_status.RowActions, "choices": model_status.DeviceChoices,
               "option": model_status.DeviceOption}


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return parse(SECTION)


def section_class(tree: ast.Module) -> ast.ClassDef:
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ModelsSection")


def class_members(cls: ast.ClassDef) -> set[str]:
    return {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def public_names(obj) -> set[str]:
    names = {name for name in dir(obj) if not name.startswith("__")}
    if dataclasses.is_dataclass(obj):
        names |= {f.name for f in dataclasses.fields(obj)}
    return names


def engine_calls(tree: ast.Module):
    """(module name, function name, call node) for every ``model_status.f(...)``-style call."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in ENGINE_MODULES:
            yield node.func.value.id, node.func.attr, node


def check_arguments(function, call: ast.Call, where: str) -> None:
    """The call's positional count and keyword names fit ``function``'s signature."""
    parameters = inspect.signature(function).parameters
    positional = [p for p in parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert len(call.args) <= len(positional), f"{where}: too many positional arguments"
    for keyword in call.keywords:
        assert keyword.arg in parameters, f"{where}: no parameter {keyword.arg!r}"
    required = [p.name for p in positional if p.default is p.empty]
    given = {p.name for p in positional[:len(call.args)]} | {k.arg for k in call.keywords}
    assert set(required) <= given, f"{where}: missing {set(required) - given}"


def test_section_compiles():
    compile(SECTION.read_text(encoding="utf-8"), str(SECTION), "exec")


def test_section_imports_only_slicer_qt_and_the_engine(tree):
    modules = {alias.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules - set(sys.stdlib_module_names) <= {"ctk", "qt", "slicer", "radassist"}
    engine = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
              and n.module.startswith("radassist")}
    assert not any(m.startswith("radassist.commands") for m in engine), "the panel must not reach into the CLI"


def test_imported_names_exist(tree):
    import importlib

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("radassist") \
                and node.module != "radassist.slicer.worker":  # imports qt: checked through its source below
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"


def test_engine_functions_exist_and_take_the_arguments_given(tree):
    calls = list(engine_calls(tree))
    used = {(module, name) for module, name, _ in calls}
    # the section really drives the engine: rows, actions, advice, devices, cache folder, install, import, remove
    assert {("model_status", "model_rows"), ("model_status", "row_actions"), ("model_status", "install_failure_text"),
            ("model_status", "device_choices"), ("model_status", "cache_folder"),
            ("model_status", "use_cache_folder"), ("model_status", "remove_model"), ("download", "install_model"),
            ("registry", "import_model")} <= used
    for module, name, call in calls:
        function = getattr(ENGINE_MODULES[module], name, None)
        assert callable(function), f"{module}.{name} does not exist"
        check_arguments(function, call, f"{module}.{name} (line {call.lineno})")


def test_engine_constants_and_types_read_by_the_section_exist(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ENGINE_MODULES \
                and isinstance(node.ctx, ast.Load):
            assert hasattr(ENGINE_MODULES[node.value.id], node.attr), f"{node.value.id}.{node.attr} ({node.lineno})"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Frontend":
            assert hasattr(model_status.Frontend, node.attr)


def test_fields_read_on_rows_actions_and_device_choices_exist(tree):
    checked = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in TYPED_NAMES:
            kind = TYPED_NAMES[node.value.id]
            assert node.attr in public_names(kind), f"{kind.__name__} has no {node.attr} (line {node.lineno})"
            checked.add(kind)
    assert {model_status.ModelRow, model_status.RowActions, model_status.DeviceOption} <= checked


def test_job_runner_methods_used_exist(tree):
    runner = next(n for n in parse(WORKER).body if isinstance(n, ast.ClassDef) and n.name == "SlicerJobRunner")
    members = class_members(runner)
    start = next(n for n in runner.body if isinstance(n, ast.FunctionDef) and n.name == "start")
    start_parameters = {a.arg for a in start.args.args}
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "_runner":
            used.add(node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "start" \
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "_runner":
            assert {k.arg for k in node.keywords} <= start_parameters
    assert used and used <= members, f"SlicerJobRunner lacks {used - members}"


def test_section_offers_what_panels_read(tree):
    cls = section_class(tree)
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert [a.arg for a in init.args.args] == ["self", "parent_layout", "task", "dependencies_ready"]
    for name in ("selectedModelId", "selectedModelFolder", "device", "addSelectionObserver", "addDeviceObserver",
                 "refresh", "cancel"):
        assert name in class_members(cls), name


def test_panel_adds_the_section_for_modules_with_a_model_task():
    tree = parse(PANEL)
    widget = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RadAssistWidget")
    defaults = {n.target.id: ast.literal_eval(n.value) for n in widget.body
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value is not None
                and n.target.id == "modelTask"}
    assert defaults == {"modelTask": ""}, "modules without a task show no Models section"
    setup = next(n for n in widget.body if isinstance(n, ast.FunctionDef) and n.name == "setup")
    calls = [n for n in ast.walk(setup) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "ModelsSection"]
    assert len(calls) == 1
    keywords = {k.arg: ast.unparse(k.value) for k in calls[0].keywords}
    assert keywords["task"] == "self.modelTask" and ast.unparse(calls[0].args[0]) == "self.layout"
    guarded = [n for n in ast.walk(setup) if isinstance(n, ast.If) and ast.unparse(n.test) == "self.modelTask"]
    assert guarded and calls[0] in list(ast.walk(guarded[0]))
