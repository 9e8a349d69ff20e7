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

Regular expressions are checked statically for catastrophic backtracking (see
:func:`backtracking_risk`), and at apply time they run with the ``regex`` module's timeout as
a second line of defence (``regex_timeout``, 1 s by default). Matching releases the GIL
(``concurrent=True``), so callers on an event loop should run :func:`apply_validations` in a
worker thread.
"""

from __future__ import annotations

import enum
import functools
import itertools
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Sequence
from urllib.parse import urldefrag, urljoin, urlsplit

import jmespath
import jmespath.exceptions
import jsonschema
import jsonschema.exceptions
import referencing
import referencing.exceptions
import referencing.jsonschema
import regex

try:  # Python >= 3.11
    from re import _constants as _sre
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

__all__ = [
    "JSON_SCHEMA",
    "REGEX",
    "JMESPATH",
    "VALIDATION_TYPES",
    "MAX_SCHEMA_BYTES",
    "MAX_PATTERN_LENGTH",
    "MAX_EXPRESSION_LENGTH",
    "REGEX_TIMEOUT_SECONDS",
    "ConfigError",
    "ValidationSpec",
    "ValidationResultData",
    "ValidationOutcome",
    "OutputNotJSONError",
    "check_config",
    "apply_validations",
    "parse_output_json",
    "backtracking_risk",
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


def check_config(type: str, config: Any) -> list[ConfigError]:  # noqa: A002 - API name
    """Return every problem with ``config`` for a validation of ``type`` (empty: valid)."""
    type_name = _type_name(type)
    if type_name not in VALIDATION_TYPES:
        return [ConfigError([], _unknown_type_message(type))]
    if not isinstance(config, dict):
        return [
            ConfigError(
                [],
                f"config must be a JSON object, like {_EXAMPLES[type_name]}; "
                f"got {_json_type(config)}",
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


def backtracking_risk(pattern: str, flags: int = 0) -> str | None:
    """Explain why ``pattern`` risks catastrophic backtracking, or return None if it looks safe.

    A static check on the parsed pattern. Inside every part that can repeat (``*``, ``+``,
    ``{m,n}`` with n > 1), it looks for two ways of matching the same text:

    * a variable-length piece followed, possibly after the next repetition begins, by another
      variable-length piece (or itself) that can match the same characters, with no required
      character in between that the first cannot match: ``(a+)+``, ``(a*)*``, ``(.*)*``,
      ``(\\w+\\s?)+``, ``(.*a){20}``. ``([a-z]+,)+`` and ``(\\d{1,3}\\.){3}`` are fine: the
      separator tells the repetitions apart;
    * alternatives that can match the same text: ``(a|a)*``, ``(\\w|\\d+)*``.

    Possessive quantifiers (``a++``) and atomic groups (``(?>...)``) give no choice back and
    count as safe. The check is conservative: it may refuse a few patterns that would in fact
    run fast. Polynomial slowdowns outside repetitions (``.*a.*b`` over long text) are not
    refused; the timeout at apply time covers them. Raises ``re.error`` when the pattern does
    not compile.
    """
    return _Analyzer(_sre_parse.parse(pattern, flags)).run()


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
            return False, f"invalid configuration: config must be a JSON object, got {_json_type(config)}", reads_json
        canonical, problem = _canonical(config)
        if problem is not None:
            return False, f"invalid configuration: {problem}", reads_json
        rule, errors = _compile(type_name, canonical)
        if rule is None:
            return False, "invalid configuration: " + "; ".join(m for _, m in errors), reads_json
        passed, message = rule(output, document, regex_timeout)
        return passed, message, reads_json
    except Exception as exc:  # never raise: an unexpected failure fails this validation only
        logger.warning("validation %r could not be run", getattr(spec, "id", None), exc_info=True)
        return False, _clip(f"validation could not be run: {type(exc).__name__}: {exc}", 500), False


class _LazyJSON:
    """The output parsed as JSON, at most once, on first use."""

    __slots__ = ("text", "_parsed", "ok", "value", "error")

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
        errors.append((("pattern",), f"pattern must be a string, got {_json_type(pattern)}"))
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
        errors.append((("flags",), f'flags must be a string of letters such as "im", got {_json_type(flags)}'))
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
        return None, [(("expression",), f"expression must be a string, got {_json_type(expression)}")]
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

_DIALECTS: dict[str, tuple[type, str]] = {}
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
    raise referencing.exceptions.NoSuchResource(ref=uri)


_NO_NETWORK_REGISTRY: referencing.Registry = referencing.Registry(retrieve=_refuse_retrieval)


def _compile_json_schema(config: dict) -> tuple[_Rule | None, list]:
    if "schema" not in config:
        return None, [(("schema",), "schema is required: the JSON Schema the output must follow")]
    schema = config["schema"]
    if not isinstance(schema, (dict, bool)):
        return None, [(("schema",), f"schema must be a JSON Schema object (or true/false), got {_json_type(schema)}")]
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
            children = [(v, path + (k,)) for k, v in node.items() if k not in _DATA_KEYWORDS]
        elif isinstance(node, list):
            children = [(v, path + (i,)) for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))


def _schema_reference_problems(schema: Any, cls: type) -> list[str]:
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
                refs.append((node[ref_key], base, path + (ref_key,)))
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
            candidates.append((node["pattern"], path + ("pattern",)))
        if isinstance(node.get("patternProperties"), dict):
            candidates.extend((key, path + ("patternProperties", key)) for key in node["patternProperties"])
        for pattern, where in candidates:
            if len(pattern) > MAX_PATTERN_LENGTH:
                problems.append(
                    f"pattern at {_json_path(where)} is {len(pattern)} characters long; "
                    f"at most {MAX_PATTERN_LENGTH} are allowed"
                )
                continue
            try:
                risk = backtracking_risk(pattern)
            except re.error as exc:
                problems.append(f"pattern at {_json_path(where)} does not compile: {_re_error_text(exc, pattern)}")
                continue
            if risk is not None:
                problems.append(f"pattern at {_json_path(where)} is prone to catastrophic backtracking: {risk}")
    return problems


# --------------------------------------------------------------------------- catastrophic backtracking

_OP = _sre
_SINGLE_CHAR_OPS = frozenset({_OP.LITERAL, _OP.NOT_LITERAL, _OP.ANY, _OP.IN})
_REPEAT_OPS = frozenset({_OP.MAX_REPEAT, _OP.MIN_REPEAT, _OP.POSSESSIVE_REPEAT})
_ZERO_WIDTH_OPS = frozenset({_OP.AT, _OP.ASSERT, _OP.ASSERT_NOT})
_UNBOUNDED = int(_OP.MAXREPEAT)
_CATEGORY_RE = {
    _OP.CATEGORY_DIGIT: re.compile(r"\d"),
    _OP.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    _OP.CATEGORY_SPACE: re.compile(r"\s"),
    _OP.CATEGORY_NOT_SPACE: re.compile(r"\S"),
    _OP.CATEGORY_WORD: re.compile(r"\w"),
    _OP.CATEGORY_NOT_WORD: re.compile(r"\W"),
    _OP.CATEGORY_LINEBREAK: re.compile(r"\n"),
    _OP.CATEGORY_NOT_LINEBREAK: re.compile(r"[^\n]"),
}
_CATEGORY_TEXT = {
    _OP.CATEGORY_DIGIT: r"\d", _OP.CATEGORY_NOT_DIGIT: r"\D", _OP.CATEGORY_SPACE: r"\s",
    _OP.CATEGORY_NOT_SPACE: r"\S", _OP.CATEGORY_WORD: r"\w", _OP.CATEGORY_NOT_WORD: r"\W",
}
_AT_TEXT = {
    _OP.AT_BEGINNING: "^", _OP.AT_BEGINNING_STRING: r"\A", _OP.AT_END: "$",
    _OP.AT_END_STRING: r"\Z", _OP.AT_BOUNDARY: r"\b", _OP.AT_NON_BOUNDARY: r"\B",
}
# Characters used to decide whether two character classes overlap: Latin-1 and samples of
# other scripts, digits, spaces and case oddities; each pattern adds its own literals and
# range endpoints (and samples inside ranges), which makes range-vs-range overlap exact.
_BASE_PROBES = tuple(chr(i) for i in range(256)) + tuple(
    "\u0100\u0130\u0131\u017f\u01c5\u0391\u03a9\u03c9\u0416\u0436\u05d0\u0627\u0663\u0966"
    "\u0e01\u1e9e\u2000\u200b\u2013\u201c\u2028\u2029\u20ac\u212a\u2160\u3000\u3042\u30a2"
    "\u4e00\u4e2d\uac00\ufeff\uff11\uff21\U0001d400\U0001f600\U00020000"
)
_ADVICE = (
    "Rewrite it so that each repetition can match in only one way: drop the nested quantifier "
    "(a+ instead of (a+)+), end each repetition with a character the repeated part cannot "
    "contain (([a-z]+,)+), make alternatives mutually exclusive, or make the inner part "
    "possessive (a++) or atomic ((?>...))."
)


@dataclass(frozen=True, slots=True)
class _Unit:
    """One piece of a sequence, as the backtracking check sees it."""

    item: tuple
    chars: frozenset  # every character it may consume
    first: frozenset  # characters it may start with
    ext: frozenset  # characters that may extend one of its complete matches
    min: int
    max: int
    variable: bool  # its length is a backtracking choice
    simple: bool  # a single character class, possibly repeated


class _Analyzer:
    def __init__(self, tree: Any) -> None:
        self.state = tree.state
        flags = tree.state.flags
        for op, av in self._walk(tree):
            if op is _OP.SUBPATTERN:
                flags |= av[1]
        self.ignorecase = bool(flags & re.IGNORECASE)
        self.dotall = bool(flags & re.DOTALL)
        self.tree = tree
        self.names = {number: name for name, number in tree.state.groupdict.items()}
        extra: set[str] = set()
        for op, av in self._walk(tree):
            for code in self._codes(op, av):
                extra.add(chr(code))
        if self.ignorecase:
            extra |= {v for ch in list(extra) for v in self._case_variants(ch)}
        self.probes = tuple(dict.fromkeys(_BASE_PROBES + tuple(sorted(extra))))
        self.everything = frozenset(self.probes)
        # probe -> the characters it stands for (its case variants when ignoring case)
        self._forms = {p: tuple(self._case_variants(p)) if self.ignorecase else (p,) for p in self.probes}
        self._probes_by_form: dict[str, set[str]] = {}
        for probe, forms in self._forms.items():
            for form in forms:
                self._probes_by_form.setdefault(form, set()).add(probe)
        self._char_cache: dict[Any, frozenset] = {}
        self._composite_cache: dict[int, frozenset] = {}  # by id(): the tree outlives the analysis
        self._unit_cache: dict[tuple, _Unit] = {}

    # -- traversal

    @staticmethod
    def _children(op: Any, av: Any) -> list:
        if op in _REPEAT_OPS:
            return [av[2]]
        if op is _OP.SUBPATTERN:
            return [av[-1]]
        if op is _OP.BRANCH:
            return list(av[1])
        if op in (_OP.ASSERT, _OP.ASSERT_NOT):
            return [av[1]]
        if op is _OP.ATOMIC_GROUP:
            return [av]
        if op is _OP.GROUPREF_EXISTS:
            return [p for p in av[1:] if p is not None]
        return []

    def _walk(self, sub: Any) -> Iterator[tuple]:
        for op, av in sub:
            yield op, av
            for child in self._children(op, av):
                yield from self._walk(child)

    @staticmethod
    def _codes(op: Any, av: Any) -> Iterator[int]:
        if op in (_OP.LITERAL, _OP.NOT_LITERAL):
            yield av
        elif op is _OP.IN:
            for o, a in av:
                if o in (_OP.LITERAL, _OP.NOT_LITERAL):
                    yield a
                elif o is _OP.RANGE:
                    lo, hi = a
                    yield from {lo, hi, max(lo - 1, 0), min(hi + 1, 0x10FFFF)}
                    yield from range(lo, hi, max(1, (hi - lo) // 8))

    # -- the check

    def run(self) -> str | None:
        return self._visit(self.tree)

    def _visit(self, sub: Any) -> str | None:
        for op, av in sub:
            if op in _REPEAT_OPS:
                lo, hi, body = av
                # A possessive repeat gives nothing back; only its own minimum count can force
                # it to try the splits of its body.
                if hi > 1 and (op is not _OP.POSSESSIVE_REPEAT or lo > 1):
                    problem = self._check_repeat((op, av), body)
                    if problem:
                        return problem
            for child in self._children(op, av):
                problem = self._visit(child)
                if problem:
                    return problem
        return None

    def _check_repeat(self, item: tuple, body: Any) -> str | None:
        units = self._units(body)
        for i, first in enumerate(units):
            if not first.ext:
                continue  # its end is fixed by what it matched: nothing to share
            for later in units[i + 1:] + units[: i + 1]:  # on into the next repetition
                if later.variable and first.ext & later.first:
                    return self._nested_message(item, first, later)
                if later.min >= 1 and not first.chars & later.first:
                    break  # a separator: `first` can never run past it
        for branch in self._branches(body):
            pair = self._overlapping_alternatives(branch)
            if pair is not None:
                return self._alternation_message(item, pair)
        return None

    def _units(self, sub: Any) -> list[_Unit]:
        units: list[_Unit] = []
        for op, av in sub:
            if op in _ZERO_WIDTH_OPS:
                continue
            if op is _OP.SUBPATTERN:
                units.extend(self._units(av[-1]))
                continue
            key = (op, id(av))  # the tree is alive as long as the analyzer: ids are stable
            unit = self._unit_cache.get(key)
            if unit is None:
                unit = self._unit_cache[key] = self._make_unit(op, av)
            if unit.max > 0:
                units.append(unit)
        return units

    def _make_unit(self, op: Any, av: Any) -> _Unit:
        item = (op, av)
        lo, hi = _sre_parse.SubPattern(self.state, [item]).getwidth()
        chars = self._chars(item)
        empty: frozenset = frozenset()
        if op in _SINGLE_CHAR_OPS:
            return _Unit(item, chars, chars, empty, lo, hi, False, True)
        if op in _REPEAT_OPS:
            count_lo, count_hi, body = av
            first, ext, _ = self._sequence(self._units(body))
            if op is _OP.POSSESSIVE_REPEAT:
                ext = empty  # takes all it can and gives nothing back
            elif count_lo != count_hi:
                ext = ext | first  # one more repetition
            simple = len(body) == 1 and body[0][0] in _SINGLE_CHAR_OPS
            return _Unit(item, chars, first, ext, lo, hi, lo != hi and op is not _OP.POSSESSIVE_REPEAT, simple)
        if op is _OP.BRANCH:
            alternatives = av[1]
            first, ext = empty, empty
            for alternative in alternatives:
                alt_first, alt_ext, _ = self._sequence(self._units(alternative))
                first, ext = first | alt_first, ext | alt_ext
            shapes = [self._signature(alt) for alt in alternatives]
            widths = [alt.getwidth() for alt in alternatives]
            extending = {
                y  # a match of x may go on as a match of y
                for x, y in itertools.permutations(range(len(alternatives)), 2)
                if widths[x][0] < widths[y][1] and not _distinct(shapes[x], shapes[y])
            }
            for y in extending:
                ext = ext | self._sub_chars(alternatives[y])
            return _Unit(item, chars, first, ext, lo, hi, lo != hi, False)
        if op is _OP.ATOMIC_GROUP:
            first, _, _ = self._sequence(self._units(av))
            return _Unit(item, chars, first, empty, lo, hi, False, False)
        if op is _OP.GROUPREF_EXISTS:
            first, ext = empty, empty
            for branch in av[1:]:
                if branch is not None:
                    branch_first, branch_ext, _ = self._sequence(self._units(branch))
                    first, ext = first | branch_first, ext | branch_ext
            return _Unit(item, chars, first, ext, lo, hi, lo != hi, False)
        # back-references and anything unforeseen: may start with anything, no choice of length
        return _Unit(item, chars, self.everything, empty, lo, hi, False, False)

    @staticmethod
    def _sequence(units: list[_Unit]) -> tuple[frozenset, frozenset, bool]:
        """(first characters, extension characters, nullable) of a sequence of units."""
        first: frozenset = frozenset()
        for unit in units:
            first |= unit.first
            if unit.min >= 1:
                break
        ext: frozenset = frozenset()
        for unit in reversed(units):
            ext |= unit.ext
            if unit.min >= 1:
                break
        return first, ext, all(unit.min == 0 for unit in units)

    def _branches(self, sub: Any) -> Iterator[Any]:
        for op, av in sub:
            if op is _OP.BRANCH:
                yield av
            if op in (_OP.ATOMIC_GROUP, _OP.POSSESSIVE_REPEAT, _OP.ASSERT, _OP.ASSERT_NOT):
                continue  # no backtracking into these once they matched
            for child in self._children(op, av):
                yield from self._branches(child)

    def _overlapping_alternatives(self, branch: Any) -> tuple | None:
        alternatives = branch[1]
        shapes = [self._signature(alt) for alt in alternatives]
        for i, j in itertools.combinations(range(len(alternatives)), 2):
            (lo_i, hi_i), (lo_j, hi_j) = alternatives[i].getwidth(), alternatives[j].getwidth()
            if lo_i > hi_j or lo_j > hi_i:
                # They never match text of the same length: one may begin like the other
                # ("x" and "xy"), which the unit check judges through the branch's extension.
                continue
            if not _distinct(shapes[i], shapes[j]):
                return alternatives[i], alternatives[j]
        return None

    def _signature(self, sub: Any) -> tuple[bool, list[frozenset]]:
        """(whether it can match the empty string, character sets of its leading positions)."""
        lo = sub.getwidth()[0]
        units = self._units(sub)
        lead: frozenset = frozenset()
        for index, unit in enumerate(units):
            if unit.min == 0:
                lead |= unit.first
                continue
            if lead:  # optional pieces before: only the first character is known
                return lo == 0, [lead | unit.first]
            positions: list[frozenset] = []
            for piece in units[index:]:
                if piece.min == 0:
                    break
                if piece.simple and piece.min == piece.max:  # a fixed run of one class
                    positions.extend([piece.first] * min(piece.min, 16))
                else:
                    positions.append(piece.first)
                    break
                if len(positions) >= 16:
                    break
            return lo == 0, positions
        return lo == 0, [lead] if lead else []

    # -- character sets

    def _chars(self, item: tuple) -> frozenset:
        op, av = item
        if op in _SINGLE_CHAR_OPS:
            key = (op, tuple(av) if op is _OP.IN else av)
            cached = self._char_cache.get(key)
            if cached is None:
                cached = self._char_cache[key] = self._single_chars(op, av)
            return cached
        if op in _ZERO_WIDTH_OPS:
            return frozenset()
        if op in (_OP.GROUPREF, getattr(_OP, "GROUPREF_IGNORE", None)):
            return self.everything
        result: frozenset = frozenset()
        for child in self._children(op, av):
            result |= self._sub_chars(child)
        return result

    def _sub_chars(self, sub: Any) -> frozenset:
        cached = self._composite_cache.get(id(sub))
        if cached is None:
            cached = frozenset()
            for item in sub:
                cached |= self._chars(item)
            self._composite_cache[id(sub)] = cached
        return cached

    def _single_chars(self, op: Any, av: Any) -> frozenset:
        """The probes a one-character item matches (case-insensitively when the pattern is)."""
        if op is _OP.LITERAL:
            return frozenset(self._probes_by_form.get(chr(av), ()))
        if op is _OP.NOT_LITERAL:
            return self.everything - self._probes_by_form.get(chr(av), set())
        if op is _OP.ANY:
            return self.everything if self.dotall else self.everything - {"\n"}
        negate = bool(av) and av[0][0] is _OP.NEGATE
        matched: frozenset = frozenset()
        for o, a in av[1:] if negate else av:
            if o is _OP.LITERAL:
                matched |= self._probes_by_form.get(chr(a), set())
            elif o is _OP.RANGE:
                lo, hi = a
                matched |= {p for p, forms in self._forms.items() if any(lo <= ord(f) <= hi for f in forms)}
            elif o is _OP.CATEGORY and a in _CATEGORY_RE:
                matched |= self._category(a)
            else:  # unknown set item: assume it may match anything
                matched = self.everything
        return self.everything - matched if negate else matched

    def _category(self, category: Any) -> frozenset:
        cached = self._char_cache.get(("category", category))
        if cached is None:
            pattern = _CATEGORY_RE[category]
            cached = frozenset(
                p for p, forms in self._forms.items() if any(pattern.fullmatch(f) for f in forms)
            )
            self._char_cache[("category", category)] = cached
        return cached

    @staticmethod
    def _case_variants(ch: str) -> set[str]:
        return {v for v in (ch, ch.lower(), ch.upper(), ch.casefold(), ch.swapcase()) if len(v) == 1}

    # -- messages

    def _nested_message(self, item: tuple, first: _Unit, later: _Unit) -> str:
        group = self._shown([item])
        if first is later:
            what = (
                f"the repeated group {group} contains {self._shown([first.item])}, which can itself "
                "match a varying number of characters, so the text can be divided among the "
                "repetitions in exponentially many ways when the match fails (nested quantifiers)."
            )
        else:
            what = (
                f"inside the repeated group {group}, {self._shown([first.item])} and "
                f"{self._shown([later.item])} can match the same characters with no required "
                "character between them that only one can match, so the text can be divided "
                "between them in exponentially many ways when the match fails."
            )
        return f"{what} {_ADVICE}"

    def _alternation_message(self, item: tuple, pair: tuple) -> str:
        if len(pair[0]) and len(pair[1]):
            which = f"the alternatives {self._shown(pair[0])} and {self._shown(pair[1])}"
        else:  # the parser moved their common beginning out of the group: what is left is empty
            which = "two alternatives (identical once their common beginning is set aside)"
        return (
            f"inside the repeated group {self._shown([item])}, {which} can match the same text, "
            "so each repetition can be matched in more than one way and a failing match takes "
            f"exponential time. {_ADVICE}"
        )

    def _shown(self, items: Any) -> str:
        items = list(items)
        text = self._render(items)
        if len(items) == 1 and items[0][0] is _OP.BRANCH:
            text = f"(?:{text})"
        return _clip(text, 60)

    def _render(self, items: Any) -> str:
        items = list(items)
        parts = []
        for op, av in items:
            text = self._render_item(op, av)
            parts.append(f"(?:{text})" if op is _OP.BRANCH and len(items) > 1 else text)
        return "".join(parts)

    def _render_atom(self, sub: Any) -> str:
        items = list(sub)
        text = self._render(items)
        if len(items) == 1 and (items[0][0] in _SINGLE_CHAR_OPS or items[0][0] in (
            _OP.SUBPATTERN, _OP.ATOMIC_GROUP, _OP.GROUPREF, _OP.ASSERT, _OP.ASSERT_NOT
        )):
            return text
        return f"(?:{text})"

    def _render_item(self, op: Any, av: Any) -> str:
        if op is _OP.LITERAL:
            return re.escape(chr(av))
        if op is _OP.NOT_LITERAL:
            return f"[^{_set_escape(chr(av))}]"
        if op is _OP.ANY:
            return "."
        if op is _OP.IN:
            negate = bool(av) and av[0][0] is _OP.NEGATE
            members = av[1:] if negate else av
            if not negate and len(members) == 1 and members[0][0] is _OP.CATEGORY:
                return _CATEGORY_TEXT.get(members[0][1], "?")
            parts = []
            for o, a in members:
                if o is _OP.LITERAL:
                    parts.append(_set_escape(chr(a)))
                elif o is _OP.RANGE:
                    parts.append(f"{_set_escape(chr(a[0]))}-{_set_escape(chr(a[1]))}")
                elif o is _OP.CATEGORY:
                    parts.append(_CATEGORY_TEXT.get(a, "?"))
            return "[" + ("^" if negate else "") + "".join(parts) + "]"
        if op in _REPEAT_OPS:
            lo, hi, body = av
            if (lo, hi) == (0, _UNBOUNDED):
                quantifier = "*"
            elif (lo, hi) == (1, _UNBOUNDED):
                quantifier = "+"
            elif (lo, hi) == (0, 1):
                quantifier = "?"
            elif lo == hi:
                quantifier = f"{{{lo}}}"
            elif hi == _UNBOUNDED:
                quantifier = f"{{{lo},}}"
            else:
                quantifier = f"{{{lo},{hi}}}"
            suffix = {_OP.MIN_REPEAT: "?", _OP.POSSESSIVE_REPEAT: "+"}.get(op, "")
            return self._render_atom(body) + quantifier + suffix
        if op is _OP.SUBPATTERN:
            group, add_flags, del_flags, body = av
            inner = self._render(body)
            if group is None:
                flags = _flag_letters(add_flags) + ("-" + _flag_letters(del_flags) if del_flags else "")
                return f"(?{flags}:{inner})"
            name = self.names.get(group)
            return f"(?P<{name}>{inner})" if name else f"({inner})"
        if op is _OP.BRANCH:
            return "|".join(self._render(alt) for alt in av[1])
        if op is _OP.AT:
            return _AT_TEXT.get(av, "")
        if op in (_OP.ASSERT, _OP.ASSERT_NOT):
            direction, body = av
            mark = ("=" if op is _OP.ASSERT else "!") if direction >= 0 else ("<=" if op is _OP.ASSERT else "<!")
            return f"(?{mark}{self._render(body)})"
        if op is _OP.ATOMIC_GROUP:
            return f"(?>{self._render(av)})"
        if op is _OP.GROUPREF:
            return f"\\{av}"
        if op is _OP.GROUPREF_EXISTS:
            condition, yes, no = av
            return f"(?({condition}){self._render(yes)}" + (f"|{self._render(no)}" if no is not None else "") + ")"
        return "?"


def _distinct(a: tuple[bool, list[frozenset]], b: tuple[bool, list[frozenset]]) -> bool:
    """Whether two alternatives' signatures (see _Analyzer._signature) can never match alike."""
    if a[0] and b[0]:
        return False  # both can match the empty string
    return any(not (x & y) for x, y in zip(a[1], b[1]))


def _set_escape(ch: str) -> str:
    return "\\" + ch if ch in "\\]^-[" else re.escape(ch) if not ch.isprintable() else ch


_FLAG_LETTERS = (("i", re.I), ("L", re.L), ("m", re.M), ("s", re.S), ("x", re.X), ("a", re.A))


def _flag_letters(flags: int) -> str:
    return "".join(letter for letter, bit in _FLAG_LETTERS if flags & bit)


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


def _json_type(value: Any) -> str:
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
