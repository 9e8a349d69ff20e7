"""Validation rules: check validation configs and apply validations to a model's output.

Pure functions: no database, no GraphQL, no network. The validations service calls
:func:`check_config` before it stores a config, and the execution engine calls
:func:`apply_validations` on a finished output.

Types and configs (the ``ValidationType`` enum of the API):

``JSON_SCHEMA`` ``{"schema": {...}}``
    The output must be JSON that follows the schema. Draft 2020-12 unless ``$schema`` names
    another dialect jsonschema supports. ``format`` is asserted where a checker is available.
    ``$ref`` must point inside the schema; remote schemas are never fetched.
``REGEX`` ``{"pattern": "...", "flags": "imsx"}``
    ``re.search`` semantics: the pattern must match somewhere in the output.
``JMESPATH`` ``{"expression": "..."}``
    The expression, evaluated over the output parsed as JSON, must be truthy in JMESPath's
    sense: null, false, "", [] and {} are false; everything else (0 included) is true.

Reading JSON from a model's output (JSON_SCHEMA and JMESPATH): surrounding whitespace is
ignored, and so is a single Markdown code fence around the whole output (```` ```json ````
or a bare ```` ``` ````), because models often wrap JSON that way. Text outside the fence is
not tolerated. ``NaN`` and ``Infinity`` are refused: they are not JSON.

Regular expressions are checked statically for catastrophic backtracking and for counted repeats
that multiply to a huge size (see :mod:`app.rules.regex_safety`), and at apply time they run with
the ``regex`` module's timeout as a second line of defence (``regex_timeout``, 1 s by default).
Everything here is untrusted work: the server runs it in the sandbox (``app.sandbox``), never in
its own process.
"""

from __future__ import annotations

import enum
import functools
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urldefrag, urljoin, urlsplit

import jmespath
import jmespath.exceptions
import jsonschema
import jsonschema.exceptions
import referencing
import referencing.exceptions
import referencing.jsonschema
import regex

from .regex_safety import backtracking_risk, repeat_size_problem

__all__ = [
    "JMESPATH",
    "JSON_SCHEMA",
    "MAX_EXPRESSION_LENGTH",
    "MAX_PATTERN_LENGTH",
    "MAX_SCHEMA_BYTES",
    "REGEX",
    "REGEX_TIMEOUT_SECONDS",
    "VALIDATION_TYPES",
    "ConfigError",
    "OutputNotJSONError",
    "ValidationOutcome",
    "ValidationResultData",
    "ValidationSpec",
    "apply_validations",
    "backtracking_risk",
    "check_config",
    "parse_output_json",
]

logger = logging.getLogger(__name__)

JSON_SCHEMA = "JSON_SCHEMA"
REGEX = "REGEX"
JMESPATH = "JMESPATH"
VALIDATION_TYPES: tuple[str, ...] = (JSON_SCHEMA, REGEX, JMESPATH)

MAX_SCHEMA_BYTES = 256 * 1024
MAX_PATTERN_LENGTH = 1_000
MAX_EXPRESSION_LENGTH = 1_000
REGEX_TIMEOUT_SECONDS = 1.0
MAX_REPORTED_ERRORS = 5
_ERROR_SCAN_LIMIT = 100
_MAX_CONFIG_CHARS = 1024 * 1024  # bounds the work on any config; each type has a tighter limit
_MESSAGE_PART_LIMIT = 200

_ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    JSON_SCHEMA: ("schema",),
    REGEX: ("pattern", "flags"),
    JMESPATH: ("expression",),
}
_EXAMPLES = {
    JSON_SCHEMA: '{"schema": {"type": "object"}}',
    REGEX: '{"pattern": "^\\\\d+$", "flags": "i"}',
    JMESPATH: '{"expression": "items[0].name"}',
}
_FLAG_NAMES = {"i": "ignore case", "m": "multiline", "s": "dot matches newline", "x": "verbose"}
_RE_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_REGEX_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "x": regex.VERBOSE}


# --------------------------------------------------------------------------- public data


@dataclass(frozen=True, slots=True)
class ConfigError:
    """A problem with a config. ``field`` is relative to the config (``[]``: the whole config)."""

    field: list[str]
    message: str


@dataclass(frozen=True, slots=True)
class ValidationSpec:
    """One validation to apply. Any object with these four attributes (an ORM row) works too."""

    id: Any
    name: str
    type: str
    config: dict


@dataclass(frozen=True, slots=True)
class ValidationResultData:
    validation_id: Any
    name: str
    passed: bool
    message: str | None


@dataclass(frozen=True, slots=True)
class ValidationOutcome:
    status: Literal["PASSED", "FAILED", "SKIPPED"]
    results: list[ValidationResultData]
    validated_output: Any | None


class OutputNotJSONError(ValueError):
    """The output could not be read as JSON; the message says why, for people."""


# --------------------------------------------------------------------------- public functions


def check_config(type: str, config: Any) -> list[ConfigError]:  # "type": the API's name for it
    """Return every problem with ``config`` for a validation of ``type`` (empty: valid)."""
    type_name = _type_name(type)
    if type_name not in VALIDATION_TYPES:
        return [ConfigError([], _unknown_type_message(type))]
    if not isinstance(config, dict):
        return [
            ConfigError(
                [],
                f"config must be a JSON object, like {_EXAMPLES[type_name]}; "
                f"got {json_type(config)}",
            )
        ]
    canonical, problem = _canonical(config)
    if problem is not None:
        return [ConfigError([], problem)]
    _, errors = _compile(type_name, canonical)
    return [ConfigError(list(field), message) for field, message in errors]


def apply_validations(
    output: str | None,
    validations: Sequence[ValidationSpec],
    *,
    regex_timeout: float = REGEX_TIMEOUT_SECONDS,
) -> ValidationOutcome:
    """Apply ``validations`` to ``output``, in order. Never raises.

    Status is SKIPPED without validations, PASSED when every one passed, FAILED otherwise.
    ``validated_output`` is the output parsed as JSON when a JSON_SCHEMA or JMESPATH
    validation passed, else None.
    """
    try:
        specs = list(validations or ())
    except MemoryError:  # out of memory: the sandbox worker reports it and is replaced
        raise
    except Exception:  # not a sequence: nothing we can apply
        logger.warning("apply_validations got %r instead of a sequence", type(validations).__name__)
        specs = []
    if not specs:
        return ValidationOutcome(status="SKIPPED", results=[], validated_output=None)
    text = output if isinstance(output, str) else ("" if output is None else str(output))
    document = _LazyJSON(text)
    results: list[ValidationResultData] = []
    json_passed = False
    for spec in specs:
        passed, message, reads_json = _apply_one(spec, text, document, regex_timeout)
        json_passed = json_passed or (passed and reads_json)
        results.append(
            ValidationResultData(
                validation_id=getattr(spec, "id", None),
                name=str(getattr(spec, "name", "")),
                passed=passed,
                message=message,
            )
        )
    status: Literal["PASSED", "FAILED"] = "PASSED" if all(r.passed for r in results) else "FAILED"
    validated = document.value if json_passed and document.ok else None
    return ValidationOutcome(status=status, results=results, validated_output=validated)


_FENCE = re.compile(r"\A```[ \t]*(?:json(?![\w-]))?(.*?)```\Z", re.DOTALL | re.IGNORECASE)


def _reject_constant(name: str) -> Any:
    raise OutputNotJSONError(f"output is not valid JSON: {name} is not a JSON value")


def parse_output_json(output: str) -> Any:
    """Parse a model's output as JSON, tolerating whitespace and one enclosing code fence.

    Raises :class:`OutputNotJSONError` with a message for people.
    """
    text = output.strip()
    fenced = _FENCE.match(text)
    if fenced is not None:
        text = fenced.group(1).strip()
    if not text:
        raise OutputNotJSONError("output is empty; expected a JSON document")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise OutputNotJSONError(
            f"output is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise OutputNotJSONError("output is not usable JSON: it is nested too deeply") from None
    except OutputNotJSONError:
        raise
    except ValueError as exc:  # e.g. an integer with too many digits
        raise OutputNotJSONError(f"output is not usable JSON: {exc}") from None


# --------------------------------------------------------------------------- compile + cache

_Rule = Callable[[str, "_LazyJSON", float], tuple[bool, "str | None"]]
_Errors = tuple[tuple[tuple[str, ...], str], ...]


@functools.lru_cache(maxsize=256)
def _compile(type_name: str, canonical: str) -> tuple[_Rule | None, _Errors]:
    """Compile a config (given as canonical JSON) into a rule, or return its errors."""
    config = json.loads(canonical)
    errors = [
        ((key,), f"unknown key {key!r}; allowed keys: {', '.join(_ALLOWED_KEYS[type_name])}")
        for key in sorted(config)
        if key not in _ALLOWED_KEYS[type_name]
    ]
    compiler = {JSON_SCHEMA: _compile_json_schema, REGEX: _compile_regex, JMESPATH: _compile_jmespath}
    try:
        rule, problems = compiler[type_name](config)
    except RecursionError:
        rule, problems = None, [((), "config is nested too deeply to be checked")]
    except MemoryError:  # out of memory: the sandbox worker reports it and is replaced
        raise
    except Exception as exc:  # a bug or a library surprise: refuse the config, say what happened
        logger.warning("could not check a %s config", type_name, exc_info=True)
        rule, problems = None, [((), _clip(f"config could not be checked: {type(exc).__name__}: {exc}", 500))]
    errors.extend(problems)
    if errors:
        return None, tuple(errors)
    return rule, ()


def _apply_one(
    spec: Any, output: str, document: _LazyJSON, regex_timeout: float
) -> tuple[bool, str | None, bool]:
    """Apply one validation: (passed, message, whether it reads the output as JSON)."""
    try:
        type_name = _type_name(spec.type)
        if type_name not in VALIDATION_TYPES:
            return False, _unknown_type_message(spec.type), False
        reads_json = type_name != REGEX
        config = spec.config
        if not isinstance(config, dict):
            return False, f"invalid configuration: config must be a JSON object, got {json_type(config)}", reads_json
        canonical, problem = _canonical(config)
        if problem is not None:
            return False, f"invalid configuration: {problem}", reads_json
        rule, errors = _compile(type_name, canonical)
        if rule is None:
            return False, "invalid configuration: " + "; ".join(m for _, m in errors), reads_json
        passed, message = rule(output, document, regex_timeout)
        return passed, message, reads_json
    except MemoryError:  # out of memory: the sandbox worker reports it and is replaced
        raise
    except Exception as exc:  # never raise: an unexpected failure fails this validation only
        logger.warning("validation %r could not be run", getattr(spec, "id", None), exc_info=True)
        return False, _clip(f"validation could not be run: {type(exc).__name__}: {exc}", 500), False


class _LazyJSON:
    """The output parsed as JSON, at most once, on first use."""

    __slots__ = ("_parsed", "error", "ok", "text", "value")

    def __init__(self, text: str) -> None:
        self.text = text
        self._parsed = False
        self.ok = False
        self.value: Any = None
        self.error: str | None = None

    def get(self) -> tuple[bool, Any, str | None]:
        if not self._parsed:
            self._parsed = True
            try:
                self.value = parse_output_json(self.text)
                self.ok = True
            except OutputNotJSONError as exc:
                self.error = str(exc)
        return self.ok, self.value, self.error


# --------------------------------------------------------------------------- REGEX


def _compile_regex(config: dict) -> tuple[_Rule | None, list]:
    errors: list = []
    pattern = config.get("pattern")
    if "pattern" not in config:
        errors.append((("pattern",), "pattern is required: the regular expression the output must match"))
    elif not isinstance(pattern, str):
        errors.append((("pattern",), f"pattern must be a string, got {json_type(pattern)}"))
    elif not pattern:
        errors.append((("pattern",), "pattern must not be empty"))
    elif len(pattern) > MAX_PATTERN_LENGTH:
        errors.append(
            (("pattern",), f"pattern is {len(pattern)} characters long; at most {MAX_PATTERN_LENGTH} are allowed")
        )
    flags = config.get("flags")
    if flags is None:
        flags = ""
    elif not isinstance(flags, str):
        errors.append((("flags",), f'flags must be a string of letters such as "im", got {json_type(flags)}'))
        flags = ""
    else:
        unknown = sorted({c for c in flags if c not in _FLAG_NAMES})
        if unknown:
            allowed = ", ".join(f"{c} ({name})" for c, name in _FLAG_NAMES.items())
            errors.append(
                (("flags",), f"unknown flag(s) {', '.join(map(repr, unknown))}; allowed flags: {allowed}")
            )
    if errors:
        return None, errors
    assert isinstance(pattern, str)  # checked above (errors otherwise)

    re_flags = 0
    regex_flags = regex.VERSION0
    for letter in set(flags):
        re_flags |= _RE_FLAGS[letter]
        regex_flags |= _REGEX_FLAGS[letter]
    try:
        re.compile(pattern, re_flags)
    except re.error as exc:
        return None, [(("pattern",), f"pattern does not compile: {_re_error_text(exc, pattern)}")]
    except (RecursionError, OverflowError) as exc:
        return None, [(("pattern",), f"pattern does not compile: {exc}")]
    risk = backtracking_risk(pattern, re_flags)
    if risk is not None:
        return None, [(("pattern",), f"pattern is prone to catastrophic backtracking: {risk}")]
    too_big = repeat_size_problem(pattern, re_flags)
    if too_big is not None:
        return None, [(("pattern",), f"pattern is too big to match: {too_big}")]
    try:
        compiled = regex.compile(pattern, regex_flags)
    except regex.error as exc:
        return None, [(("pattern",), f"pattern is not supported by the matching engine: {exc}")]
    shown = _clip(repr(pattern), 120) + (f" with flags {flags!r}" if flags else "")

    def rule(output: str, document: _LazyJSON, timeout: float) -> tuple[bool, str | None]:
        try:
            found = compiled.search(output, timeout=timeout, concurrent=True)
        except TimeoutError:
            return False, (
                f"matching the pattern {shown} timed out after {timeout:g} s; "
                "the pattern is too expensive for this output, simplify it"
            )
        if found is not None:
            return True, None
        return False, f"output does not match the pattern {shown}"

    return rule, []


def _re_error_text(exc: re.error, pattern: str) -> str:
    text = exc.msg
    if exc.pos is not None:
        text += f" at position {exc.pos}"
        if "\n" in pattern and exc.lineno is not None:
            text += f" (line {exc.lineno}, column {exc.colno})"
    return text


# --------------------------------------------------------------------------- JMESPATH


def _compile_jmespath(config: dict) -> tuple[_Rule | None, list]:
    expression = config.get("expression")
    if "expression" not in config:
        return None, [(("expression",), "expression is required: a JMESPath expression that must be truthy")]
    if not isinstance(expression, str):
        return None, [(("expression",), f"expression must be a string, got {json_type(expression)}")]
    if not expression.strip():
        return None, [(("expression",), "expression must not be empty")]
    if len(expression) > MAX_EXPRESSION_LENGTH:
        return None, [
            (
                ("expression",),
                f"expression is {len(expression)} characters long; at most {MAX_EXPRESSION_LENGTH} are allowed",
            )
        ]
    try:
        parsed = jmespath.compile(expression)
    except jmespath.exceptions.LexerError as exc:
        return None, [(("expression",), f"invalid JMESPath expression: {exc.message} at position {exc.lex_position}")]
    except jmespath.exceptions.ParseError as exc:
        detail = exc.msg
        if exc.token_value is not None and exc.msg == "invalid token":
            detail = f"unexpected {exc.token_value!r}"
        elif isinstance(exc, jmespath.exceptions.IncompleteExpressionError):
            detail = "incomplete expression"
        return None, [(("expression",), f"invalid JMESPath expression: {detail} at position {exc.lex_position}")]
    except (jmespath.exceptions.JMESPathError, ValueError, RecursionError) as exc:
        return None, [(("expression",), f"invalid JMESPath expression: {exc}")]
    shown = _clip(repr(expression), 120)

    def rule(output: str, document: _LazyJSON, timeout: float) -> tuple[bool, str | None]:
        ok, value, error = document.get()
        if not ok:
            return False, error
        try:
            result = parsed.search(value)
        except jmespath.exceptions.JMESPathError as exc:
            return False, _clip(f"expression {shown} could not be evaluated: {exc}", 500)
        if _jmespath_truthy(result):
            return True, None
        return False, (
            f"expression {shown} evaluated to {_clip(json.dumps(result, ensure_ascii=False), _MESSAGE_PART_LIMIT)}, "
            "which is not truthy (null, false, empty strings, arrays and objects fail)"
        )

    return rule, []


def _jmespath_truthy(value: Any) -> bool:
    """JMESPath truthiness: null, false, "", [] and {} are false; anything else, 0 too, is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


# --------------------------------------------------------------------------- JSON_SCHEMA

_DIALECTS: dict[str, tuple[type[Any], str]] = {}
for _cls, _label in (
    (jsonschema.Draft202012Validator, "Draft 2020-12"),
    (jsonschema.Draft201909Validator, "Draft 2019-09"),
    (jsonschema.Draft7Validator, "Draft 7"),
    (jsonschema.Draft6Validator, "Draft 6"),
    (jsonschema.Draft4Validator, "Draft 4"),
    (jsonschema.Draft3Validator, "Draft 3"),
):
    _meta_id = _cls.META_SCHEMA.get("$id") or _cls.META_SCHEMA["id"]
    _DIALECTS[_meta_id.rstrip("#").replace("http://", "https://", 1)] = (_cls, _label)
del _cls, _label, _meta_id
_DATA_KEYWORDS = frozenset({"const", "enum", "examples", "default"})
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def _refuse_retrieval(uri: str) -> referencing.Resource:
    raise referencing.exceptions.NoSuchResource(uri)  # the attrs field ref


# referencing's attrs classes are opaque to mypy (its _attrs.pyi predates PEP 681): no keywords seen.
_NO_NETWORK_REGISTRY: referencing.Registry = referencing.Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


def _compile_json_schema(config: dict) -> tuple[_Rule | None, list]:
    if "schema" not in config:
        return None, [(("schema",), "schema is required: the JSON Schema the output must follow")]
    schema = config["schema"]
    if not isinstance(schema, (dict, bool)):
        return None, [(("schema",), f"schema must be a JSON Schema object (or true/false), got {json_type(schema)}")]
    size = len(json.dumps(schema, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_SCHEMA_BYTES:
        return None, [(("schema",), f"schema is {size} bytes when serialised; at most {MAX_SCHEMA_BYTES} are allowed")]

    declared = schema.get("$schema") if isinstance(schema, dict) else None
    if declared is None:
        cls, label = jsonschema.Draft202012Validator, "Draft 2020-12"
    else:
        key = declared.rstrip("#").replace("http://", "https://", 1) if isinstance(declared, str) else None
        if key not in _DIALECTS:
            known = ", ".join(sorted({c.META_SCHEMA.get("$id") or c.META_SCHEMA["id"] for c, _ in _DIALECTS.values()}))
            return None, [
                (
                    ("schema",),
                    f"$schema {declared!r} is not a supported JSON Schema dialect; use one of {known}, "
                    "or leave it out for Draft 2020-12",
                )
            ]
        cls, label = _DIALECTS[key]
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        return None, [
            (
                ("schema",),
                f"schema is not a valid JSON Schema ({label}): "
                f"{_clip(exc.message, _MESSAGE_PART_LIMIT)} at {_json_path(exc.path)}",
            )
        ]

    problems = _schema_reference_problems(schema, cls) + _schema_pattern_problems(schema)
    if problems:
        return None, [(("schema",), problem) for problem in problems]
    validator = cls(schema, registry=_NO_NETWORK_REGISTRY, format_checker=cls.FORMAT_CHECKER)

    def rule(output: str, document: _LazyJSON, timeout: float) -> tuple[bool, str | None]:
        ok, value, error = document.get()
        if not ok:
            return False, error
        found = list(itertools.islice(validator.iter_errors(value), _ERROR_SCAN_LIMIT + 1))
        if not found:
            return True, None
        found.sort(key=lambda e: _path_sort_key(e.absolute_path))
        shown = [
            f"{_json_path(e.absolute_path)}: {_clip(e.message, _MESSAGE_PART_LIMIT)}"
            for e in found[:MAX_REPORTED_ERRORS]
        ]
        text = f"output does not match the schema: {'; '.join(shown)}"
        if len(found) > _ERROR_SCAN_LIMIT:
            text += f"; and more than {_ERROR_SCAN_LIMIT - MAX_REPORTED_ERRORS} other errors"
        elif len(found) > MAX_REPORTED_ERRORS:
            extra = len(found) - MAX_REPORTED_ERRORS
            text += f"; and {extra} other error{'s' if extra > 1 else ''}"
        return False, text

    return rule, []


def _schema_nodes(schema: Any) -> Iterator[tuple[dict, tuple]]:
    """Every object in a schema with its path, skipping data (const, enum, examples, default)."""
    stack: list[tuple[Any, tuple]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            yield node, path
            children = [(v, (*path, k)) for k, v in node.items() if k not in _DATA_KEYWORDS]
        elif isinstance(node, list):
            children = [(v, (*path, i)) for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))


def _schema_reference_problems(schema: Any, cls: type[Any]) -> list[str]:
    """Refuse references that leave the schema (remote or unknown) or do not resolve."""
    if not isinstance(schema, dict):
        return []
    id_keys = ("$id", "id") if cls in (jsonschema.Draft3Validator, jsonschema.Draft4Validator) else ("$id",)
    bases: dict[tuple, str] = {(): ""}
    documents = {""}
    refs: list[tuple[str, str, tuple]] = []
    for node, path in _schema_nodes(schema):
        base = _parent_base(bases, path)
        for id_key in id_keys:
            if isinstance(node.get(id_key), str):
                base = _join_uri(base, node[id_key])
                documents.add(base)
                break
        bases[path] = base
        for ref_key in _REF_KEYWORDS:
            if isinstance(node.get(ref_key), str):
                refs.append((node[ref_key], base, (*path, ref_key)))
    if not refs:
        return []

    problems: list[str] = []
    registry = None
    for ref, base, path in refs:
        target = _join_uri(base, ref)
        where = _json_path(path)
        if target not in documents:
            if urlsplit(target).scheme.lower() in ("http", "https", "ftp", "file"):
                problems.append(
                    f"remote $ref {ref!r} at {where} is not allowed: schemas are never fetched; "
                    "put the referenced schema under $defs and refer to it as '#/$defs/<name>'"
                )
            else:
                problems.append(
                    f"$ref {ref!r} at {where} does not point inside this schema; "
                    "use a local reference such as '#/$defs/<name>'"
                )
            continue
        if registry is None:
            spec = referencing.jsonschema.specification_with(
                cls.META_SCHEMA.get("$id") or cls.META_SCHEMA["id"]
            )
            root = spec.create_resource(schema)
            registry = _NO_NETWORK_REGISTRY.with_resource(root.id() or "", root).crawl()
        try:
            registry.resolver(base_uri=base).lookup(ref)
        except referencing.exceptions.Unresolvable:
            problems.append(f"$ref {ref!r} at {where} cannot be resolved: nothing in the schema is at that location")
    return problems


def _parent_base(bases: dict[tuple, str], path: tuple) -> str:
    for cut in range(len(path) - 1, -1, -1):
        if path[:cut] in bases:
            return bases[path[:cut]]
    return ""


def _join_uri(base: str, ref: str) -> str:
    """The document a reference points to (without fragment), like the referencing library."""
    if ref.startswith("#"):
        return base
    if not base:
        return urldefrag(ref).url
    return urldefrag(urljoin(base, ref)).url


def _schema_pattern_problems(schema: Any) -> list[str]:
    """jsonschema runs `pattern` and `patternProperties` with `re`; refuse slow patterns there too."""
    problems: list[str] = []
    for node, path in _schema_nodes(schema):
        candidates: list[tuple[str, tuple]] = []
        if isinstance(node.get("pattern"), str):
            candidates.append((node["pattern"], (*path, "pattern")))
        if isinstance(node.get("patternProperties"), dict):
            candidates.extend((key, (*path, "patternProperties", key)) for key in node["patternProperties"])
        for pattern, where in candidates:
            if len(pattern) > MAX_PATTERN_LENGTH:
                problems.append(
                    f"pattern at {_json_path(where)} is {len(pattern)} characters long; "
                    f"at most {MAX_PATTERN_LENGTH} are allowed"
                )
                continue
            try:
                risk = backtracking_risk(pattern)
                too_big = repeat_size_problem(pattern)
            except re.error as exc:
                problems.append(f"pattern at {_json_path(where)} does not compile: {_re_error_text(exc, pattern)}")
                continue
            if risk is not None:
                problems.append(f"pattern at {_json_path(where)} is prone to catastrophic backtracking: {risk}")
            elif too_big is not None:
                problems.append(f"pattern at {_json_path(where)} is too big to match: {too_big}")
    return problems


# --------------------------------------------------------------------------- helpers


def _type_name(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, str) else value.name
    return value


def _unknown_type_message(value: Any) -> str:
    return f"unknown validation type {_type_name(value)!r}; expected one of {', '.join(VALIDATION_TYPES)}"


def _canonical(config: dict) -> tuple[str, str | None]:
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return "", (
            "config must contain only JSON values "
            "(objects with string keys, arrays, strings, finite numbers, booleans, null)"
        )
    except RecursionError:
        return "", "config is nested too deeply"
    if len(text) > _MAX_CONFIG_CHARS:
        return "", f"config is {len(text)} characters when serialised; at most {_MAX_CONFIG_CHARS} are allowed"
    return text, None


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")


def _json_path(path: Any) -> str:
    text = "$"
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and _IDENTIFIER.match(part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(str(part), ensure_ascii=False)}]"
    return text


def _path_sort_key(path: Any) -> tuple:
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in path)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
