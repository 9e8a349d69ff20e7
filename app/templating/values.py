"""Variable names, typed values and how values turn into prompt text.

Type rules (strict: nothing is parsed out of strings):

- STRING: a string.
- NUMBER: an int or a finite float (not a boolean). 2.0 is normalised to 2.
- INTEGER: an int, or a float with no fractional part (JSON does not tell 2.0 from 2,
  so a client may well send it); not a boolean, not the string "2".
- BOOLEAN: true or false only (not 0/1, not "true").
- JSON: any JSON value (object, array, string, number, boolean). Non-finite floats are refused.

Text form of a value inserted into a prompt: strings as they are, booleans as ``true`` /
``false``, numbers as JSON writes them, null as nothing, objects and arrays as JSON text.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from app.templating.model import normalise_number

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_NAME_LENGTH = 128
_MAX_JSON_DEPTH = 64

TYPE_DESCRIPTIONS = {
    "STRING": "a STRING",
    "NUMBER": "a NUMBER",
    "INTEGER": "an INTEGER (a whole number)",
    "BOOLEAN": "a BOOLEAN (true or false)",
    "JSON": "a JSON value",
}


def name_problem(name: Any) -> str | None:
    """Why ``name`` is not a valid variable name, or None when it is.

    A variable name is an identifier: a letter or underscore, then letters, digits and
    underscores. Dots are not allowed in a *variable* name: ``{{user.name}}`` in a template
    uses the variable ``user`` (a JSON object) and looks up ``name`` inside it.
    """
    if not isinstance(name, str) or not name:
        return "a variable name must be a non-empty string"
    if len(name) > MAX_NAME_LENGTH:
        return f"variable name {name[:40]!r}... is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
    if not IDENTIFIER.match(name):
        return (
            f"{name!r} is not a valid variable name: use an ASCII letter or underscore followed by "
            "letters, digits or underscores (no dots, dashes or spaces)"
        )
    return None


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` is not plain JSON data, or None when it is."""
    if depth > _MAX_JSON_DEPTH:
        return f"it is nested more than {_MAX_JSON_DEPTH} levels deep"
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "it contains a non-finite number"
    if isinstance(value, (list, tuple)):
        for item in value:
            if (problem := json_problem(item, depth + 1)) is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "it has an object key that is not a string"
            if (problem := json_problem(item, depth + 1)) is not None:
                return problem
        return None
    return f"a {type(value).__name__} is not a JSON value"


def describe(value: Any, limit: int = 60) -> str:
    """A short description of a value for error messages: ``a string ("3")``."""
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, (int, float)):
        kind = "a number"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, (list, tuple)):
        kind = "an array"
    elif isinstance(value, dict):
        kind = "an object"
    elif value is None:
        return "null"
    else:
        kind = f"a {type(value).__name__}"
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        shown = repr(value)
    if len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return f"{kind} ({shown})"


def check_value(value: Any, vtype: str) -> tuple[Any, str | None]:
    """Check ``value`` (not None) against a variable type.

    Returns ``(normalised value, None)`` when it fits, or ``(value, expected)`` where
    ``expected`` describes the type, e.g. ``"an INTEGER (a whole number)"``.
    """
    expected = TYPE_DESCRIPTIONS.get(vtype, vtype)
    if vtype == "STRING":
        return (value, None) if isinstance(value, str) else (value, expected)
    if vtype == "BOOLEAN":
        return (value, None) if isinstance(value, bool) else (value, expected)
    if vtype in ("NUMBER", "INTEGER"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, expected
        if isinstance(value, float) and not math.isfinite(value):
            return value, f"{expected}, finite"
        value = normalise_number(value)
        if vtype == "INTEGER" and not isinstance(value, int):
            return value, expected
        return value, None
    if vtype == "JSON":
        return (value, None) if json_problem(value) is None else (value, expected)
    return value, expected


def same_value(a: Any, b: Any) -> bool:
    """JSON equality: True is not 1, 2 equals 2.0, objects compare by keys and values."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def to_text(value: Any) -> str:
    """How a value reads when inserted into a prompt (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
