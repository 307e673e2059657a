"""What Python sees of a C++ class in a Slicer or vtkAddon header: the members VTK's wrapper exposes (public methods,
the VTK set/get/boolean macros expanded, enums with their values) and, for Qt classes, what PythonQt exposes
(properties, slots, signals, Q_INVOKABLE methods).

A deliberately small parser: headers in these code bases follow VTK's and Qt's conventions closely, and what this
reads is checked against the members the tests rely on (``Testing/python/test_slicer_api_data.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# strings and character literals first, so a "//" inside a string is not taken for a comment (and vice versa)
_STRING_OR_COMMENT = re.compile(r'("(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\')|//[^\n]*|/\*.*?\*/', re.S)
_CLASS = re.compile(r"\bclass\s+(?:\w+_EXPORT\s+)?(?:VTK_MARSHALAUTO\s+)?(\w+)\s*(?:final\s*)?"
                    r":\s*public\s+([\w:]+)[^{;]*\{")
_ACCESS = re.compile(r"^\s*(public|protected|private)\s*(?:Q_SLOTS|slots)?\s*:", re.M)
_QT_SECTION = re.compile(r"^\s*(?:(public|protected|private)\s+(?:Q_SLOTS|slots)|Q_SIGNALS|signals)\s*:", re.M)
_PROPERTY = re.compile(r"Q_PROPERTY\s*\(\s*([\w:<>, *&]+?)\s+(\w+)\s+(READ|MEMBER)\b([^)]*)\)")
_LEADING_MACRO = re.compile(r"^(vtk\w*Macro)\s*\(((?:[^()]|\([^()]*\))*)\)\s*")
_ANNOTATION = re.compile(r"\bVTK_(?!WRAPEXCLUDE)[A-Z_]+\b\s*(?:\((?:[^()]|\([^()]*\))*\))?")
_METHOD = re.compile(r"(~?\b[A-Za-z_]\w*)\s*\(")
# Macros that declare no member a script can call (type information, copy helpers, logging).
_SILENT_MACROS = {"vtkStandardNewMacro", "vtkMRMLCopyBeginMacro", "vtkMRMLCopyEndMacro", "vtkLegacyMacro",
                  "vtkDebugMacro", "vtkWarningMacro", "vtkErrorMacro", "vtkBaseTypeMacro"}


@dataclass
class CxxClass:
    """One class as its header declares it (own members only; inheritance is resolved by the caller)."""

    name: str
    base: str
    members: set[str] = field(default_factory=set)
    enums: dict[str, int | None] = field(default_factory=dict)
    # Qt (PythonQt) view: properties are attributes, slots/invokables are methods, signals can be connected.
    properties: set[str] = field(default_factory=set)
    slots: set[str] = field(default_factory=set)
    signals: set[str] = field(default_factory=set)
    is_qobject: bool = False


def strip_source(text: str) -> str:
    """Comments and string contents removed, wrapper-excluded blocks dropped, other preprocessor lines removed."""
    text = _STRING_OR_COMMENT.sub(lambda m: '""' if m.group(1) else " ", text)
    return _drop_wrap_excluded(text)


def _drop_wrap_excluded(text: str) -> str:
    """Lines inside ``#ifndef __VTK_WRAP__`` (or ``#if !defined(__VTK_WRAP__)``) are invisible to the wrapper;
    ``#ifdef __VTK_WRAP__`` blocks are what it sees. Other conditionals keep both branches."""
    kept, stack = [], []  # stack of (hidden_here, is_wrap_conditional)
    lines = text.replace("\\\n", " ").split("\n")
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            directive = stripped[1:].strip()
            if directive.startswith(("ifndef", "if ", "ifdef", "if(")):
                wrap = "__VTK_WRAP__" in directive
                negated = directive.startswith("ifndef") or "!defined" in directive.replace(" ", "")
                stack.append((wrap and negated, wrap))
            elif directive.startswith("else") and stack:
                hidden, wrap = stack[-1]
                stack[-1] = (not hidden if wrap else hidden, wrap)
            elif directive.startswith("endif") and stack:
                stack.pop()
            continue
        if any(hidden for hidden, _ in stack):
            continue
        kept.append(line)
    return "\n".join(kept)


def _body(text: str, start: int) -> tuple[str, int]:
    """The text between the brace at ``start`` and its match."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:index], index
    return text[start + 1:], len(text)


def _top_level_statements(body: str) -> list[tuple[str, str]]:
    """(access, statement) for each declaration at depth 0 of a class body; inline bodies are cut off."""
    statements = []
    access = "private"
    qt_section = None
    depth = 0
    current = []
    index = 0
    while index < len(body):
        char = body[index]
        if depth == 0:
            rest = body[index:]
            match = _QT_SECTION.match(rest) if (index == 0 or body[index - 1] == "\n") else None
            if match:
                if match.group(1):
                    access, qt_section = match.group(1), "slots"
                else:
                    access, qt_section = "public", "signals"
                index += match.end()
                current = []
                continue
            match = _ACCESS.match(rest) if (index == 0 or body[index - 1] == "\n") else None
            if match:
                access, qt_section = match.group(1), None
                index += match.end()
                current = []
                continue
        if char == "{":
            if depth == 0:
                statement = "".join(current).strip()
                if statement:
                    statements.append((access if qt_section is None else f"{access}:{qt_section}", statement))
                current = []
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                # an enum's body is kept whole: it is data, not code
                pass
        elif char == ";" and depth == 0:
            statement = "".join(current).strip()
            if statement:
                statements.append((access if qt_section is None else f"{access}:{qt_section}", statement))
            current = []
        elif depth == 0:
            current.append(char)
        index += 1
    return statements


def _enums(body: str, public_only: bool = True) -> dict[str, int | None]:
    """Enumerators of the class's own enums, with their values where they can be computed."""
    values: dict[str, int | None] = {}
    access = "private"
    for match in re.finditer(r"^\s*(public|protected|private)\b[^:\n]*:|\benum\s+(?:class\s+)?\w*\s*(?::\s*\w+\s*)?\{",
                             body, re.M):
        if match.group(1):
            access = match.group(1)
            continue
        if public_only and access != "public":
            continue
        if body[match.start():match.end()].startswith("enum class") or "enum class" in match.group(0):
            continue  # scoped enums are not exposed as class attributes
        inner, _ = _body(body, match.end() - 1)
        counter = -1
        for item in inner.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, expression = item.partition("=")
            name = name.strip()
            if not re.fullmatch(r"[A-Za-z_]\w*", name):
                continue
            if expression.strip():
                counter = _evaluate(expression.strip(), values)
            else:
                counter = counter + 1 if counter is not None else None
            values[name] = counter
    return values


def _evaluate(expression: str, known: dict[str, int | None]) -> int | None:
    """An enumerator's value: integer literals, earlier enumerators, | & + - << >> and parentheses."""
    expression = re.sub(r"(?<=\d)[uUlL]+\b", "", expression)
    if not re.fullmatch(r"[\w\s|&+\-<>()~x]+", expression):
        return None
    names = {name: value for name, value in known.items() if value is not None}
    try:
        value = eval(expression, {"__builtins__": {}}, names)  # noqa: S307 -- digits, names and operators only
    except Exception:  # noqa: BLE001 -- a value defined elsewhere (another class's enum): unknown
        return None
    return int(value) if isinstance(value, int) else None


def _macro_members(macro: str, arguments: str) -> set[str]:
    """The members a VTK (or vtkAddon / MRML) declaration macro defines, as VTK's wrapper names them."""
    parts = [part.strip() for part in arguments.split(",")]
    name = parts[0] if parts else ""
    if macro in _SILENT_MACROS or not name:
        return set()
    if macro in ("vtkTypeMacro", "vtkAbstractTypeMacro"):
        return {"IsTypeOf", "IsA", "SafeDownCast", "NewInstance", "GetClassName",
                "GetNumberOfGenerationsFromBaseType", "GetNumberOfGenerationsFromBase"}
    if macro == "vtkMRMLNodeNewMacro":
        return {"CreateNodeInstance"}
    if macro in ("vtkMRMLCopyContentMacro", "vtkMRMLCopyContentDefaultMacro"):
        return {"CopyContent", "HasCopyContent"}
    if macro == "vtkBooleanMacro":
        return {f"{name}On", f"{name}Off"}
    if macro.startswith("vtkSetClamp") or macro == "vtkSetClampMacro":
        return {f"Set{name}", f"Get{name}MinValue", f"Get{name}MaxValue"}
    if macro.startswith("vtkSet") or macro.startswith("vtkCxxSet"):
        return {f"Set{name}"}
    if macro.startswith("vtkGet"):
        return {f"Get{name}"}
    return set()


def parse_header(text: str) -> list[CxxClass]:
    """Every exported class a header defines, with what Python sees of it."""
    source = strip_source(text)
    classes = []
    for match in _CLASS.finditer(source):
        name, base = match.group(1), match.group(2).split("::")[-1]
        body, _ = _body(source, match.end() - 1)
        cls = CxxClass(name, base, is_qobject="Q_OBJECT" in body)
        cls.enums = _enums(body)
        for prop in _PROPERTY.finditer(body):
            cls.properties.add(prop.group(2))
        for access, statement in _top_level_statements(body):
            statement = re.sub(r"\s+", " ", statement).strip()
            section = access.split(":")[1] if ":" in access else None
            visibility = access.split(":")[0]
            if section == "signals":
                cls.signals |= _declared_names(statement, name)
                continue
            if visibility != "public":
                continue
            if cls.is_qobject:
                invokable = statement.startswith("Q_INVOKABLE")
                if section == "slots":
                    cls.slots |= _declared_names(statement, name)
                elif invokable:
                    cls.slots |= _declared_names(statement.removeprefix("Q_INVOKABLE").strip(), name)
                continue
            cls.members |= _statement_members(statement, name)
        classes.append(cls)
    return classes


def _statement_members(statement: str, class_name: str) -> set[str]:
    if "VTK_WRAPEXCLUDE" in statement or "operator" in statement:
        return set()
    statement = _ANNOTATION.sub(" ", statement).strip()  # VTK_NEWINSTANCE, VTK_SIZEHINT(3), VTK_EXPECTS(...)
    if statement.startswith(("typedef", "using ", "friend", "template", "enum", "struct", "class", "Q_")):
        return set()
    members: set[str] = set()
    while True:  # macros without a trailing semicolon run into the next declaration
        macro = _LEADING_MACRO.match(statement)
        if not macro:
            break
        members |= _macro_members(macro.group(1), macro.group(2))
        statement = statement[macro.end():].strip()
    if not statement:
        return members
    return members | _declared_names(statement, class_name)


def _declared_names(statement: str, class_name: str) -> set[str]:
    """The function name a declaration declares (none for constructors, destructors and data members)."""
    head = statement.split("(", 1)[0] if "(" in statement else ""
    if not head:
        return set()
    match = re.search(r"([~A-Za-z_]\w*)\s*$", head)
    if not match:
        return set()
    name = match.group(1)
    if name.startswith("~") or name == class_name or name in ("Q_DECLARE_PRIVATE", "Q_DISABLE_COPY"):
        return set()
    if re.fullmatch(r"[A-Z_]+", name) and name.endswith(("EXPORT", "MACRO", "DEPRECATED")):
        return set()
    return {name}


_DECORATOR_SLOT = re.compile(r"(\w+)\s*\(\s*(?:const\s+)?(\w+)\s*\*\s*\w+")


def parse_decorators(text: str) -> dict[str, set[str]]:
    """Methods a PythonQt decorator class adds to other classes: each public slot ``name(Class* self, ...)``
    becomes ``Class.name`` in Python (``static_Class_name`` and ``new_Class`` make statics and constructors)."""
    source = strip_source(text)
    added: dict[str, set[str]] = {}
    for match in _CLASS.finditer(source):
        body, _ = _body(source, match.end() - 1)
        for access, statement in _top_level_statements(body):
            if access != "public:slots":
                continue
            statement = re.sub(r"\s+", " ", statement)
            name_match = re.search(r"(\w+)\s*\(", statement)
            if not name_match:
                continue
            name = name_match.group(1)
            static = re.fullmatch(r"static_(\w+?)_(\w+)", name)
            if static:
                added.setdefault(static.group(1), set()).add(static.group(2))
                continue
            if name.startswith(("new_", "delete_")):
                continue
            owner = _DECORATOR_SLOT.search(statement[name_match.start():])
            if owner:
                added.setdefault(owner.group(2), set()).add(name)
    return added
