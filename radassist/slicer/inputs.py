"""Which of a panel's input selectors are set, and what Apply still needs: plain functions, tested without Slicer.

A module declares ``requiredInputs`` (each must be chosen) and ``anyOfInputs`` (at least one of them must be
chosen, the others may stay empty: the mammography views, any subset of the four).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def chosen(values: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The inputs among ``names`` that are set, in the order of ``names``."""
    return {name: values[name] for name in names if values.get(name) is not None}


def missing_inputs(values: Mapping[str, Any], required: Mapping[str, str],
                   any_of: Mapping[str, str] | None = None) -> list[str]:
    """What the user still has to select (the labels of ``required`` and ``any_of``), in panel order."""
    missing = [label for name, label in required.items() if values.get(name) is None]
    if any_of and not chosen(values, any_of):
        missing.append("at least one of " + ", ".join(any_of.values()))
    return missing
