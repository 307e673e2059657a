"""Task options as the server accepts them: named like the CLI's, typed, bounded, with the CLI's defaults.

A client sends options as one JSON object; :func:`parse_options` checks every value against its
:class:`OptionSpec` and refuses unknown names, so a typo is a clear 400 and never a silently ignored setting. An
option renamed with the CLI keeps its old name as an alias, so clients written against the old API still work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from radassist.errors import InputError


@dataclass(frozen=True)
class OptionSpec:
    """One option of a server task; ``per_file`` options are a list with one value (or null) per input file."""

    name: str
    kind: type            # str, int, float or bool
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    per_file: bool = False
    pattern: str | None = None   # a text option must match this whole regular expression
    aliases: tuple[str, ...] = ()  # former names, still accepted

    def _one(self, value: Any) -> Any:
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (self.kind is not bool and isinstance(value, bool)):
            raise InputError(None, f"option '{self.name}' must be {self.kind.__name__}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise InputError(None, f"option '{self.name}' must be one of {', '.join(map(str, self.choices))}, "
                                   f"got {value!r}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise InputError(None, f"option '{self.name}' must match {self.pattern}, got {value!r}")
        if isinstance(value, float) and value != value:
            raise InputError(None, f"option '{self.name}' must be a number, got NaN")
        if self.minimum is not None and value < self.minimum:
            raise InputError(None, f"option '{self.name}' must be at least {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise InputError(None, f"option '{self.name}' must be at most {self.maximum:g}, got {value!r}")
        return value

    def parse(self, value: Any) -> Any:
        if not self.per_file:
            return self._one(value)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > 64:
            raise InputError(None, f"option '{self.name}' must be a list with one value per file")
        return [None if item is None else self._one(item) for item in value]

    def describe(self) -> dict[str, Any]:
        """The option as /info lists it."""
        return {"name": self.name, "type": ("list of " if self.per_file else "") + self.kind.__name__,
                "default": self.default, "help": self.help, "choices": list(self.choices) if self.choices else None,
                "minimum": self.minimum, "maximum": self.maximum, "aliases": list(self.aliases)}


def parse_options(specs: tuple[OptionSpec, ...], raw: Any) -> dict[str, Any]:
    """Every option with its value: the client's where given (checked), else the default."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(None, "options must be a JSON object")
    known = {spec.name: spec for spec in specs}
    renamed = {alias: spec.name for spec in specs for alias in spec.aliases}
    for alias, name in renamed.items():
        if alias in raw:
            if name in raw:
                raise InputError(None, f"give option '{name}' once (its former name '{alias}' too)")
            raw = {(name if key == alias else key): value for key, value in raw.items()}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise InputError(None, f"unknown option(s) {', '.join(map(repr, unknown))}; this task takes "
                               f"{', '.join(known) or 'none'}")
    return {name: spec.default if raw.get(name) is None and not spec.per_file else spec.parse(raw.get(name))
            for name, spec in known.items()}
