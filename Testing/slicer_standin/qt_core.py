"""The PythonQt object model the stand-in's widgets follow: Qt properties are attributes (``button.text = "x"``,
``table.rowCount`` is an int, so ``table.rowCount()`` fails as it does in Slicer), signals connect either as
``widget.connect("clicked(bool)", slot)`` or ``widget.clicked.connect(slot)``, a slot is called with as many
arguments as it takes, and an attribute a class does not have raises AttributeError.

The event loop is the stand-in's: timers fire when the test (or ``slicer.app.processEvents()``) processes events,
and every dialog must have been answered by the test beforehand (an unexpected popup fails the test).
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable
from typing import Any

_SIGNATURE = re.compile(r"^(\w+)\((.*)\)$")


def _normalize(signature: str) -> str:
    return re.sub(r"\s+", "", signature)


def _call_slot(slot: Callable, args: tuple) -> Any:
    """PythonQt passes a slot only as many arguments as it accepts."""
    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return slot(*args)
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return slot(*args)
    count = sum(1 for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    return slot(*args[:count])


class BoundSignal:
    """``widget.clicked``: connect, disconnect, emit (all overloads of the name share the connections' list)."""

    def __init__(self, owner: "QObject", name: str) -> None:
        self._owner, self._name = owner, name

    def connect(self, slot: Callable) -> None:
        self._owner._connections.setdefault(self._name, []).append(slot)

    def disconnect(self, slot: Callable | None = None) -> None:
        slots = self._owner._connections.get(self._name, [])
        if slot is None:
            slots.clear()
        elif slot in slots:
            slots.remove(slot)

    def emit(self, *args) -> None:
        self._owner._emit(self._name, *args)

    def __call__(self, *args) -> None:
        self.emit(*args)


class QObject:
    """Base of every stand-in Qt object. Subclasses declare ``_properties`` (name -> default) and ``_signals``
    (Qt signatures); ``_set_<name>`` hooks run when a property is written (and may emit notify signals)."""

    _properties: dict[str, Any] = {"objectName": ""}
    _signals: tuple[str, ...] = ("destroyed()", "destroyed(QObject*)", "objectNameChanged(QString)")
    _qt_name = "QObject"

    def __init__(self, parent: "QObject | None" = None) -> None:
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_dynamic", {})
        object.__setattr__(self, "_connections", {})
        object.__setattr__(self, "_blocked", False)
        object.__setattr__(self, "_parent", None)
        object.__setattr__(self, "_children", [])
        object.__setattr__(self, "_deleted", False)
        for cls in reversed(type(self).__mro__):
            for name, default in cls.__dict__.get("_properties", {}).items():
                self._values[name] = list(default) if isinstance(default, list) else default
        if parent is not None:
            self.setParent(parent)

    # -- the class's declared API ---------------------------------------------------------------------------------
    @classmethod
    def _all_properties(cls) -> set[str]:
        return {name for klass in cls.__mro__ for name in klass.__dict__.get("_properties", {})}

    @classmethod
    def _all_signals(cls) -> dict[str, str]:
        """Normalized signature -> signal name."""
        signals = {}
        for klass in cls.__mro__:
            for signature in klass.__dict__.get("_signals", ()):
                name = _SIGNATURE.match(signature).group(1)
                signals[_normalize(signature)] = name
        return signals

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        if name in type(self)._all_signals().values():
            return BoundSignal(self, name)
        setter = re.fullmatch(r"set([A-Z]\w*)", name)
        if setter:
            prop = setter.group(1)[0].lower() + setter.group(1)[1:]
            if prop in values:
                return lambda value: setattr(self, prop, value)
        getter = re.fullmatch(r"is([A-Z]\w*)", name)
        if getter:
            prop = getter.group(1)[0].lower() + getter.group(1)[1:]
            if prop in values:
                return lambda: values[prop]
        raise AttributeError(f"{self._qt_name} has no attribute {name!r} (what PythonQt exposes of it in Slicer)")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        if name not in object.__getattribute__(self, "_values"):
            raise AttributeError(f"{self._qt_name} has no property {name!r}: PythonQt would only make a Python "
                                 "attribute that Qt never sees")
        hook = getattr(type(self), f"_set_{name}", None)
        if hook is not None:
            hook(self, value)
        else:
            self._values[name] = value

    # -- signals ---------------------------------------------------------------------------------------------------
    def connect(self, signature: str, slot: Callable) -> bool:
        name = type(self)._all_signals().get(_normalize(signature))
        if name is None:
            raise AttributeError(f"{self._qt_name} has no signal {signature!r} (PythonQt could not connect it)")
        self._connections.setdefault(name, []).append(slot)
        return True

    def disconnect(self, signature: str, slot: Callable | None = None) -> bool:
        name = type(self)._all_signals().get(_normalize(signature))
        if name is None:
            raise AttributeError(f"{self._qt_name} has no signal {signature!r}")
        slots = self._connections.get(name, [])
        if slot is None:
            slots.clear()
        elif slot in slots:
            slots.remove(slot)
        return True

    def _emit(self, name: str, *args) -> None:
        if self._blocked:
            return
        for slot in list(self._connections.get(name, [])):
            _call_slot(slot, args)

    def blockSignals(self, block: bool) -> bool:  # noqa: N802 -- Qt's names
        previous = self._blocked
        object.__setattr__(self, "_blocked", bool(block))
        return previous

    def signalsBlocked(self) -> bool:  # noqa: N802
        return self._blocked

    # -- tree, names, dynamic properties ---------------------------------------------------------------------------
    def setParent(self, parent: "QObject | None") -> None:  # noqa: N802
        if self._parent is not None and self in self._parent._children:
            self._parent._children.remove(self)
        object.__setattr__(self, "_parent", parent)
        if parent is not None:
            parent._children.append(self)

    def parent(self) -> "QObject | None":
        return self._parent

    def children(self) -> list["QObject"]:
        return list(self._children)

    def findChildren(self, cls=None, name: str | None = None) -> list["QObject"]:  # noqa: N802
        found = []
        for child in self._children:
            if (cls is None or isinstance(child, cls)) and (name is None or child.objectName == name):
                found.append(child)
            found.extend(child.findChildren(cls, name))
        return found

    def findChild(self, cls=None, name: str | None = None):  # noqa: N802
        children = self.findChildren(cls, name)
        return children[0] if children else None

    def setProperty(self, name: str, value: Any) -> bool:  # noqa: N802
        if name in self._values:
            setattr(self, name, value)
            return True
        self._dynamic[name] = value
        return False

    def property(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return self._dynamic.get(name)

    def dynamicPropertyNames(self) -> list[str]:  # noqa: N802
        return list(self._dynamic)

    def inherits(self, class_name: str) -> bool:
        return any(getattr(cls, "_qt_name", None) == class_name for cls in type(self).__mro__)

    def className(self) -> str:  # noqa: N802
        return self._qt_name

    def deleteLater(self) -> None:  # noqa: N802
        object.__setattr__(self, "_deleted", True)
        self.setParent(None)

    def __repr__(self) -> str:
        return f"<stand-in {self._qt_name} {self._values.get('objectName') or ''!s}>".replace(" >", ">")


class EventLoop:
    """The stand-in's event loop: timers due by the monotonic clock fire when events are processed."""

    def __init__(self) -> None:
        self.timers: list["QTimer"] = []
        self.single_shots: list[tuple[float, Callable]] = []

    def process(self) -> None:
        now = time.monotonic()
        due = [(when, fn) for when, fn in self.single_shots if when <= now]
        self.single_shots = [(when, fn) for when, fn in self.single_shots if when > now]
        for _, fn in due:
            fn()
        for timer in list(self.timers):
            if timer._active and timer._due <= now:
                if timer._values["singleShot"]:
                    timer._active = False
                    self.timers.remove(timer)
                else:
                    timer._due = now + timer._values["interval"] / 1000.0
                timer._emit("timeout")

    def run_until(self, condition: Callable[[], bool], timeout_s: float, step_s: float = 0.01) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            self.process()
            if condition():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(step_s)


LOOP = EventLoop()


class QTimer(QObject):
    _qt_name = "QTimer"
    _properties = {"interval": 0, "singleShot": False, "active": False, "remainingTime": -1}
    _signals = ("timeout()",)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._active = False
        self._due = 0.0

    def start(self, interval: int | None = None) -> None:
        if interval is not None:
            self._values["interval"] = int(interval)
        self._active = True
        self._values["active"] = True
        self._due = time.monotonic() + self._values["interval"] / 1000.0
        if self not in LOOP.timers:
            LOOP.timers.append(self)

    def stop(self) -> None:
        self._active = False
        self._values["active"] = False
        if self in LOOP.timers:
            LOOP.timers.remove(self)

    def isActive(self) -> bool:  # noqa: N802
        return self._active

    @staticmethod
    def singleShot(msec: int, callback: Callable) -> None:  # noqa: N802
        LOOP.single_shots.append((time.monotonic() + msec / 1000.0, callback))
