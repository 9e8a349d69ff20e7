"""Mustache templates, on the `mstache` library (spec-compliant to Mustache v1.4, streaming).

What this layer adds to the library, because prompts are not HTML pages and templates and
data come from users:

- No HTML escaping: ``{{x}}`` inserts the value as it is, exactly like ``{{{x}}}``.
- Values read as prompt text: booleans ``true``/``false``, objects and arrays as JSON.
- Lookups only read JSON data (object keys, array indexes, and ``length`` of an array); they
  never touch Python attributes or call anything.
- No partials (``{{> name}}``): a prompt is one self-contained template. Validation refuses them.
- Output, steps and time are bounded (see `app.templating.limits`).

Variables. A variable is a top-level name: ``{{name}}``, ``{{{name}}}``, ``{{&name}}``,
``{{#name}}...{{/name}}``, ``{{^name}}...{{/name}}``, or the first part of a dotted name
(``{{user.email}}`` uses ``user``). Names that appear only *inside* a section are not
inferred as variables: inside ``{{#items}}{{title}}{{/items}}`` ``title`` is most likely a
field of each item. (Mustache would fall back to a top-level ``title`` when an item lacks
one, so such a name may be declared explicitly, and is then accepted as used.)
"""

from __future__ import annotations

import re
import threading
from typing import Any

import mstache

from app.templating.analysis import TemplateAnalysis
from app.templating.limits import Meter, current_meter
from app.templating.values import name_problem, to_text

if getattr(mstache, "PROTOCOL_VERSION", None) != 1:  # pragma: no cover - guards a library upgrade
    raise ImportError(
        "app.templating.mustache reads mstache's compiled-token format version 1; "
        f"the installed mstache has version {getattr(mstache, 'PROTOCOL_VERSION', None)}"
    )



class _LockedCache:
    """mstache's compiled-template cache protocol (get / set item), an LRU behind a lock so
    renders in several threads can share it."""

    def __init__(self, maxsize: int) -> None:
        self._lru: mstache.LRUCache[Any] = mstache.LRUCache(maxsize)
        self._lock = threading.Lock()

    def get(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            return self._lru.get(key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            self._lru[key] = value


#: Compiled templates, shared by analysis and rendering (keyed by template text).
_CACHE = _LockedCache(256)
_COLUMN = re.compile(r" column \d+$")


def _syntax_message(exc: Exception) -> str:
    # mstache reports the line correctly but the column one too far after the first line;
    # keep the line, drop the column.
    return _COLUMN.sub("", str(exc))


def _tokens(template: str) -> list:
    """The compiled tokens of a template; raises mstache.TokenException on a syntax error."""
    return mstache.tokenize(template.encode("utf-8"), cache=_CACHE)[1]


def analyse(template: str) -> TemplateAnalysis:
    """Parse a Mustache template and report the variables it uses (see module docstring)."""
    result = TemplateAnalysis()
    try:
        tokens = _tokens(template)
    except MemoryError:  # out of memory: the sandbox worker reports it and is replaced
        raise
    except Exception as exc:  # mstache raises SyntaxError subclasses; be safe with anything
        result.errors.append(_syntax_message(exc))
        return result

    depth = 0
    for a, b, c, key, _content, _flags in tokens:
        if not a and b and not c:  # variable: {{x}} {{{x}}} {{&x}}
            _use(result, key.decode("utf-8"), depth, section=False)
        elif a and not b and c:  # section open: {{#x}} or {{^x}}
            _use(result, key.decode("utf-8"), depth, section=True)
            depth += 1
        elif a and b and c:  # section close
            depth -= 1
        elif a and not b and not c:  # partial
            name = key.decode("utf-8")
            result.errors.append(
                f"partials ({{{{> {name}}}}}) are not supported: a prompt is one template; "
                "put the partial's text in the template"
            )
        # text, comments and delimiter changes use no variables
    return result


def _use(result: TemplateAnalysis, label: str, depth: int, section: bool) -> None:
    tag = f"{{{{{'#' if section else ''}{label}}}}}"
    if label == "":
        result.errors.append("empty tag {{}}: a tag needs a variable name")
        return
    if label == ".":
        if depth == 0:
            result.errors.append(
                f"{tag} refers to the current item, which only exists inside a section; "
                "use a variable name at the top level"
            )
        return
    parts = label.split(".")
    if any(part == "" for part in parts):
        result.errors.append(f"{tag}: {label!r} is not a valid name (empty part between dots)")
        return
    root = parts[0]
    if depth > 0:
        # Inside a section: an item field or an outer variable, we cannot tell which.
        result.referenced.add(root)
        return
    problem = name_problem(root)
    if problem is not None:
        result.errors.append(f"{tag}: {problem}")
        return
    result.use(root, structural=section or len(parts) > 1)


class _MeteredList(list):
    """A list whose iteration is counted against the render's step budget, so nested
    sections over big arrays stop at the limit instead of running for hours."""

    __slots__ = ()

    def __iter__(self):
        meter = current_meter()
        for item in list.__iter__(self):
            meter.tick()
            yield item


def _prepare(value: Any) -> Any:
    """Copy JSON data with its arrays made `_MeteredList`s."""
    if isinstance(value, dict):
        return {k: _prepare(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return _MeteredList(_prepare(v) for v in value)
    return value


_MISSING = object()


def _lookup(scope: Any, part: str) -> Any:
    """One step of a dotted lookup in JSON data; `_MISSING` when there is nothing there."""
    if isinstance(scope, dict):
        return scope.get(part, _MISSING)
    if isinstance(scope, list):
        if part == "length":
            return len(scope)
        if part.isdigit() and (part == "0" or not part.startswith("0")):
            index = int(part)
            return scope[index] if index < len(scope) else _MISSING
    return _MISSING


def _make_getter(meter: Meter):
    def getter(scope: Any, scopes: list, key: str, default: Any = None) -> Any:
        """Mustache name resolution: the innermost context that has the first part of the
        name wins; the rest of a dotted name is looked up in it only (spec: a broken chain
        resolves to nothing, it does not fall back to outer contexts)."""
        meter.tick()
        if key == ".":
            return scope
        first, *rest = key.split(".")
        for context in (scope, *reversed(scopes)):
            value = _lookup(context, first)
            if value is not _MISSING:
                break
        else:
            return default
        for part in rest:
            value = _lookup(value, part)
            if value is _MISSING:
                return default
        return value

    return getter


def _stringify(value: Any, text: bool) -> bytes:
    return to_text(value).encode("utf-8")


def _no_escape(data: bytes) -> bytes:
    return data


def _no_partials(name: Any) -> None:
    return None


def render(template: str, variables: dict, meter: Meter) -> str:
    """Render a Mustache template with the given (already type-checked) variables.

    Raises mstache.TokenException on a syntax error and RenderLimitExceeded past the limits.
    """
    chunks: list[str] = []
    for chunk in mstache.stream(
        template,
        _prepare(variables),
        resolver=_no_partials,
        getter=_make_getter(meter),
        stringify=_stringify,
        escape=_no_escape,
        cache=_CACHE,
    ):
        meter.emit(len(chunk))
        chunks.append(chunk)
    return "".join(chunks)


def syntax_error_message(exc: Exception) -> str:
    """A syntax error from `render` as a sentence with its line."""
    return _syntax_message(exc)
