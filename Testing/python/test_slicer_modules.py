"""The Slicer extension skeleton, checked without Slicer: every module has its files, its .py compiles, its .ui is
valid Qt Designer XML that names every widget the code uses, the parameter-node bindings in the .ui exist in the
module's parameter node class, CMake lists every module and file, and the icons are 128x128 PNGs."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODULES = ("LungTumorAI", "LiverSeg", "BrainRegSeg", "MammoGMIC")
EFFECT_MODULES = ("SegmentEditorLiteMedSAM",)  # hidden modules that register a Segment Editor effect
PANEL = PROJECT_ROOT / "radassist" / "slicer" / "panel.py"
# Widgets every panel's .ui must have because the shared widget code in panel.py drives them.
SHARED_WIDGETS = ("applyButton", "loadSampleButton", "progressBar", "statusLabel", "deviceLabel", "deviceComboBox",
                  "sampleSeedSpinBox")
# The nodeTypes each parameter-node annotation needs in its qMRMLNodeComboBox.
NODE_CLASSES = {"vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLTableNode", "vtkMRMLTransformNode"}


def module_dir(module: str) -> Path:
    return PROJECT_ROOT / module


def module_py(module: str) -> Path:
    return module_dir(module) / f"{module}.py"


def module_ui(module: str) -> Path:
    return module_dir(module) / "Resources" / "UI" / f"{module}.ui"


def module_icon(module: str) -> Path:
    return module_dir(module) / "Resources" / "Icons" / f"{module}.png"


def parse_py(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def ui_widgets(path: Path) -> dict[str, ET.Element]:
    """Every widget in a .ui file by name (the names slicer.util.childWidgetVariables exposes as self.ui.*)."""
    root = ET.parse(path).getroot()
    return {widget.get("name"): widget for widget in root.iter("widget")}


def ui_names_used(tree: ast.AST) -> set[str]:
    """Every ``self.ui.<name>`` (or ``widget.ui.<name>``) the code reads or writes."""
    names = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "ui" and isinstance(node.value.value, ast.Name)):
            names.add(node.attr)
    return names


def string_property(widget: ET.Element, name: str) -> str | None:
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            return prop.findtext("string")
    return None


def bool_property(widget: ET.Element, name: str) -> bool | None:
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            return prop.findtext("bool") == "true"
    return None


def parameter_bindings(path: Path) -> dict[str, ET.Element]:
    """Widgets bound to the parameter node: SlicerParameterName (a dynamic property, stdset="0") -> widget."""
    bindings = {}
    for widget in ET.parse(path).getroot().iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                assert prop.get("stdset") == "0", f"{widget.get('name')}: SlicerParameterName must be dynamic"
                bindings[prop.findtext("string")] = widget
    return bindings


def decorator_names(cls: ast.ClassDef) -> set[str]:
    names = set()
    for decorator in cls.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        names.add(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", ""))
    return names


def parameter_node_class(tree: ast.Module, module: str) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and "parameterNodeWrapper" in decorator_names(node):
            assert node.name == f"{module}ParameterNode"
            return node
    raise AssertionError(f"{module}.py has no @parameterNodeWrapper class")


def parameter_annotations(cls: ast.ClassDef) -> dict[str, str]:
    """Parameter name -> annotation source text, for every annotated attribute of the parameter node class."""
    return {node.target.id: ast.unparse(node.annotation) for node in cls.body
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}


def class_names(tree: ast.Module) -> set[str]:
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}


def cmake_commands(path: Path) -> str:
    """CMake text without comments, so a commented-out line does not count."""
    return "\n".join(line.split("#", 1)[0] for line in path.read_text(encoding="utf-8").splitlines())


def logic_string(tree: ast.Module, module: str, attribute: str):
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == f"{module}Logic":
            for item in node.body:
                if isinstance(item, ast.Assign) and any(getattr(t, "id", None) == attribute for t in item.targets):
                    return ast.literal_eval(item.value)
    raise AssertionError(f"{module}Logic has no {attribute}")


# -- files --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("module", MODULES)
def test_module_folder_has_its_files(module):
    for path in (module_dir(module) / "CMakeLists.txt", module_py(module), module_ui(module), module_icon(module)):
        assert path.is_file(), f"missing {path.relative_to(PROJECT_ROOT)}"


@pytest.mark.parametrize("path", [module_py(m) for m in MODULES] + [PANEL], ids=lambda p: p.name)
def test_python_compiles(path):
    compile(path.read_text(encoding="utf-8"), str(path), "exec")


@pytest.mark.parametrize("module", MODULES)
def test_module_defines_slicer_classes(module):
    """Slicer finds a scripted module's parts by name: <Module>, <Module>Widget, <Module>Logic, <Module>Test."""
    names = class_names(parse_py(module_py(module)))
    for suffix in ("", "Widget", "Logic", "Test", "ParameterNode"):
        assert f"{module}{suffix}" in names


@pytest.mark.parametrize("module", MODULES)
def test_module_metadata(module):
    """Title, the RadAssist category, contributors, a help text naming its paper, and acknowledgement are set."""
    tree = parse_py(module_py(module))
    assigned = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute) \
                        and target.value.attr == "parent":
                    assigned[target.attr] = ast.unparse(node.value)
    for key in ("title", "categories", "contributors", "helpText", "acknowledgementText"):
        assert key in assigned, f"{module} does not set parent.{key}"
    assert assigned["categories"] == "[panel.CATEGORY]"
    help_source = assigned["helpText"]
    assert re.search(r"(19|20)\d\d", help_source), "the help text must cite the paper (with its year)"


def test_panel_category_is_radassist():
    tree = parse_py(PANEL)
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
              and node.targets[0].id in ("CATEGORY", "DEVICE_CHOICES")}
    assert values == {"CATEGORY": "RadAssist", "DEVICE_CHOICES": ["auto", "cpu", "cuda"]}


# -- .ui files ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("module", MODULES)
def test_ui_is_a_qt_designer_file(module):
    root = ET.parse(module_ui(module)).getroot()
    assert root.tag == "ui" and root.get("version") == "4.0"
    assert root.findtext("class") == module
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == module
    names = [w.get("name") for w in root.iter("widget")]
    assert len(names) == len(set(names)), "widget names must be unique"
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    assert {c for c in used if c.startswith(("ctk", "qMRML"))} <= declared


@pytest.mark.parametrize("module", MODULES)
def test_ui_has_the_sections(module):
    widgets = ui_widgets(module_ui(module))
    sections = {string_property(w, "text") for w in widgets.values() if w.get("class") == "ctkCollapsibleButton"}
    assert {"Inputs", "Outputs", "Advanced"} <= sections
    assert widgets["progressBar"].get("class") == "QProgressBar"
    assert widgets["applyButton"].get("class") == "QPushButton"
    assert bool_property(widgets["applyButton"], "enabled") is False, "Apply starts disabled until inputs are set"
    assert widgets["statusLabel"].get("class") == "QLabel"


@pytest.mark.parametrize("module", MODULES)
def test_every_ui_name_used_in_code_exists(module):
    names = ui_widgets(module_ui(module))
    used = ui_names_used(parse_py(module_py(module))) | ui_names_used(parse_py(PANEL))
    missing = used - set(names)
    assert not missing, f"{module}.ui lacks widgets the code uses: {sorted(missing)}"
    assert set(SHARED_WIDGETS) <= set(names)


def test_panel_uses_the_shared_widgets():
    """The shared widget list above is what panel.py really drives (so the check above means something)."""
    assert ui_names_used(parse_py(PANEL)) == set(SHARED_WIDGETS) - {"sampleSeedSpinBox"}


@pytest.mark.parametrize("module", MODULES)
def test_ui_bindings_are_parameters(module):
    """Each SlicerParameterName names a parameter of <Module>ParameterNode, and each parameter has a widget."""
    parameters = parameter_annotations(parameter_node_class(parse_py(module_py(module)), module))
    bindings = parameter_bindings(module_ui(module))
    assert set(bindings) - set(parameters) == set(), "the .ui binds parameters the parameter node lacks"
    assert set(parameters) - set(bindings) == set(), "parameters without a widget in the .ui"


@pytest.mark.parametrize("module", MODULES)
def test_bound_widgets_fit_their_parameter_types(module):
    """Node parameters use a qMRMLNodeComboBox listing that node class; the device is a QComboBox (a Choice)."""
    parameters = parameter_annotations(parameter_node_class(parse_py(module_py(module)), module))
    bindings = parameter_bindings(module_ui(module))
    for name, annotation in parameters.items():
        widget = bindings[name]
        if annotation in NODE_CLASSES:
            assert widget.get("class") == "qMRMLNodeComboBox", name
            node_types = [s.text for s in widget.iter("string") if s.text in NODE_CLASSES]
            assert node_types == [annotation], f"{name}: nodeTypes {node_types} != {annotation}"
        elif annotation == "panel.DeviceChoice":
            assert widget.get("class") == "QComboBox", name
        elif annotation == "int":
            assert widget.get("class") == "QSpinBox", name
        else:
            raise AssertionError(f"{module}.{name}: no widget rule for {annotation}")


def logic_mapping(tree: ast.Module, module: str, attribute: str) -> dict:
    """A Logic class attribute's dict literal; {} when the class does not set it (the base class's default)."""
    try:
        return logic_string(tree, module, attribute)
    except AssertionError:
        return {}


def module_dict(tree: ast.Module, name: str) -> dict:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"no module-level {name}")


def gather_inputs_chosen_names(tree: ast.Module, module: str) -> set[str] | None:
    """The parameter names gatherInputs reads through radassist.slicer.inputs.chosen (which drops unset ones), or
    None when it does not call chosen."""
    logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == f"{module}Logic")
    gather = next((n for n in logic.body if isinstance(n, ast.FunctionDef) and n.name == "gatherInputs"), None)
    for node in ast.walk(gather) if gather is not None else ():
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "chosen":
            names = node.args[1]
            return set(module_dict(tree, names.id)) if isinstance(names, ast.Name) else set(ast.literal_eval(names))
    return None


@pytest.mark.parametrize("module", MODULES)
def test_required_and_optional_inputs_match_their_selectors(module):
    """Apply needs every ``requiredInputs`` selector (no None in the list) and at least one ``anyOfInputs``
    selector (None offered); the any-of ones are exactly those the logic's gatherInputs reads as possibly unset,
    and every volume selector that cannot be None is required."""
    tree = parse_py(module_py(module))
    parameters = parameter_annotations(parameter_node_class(tree, module))
    required = logic_mapping(tree, module, "requiredInputs")
    any_of = logic_mapping(tree, module, "anyOfInputs")
    assert required or any_of, f"{module} must require at least one input for Apply"
    assert not set(required) & set(any_of)
    widgets = ui_widgets(module_ui(module))
    for name in list(required) + list(any_of):
        assert parameters.get(name) == "vtkMRMLScalarVolumeNode", name
        none_offered = bool_property(widgets[f"{name}Selector"], "noneEnabled")
        assert none_offered is (name in any_of), f"{name}: None must be offered exactly when the input is optional"
    for name, annotation in parameters.items():
        if annotation == "vtkMRMLScalarVolumeNode" and not bool_property(widgets[f"{name}Selector"], "noneEnabled"):
            assert name in required, f"{name}'s selector cannot be empty, so Apply must require it"
    chosen = gather_inputs_chosen_names(tree, module)
    assert (chosen or set()) == set(any_of), "gatherInputs must read exactly the any-of inputs through chosen()"


@pytest.mark.parametrize("module", MODULES)
def test_node_selectors_follow_the_scene(module):
    """Every qMRMLNodeComboBox receives the scene through the top widget's mrmlSceneChanged signal."""
    root = ET.parse(module_ui(module)).getroot()
    selectors = {w.get("name") for w in root.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    connected = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("sender") == module and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    assert selectors and selectors == connected


# -- CMake --------------------------------------------------------------------------------------------------------

def test_top_level_cmake_adds_every_module_and_the_engine():
    text = cmake_commands(PROJECT_ROOT / "CMakeLists.txt")
    added = re.findall(r"add_subdirectory\(\s*(\w+)\s*\)", text)
    assert added == list(MODULES) + list(EFFECT_MODULES)
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert re.search(rf"set\(\s*{key}\s+\"[^\"]+\"", text), key
    for key in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):  # each picture is in the repository, a real PNG
        for url in re.search(rf"set\(\s*{key}\s+\"([^\"]+)\"", text).group(1).split():
            picture = PROJECT_ROOT / url.split("/main/", 1)[1]
            assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", url
    assert re.search(r'set\(\s*EXTENSION_DEPENDS\s+"PyTorch"\s*\)', text)
    assert "find_package(Slicer REQUIRED)" in text
    # The engine package goes where scripted modules import from, in the build tree and the install tree.
    engine = re.search(r"ctkMacroCompilePythonScript\((.*?)\)\s*\n", text, re.S)
    assert engine, "the radassist package is not installed"
    assert re.search(r'SCRIPTS\s+"\$\{RADASSIST_ENGINE_SCRIPTS\}"', engine.group(1))
    assert re.search(r"DESTINATION_DIR\s+\$\{CMAKE_BINARY_DIR\}/\$\{Slicer_QTSCRIPTEDMODULES_LIB_DIR\}\s",
                     engine.group(1))
    assert re.search(r"INSTALL_DIR\s+\$\{Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR\}\s", engine.group(1))
    assert re.search(r"GLOB_RECURSE\s+RADASSIST_ENGINE_SCRIPTS\s.*?/radassist/\*\.py", text, re.S)
    assert text.index("Slicer_EXTENSION_GENERATE_CONFIG") < text.index("Slicer_EXTENSION_CPACK")


@pytest.mark.parametrize("module", MODULES)
def test_module_cmake_names_its_files(module):
    text = cmake_commands(module_dir(module) / "CMakeLists.txt")
    assert re.search(rf"set\(\s*MODULE_NAME\s+{module}\s*\)", text)
    expanded = text.replace("${MODULE_NAME}", module)
    for relative in (f"{module}.py", f"Resources/UI/{module}.ui", f"Resources/Icons/{module}.png"):
        assert relative in expanded, relative
        assert (module_dir(module) / relative).is_file()
    assert re.search(r"slicerMacroBuildScriptedModule\(\s*NAME\s+\$\{MODULE_NAME\}\s+SCRIPTS\s+.*RESOURCES\s+.*"
                     r"WITH_GENERIC_TESTS\s*\)", text, re.S)
    assert re.search(r"slicer_add_python_unittest\(\s*SCRIPT\s+\$\{MODULE_NAME\}\.py\s*\)", text)


@pytest.mark.parametrize("module", EFFECT_MODULES)
def test_effect_module_cmake_installs_the_effect_file(module):
    """The effect's file is loaded by path at startup (setPythonSource): it must be among the installed scripts."""
    text = cmake_commands(module_dir(module) / "CMakeLists.txt").replace("${MODULE_NAME}", module)
    scripts = re.search(r"set\(\s*MODULE_PYTHON_SCRIPTS\s+(.*?)\)", text, re.S).group(1).split()
    assert scripts == [f"{module}.py", f"{module}Lib/SegmentEditorEffect.py"]
    for relative in scripts:
        compile((module_dir(module) / relative).read_text(encoding="utf-8"), relative, "exec")
    assert re.search(r"slicerMacroBuildScriptedModule\(\s*NAME\s+" + module, text)
    source = (module_dir(module) / f"{module}.py").read_text(encoding="utf-8")
    assert f'"{module}Lib"' in source and '"SegmentEditorEffect.py"' in source and "self.parent.hidden = True" in source


# -- icons --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [module_icon(m) for m in MODULES] + [PROJECT_ROOT / "Resources" / "Icons" /
                                                                      "RadAssist.png"], ids=lambda p: p.name)
def test_icons_are_128_pixel_pngs(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (128, 128)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 8, "an icon should show a motif, not a flat colour"


def test_icons_differ():
    pictures = [Image.open(module_icon(m)).convert("RGBA").tobytes() for m in MODULES]
    assert len(set(pictures)) == len(MODULES)


# -- layering -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("module", MODULES)
def test_module_files_stay_thin(module):
    """Module files import the engine through radassist.*, never reach into Qt by hand, and stay short."""
    source = module_py(module).read_text(encoding="utf-8")
    panel_part = source.split(f"\nclass {module}Test(")[0]  # the self-test class is Slicer's test entry point, apart
    assert len(panel_part.splitlines()) < 220  # a panel of its own; anything longer belongs in radassist/slicer
    imported = {alias.name.split(".")[0] for node in ast.walk(parse_py(module_py(module)))
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(parse_py(module_py(module)))
                 if isinstance(node, ast.ImportFrom) and node.module}
    allowed = set(sys.stdlib_module_names) | {"slicer", "radassist", "numpy"}  # no qt by hand, no third parties
    assert imported <= allowed, imported - allowed
