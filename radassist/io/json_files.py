"""Read a user's JSON file, or say in one line what is wrong with it.

Dataset descriptions, label tables, markups, catalogues and records all fail the same few ways: the file is not
there, cannot be read, is not UTF-8, is not valid JSON, or holds a list where an object belongs. Every reader goes
through :func:`read_json` so each of those becomes an :class:`~radassist.errors.InputError` that names the file
and the problem (with the line and column of a syntax error), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from radassist.errors import InputError

_KINDS: dict[type, str] = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
                           bool: "true or false", type(None): "null"}


def _why_unreadable(path: Path, error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "not found"
    if path.is_dir():  # Windows reports a folder as PermissionError, POSIX as IsADirectoryError
        return "is a folder, not a file"
    if isinstance(error, PermissionError):
        return "is not readable (permission denied)"
    return f"cannot be read ({error.strerror or error})"


def read_json(path: str | Path, what: str = "JSON file", expected: type[dict] | type[list] | None = None) -> Any:
    """The parsed contents of ``path``; InputError(path, ...) when it cannot be read or parsed.

    ``what`` names the file in the message ("label table is not valid JSON: ..."). With ``expected`` (``dict``
    or ``list``) a file whose top level is another kind of value is refused too.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(path, f"{what} {_why_unreadable(path, error)}") from None
    except UnicodeDecodeError as error:
        raise InputError(path, f"{what} is not UTF-8 text (undecodable byte at offset {error.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(path, f"{what} is not valid JSON: {error.msg} at line {error.lineno} "
                               f"column {error.colno}") from None
    except RecursionError:
        raise InputError(path, f"{what} is nested too deeply to read") from None
    if expected is not None and not isinstance(value, expected):
        name = "object" if expected is dict else "list"
        kind = _KINDS.get(type(value), type(value).__name__)
        raise InputError(path, f"{what} is not a JSON {name}: its top level is {kind}")
    return value


def read_json_object(path: str | Path, what: str = "JSON file") -> dict[str, Any]:
    """:func:`read_json` for the usual case: a file whose top level must be a JSON object."""
    return read_json(path, what, expected=dict)
