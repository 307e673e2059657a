"""The strict part of the stand-in: every VTK-level object it hands out checks each member against the active
release's surface before the Python implementation is reached.

A member the release lacks raises :class:`Refused` (an AttributeError naming class, member and release), exactly
where the real Slicer would raise AttributeError. A member the release has but the stand-in does not implement raises
:class:`StandInGap`, so a hole in the test bed can never pass for working code.
"""

from __future__ import annotations

import vtk

from slicer_standin.surface import Refused, StandInGap, Surface

_state: dict[str, Surface | None] = {"surface": None}


def activate(surface: Surface | None) -> None:
    _state["surface"] = surface


def active() -> Surface:
    surface = _state["surface"]
    if surface is None:
        raise RuntimeError("no Slicer stand-in is active (use slicer_standin.SlicerStandIn)")
    return surface


def check_member(class_name: str, member: str) -> None:
    surface = active()
    if not surface.has_class(class_name):
        raise Refused(f"{class_name} does not exist in Slicer {surface.release}")
    if not surface.has_member(class_name, member):
        raise Refused(f"{class_name}.{member} does not exist in Slicer {surface.release}: "
                      f"{class_name} has no member {member!r}")


def _is_api_name(name: str) -> bool:
    return bool(name) and name[0].isupper()


class StrictMeta(type):
    """Class-level access (static methods, enums) is checked like instance access."""

    def __getattribute__(cls, name: str):
        if _is_api_name(name):
            check_member(type.__getattribute__(cls, "_vtk_name"), name)
            try:
                return type.__getattribute__(cls, name)
            except AttributeError:
                enums = active().enums(type.__getattribute__(cls, "_vtk_name"))
                if enums.get(name) is not None:
                    return enums[name]
                raise StandInGap(f"the stand-in does not implement {type.__getattribute__(cls, '_vtk_name')}."
                                 f"{name} (it exists in Slicer {active().release})") from None
        return type.__getattribute__(cls, name)


class StrictObject(metaclass=StrictMeta):
    """Mixin for stand-in classes of Slicer's VTK-level classes: ``_vtk_name`` is the class Python would report."""

    _vtk_name = "vtkObject"

    def __getattribute__(self, name: str):
        if _is_api_name(name):
            vtk_name = type(self)._vtk_name
            check_member(vtk_name, name)
            try:
                return object.__getattribute__(self, name)
            except AttributeError:
                enums = active().enums(vtk_name)
                if enums.get(name) is not None:
                    return enums[name]
                raise StandInGap(f"the stand-in does not implement {vtk_name}.{name} "
                                 f"(it exists in Slicer {active().release})") from None
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value) -> None:
        if not name.startswith("_"):
            raise Refused(f"{type(self)._vtk_name} objects take no new attribute {name!r} in Slicer: VTK objects "
                          "have no Python attributes of their own")
        object.__setattr__(self, name, value)

    # VTK's type information, answered for the Slicer class this object stands for.
    def GetClassName(self) -> str:  # noqa: N802 -- VTK's name
        return type(self)._vtk_name

    def IsA(self, name: str) -> int:  # noqa: N802
        return int(name in active().chain(type(self)._vtk_name))

    def IsTypeOf(self, name: str) -> int:  # noqa: N802
        return self.IsA(name)

    def __repr__(self) -> str:
        return f"<stand-in {type(self)._vtk_name} at {id(self):#x}>"


def strict_vtk_class(vtk_name: str, base: type) -> type:
    """A stand-in class for a Slicer class the stand-in has no code of its own for: it behaves as ``base`` (its
    nearest implemented ancestor) and answers to ``vtk_name``."""
    return StrictMeta(vtk_name, (base,), {"_vtk_name": vtk_name})


def vtk_matrix(values) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(values[row][column]))
    return matrix


def matrix_array(matrix: vtk.vtkMatrix4x4):
    import numpy as np

    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def copy_into(target: vtk.vtkMatrix4x4, values) -> None:
    for row in range(4):
        for column in range(4):
            target.SetElement(row, column, float(values[row][column]))
