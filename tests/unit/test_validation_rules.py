"""Validation rules: config checks and applying validations to outputs (no database)."""

from __future__ import annotations

import enum
import json
import re
import time
from types import SimpleNamespace

import pytest

from app.rules.validation import (
    MAX_PATTERN_LENGTH,
    MAX_SCHEMA_BYTES,
    REGEX_TIMEOUT_SECONDS,
    ConfigError,
    OutputNotJSONError,
    ValidationOutcome,
    ValidationResultData,
    ValidationSpec,
    _compile,
    apply_validations,
    backtracking_risk,
    check_config,
    parse_output_json,
)

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "enum": ["yes", "no"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["answer"],
    "additionalProperties": False,
}


def spec(type_: str, config, *, id_=1, name="check") -> ValidationSpec:
    return ValidationSpec(id=id_, name=name, type=type_, config=config)


def fields(errors: list[ConfigError]) -> list[list[str]]:
    return [e.field for e in errors]


def only_message(errors: list[ConfigError]) -> str:
    assert len(errors) == 1, errors
    return errors[0].message


# =========================================================================== check_config: general


def test_unknown_type_is_refused():
    errors = check_config("XML_SCHEMA", {"schema": {}})
    assert fields(errors) == [[]]
    assert "unknown validation type 'XML_SCHEMA'" in errors[0].message
    assert "JSON_SCHEMA, REGEX, JMESPATH" in errors[0].message


def test_enum_members_are_accepted_as_type():
    class ValidationType(enum.Enum):
        REGEX = "REGEX"

    assert check_config(ValidationType.REGEX, {"pattern": "^ok$"}) == []


@pytest.mark.parametrize("config", ["^a$", ["pattern"], None, 3])
def test_config_must_be_an_object(config):
    message = only_message(check_config("REGEX", config))
    assert message.startswith("config must be a JSON object")
    assert '"pattern"' in message  # shows an example of the right shape


def test_config_with_non_json_values_is_refused():
    message = only_message(check_config("REGEX", {"pattern": "a", "flags": float("nan")}))
    assert "only JSON values" in message


@pytest.mark.parametrize(
    ("type_", "config", "unknown", "allowed"),
    [
        ("REGEX", {"pattern": "a", "flag": "i"}, "flag", "allowed keys: pattern, flags"),
        ("JSON_SCHEMA", {"schema": {}, "strict": True}, "strict", "allowed keys: schema"),
        ("JMESPATH", {"expression": "a", "query": "b"}, "query", "allowed keys: expression"),
    ],
)
def test_unknown_keys_are_refused_with_the_allowed_keys(type_, config, unknown, allowed):
    errors = check_config(type_, config)
    assert len(errors) == 1
    assert errors[0].field == [unknown]
    assert f"unknown key {unknown!r}" in errors[0].message
    assert allowed in errors[0].message


def test_configs_are_compiled_once_and_cached():
    config = {"pattern": r"^cache-\d+$", "flags": "i"}
    check_config("REGEX", config)
    hits = _compile.cache_info().hits
    # Same config, different key order: same canonical form, served from the cache.
    assert check_config("REGEX", {"flags": "i", "pattern": r"^cache-\d+$"}) == []
    apply_validations("CACHE-1", [spec("REGEX", config)])
    assert _compile.cache_info().hits >= hits + 2


# =========================================================================== check_config: JSON_SCHEMA


def test_valid_schema_is_accepted():
    assert check_config("JSON_SCHEMA", {"schema": ANSWER_SCHEMA}) == []


@pytest.mark.parametrize("schema", [True, False, {}])
def test_trivial_schemas_are_accepted(schema):
    assert check_config("JSON_SCHEMA", {"schema": schema}) == []


def test_schema_is_required():
    errors = check_config("JSON_SCHEMA", {})
    assert fields(errors) == [["schema"]]
    assert "schema is required" in errors[0].message


@pytest.mark.parametrize(("schema", "kind"), [("object", "a string"), ([{}], "an array"), (1, "a number")])
def test_schema_must_be_an_object(schema, kind):
    errors = check_config("JSON_SCHEMA", {"schema": schema})
    assert fields(errors) == [["schema"]]
    assert f"got {kind}" in errors[0].message


def test_invalid_schema_reports_jsonschema_message_and_path():
    errors = check_config(
        "JSON_SCHEMA", {"schema": {"type": "object", "properties": {"age": {"minimum": "ten"}}}}
    )
    assert fields(errors) == [["schema"]]
    message = errors[0].message
    assert message.startswith("schema is not a valid JSON Schema (Draft 2020-12)")
    assert "'ten' is not of type 'number'" in message
    assert "$.properties.age.minimum" in message


def test_invalid_type_name_in_schema():
    message = only_message(check_config("JSON_SCHEMA", {"schema": {"type": "strng"}}))
    assert "'strng' is not valid under any of the given schemas" in message
    assert "at $.type" in message


def test_invalid_regex_inside_schema_is_reported():
    message = only_message(
        check_config("JSON_SCHEMA", {"schema": {"properties": {"a": {"pattern": "(unclosed"}}}})
    )
    assert "is not a 'regex'" in message
    assert "$.properties.a.pattern" in message


def test_declared_dialect_is_used():
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"answer": {"type": "string"}},
        "properties": {"answer": {"$ref": "#/definitions/answer"}},
    }
    assert check_config("JSON_SCHEMA", {"schema": draft7}) == []
    # exclusiveMinimum is a boolean in Draft 4 but a number in Draft 2020-12
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 1, "exclusiveMinimum": True}
    assert check_config("JSON_SCHEMA", {"schema": draft4}) == []
    message = only_message(check_config("JSON_SCHEMA", {"schema": {"minimum": 1, "exclusiveMinimum": True}}))
    assert "Draft 2020-12" in message and "exclusiveMinimum" in message


def test_unknown_dialect_is_refused_listing_the_supported_ones():
    message = only_message(check_config("JSON_SCHEMA", {"schema": {"$schema": "https://example.com/my-dialect"}}))
    assert "is not a supported JSON Schema dialect" in message
    assert "https://json-schema.org/draft/2020-12/schema" in message
    assert "http://json-schema.org/draft-07/schema#" in message


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"$ref": "https://example.com/schemas/answer.json"}, "$.$ref"),
        ({"properties": {"a": {"$ref": "http://example.com/s#/definitions/x"}}}, "$.properties.a.$ref"),
        ({"prefixItems": [{"type": "string"}, {"$ref": "https://evil.test/x"}]}, "$.prefixItems[1].$ref"),
        # A relative reference resolved against an http $id is remote as well.
        ({"$id": "https://example.com/root.json", "$ref": "other.json"}, "$.$ref"),
        ({"$dynamicRef": "https://example.com/meta#node"}, "$.$dynamicRef"),
    ],
)
def test_remote_refs_are_refused(schema, where):
    errors = check_config("JSON_SCHEMA", {"schema": schema})
    assert fields(errors) == [["schema"]]
    message = errors[0].message
    assert message.startswith("remote $ref")
    assert f"at {where}" in message
    assert "never fetched" in message


def test_ref_to_an_unknown_document_is_refused():
    message = only_message(check_config("JSON_SCHEMA", {"schema": {"$ref": "answer.json"}}))
    assert "does not point inside this schema" in message


def test_unresolvable_local_ref_is_refused():
    message = only_message(
        check_config("JSON_SCHEMA", {"schema": {"$defs": {"a": {}}, "$ref": "#/$defs/missing"}})
    )
    assert "'#/$defs/missing'" in message and "cannot be resolved" in message


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a"},
        {"$defs": {"a": {"$anchor": "answer", "type": "string"}}, "$ref": "#answer"},
        {"$ref": "#"},
        # References to a resource identified inside the schema itself are local.
        {
            "$id": "https://example.com/root.json",
            "$defs": {"item": {"$id": "item.json", "type": "integer"}},
            "items": {"$ref": "item.json"},
        },
        {"$id": "urn:example:root", "$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a"},
        # "$ref" inside data (enum/const/examples/default) is not a reference.
        {"enum": [{"$ref": "https://example.com/not-a-ref"}], "examples": [{"$ref": "http://x"}]},
    ],
)
def test_local_refs_are_accepted(schema):
    assert check_config("JSON_SCHEMA", {"schema": schema}) == []


def test_schema_size_is_capped():
    big = {"description": "x" * (MAX_SCHEMA_BYTES + 10)}
    message = only_message(check_config("JSON_SCHEMA", {"schema": big}))
    assert f"at most {MAX_SCHEMA_BYTES} are allowed" in message
    fits = {"description": "x" * (MAX_SCHEMA_BYTES - 100)}
    assert check_config("JSON_SCHEMA", {"schema": fits}) == []


def test_catastrophic_patterns_inside_schemas_are_refused():
    errors = check_config(
        "JSON_SCHEMA",
        {
            "schema": {
                "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}},
                "patternProperties": {r"^(\w+\s?)+$": {}},
            }
        },
    )
    assert fields(errors) == [["schema"], ["schema"]]
    messages = " | ".join(e.message for e in errors)
    assert "pattern at $.properties.name.pattern is prone to catastrophic backtracking" in messages
    assert "patternProperties" in messages


# =========================================================================== check_config: REGEX


@pytest.mark.parametrize(
    "pattern",
    [
        r"^\d{3}-\d{4}$",
        r"[a-z]+@[a-z]+\.com",
        r"^(\d{1,3}\.){3}\d{1,3}$",
        r"^[\w.+-]+@([\w-]+\.)+[a-z]{2,}$",
        r"^(\w+ )+\w+$",
        r"^(\d+)(,\d+)*$",
        r'"(\\.|[^"\\])*"',
        r"(ab|ac)*d",
        r"(a|ab)*c",
        r"(a?b|c?d)*",
        r"(.*\n)+",
        r"(\d{3}-?)+",
        r"(?s)<answer>(.*?)</answer>",
        r"\b(?:yes|no)\b",
        r"(?:w1|w10|w100)*;",
        r"(?>a+)+$",
        r"(a++)+$",
        r"(?P<word>\w+) (?P=word)",
    ],
)
def test_benign_patterns_are_accepted(pattern):
    assert check_config("REGEX", {"pattern": pattern}) == []
    assert backtracking_risk(pattern) is None


@pytest.mark.parametrize(
    "pattern",
    [
        r"(a+)+$",
        r"(a*)*b",
        r"(.*)*x",
        r"(.*a){20}",
        r"(\w+\s?)+$",
        r"^(\w+\s*)*$",
        r"(a|a)*$",
        r"(a|aa)+$",
        r"(x+x+)+y",
        r"(\d+|[a-z]+)*!",
        r"(?:\w|\d+)*$",
        r"(a?){20}a{20}",
        r"((ab)+)+c",
        r"^(([a-z])+.)+[A-Z]([a-z])+$",
        r"(?=(a+)+b)",
        r"(?i)(?:K+|k)+$",
        # an empty alternative next to one that can also match nothing (found by fuzzing)
        r"(?:a|ab*)*$",
        r"(?:ab?|a)+b$",
    ],
)
def test_catastrophic_patterns_are_refused(pattern):
    errors = check_config("REGEX", {"pattern": pattern})
    assert fields(errors) == [["pattern"]]
    message = errors[0].message
    assert message.startswith("pattern is prone to catastrophic backtracking: ")
    assert "exponential" in message
    assert "possessive" in message and "atomic" in message  # says how to fix it


def test_nested_quantifier_message_quotes_the_parts():
    message = only_message(check_config("REGEX", {"pattern": r"^(\w+\s?)+$"}))
    assert r"the repeated group (\w+\s?)+ contains \w+" in message
    assert "nested quantifiers" in message
    message = only_message(check_config("REGEX", {"pattern": r"(x+x+)+y"}))
    assert "x+ and x+ can match the same characters" in message


def test_overlapping_alternation_message():
    message = only_message(check_config("REGEX", {"pattern": r"(?:ab|[a-z]b)+;"}))
    assert "the alternatives ab and [a-z]b can match the same text" in message


def test_backtracking_risk_raises_on_invalid_patterns():
    with pytest.raises(re.error):
        backtracking_risk("(")


def test_flags_are_taken_into_account_by_the_static_check():
    # Without DOTALL, . cannot cross the newline that separates repetitions.
    assert check_config("REGEX", {"pattern": r"(.*\n)+"}) == []
    assert "catastrophic" in only_message(check_config("REGEX", {"pattern": r"(.*\n)+", "flags": "s"}))
    # Case-insensitively, [a-z] and "Q" overlap.
    assert check_config("REGEX", {"pattern": r"([a-z]+Q)+"}) == []
    assert "catastrophic" in only_message(check_config("REGEX", {"pattern": r"([a-z]+Q?)+", "flags": "i"}))


def test_pattern_that_does_not_compile_reports_error_and_position():
    message = only_message(check_config("REGEX", {"pattern": "^(abc$"}))
    assert message == "pattern does not compile: missing ), unterminated subpattern at position 1"
    message = only_message(check_config("REGEX", {"pattern": "a{3,2}"}))
    assert "min repeat greater than max repeat at position 2" in message


def test_multiline_verbose_pattern_error_gives_line_and_column():
    message = only_message(check_config("REGEX", {"pattern": "a  # letter\n(b  # open", "flags": "x"}))
    assert "(line 2, column 1)" in message


def test_pattern_is_required_and_a_non_empty_string():
    assert fields(check_config("REGEX", {})) == [["pattern"]]
    assert "must be a string" in only_message(check_config("REGEX", {"pattern": 12}))
    assert "must not be empty" in only_message(check_config("REGEX", {"pattern": ""}))


def test_pattern_length_is_capped():
    assert check_config("REGEX", {"pattern": "a" * MAX_PATTERN_LENGTH}) == []
    message = only_message(check_config("REGEX", {"pattern": "a" * (MAX_PATTERN_LENGTH + 1)}))
    assert message == f"pattern is {MAX_PATTERN_LENGTH + 1} characters long; at most {MAX_PATTERN_LENGTH} are allowed"


@pytest.mark.parametrize("flags", ["", "i", "imsx", "mi", None])
def test_known_flags_are_accepted(flags):
    assert check_config("REGEX", {"pattern": "^a", "flags": flags}) == []


def test_unknown_flags_are_refused():
    errors = check_config("REGEX", {"pattern": "a", "flags": "igu"})
    assert fields(errors) == [["flags"]]
    assert "unknown flag(s) 'g', 'u'" in errors[0].message
    assert "i (ignore case), m (multiline), s (dot matches newline), x (verbose)" in errors[0].message
    assert "must be a string" in only_message(check_config("REGEX", {"pattern": "a", "flags": ["i"]}))


def test_every_problem_is_reported_at_once():
    errors = check_config("REGEX", {"pattern": "", "flags": "q", "other": 1})
    assert sorted(fields(errors)) == [["flags"], ["other"], ["pattern"]]


# =========================================================================== check_config: JMESPATH


def test_valid_expression_is_accepted():
    assert check_config("JMESPATH", {"expression": "items[?price > `10`] | length(@) > `0`"}) == []


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("foo[", "invalid JMESPath expression: incomplete expression at position 4"),
        ("a.b.`x", "invalid JMESPath expression: Unclosed ` delimiter at position 4"),
        ("foo | | bar", "invalid JMESPath expression: unexpected '|' at position 6"),
    ],
)
def test_expression_parse_errors_are_reported(expression, expected):
    errors = check_config("JMESPATH", {"expression": expression})
    assert fields(errors) == [["expression"]]
    assert errors[0].message == expected


def test_expression_is_required_non_empty_and_capped():
    assert fields(check_config("JMESPATH", {})) == [["expression"]]
    assert "must not be empty" in only_message(check_config("JMESPATH", {"expression": "  "}))
    assert "must be a string" in only_message(check_config("JMESPATH", {"expression": {"a": 1}}))
    assert "at most 1000" in only_message(check_config("JMESPATH", {"expression": "a" * 1001}))


# =========================================================================== parse_output_json


@pytest.mark.parametrize(
    "output",
    [
        '{"answer": "yes"}',
        '  \n {"answer": "yes"}\n\t',
        '```json\n{"answer": "yes"}\n```',
        '```JSON\n{"answer": "yes"}\n```\n',
        '```\n{"answer": "yes"}\n```',
        '\n\n```json {"answer": "yes"} ```  ',
    ],
)
def test_json_is_read_through_whitespace_and_one_fence(output):
    assert parse_output_json(output) == {"answer": "yes"}


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("", "output is empty; expected a JSON document"),
        ("```json\n```", "output is empty; expected a JSON document"),
        ("yes", "output is not valid JSON: Expecting value at line 1 column 1"),
        ('Sure! ```json\n{"answer": "yes"}\n```', "output is not valid JSON"),
        ('```python\n{"answer": "yes"}\n```', "output is not valid JSON"),
        ('```json\n{"a": 1}\n```\n```json\n{"b": 2}\n```', "output is not valid JSON"),
        ('{"a": 1', "output is not valid JSON: Expecting ',' delimiter at line 1 column 8"),
        ('{"a": NaN}', "output is not valid JSON: NaN is not a JSON value"),
        ("[Infinity]", "output is not valid JSON: Infinity is not a JSON value"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_what_is_not_json(output, message):
    with pytest.raises(OutputNotJSONError) as caught:
        parse_output_json(output)
    assert message in str(caught.value)


# =========================================================================== apply_validations: general


def test_no_validations_is_skipped():
    outcome = apply_validations('{"answer": "yes"}', [])
    assert outcome == ValidationOutcome(status="SKIPPED", results=[], validated_output=None)


def test_all_passing_is_passed_and_results_keep_order_ids_and_names():
    outcome = apply_validations(
        '{"answer": "yes", "confidence": 0.9}',
        [
            spec("JSON_SCHEMA", {"schema": ANSWER_SCHEMA}, id_="v1", name="shape"),
            spec("REGEX", {"pattern": r'"answer":\s*"yes"'}, id_="v2", name="says yes"),
            spec("JMESPATH", {"expression": "confidence > `0.5`"}, id_="v3", name="confident"),
        ],
    )
    assert outcome.status == "PASSED"
    assert outcome.results == [
        ValidationResultData(validation_id="v1", name="shape", passed=True, message=None),
        ValidationResultData(validation_id="v2", name="says yes", passed=True, message=None),
        ValidationResultData(validation_id="v3", name="confident", passed=True, message=None),
    ]
    assert outcome.validated_output == {"answer": "yes", "confidence": 0.9}


def test_one_failure_makes_the_outcome_failed():
    outcome = apply_validations(
        "hello world",
        [spec("REGEX", {"pattern": "hello"}, id_=1), spec("REGEX", {"pattern": "^world"}, id_=2)],
    )
    assert outcome.status == "FAILED"
    assert [r.passed for r in outcome.results] == [True, False]


def test_orm_like_objects_are_accepted():
    row = SimpleNamespace(id=7, name="digits", type="REGEX", config={"pattern": r"\d+"}, is_active=True)
    outcome = apply_validations("order 66", [row])
    assert outcome.status == "PASSED"
    assert outcome.results[0].validation_id == 7


def test_none_output_is_treated_as_empty():
    outcome = apply_validations(None, [spec("REGEX", {"pattern": "^$"}), spec("JSON_SCHEMA", {"schema": {}})])
    assert [r.passed for r in outcome.results] == [True, False]
    assert outcome.results[1].message == "output is empty; expected a JSON document"


# =========================================================================== apply_validations: JSON_SCHEMA


def test_fenced_json_passes_the_schema_and_becomes_the_validated_output():
    output = 'Here it is:\n```json\n{"answer": "no"}\n```'
    outcome = apply_validations(output, [spec("JSON_SCHEMA", {"schema": ANSWER_SCHEMA})])
    assert outcome.status == "FAILED"  # text outside the fence is not tolerated
    output = '```json\n{"answer": "no", "confidence": 0.25}\n```'
    outcome = apply_validations(output, [spec("JSON_SCHEMA", {"schema": ANSWER_SCHEMA})])
    assert outcome.status == "PASSED"
    assert outcome.validated_output == {"answer": "no", "confidence": 0.25}


def test_schema_failure_lists_errors_with_json_paths():
    output = json.dumps({"answer": "maybe", "confidence": 3, "extra": True})
    outcome = apply_validations(output, [spec("JSON_SCHEMA", {"schema": ANSWER_SCHEMA})])
    assert outcome.status == "FAILED"
    assert outcome.validated_output is None
    message = outcome.results[0].message
    assert message.startswith("output does not match the schema: ")
    assert "$: Additional properties are not allowed ('extra' was unexpected)" in message
    assert "$.answer: 'maybe' is not one of ['yes', 'no']" in message
    assert "$.confidence: 3 is greater than the maximum of 1" in message


def test_schema_failure_reports_the_first_few_errors_only():
    schema = {"type": "array", "items": {"type": "integer"}}
    seven = apply_validations(json.dumps(["x"] * 7), [spec("JSON_SCHEMA", {"schema": schema})])
    message = seven.results[0].message
    assert "$[0]: 'x' is not of type 'integer'" in message
    assert "$[4]" in message and "$[5]" not in message
    assert message.endswith("; and 2 other errors")
    many = apply_validations(json.dumps(["x"] * 1000), [spec("JSON_SCHEMA", {"schema": schema})])
    assert many.results[0].message.endswith("; and more than 95 other errors")


def test_nested_paths_in_schema_errors():
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"required": ["id"]}}}}
    outcome = apply_validations('{"items": [{"id": 1}, {}]}', [spec("JSON_SCHEMA", {"schema": schema})])
    assert "$.items[1]: 'id' is a required property" in outcome.results[0].message


def test_output_that_is_not_json_fails_the_schema():
    outcome = apply_validations("The answer is yes.", [spec("JSON_SCHEMA", {"schema": ANSWER_SCHEMA})])
    assert outcome.results[0].passed is False
    assert outcome.results[0].message == "output is not valid JSON: Expecting value at line 1 column 1"


def test_formats_are_asserted():
    schema = {"properties": {"when": {"type": "string", "format": "date"}}}
    good = apply_validations('{"when": "2024-02-29"}', [spec("JSON_SCHEMA", {"schema": schema})])
    bad = apply_validations('{"when": "2024-02-30"}', [spec("JSON_SCHEMA", {"schema": schema})])
    assert good.status == "PASSED"
    assert bad.status == "FAILED" and "is not a 'date'" in bad.results[0].message


def test_local_refs_work_when_validating():
    schema = {
        "$defs": {"answer": {"type": "string", "enum": ["yes", "no"]}},
        "properties": {"answer": {"$ref": "#/$defs/answer"}},
    }
    assert apply_validations('{"answer": "yes"}', [spec("JSON_SCHEMA", {"schema": schema})]).status == "PASSED"
    outcome = apply_validations('{"answer": "perhaps"}', [spec("JSON_SCHEMA", {"schema": schema})])
    assert "$.answer: 'perhaps' is not one of ['yes', 'no']" in outcome.results[0].message


def test_stored_config_with_a_remote_ref_fails_without_fetching():
    outcome = apply_validations("{}", [spec("JSON_SCHEMA", {"schema": {"$ref": "https://example.com/s.json"}})])
    assert outcome.status == "FAILED"
    assert outcome.results[0].message.startswith("invalid configuration: remote $ref")


# =========================================================================== apply_validations: REGEX


def test_regex_uses_search_semantics():
    outcome = apply_validations("Order #12345 confirmed", [spec("REGEX", {"pattern": r"#\d{5}\b"})])
    assert outcome.status == "PASSED"
    assert outcome.validated_output is None  # a regex says nothing about JSON


@pytest.mark.parametrize(
    ("pattern", "flags", "output", "passed"),
    [
        ("^yes$", "", "YES", False),
        ("^yes$", "i", "YES", True),
        ("^second$", "", "first\nsecond", False),
        ("^second$", "m", "first\nsecond", True),
        ("start.end", "", "start\nend", False),
        ("start.end", "s", "start\nend", True),
        ("^ \\d+  # digits", "x", "123", True),
    ],
)
def test_regex_flags(pattern, flags, output, passed):
    outcome = apply_validations(output, [spec("REGEX", {"pattern": pattern, "flags": flags})])
    assert outcome.results[0].passed is passed


def test_regex_failure_message_names_the_pattern():
    outcome = apply_validations("no digits here", [spec("REGEX", {"pattern": r"\d+", "flags": "m"})])
    assert outcome.results[0].message == "output does not match the pattern '\\\\d+' with flags 'm'"


def test_regex_times_out_instead_of_hanging():
    # Not a nested quantifier, so the static check lets it through, but it is polynomial:
    # on many newlines it takes seconds. The timeout stops it.
    pattern = r"\n.*\n.*\n.*x"
    config = {"pattern": pattern, "flags": "s"}
    assert check_config("REGEX", config) == []
    started = time.monotonic()
    outcome = apply_validations("\n" * 5000, [spec("REGEX", config)], regex_timeout=0.2)
    elapsed = time.monotonic() - started
    assert outcome.status == "FAILED"
    assert "timed out after 0.2 s" in outcome.results[0].message
    assert elapsed < 2


def test_default_regex_timeout_is_one_second():
    assert REGEX_TIMEOUT_SECONDS == 1.0


def test_stored_catastrophic_pattern_fails_without_running():
    started = time.monotonic()
    outcome = apply_validations("a" * 50 + "!", [spec("REGEX", {"pattern": r"(a|a)*$"})])
    assert time.monotonic() - started < 1
    assert outcome.status == "FAILED"
    assert outcome.results[0].message.startswith("invalid configuration: pattern is prone to catastrophic backtracking")


# =========================================================================== apply_validations: JMESPATH


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (0, True),  # JMESPath: numbers are always true
        (0.0, True),
        ("no", True),
        ([None], True),
        ({"a": None}, True),
    ],
)
def test_jmespath_truthiness(value, truthy):
    output = json.dumps({"value": value})
    outcome = apply_validations(output, [spec("JMESPATH", {"expression": "value"})])
    assert outcome.results[0].passed is truthy
    if truthy:
        assert outcome.results[0].message is None
        assert outcome.validated_output == {"value": value}
    else:
        message = outcome.results[0].message
        assert message.startswith(f"expression 'value' evaluated to {json.dumps(value)}, which is not truthy")


def test_jmespath_missing_field_is_null():
    outcome = apply_validations('{"a": 1}', [spec("JMESPATH", {"expression": "b.c"})])
    assert outcome.results[0].message.startswith("expression 'b.c' evaluated to null")


def test_jmespath_reads_fenced_json():
    output = '```json\n{"items": [{"ok": true}, {"ok": false}]}\n```'
    outcome = apply_validations(output, [spec("JMESPATH", {"expression": "length(items[?ok]) == `1`"})])
    assert outcome.status == "PASSED"


def test_jmespath_on_non_json_output_fails():
    outcome = apply_validations("not json", [spec("JMESPATH", {"expression": "a"})])
    assert outcome.results[0].message.startswith("output is not valid JSON")


def test_jmespath_evaluation_error_fails_with_message():
    outcome = apply_validations('{"a": 1}', [spec("JMESPATH", {"expression": "length(a)"})])
    assert outcome.status == "FAILED"
    message = outcome.results[0].message
    assert message.startswith("expression 'length(a)' could not be evaluated: In function length()")


# =========================================================================== validated_output


def test_validated_output_needs_a_passing_json_validation():
    output = '{"answer": "yes"}'
    regex_only = apply_validations(output, [spec("REGEX", {"pattern": "yes"})])
    assert regex_only.validated_output is None

    schema_failed = apply_validations(
        output, [spec("JSON_SCHEMA", {"schema": {"required": ["missing"]}}), spec("REGEX", {"pattern": "yes"})]
    )
    assert schema_failed.validated_output is None

    jmespath_passed = apply_validations(
        output,
        [spec("JSON_SCHEMA", {"schema": {"required": ["missing"]}}), spec("JMESPATH", {"expression": "answer"})],
    )
    assert jmespath_passed.status == "FAILED"
    assert jmespath_passed.validated_output == {"answer": "yes"}

    schema_passed = apply_validations(output, [spec("JSON_SCHEMA", {"schema": ANSWER_SCHEMA})])
    assert schema_passed.validated_output == {"answer": "yes"}


# =========================================================================== never raises


def test_bad_specs_become_failed_results():
    class Exploding:
        id = 9
        name = "explodes"

        @property
        def type(self):
            raise RuntimeError("boom")

        config: dict = {}

    outcome = apply_validations(
        "text",
        [
            spec("XML", {}, id_=1),
            spec("REGEX", "not an object", id_=2),
            spec("REGEX", {"pattern": "("}, id_=3),
            spec("JMESPATH", {"expression": "a", "extra": 1}, id_=4),
            Exploding(),
            object(),
            spec("REGEX", {"pattern": "text"}, id_=5),
        ],
    )
    assert outcome.status == "FAILED"
    passed = [r.passed for r in outcome.results]
    assert passed == [False, False, False, False, False, False, True]
    messages = [r.message for r in outcome.results]
    assert messages[0].startswith("unknown validation type 'XML'")
    assert messages[1] == "invalid configuration: config must be a JSON object, got a string"
    assert messages[2].startswith("invalid configuration: pattern does not compile")
    assert messages[3] == "invalid configuration: unknown key 'extra'; allowed keys: expression"
    assert messages[4] == "validation could not be run: RuntimeError: boom"
    assert messages[5].startswith("validation could not be run: AttributeError")
    assert outcome.results[4].validation_id == 9 and outcome.results[4].name == "explodes"


def test_validations_that_are_not_a_sequence_are_skipped():
    assert apply_validations("x", None).status == "SKIPPED"
