"""``slicer.parameterNodeWrapper`` for the stand-in: typed parameters stored in a vtkMRMLScriptedModuleNode (nodes
as node references, other values as strings), bound to widgets that carry a ``SlicerParameterName`` property, with
the reserved members the release's wrapper adds to a wrapped class (taken from the API data)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from slicer_standin import qt_slicer_widgets as sw
from slicer_standin import qt_module as qw
from slicer_standin.strict import active

PARAMETER_PROPERTY = "SlicerParameterName"


@dataclasses.dataclass(frozen=True)
class Choice:
    choices: tuple

    def __init__(self, choices) -> None:
        object.__setattr__(self, "choices", tuple(choices))


@dataclasses.dataclass(frozen=True)
class Default:
    value: Any


@dataclasses.dataclass(frozen=True)
class Minimum:
    minimum: Any


@dataclasses.dataclass(frozen=True)
class Maximum:
    maximum: Any


@dataclasses.dataclass(frozen=True)
class WithinRange:
    minimum: Any
    maximum: Any


@dataclasses.dataclass(frozen=True)
class Decimals:
    value: int


@dataclasses.dataclass(frozen=True)
class SingleStep:
    value: Any


def _split(annotation) -> tuple[Any, list]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, list(extras)
    return annotation, []


def _node_types(base) -> tuple[type, ...] | None:
    """The MRML classes a parameter may hold (a node class, or an Optional/Union of them), else None."""
    candidates = typing.get_args(base) if typing.get_origin(base) in (typing.Union, getattr(__import__("types"),
                                                                                          "UnionType", ())) \
        else (base,)
    classes = tuple(c for c in candidates if c is not type(None))
    if classes and all(isinstance(c, type) and hasattr(c, "_vtk_name") for c in classes):
        return classes
    return None


@dataclasses.dataclass
class _Parameter:
    name: str
    base: Any
    extras: list
    default: Any
    node_types: tuple[type, ...] | None

    def choice(self) -> Choice | None:
        return next((e for e in self.extras if isinstance(e, Choice)), None)

    def serialize(self, value) -> str:
        if self.base is bool:
            return "True" if value else "False"
        if isinstance(value, Path):
            return str(value)
        return str(value)

    def deserialize(self, text: str):
        if self.base is bool:
            return text == "True"
        if self.base is int:
            return int(text)
        if self.base is float:
            return float(text)
        if self.base is Path:
            return Path(text)
        return text

    def validate(self, value) -> None:
        choice = self.choice()
        if choice is not None and value not in choice.choices:
            raise ValueError(f"{value!r} is not one of {choice.choices} for parameter {self.name!r}")
        if self.node_types is not None:
            if value is not None and not isinstance(value, self.node_types):
                raise ValueError(f"parameter {self.name!r} takes {[c._vtk_name for c in self.node_types]}, "
                                 f"not {type(value).__name__}")
        elif self.base in (int, float) and not isinstance(value, (int, float)) or \
                self.base is str and not isinstance(value, str) or \
                self.base is bool and not isinstance(value, (bool, int)):
            raise TypeError(f"parameter {self.name!r} takes {self.base.__name__}, not {type(value).__name__}")


def _read(wrapper, parameter: _Parameter):
    node = wrapper.parameterNode
    if parameter.node_types is not None:
        return node.GetNodeReference(parameter.name)
    names = node.GetParameterNames()
    if parameter.name not in names:
        return parameter.default
    return parameter.deserialize(node.GetParameter(parameter.name))


def _write(wrapper, parameter: _Parameter, value) -> None:
    parameter.validate(value)
    node = wrapper.parameterNode
    if parameter.node_types is not None:
        node.SetNodeReferenceID(parameter.name, value.GetID() if value is not None else None)
    else:
        node.SetParameter(parameter.name, parameter.serialize(value))


def _property(parameter: _Parameter) -> property:
    return property(lambda self: _read(self, parameter), lambda self, value: _write(self, parameter, value))


# -- widget connectors (the widget types and signals the release's connectors use) ----------------------------------

class _Connector:
    def __init__(self, widget, parameter: _Parameter) -> None:
        self.widget, self.parameter = widget, parameter
        self._callback = None

    def connect(self, callback) -> None:
        self._callback = callback
        getattr(self.widget, self.signal).connect(callback)

    def disconnect(self) -> None:
        getattr(self.widget, self.signal).disconnect(self._callback)


class _NodeComboBox(_Connector):
    signal = "currentNodeChanged"

    def read(self):
        return self.widget.currentNode()

    def write(self, value) -> None:
        self.widget.setCurrentNode(value)


class _SpinBox(_Connector):
    signal = "valueChanged"

    def read(self):
        return self.parameter.base(self.widget.value)

    def write(self, value) -> None:
        self.widget.value = value


class _CheckBox(_Connector):
    signal = "stateChanged"

    def read(self):
        return bool(self.widget.checked)

    def write(self, value) -> None:
        self.widget.checked = bool(value)


class _ComboBoxChoice(_Connector):
    signal = "currentIndexChanged"

    def __init__(self, widget, parameter: _Parameter) -> None:
        super().__init__(widget, parameter)
        choice = parameter.choice()
        if choice is None:
            raise RuntimeError("ComboBoxToStringableConnector requires the Choice annotation to be used.")
        widget.clear()
        for value in choice.choices:
            widget.addItem(str(value))

    def read(self):
        return self.parameter.choice().choices[self.widget.currentIndex]

    def write(self, value) -> None:
        self.widget.currentIndex = list(self.parameter.choice().choices).index(value)


class _LineEdit(_Connector):
    signal = "textChanged"

    def read(self):
        return self.widget.text

    def write(self, value) -> None:
        self.widget.text = value


class _PathLineEdit(_Connector):
    signal = "currentPathChanged"

    def read(self):
        return Path(self.widget.currentPath) if self.parameter.base is Path else self.widget.currentPath

    def write(self, value) -> None:
        self.widget.currentPath = str(value)


def _connector(widget, parameter: _Parameter) -> _Connector:
    kind = type(widget)
    if kind is sw.qMRMLNodeComboBox and parameter.node_types is not None:
        return _NodeComboBox(widget, parameter)
    if kind in (qw.QSpinBox, qw.QDoubleSpinBox, sw.ctkSliderWidget) and parameter.base in (int, float):
        return _SpinBox(widget, parameter)
    if kind is qw.QCheckBox and parameter.base is bool:
        return _CheckBox(widget, parameter)
    if kind is qw.QComboBox and parameter.base in (int, float, str, bool):
        return _ComboBoxChoice(widget, parameter)
    if kind is qw.QLineEdit and parameter.base is str:
        return _LineEdit(widget, parameter)
    if kind is sw.ctkPathLineEdit and parameter.base in (str, Path):
        return _PathLineEdit(widget, parameter)
    raise RuntimeError(f"Unable to create GUI connector from datatype {parameter.base} to widget type "
                       f"{kind._qt_name}")


def _widgets_of(gui) -> dict[str, Any]:
    if isinstance(gui, qw.QWidget):
        candidates = gui.findChildren(qw.QWidget)
    else:
        candidates = list(vars(gui).values())
    return {w.property(PARAMETER_PROPERTY): w for w in candidates if w.property(PARAMETER_PROPERTY)}


def _connect_gui(self, gui) -> int:
    return self.connectParametersToGui(_widgets_of(gui))


def _connect_parameters_to_gui(self, mapping: dict[str, Any]) -> int:
    connectors = []
    for name, widget in mapping.items():
        if name not in self.allParameters:
            raise ValueError(f"{type(self).__name__} has no parameter {name!r} (a widget is bound to it)")
        connector = _connector(widget, self.allParameters[name])
        connector.write(getattr(self, name))
        connector.connect(lambda *args, c=connector, n=name: self._guiChanged(n, c))
        connectors.append(connector)

    def update_gui(caller=None, event=None) -> None:
        for connector in connectors:
            wasBlocked = connector.widget.blockSignals(True)
            try:
                connector.write(getattr(self, connector.parameter.name))
            finally:
                connector.widget.blockSignals(wasBlocked)

    import vtk

    observer = self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent, update_gui)
    tag = len(self._guis) + 1
    self._guis[tag] = (connectors, observer)
    return tag


def _gui_changed(self, name: str, connector: _Connector) -> None:
    setattr(self, name, connector.read())


def _disconnect_gui(self, tag: int) -> None:
    connectors, observer = self._guis.pop(tag)
    for connector in connectors:
        connector.disconnect()
    self.parameterNode.RemoveObserver(observer)


def _init(self, parameterNode, prefix=None) -> None:  # noqa: N803 -- Slicer's argument name
    self.parameterNode = parameterNode
    self._guis = {}


def parameterNodeWrapper(classtype=None):  # noqa: N802 -- Slicer's name
    def wrap(cls):
        hints = typing.get_type_hints(cls, include_extras=True)
        parameters: dict[str, _Parameter] = {}
        for name, annotation in hints.items():
            base, extras = _split(annotation)
            node_types = _node_types(base)
            if name in cls.__dict__:
                default = cls.__dict__[name]
            else:
                given = next((e for e in extras if isinstance(e, Default)), None)
                default = given.value if given is not None else (None if node_types is not None else
                                                                 {int: 0, float: 0.0, str: "", bool: False}.get(base))
            parameters[name] = _Parameter(name, base, extras, default, node_types)
            setattr(cls, name, _property(parameters[name]))
        reserved = set(active().parameter_node_wrapper["wrapped_class_members"])
        for name in reserved & set(cls.__dict__) - set(parameters):
            raise ValueError(f"Cannot use reserved name '{name}' in a parameterNodeWrapper")
        members = {
            "allParameters": parameters, "_is_parameter_node_wrapper": True,
            "default": lambda self, name: parameters[name].default,
            "isCached": lambda self, name: False,
            "dataType": lambda self, name: parameters[name].base,
            "getValue": lambda self, name: getattr(self, name),
            "setValue": lambda self, name, value: setattr(self, name, value),
            "connectGui": _connect_gui, "connectParametersToGui": _connect_parameters_to_gui,
            "disconnectGui": _disconnect_gui, "_guiChanged": _gui_changed,
            "StartModify": lambda self: self.parameterNode.StartModify(),
            "EndModify": lambda self, was: self.parameterNode.EndModify(was),
            "AddObserver": lambda self, event, callback, priority=0.0: self.parameterNode.AddObserver(
                event, callback, priority),
            "RemoveObserver": lambda self, tag: self.parameterNode.RemoveObserver(tag),
            "Modified": lambda self: self.parameterNode.Modified(),
        }
        for name, member in members.items():
            if not name.startswith("_g") and name not in reserved:
                raise AssertionError(f"stand-in adds {name!r}, which Slicer {active().release}'s wrapper does not")
            setattr(cls, name, member)
        cls.__init__ = _init
        return cls

    return wrap if classtype is None else wrap(classtype)


def isParameterNodeWrapper(obj) -> bool:  # noqa: N802
    return bool(getattr(obj, "_is_parameter_node_wrapper", False))


IMPLEMENTED = {"parameterNodeWrapper": parameterNodeWrapper, "isParameterNodeWrapper": isParameterNodeWrapper,
               "Choice": Choice, "Default": Default, "Minimum": Minimum, "Maximum": Maximum,
               "WithinRange": WithinRange, "Decimals": Decimals, "SingleStep": SingleStep,
               "SlicerParameterNamePropertyName": PARAMETER_PROPERTY}
