"""Evaluators: check an evaluator's config, and score an output with it.

Pure functions: no database, no network. The experiments service checks a config with
:func:`check_config` (in the sandbox) before it stores it; the scoring job scores a run's output with
:func:`evaluate` (in the sandbox too: patterns, schemas, expressions and the strings compared are
written by users). LLM_JUDGE is the exception: its config is checked here, but it is scored by the
engine, which calls a model (:func:`judge_messages` builds what it sends, :func:`parse_judge_reply`
reads the answer).

Every score is a float; ``passed`` is set where a threshold applies; ``explanation`` says why when
there is something to say. "The expected output" is ``config.expected`` when given, else the dataset
item's ``expectedOutput``.

``EXACT_MATCH`` ``{"expected"?, "ignoreCase"?: false, "normalizeWhitespace"?: false}``
    1 when the output equals the expected output (after the normalisations asked for:
    ``normalizeWhitespace`` trims and collapses runs of whitespace to one space), else 0.
``CONTAINS`` ``{"values"?: [...], "mode"?: "any" | "all", "ignoreCase"?: false}``
    1 when the output contains any (or all) of ``values`` — the expected output when left out.
``REGEX``, ``JSON_SCHEMA``, ``JMESPATH``
    The configs and checks of validations (:mod:`app.rules.validation`: the regex safety checks,
    schemas that never fetch, truthy expressions): 1 when the check passes, else 0.
``JSON_VALID`` ``{}``
    1 when the output is JSON (one code fence around it tolerated), else 0.
``LEVENSHTEIN`` ``{"expected"?, "threshold"?: 0.8, "ignoreCase"?: false, "normalizeWhitespace"?: false}``
    The normalised similarity 1 - distance / max(length) from the Levenshtein edit distance
    (rapidfuzz), 0 to 1; passes at ``threshold`` or above.
``LATENCY`` ``{"maxMs": ...}`` and ``COST`` ``{"maxUsd": ...}``
    The run's latency in milliseconds or cost in US dollars; passes at the limit or under. Lower is
    better.
``LLM_JUDGE`` ``{"model", "rubric", "provider"?, "scale"?: {"min": 0, "max": 1}, "passThreshold"?,
"temperature"?: 0, "maxTokens"?: 512}``
    A model grades the output against the rubric and answers ``{"score", "explanation"}``; passes at
    ``passThreshold`` or above when one is given.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein

from app.db.models.enums import EvaluatorType

from . import validation
from .validation import ConfigError, OutputNotJSONError, ValidationSpec, json_type, parse_output_json

# The types are the database's enum (one list); plain strings here, as configs and inputs carry them.
EXACT_MATCH = EvaluatorType.EXACT_MATCH.value
CONTAINS = EvaluatorType.CONTAINS.value
REGEX = EvaluatorType.REGEX.value
JSON_VALID = EvaluatorType.JSON_VALID.value
JSON_SCHEMA = EvaluatorType.JSON_SCHEMA.value
JMESPATH = EvaluatorType.JMESPATH.value
LEVENSHTEIN = EvaluatorType.LEVENSHTEIN.value
LLM_JUDGE = EvaluatorType.LLM_JUDGE.value
LATENCY = EvaluatorType.LATENCY.value
COST = EvaluatorType.COST.value
EVALUATOR_TYPES: tuple[str, ...] = tuple(t.value for t in EvaluatorType)
#: Types whose score is 1 (passed) or 0 (failed).
PASS_FAIL_TYPES = frozenset({EXACT_MATCH, CONTAINS, REGEX, JSON_VALID, JSON_SCHEMA, JMESPATH})
#: Types delegated to the validation rules (same configs, same checks).
VALIDATION_BACKED = frozenset({REGEX, JSON_SCHEMA, JMESPATH})

MAX_EXPECTED_CHARS = 100_000
MAX_VALUES = 100
MAX_VALUE_CHARS = 10_000
MAX_RUBRIC_CHARS = 20_000
MAX_JUDGE_REPLY_CHARS = 100_000
DEFAULT_LEVENSHTEIN_THRESHOLD = 0.8
DEFAULT_JUDGE_MAX_TOKENS = 512
MAX_JUDGE_MAX_TOKENS = 8192
_DIFF_CONTEXT = 30

_ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    EXACT_MATCH: ("expected", "ignoreCase", "normalizeWhitespace"),
    CONTAINS: ("values", "mode", "ignoreCase"),
    JSON_VALID: (),
    LEVENSHTEIN: ("expected", "threshold", "ignoreCase", "normalizeWhitespace"),
    LATENCY: ("maxMs",),
    COST: ("maxUsd",),
    LLM_JUDGE: ("model", "provider", "rubric", "scale", "passThreshold", "temperature", "maxTokens"),
}
EXAMPLES: dict[str, str] = {
    EXACT_MATCH: '{"ignoreCase": true, "normalizeWhitespace": true}',
    CONTAINS: '{"values": ["refund", "apolog"], "mode": "all", "ignoreCase": true}',
    REGEX: '{"pattern": "^\\\\d+$", "flags": "i"}',
    JSON_VALID: "{}",
    JSON_SCHEMA: '{"schema": {"type": "object", "required": ["answer"]}}',
    JMESPATH: '{"expression": "answer != null"}',
    LEVENSHTEIN: '{"threshold": 0.8}',
    LATENCY: '{"maxMs": 2000}',
    COST: '{"maxUsd": 0.01}',
    LLM_JUDGE: '{"model": "gpt-4o-mini", "rubric": "Is the answer correct and polite?", "passThreshold": 0.7}',
}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class EvaluatorSpec:
    """One evaluator to apply (any object with these attributes works too)."""

    name: str
    type: str
    config: dict


@dataclass(frozen=True, slots=True)
class EvalInput:
    """What an evaluator looks at: the run's output, the expected output, latency and cost."""

    output: str | None
    expected: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class ScoreData:
    """One evaluator's score of one output; ``error`` (and no value) when it could not score it."""

    name: str
    value: float | None
    passed: bool | None = None
    explanation: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreShape:
    """What a score's numbers are like, for statistics: pass/fail (0 or 1), bounds, and which way is better."""

    pass_fail: bool
    low: float | None
    high: float | None
    higher_is_better: bool = True

    @property
    def bounded(self) -> bool:
        return self.low is not None and self.high is not None


class JudgeReplyError(ValueError):
    """The judge's answer is not the JSON asked for; the message says what is wrong, for people."""


# --------------------------------------------------------------------------- checking configs


def check_config(type: str, config: Any) -> list[ConfigError]:  # "type": the API's name for it
    """Every problem with ``config`` for an evaluator of ``type`` (empty: valid)."""
    if type not in EVALUATOR_TYPES:
        return [ConfigError([], f"unknown evaluator type {type!r}; expected one of {', '.join(EVALUATOR_TYPES)}")]
    if type in VALIDATION_BACKED:
        return validation.check_config(type, config)
    if not isinstance(config, dict):
        return [ConfigError([], f"config must be a JSON object, like {EXAMPLES[type]}; got {json_type(config)}")]
    errors = [ConfigError([key], f"unknown key {key!r}; " + (f"allowed keys: {', '.join(_ALLOWED_KEYS[type])}"
                                                             if _ALLOWED_KEYS[type] else "this type takes none")
                          + f" (e.g. {EXAMPLES[type]})")
              for key in sorted(config) if key not in _ALLOWED_KEYS[type]]
    checks: dict[str, Callable[[dict], list[ConfigError]]] = {
        EXACT_MATCH: _check_match, LEVENSHTEIN: _check_levenshtein, CONTAINS: _check_contains,
        JSON_VALID: lambda c: [], LATENCY: lambda c: _check_limit(c, "maxMs", positive=True),
        COST: lambda c: _check_limit(c, "maxUsd", positive=False), LLM_JUDGE: _check_judge,
    }
    return errors + checks[type](config)


def _check_bool(config: dict, key: str) -> list[ConfigError]:
    if key in config and not isinstance(config[key], bool):
        return [ConfigError([key], f"{key} must be true or false, got {json_type(config[key])}")]
    return []


def _check_expected(config: dict) -> list[ConfigError]:
    if "expected" not in config or config["expected"] is None:
        return []
    value = config["expected"]
    if not isinstance(value, str):
        return [ConfigError(["expected"], f"expected must be a string, got {json_type(value)}")]
    if len(value) > MAX_EXPECTED_CHARS:
        return [ConfigError(["expected"], f"expected is {len(value)} characters long; at most {MAX_EXPECTED_CHARS} "
                                          "are allowed")]
    return []


def _check_match(config: dict) -> list[ConfigError]:
    return _check_expected(config) + _check_bool(config, "ignoreCase") + _check_bool(config, "normalizeWhitespace")


def _check_levenshtein(config: dict) -> list[ConfigError]:
    errors = _check_match(config)
    if "threshold" in config:
        t = config["threshold"]
        if not _is_number(t) or not 0 <= t <= 1:
            errors.append(ConfigError(["threshold"], f"threshold must be a number from 0 to 1 (a similarity); got "
                                                     f"{json.dumps(t)}"))
    return errors


def _check_contains(config: dict) -> list[ConfigError]:
    errors = _check_bool(config, "ignoreCase")
    mode = config.get("mode", "any")
    if mode not in ("any", "all"):
        errors.append(ConfigError(["mode"], f'mode must be "any" or "all"; got {json.dumps(mode)}'))
    if "values" in config and config["values"] is not None:
        values = config["values"]
        if not isinstance(values, list) or not values:
            errors.append(ConfigError(["values"], "values must be a non-empty array of strings (leave it out to "
                                                  "look for the expected output)"))
        elif len(values) > MAX_VALUES:
            errors.append(ConfigError(["values"], f"values has {len(values)} strings; at most {MAX_VALUES} are "
                                                  "allowed"))
        else:
            for i, v in enumerate(values):
                if not isinstance(v, str) or not v:
                    errors.append(ConfigError(["values", str(i)], f"values[{i}] must be a non-empty string"))
                elif len(v) > MAX_VALUE_CHARS:
                    errors.append(ConfigError(["values", str(i)], f"values[{i}] is {len(v)} characters long; at "
                                                                  f"most {MAX_VALUE_CHARS} are allowed"))
    return errors


def _check_limit(config: dict, key: str, *, positive: bool) -> list[ConfigError]:
    if key not in config:
        return [ConfigError([key], f"{key} is required: the limit a run must stay at or under to pass")]
    value = config[key]
    if not _is_number(value) or value < 0 or (positive and value == 0):
        return [ConfigError([key], f"{key} must be a number {'above' if positive else 'at or above'} 0; got "
                                   f"{json.dumps(value)}")]
    return []


def judge_scale(config: dict) -> tuple[float, float]:
    """The (min, max) an LLM judge scores on (0 to 1 unless the config says otherwise)."""
    scale = config.get("scale")
    if not isinstance(scale, dict):
        return 0.0, 1.0
    return float(scale.get("min", 0)), float(scale.get("max", 1))


def _check_judge(config: dict) -> list[ConfigError]:
    errors: list[ConfigError] = []
    model = config.get("model")
    if "model" not in config:
        errors.append(ConfigError(["model"], "model is required: the model that grades the outputs (e.g. "
                                             "gpt-4o-mini)"))
    elif not isinstance(model, str) or not model.strip() or len(model) > 200:
        errors.append(ConfigError(["model"], "model must be a model name of 1 to 200 characters"))
    if "provider" in config and (not isinstance(config["provider"], str) or not config["provider"].strip()):
        errors.append(ConfigError(["provider"], "provider must be a provider name (openai, anthropic, echo)"))
    rubric = config.get("rubric")
    if "rubric" not in config:
        errors.append(ConfigError(["rubric"], "rubric is required: what a good output is, in words for the judge"))
    elif not isinstance(rubric, str) or not rubric.strip():
        errors.append(ConfigError(["rubric"], "rubric must be a non-empty string"))
    elif len(rubric) > MAX_RUBRIC_CHARS:
        errors.append(ConfigError(["rubric"], f"rubric is {len(rubric)} characters long; at most {MAX_RUBRIC_CHARS} "
                                              "are allowed"))
    scale_ok = True
    if "scale" in config:
        scale = config["scale"]
        if not isinstance(scale, dict) or set(scale) - {"min", "max"}:
            errors.append(ConfigError(["scale"], 'scale must be an object {"min": number, "max": number}'))
            scale_ok = False
        else:
            low, high = scale.get("min", 0), scale.get("max", 1)
            if not _is_number(low) or not _is_number(high) or not low < high:
                errors.append(ConfigError(["scale"], f"scale needs numbers min < max; got {json.dumps(scale)}"))
                scale_ok = False
    if "passThreshold" in config:
        t = config["passThreshold"]
        if not _is_number(t):
            errors.append(ConfigError(["passThreshold"], f"passThreshold must be a number; got {json.dumps(t)}"))
        elif scale_ok:
            low, high = judge_scale(config)
            if not low <= t <= high:
                errors.append(ConfigError(["passThreshold"], f"passThreshold {t:g} is outside the scale "
                                                             f"{low:g} to {high:g}"))
    if "temperature" in config and (not _is_number(config["temperature"]) or not 0 <= config["temperature"] <= 2):
        errors.append(ConfigError(["temperature"], "temperature must be a number from 0 to 2"))
    if "maxTokens" in config:
        m = config["maxTokens"]
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MAX_JUDGE_MAX_TOKENS:
            errors.append(ConfigError(["maxTokens"], f"maxTokens must be a whole number from 1 to "
                                                     f"{MAX_JUDGE_MAX_TOKENS}"))
    return errors


# --------------------------------------------------------------------------- what scores are like


def score_shape(type: str, config: dict | None) -> ScoreShape:
    """The shape of the scores an evaluator of ``type`` gives (see :class:`ScoreShape`)."""
    if type in PASS_FAIL_TYPES:
        return ScoreShape(pass_fail=True, low=0.0, high=1.0)
    if type == LEVENSHTEIN:
        return ScoreShape(pass_fail=False, low=0.0, high=1.0)
    if type == LLM_JUDGE:
        low, high = judge_scale(config or {})
        return ScoreShape(pass_fail=False, low=low, high=high)
    if type in (LATENCY, COST):
        return ScoreShape(pass_fail=False, low=0.0, high=None, higher_is_better=False)
    return ScoreShape(pass_fail=False, low=None, high=None)


# --------------------------------------------------------------------------- scoring


def evaluate(specs: Sequence[Any], inp: EvalInput, *,
             regex_timeout: float = validation.REGEX_TIMEOUT_SECONDS) -> list[ScoreData]:
    """Score ``inp`` with each evaluator (LLM_JUDGE excepted: the engine scores it). Never raises: a
    problem is the score's ``error``."""
    out: list[ScoreData] = []
    for spec in specs:
        name, type_, config = str(spec.name), spec.type, spec.config
        try:
            out.append(_evaluate_one(name, type_, config, inp, regex_timeout))
        except MemoryError:  # the sandbox worker reports it and is replaced
            raise
        except Exception as exc:  # a bug or a library surprise: this score only
            out.append(ScoreData(name, None, error=_clip(f"could not be scored: {type(exc).__name__}: {exc}", 500)))
    return out


def _evaluate_one(name: str, type_: str, config: Any, inp: EvalInput, regex_timeout: float) -> ScoreData:
    problems = check_config(type_, config)
    if problems:
        return ScoreData(name, None, error="invalid configuration: " + "; ".join(p.message for p in problems))
    output = inp.output if isinstance(inp.output, str) else ""
    if type_ == LLM_JUDGE:
        return ScoreData(name, None, error="LLM_JUDGE is scored by the engine, not here")
    if type_ in VALIDATION_BACKED:
        outcome = validation.apply_validations(output, [ValidationSpec(None, name, type_, config)],
                                               regex_timeout=regex_timeout)
        result = outcome.results[0]
        return ScoreData(name, 1.0 if result.passed else 0.0, result.passed, result.message)
    if type_ == JSON_VALID:
        try:
            parse_output_json(output)
        except OutputNotJSONError as exc:
            return ScoreData(name, 0.0, False, str(exc))
        return ScoreData(name, 1.0, True, None)
    if type_ == LATENCY:
        if inp.latency_ms is None:
            return ScoreData(name, None, error="the run has no latency (its execution did not complete)")
        limit = float(config["maxMs"])
        value = float(inp.latency_ms)
        passed = value <= limit
        return ScoreData(name, value, passed, f"{value:g} ms {'within' if passed else 'over'} the limit of "
                                              f"{limit:g} ms")
    if type_ == COST:
        if inp.cost_usd is None:
            return ScoreData(name, None, error="the run has no cost: its model has no price (a superuser can add "
                                               "one with upsertModelConfig)")
        limit = float(config["maxUsd"])
        value = float(inp.cost_usd)
        passed = value <= limit
        return ScoreData(name, value, passed, f"${value:g} {'within' if passed else 'over'} the limit of "
                                              f"${limit:g}")
    if type_ == CONTAINS:
        return _contains(name, config, output, inp.expected)
    expected = config.get("expected") if config.get("expected") is not None else inp.expected
    if expected is None:
        return ScoreData(name, None, error="no expected output: the dataset item has none and config.expected is "
                                           "not set")
    a, b = _normalise(output, config), _normalise(expected, config)
    if type_ == EXACT_MATCH:
        if a == b:
            return ScoreData(name, 1.0, True, None)
        return ScoreData(name, 0.0, False, _difference(a, b))
    # LEVENSHTEIN
    threshold = float(config.get("threshold", DEFAULT_LEVENSHTEIN_THRESHOLD))
    distance = Levenshtein.distance(a, b)
    similarity = Levenshtein.normalized_similarity(a, b)
    passed = similarity >= threshold
    return ScoreData(name, float(similarity), passed,
                     f"edit distance {distance} over {max(len(a), len(b))} characters: similarity {similarity:.3f} "
                     f"{'at or above' if passed else 'below'} the threshold {threshold:g}")


def _normalise(text: str, config: dict) -> str:
    if config.get("normalizeWhitespace"):
        text = " ".join(text.split())
    if config.get("ignoreCase"):
        text = text.casefold()
    return text


def _difference(output: str, expected: str) -> str:
    at = next((i for i, (x, y) in enumerate(zip(output, expected, strict=False)) if x != y),
              min(len(output), len(expected)))
    start = max(0, at - _DIFF_CONTEXT)
    got = output[start:at + _DIFF_CONTEXT]
    want = expected[start:at + _DIFF_CONTEXT]
    return (f"output differs from the expected output at character {at + 1} (output {len(output)} characters, "
            f"expected {len(expected)}): got {json.dumps(got, ensure_ascii=False)}, expected "
            f"{json.dumps(want, ensure_ascii=False)}")


def _contains(name: str, config: dict, output: str, expected: str | None) -> ScoreData:
    values = config.get("values")
    if values is None:
        if expected is None:
            return ScoreData(name, None, error="nothing to look for: config.values is not set and the dataset item "
                                               "has no expected output")
        values = [expected]
    fold = bool(config.get("ignoreCase"))
    haystack = output.casefold() if fold else output
    found = [v for v in values if (v.casefold() if fold else v) in haystack]
    missing = [v for v in values if v not in found]
    want_all = config.get("mode", "any") == "all"
    passed = not missing if want_all else bool(found)
    if passed and not missing:
        return ScoreData(name, 1.0, True, None)
    shown = ", ".join(json.dumps(_clip(v, 80), ensure_ascii=False) for v in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    explanation = f"found {len(found)} of {len(values)}; missing {shown}{more}"
    return ScoreData(name, 1.0 if passed else 0.0, passed, explanation)


# --------------------------------------------------------------------------- LLM judge

JUDGE_SYSTEM = (
    "You are an impartial evaluator. Grade the OUTPUT against the RUBRIC. Answer with one JSON object and "
    'nothing else: {{"score": <a number from {low:g} to {high:g}>, "explanation": "<one or two sentences>"}}.'
)


def judge_messages(config: dict, *, output: str | None, variables: Any, expected: str | None
                   ) -> tuple[str, list[dict[str, str]]]:
    """(system prompt, messages) that ask the judge of ``config`` to grade ``output``."""
    low, high = judge_scale(config)
    parts = [f"RUBRIC:\n{config['rubric']}"]
    if variables:
        parts.append("INPUT (the variables the prompt was rendered with):\n"
                     + json.dumps(variables, ensure_ascii=False, indent=2, default=str))
    if expected is not None:
        parts.append(f"EXPECTED OUTPUT:\n{expected}")
    parts.append(f"OUTPUT:\n{output or ''}")
    parts.append(f'Grade the OUTPUT from {low:g} (worst) to {high:g} (best). Reply with JSON only: '
                 '{"score": number, "explanation": string}.')
    return JUDGE_SYSTEM.format(low=low, high=high), [{"role": "user", "content": "\n\n".join(parts)}]


def parse_judge_reply(reply: str, config: dict) -> tuple[float, str | None]:
    """(score, explanation) from the judge's reply; raises JudgeReplyError saying what is wrong."""
    if len(reply) > MAX_JUDGE_REPLY_CHARS:
        raise JudgeReplyError(f"the judge's reply is {len(reply)} characters long; a JSON object of a score and an "
                              "explanation was expected")
    try:
        data = parse_output_json(reply)
    except OutputNotJSONError as exc:
        raise JudgeReplyError(f"the judge did not answer with JSON ({exc}): {_clip(reply, 200)!r}") from None
    if not isinstance(data, dict) or "score" not in data:
        raise JudgeReplyError(f'the judge answered {_clip(json.dumps(data), 200)}; expected an object with "score"')
    score = data["score"]
    if not _is_number(score) or not math.isfinite(score):
        raise JudgeReplyError(f"the judge's score is {json.dumps(score)}, not a number")
    low, high = judge_scale(config)
    if not low <= score <= high:
        raise JudgeReplyError(f"the judge's score {score:g} is outside the scale {low:g} to {high:g}")
    explanation = data.get("explanation")
    return float(score), (_clip(explanation, 5000) if isinstance(explanation, str) and explanation else None)


def judge_passed(score: float, config: dict) -> bool | None:
    threshold = config.get("passThreshold")
    return None if threshold is None else score >= float(threshold)


# --------------------------------------------------------------------------- helpers


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "EVALUATOR_TYPES", "PASS_FAIL_TYPES", "ConfigError", "EvalInput", "EvaluatorSpec", "JudgeReplyError", "ScoreData",
    "ScoreShape", "check_config", "evaluate", "judge_messages", "judge_passed", "judge_scale", "parse_judge_reply",
    "score_shape",
]
