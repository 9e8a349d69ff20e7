"""The pure prompt-content layer: validation, inference, rendering, hashing (no database)."""

import json
import time

import pytest

from app.templating import (
    ChatMessage,
    PromptContent,
    RenderLimits,
    VariableSpec,
    canonical_dict,
    content_hash,
    infer_variables,
    render,
    validate_content,
)


def text(template, fmt="MUSTACHE", variables=None, **kw):
    return PromptContent(kind="TEXT", format=fmt, template=template, variables=variables or [], **kw)


def valid(content, declared=None):
    normalised, errors = validate_content(content, declared)
    assert errors == [], errors
    return normalised


def fields(errors):
    return [e.field for e in errors]


# ------------------------------------------------------------------ inference


def test_mustache_inference_order_and_kinds_of_tags():
    content = text("{{greeting}} {{{raw}}} {{&amp}} {{user.email}} {{greeting}} {{#items}}x{{/items}}{{^none}}y{{/none}}")
    assert infer_variables(content) == ["greeting", "raw", "amp", "user", "items", "none"]


def test_mustache_inference_skips_names_inside_sections():
    content = text("{{#items}}{{title}} {{#tags}}{{.}}{{/tags}}{{/items}}{{footer}}")
    assert infer_variables(content) == ["items", "footer"]


def test_mustache_inference_follows_delimiter_changes_and_ignores_comments():
    assert infer_variables(text("{{! {{hidden}} }}{{=<% %>=}}<%a%> {{b}} <%={{ }}=%>{{c}}")) == ["a", "c"]


def test_inference_includes_system_prompt_first_and_chat_messages():
    content = PromptContent(
        kind="CHAT",
        system_prompt="You are {{persona}}.",
        messages=[ChatMessage("user", "{{question}} {{persona}}"), ChatMessage("assistant", "{{answer}}")],
    )
    assert infer_variables(content) == ["persona", "question", "answer"]


def test_jinja_inference_uses_free_names_in_order():
    content = text(
        "{% set x = 1 %}{{ x }}{{ b }}{% for item in items %}{{ item.name }}{{ loop.index }}{{ a }}{% endfor %}"
        "{{ range(2)|list }}{{ b }}",
        fmt="JINJA2",
    )
    assert infer_variables(content) == ["b", "items", "a"]


def test_inferred_types_are_json_for_structural_use_and_string_otherwise():
    n = valid(text("{{name}} {{#items}}{{.}}{{/items}} {{user.email}}"))
    assert [(v.name, v.type, v.required) for v in n.variables] == [
        ("name", "STRING", True),
        ("items", "JSON", True),
        ("user", "JSON", True),
    ]
    j = valid(text("{{ name }}{% for r in rows %}{{ r }}{% endfor %}{{ cfg.mode }}{{ m['k'] }}", fmt="JINJA2"))
    assert [(v.name, v.type) for v in j.variables] == [("name", "STRING"), ("rows", "JSON"), ("cfg", "JSON"), ("m", "JSON")]


# ------------------------------------------------------------------ validation


def test_declared_variable_never_used_is_an_error_naming_it():
    _, errors = validate_content(text("Hi {{name}}"), [VariableSpec("name"), VariableSpec("tone")])
    assert fields(errors) == [["variables", "1", "name"]]
    assert '"tone"' in errors[0].message and "never uses" in errors[0].message


def test_used_variable_not_declared_is_an_error_naming_it():
    _, errors = validate_content(text("{{ a }} {{ b }}", fmt="JINJA2"), [VariableSpec("a")])
    assert fields(errors) == [["variables"]]
    assert '"b"' in errors[0].message and "not declared" in errors[0].message


def test_name_declared_and_used_only_inside_a_section_is_accepted():
    n = valid(text("{{#show}}Hello {{user}}{{/show}}"), [VariableSpec("show", "BOOLEAN"), VariableSpec("user")])
    assert [v.name for v in n.variables] == ["show", "user"]
    assert render(n, {"show": True, "user": "Ann"}).text == "Hello Ann"


def test_text_prompt_rules():
    _, errors = validate_content(PromptContent(template="   "), None)
    assert fields(errors) == [["template"]]
    _, errors = validate_content(PromptContent(template="x", messages=[ChatMessage("user", "y")]), None)
    assert fields(errors) == [["messages"]]


def test_chat_prompt_rules_and_role_normalisation():
    _, errors = validate_content(PromptContent(kind="CHAT", messages=[]), None)
    assert fields(errors) == [["messages"]]
    _, errors = validate_content(
        PromptContent(
            kind="CHAT",
            template="t",
            messages=[ChatMessage(" User ", "hi"), ChatMessage("wizard", "x"), ChatMessage("assistant", " ")],
        ),
        None,
    )
    assert fields(errors) == [["template"], ["messages", "1", "role"], ["messages", "2", "content"]]
    assert "system, user, assistant" in errors[1].message
    n = valid(PromptContent(kind="CHAT", messages=[ChatMessage(" User ", "hi")]))
    assert n.messages == [ChatMessage("user", "hi")]


def test_kind_and_format_must_be_known():
    _, errors = validate_content(PromptContent(kind="POEM", format="ERB", template="x"), None)
    assert fields(errors)[:2] == [["kind"], ["format"]]


def test_syntax_errors_are_reported_with_line_and_path():
    _, errors = validate_content(text("line one\n{{#open}} never closed"), None)
    assert fields(errors) == [["template"]] and "line 2" in errors[0].message
    _, errors = validate_content(
        PromptContent(kind="CHAT", format="JINJA2", messages=[ChatMessage("user", "ok"), ChatMessage("user", "a\n{% if %}")]),
        None,
    )
    assert fields(errors) == [["messages", "1", "content"]] and errors[0].message.startswith("line 2:")
    _, errors = validate_content(text("ok", system_prompt="{{ x|no_such_filter }}", fmt="JINJA2"), None)
    assert fields(errors) == [["systemPrompt"]] and "no_such_filter" in errors[0].message


def test_unsupported_constructs_are_refused():
    _, errors = validate_content(text("{{> header}} body"), None)
    assert "partials" in errors[0].message
    _, errors = validate_content(text("{% include 'x.txt' %}", fmt="JINJA2"), None)
    assert "include" in errors[0].message
    _, errors = validate_content(text("{{.}}"), None)
    assert "inside a section" in errors[0].message
    _, errors = validate_content(text("{{first-name}}"), None)
    assert "not a valid variable name" in errors[0].message


def test_variable_declarations_are_checked():
    declared = [
        VariableSpec("ok"),
        VariableSpec("ok"),
        VariableSpec("user.name"),
        VariableSpec("t", type="DATE"),
        VariableSpec("n", type="INTEGER", default="3"),
        VariableSpec("tone", options=["formal", 7]),
        VariableSpec("level", type="NUMBER", default=5, options=[1, 2]),
        VariableSpec("flag", type="BOOLEAN", options=[]),
    ]
    _, errors = validate_content(text("{{ok}}{{t}}{{n}}{{tone}}{{level}}{{flag}}"), declared)
    assert fields(errors) == [
        ["variables", "1", "name"],
        ["variables", "2", "name"],
        ["variables", "3", "type"],
        ["variables", "4", "defaultValue"],
        ["variables", "5", "options"],
        ["variables", "6", "defaultValue"],
        ["variables", "7", "options"],
    ]
    assert "more than once" in errors[0].message
    assert "no dots" in errors[1].message
    assert "INTEGER" in errors[3].message and '"3"' in errors[3].message


def test_declared_variables_from_dicts_are_normalised():
    n = valid(
        text("{{n}} {{tone}}"),
        [
            {"name": "n", "type": "NUMBER", "defaultValue": 2.0, "description": ""},
            {"name": "tone", "required": False, "options": ["a", "b"]},
        ],
    )
    assert n.variables == [
        VariableSpec("n", "NUMBER", True, 2, None, None),
        VariableSpec("tone", "STRING", False, None, None, ["a", "b"]),
    ]


def test_model_settings_and_output_schema_are_checked():
    n = valid(text("x", model_settings={"model": "gpt", "temperature": 1, "max_tokens": 100.0, "topP": None}))
    assert n.model_settings == {"model": "gpt", "temperature": 1.0, "maxTokens": 100}
    _, errors = validate_content(
        text("x", model_settings={"temperature": 3, "maxTokens": 0, "stop": [""], "colour": "red"}), None
    )
    assert fields(errors) == [
        ["modelSettings", "temperature"],
        ["modelSettings", "maxTokens"],
        ["modelSettings", "stop"],
        ["modelSettings", "colour"],
    ]
    valid(text("x", output_schema={"type": "object", "properties": {"a": {"type": "string"}}}))
    _, errors = validate_content(text("x", output_schema={"type": "banana"}), None)
    assert fields(errors) == [["outputSchema"]] and "JSON Schema" in errors[0].message


# ------------------------------------------------------------------ rendering: mustache


def test_mustache_renders_without_html_escaping():
    n = valid(text("{{x}}|{{{x}}}|{{&x}}"))
    assert render(n, {"x": "<b>&"}).text == "<b>&|<b>&|<b>&"


def test_mustache_sections_inverted_sections_and_values_as_text():
    n = valid(
        text("{{#items}}- {{name}}\n{{/items}}{{^items}}no items\n{{/items}}{{user.email}} {{cfg}} {{items.length}}"),
        [VariableSpec("items", "JSON"), VariableSpec("user", "JSON"), VariableSpec("cfg", "JSON")],
    )
    out = render(n, {"items": [{"name": "a"}, {"name": "b"}], "user": {"email": "e@x"}, "cfg": {"k": [1, True]}})
    assert out.text == '- a\n- b\ne@x {"k": [1, true]} 2'
    out = render(n, {"items": [], "user": {}, "cfg": {"k": 1}})
    assert out.text == 'no items\n {"k": 1} 0'


def test_booleans_and_numbers_render_naturally_in_both_formats():
    for fmt, src in (("MUSTACHE", "{{b}} {{n}} {{f}}"), ("JINJA2", "{{ b }} {{ n }} {{ f }}")):
        n = valid(text(src, fmt), [VariableSpec("b", "BOOLEAN"), VariableSpec("n", "INTEGER"), VariableSpec("f", "NUMBER")])
        assert render(n, {"b": False, "n": 3.0, "f": 2.5}).text == "false 3 2.5"


def test_mustache_does_not_reach_python_attributes():
    n = valid(text("{{name.__class__}}|{{name.upper}}|{{#name.upper}}called{{/name.upper}}"), [VariableSpec("name")])
    assert render(n, {"name": "ann"}).text == "||"


# ------------------------------------------------------------------ rendering: jinja


def test_jinja_renders_loops_and_json_without_escaping():
    n = valid(text("{% for q in qs %}{{ loop.index }}. {{ q }}\n{% endfor %}{{ meta }}", "JINJA2"),
              [VariableSpec("qs", "JSON"), VariableSpec("meta", "JSON")])
    assert render(n, {"qs": ["<a>", "b&"], "meta": {"k": None}}).text == '1. <a>\n2. b&\n{"k": null}'


def test_jinja_attribute_access_to_internals_is_refused():
    for src in ("{{ ''.__class__ }}", "{{ x.__init__.__globals__ }}", "{{ cycler.__init__ }}", "{{ [].append(1) }}"):
        n = valid(text(src, "JINJA2"), [VariableSpec("x")] if "x." in src else [])
        out = render(n, {"x": "s"} if "x." in src else {})
        assert out.text is None and out.errors, src
        assert "unsafe" in out.errors[0], out.errors


def test_jinja_undefined_attribute_is_an_error_with_line():
    n = valid(text("first\n{{ user.nickname }}", "JINJA2"), [VariableSpec("user", "JSON")])
    out = render(n, {"user": {"name": "a"}})
    assert out.text is None
    assert out.errors[0].startswith("template, line 2:") and "nickname" in out.errors[0]


@pytest.mark.parametrize(
    "src",
    [
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
        "{{ 'a' * 10**9 }}",
        "{{ 2 ** 10000000 }}",
        "{{ 'a'|center(10**9) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '{:>{}}'.format(1, 10**9) }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% macro m() %}{% for i in range(100000) %}{{ 'y' * 500 }}{% endfor %}{% endmacro %}"
        "{% for i in range(100) %}{{ m()|length }}{% endfor %}",
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    ],
)
def test_jinja_runaway_templates_are_stopped_quickly(src):
    n = valid(text(src, "JINJA2"))
    started = time.monotonic()
    out = render(n, {})
    assert time.monotonic() - started < 5
    assert out.text is None and len(out.errors) == 1


def test_runaway_mustache_over_big_arrays_is_stopped():
    n = valid(text("{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}"), [VariableSpec("a", "JSON")])
    out = render(n, {"a": list(range(1000))}, limits=RenderLimits(max_operations=100_000))
    assert out.text is None and "steps" in out.errors[0]


def test_output_size_is_bounded_in_both_formats():
    limits = RenderLimits(max_output_chars=1000)
    m = valid(text("{{#a}}{{x}}{{/a}}"), [VariableSpec("a", "JSON"), VariableSpec("x")])
    out = render(m, {"a": list(range(20)), "x": "y" * 100}, limits=limits)
    assert out.text is None and "longer than 1000 characters" in out.errors[0]
    j = valid(text("{% for i in range(50) %}{{ x }}{% endfor %}", "JINJA2"), [VariableSpec("x")])
    assert render(j, {"x": "y" * 100}, limits=limits).errors[0].endswith("longer than 1000 characters")
    assert len(render(j, {"x": "y" * 10}, limits=limits).text) == 500


def test_time_limit_applies():
    n = valid(text("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}", "JINJA2"))
    started = time.monotonic()
    out = render(n, {}, limits=RenderLimits(timeout_seconds=0.3, max_operations=10**9))
    assert time.monotonic() - started < 2
    assert "longer than 0.3 seconds" in out.errors[0]


# ------------------------------------------------------------------ rendering: variables


TYPED = [
    VariableSpec("s", "STRING"),
    VariableSpec("n", "NUMBER"),
    VariableSpec("i", "INTEGER"),
    VariableSpec("b", "BOOLEAN"),
    VariableSpec("j", "JSON"),
]
GOOD = {"s": "x", "n": 1, "i": 2, "b": True, "j": [1]}


@pytest.mark.parametrize(
    "name,bad,expected",
    [
        ("s", 3, "a STRING"),
        ("n", "1.5", "a NUMBER"),
        ("n", True, "a NUMBER"),
        ("i", "3", "an INTEGER"),
        ("i", 2.5, "an INTEGER"),
        ("b", 1, "a BOOLEAN"),
        ("b", "true", "a BOOLEAN"),
        ("j", float("nan"), "a JSON value"),
    ],
)
def test_types_are_enforced(name, bad, expected):
    n = valid(text("{{s}}{{n}}{{i}}{{b}}{{j}}"), TYPED)
    assert render(n, GOOD).text == "x12true[1]"
    out = render(n, {**GOOD, name: bad})
    assert (out.text, out.missing_variables, len(out.errors)) == (None, [], 1)
    assert out.errors[0].startswith(f'variable "{name}" must be {expected}')
    assert "; got " in out.errors[0]


def test_ints_are_accepted_for_number_and_integral_floats_for_integer():
    n = valid(text("{{n}} {{i}}"), [VariableSpec("n", "NUMBER"), VariableSpec("i", "INTEGER")])
    assert render(n, {"n": 7, "i": 4.0}).text == "7 4"


def test_missing_defaults_optional_and_unknown_variables():
    n = valid(
        text("[{{a}}][{{b}}][{{c}}]"),
        [VariableSpec("a"), VariableSpec("b", default="B"), VariableSpec("c", required=False)],
    )
    out = render(n, {"zzz": 1, "b": None})
    assert (out.text, out.missing_variables, out.unknown_variables) == (None, ["a"], ["zzz"])
    out = render(n, {"a": "A", "zzz": 1})
    assert (out.text, out.missing_variables, out.unknown_variables, out.errors) == ("[A][B][]", [], ["zzz"], [])


def test_options_are_enforced():
    n = valid(text("{{tone}} {{level}}"), [VariableSpec("tone", options=["formal", "casual"]),
                                           VariableSpec("level", "INTEGER", default=1, options=[1, 2])])
    assert render(n, {"tone": "casual"}).text == "casual 1"
    assert render(n, {"tone": "casual", "level": 2.0}).text == "casual 2"
    out = render(n, {"tone": "angry", "level": True})
    assert out.text is None
    assert out.errors == [
        'variable "tone" must be one of "formal", "casual"; got a string ("angry")',
        'variable "level" must be an INTEGER (a whole number); got a boolean (true)',
    ]


def test_chat_render_includes_system_prompt_and_messages():
    n = valid(
        PromptContent(
            kind="CHAT",
            format="JINJA2",
            system_prompt="You are {{ persona }}.",
            messages=[ChatMessage("user", "{{ q }}"), ChatMessage("assistant", "Sure, {{ persona }}.")],
        )
    )
    out = render(n, {"persona": "a pirate", "q": "Hi?"})
    assert out.system_prompt == "You are a pirate."
    assert out.messages == [ChatMessage("user", "Hi?"), ChatMessage("assistant", "Sure, a pirate.")]
    assert out.text is None and out.errors == []


@pytest.mark.parametrize(
    "content,expected",
    [
        (text("{{#open}}never closed"), "Unclosed section"),
        (text("{% if %}", "JINJA2"), "line 1"),
        (text("{{ 1 / 0 }}", "JINJA2"), "ZeroDivisionError"),
        (text("{{ x|int + 'a' }}", "JINJA2", variables=[VariableSpec("x")]), "line 1: TypeError: unsupported operand"),
        (text("{{ y.a.b.c }}", "JINJA2", variables=[VariableSpec("y", "JSON")]), "has no attribute 'b'"),
        (PromptContent(kind="CHAT", messages=None), "no messages"),
        (PromptContent(kind="WHAT", template="x"), "unknown prompt kind"),
        (PromptContent(format="ERB", template="x"), "unknown template format"),
        (PromptContent(template=None), "no template"),
    ],
)
def test_render_never_raises(content, expected):
    out = render(content, {"x": "5", "y": {"a": 1}})
    assert out.text is None and out.messages is None
    assert len(out.errors) == 1 and expected in out.errors[0], out.errors


def test_render_rejects_variables_that_are_not_an_object():
    out = render(text("x"), ["not", "a", "dict"])
    assert out.text is None and out.errors[0].startswith("variables must be a JSON object")


def test_render_infers_variables_when_content_declares_none():
    out = render(text("Hi {{name}}"), {"name": "Bo", "extra": 1})
    assert out.text == "Hi Bo" and out.unknown_variables == ["extra"]


# ------------------------------------------------------------------ canonical form and hash


def test_hash_is_stable_across_representations():
    a = PromptContent(
        template="Hi {{n}}",
        system_prompt="",
        variables=[VariableSpec("n", "NUMBER", default=2.0, description="")],
        model_settings={"temperature": 1, "top_p": 0.5, "model": "m", "stop": None},
        output_schema={"type": "object", "required": ["a"]},
    )
    b = PromptContent.from_dict(
        {
            "outputSchema": {"required": ["a"], "type": "object"},
            "modelSettings": {"model": "m", "topP": 0.5, "temperature": 1.0},
            "variables": [{"name": "n", "type": "NUMBER", "defaultValue": 2, "required": True}],
            "template": "Hi {{n}}",
            "kind": "TEXT",
        }
    )
    assert canonical_dict(a) == canonical_dict(b)
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 64
    assert content_hash(a) != content_hash(PromptContent(template="Hi {{n}} "))
    assert "systemPrompt" not in canonical_dict(a)


def test_hash_is_sha256_of_canonical_json():
    import hashlib

    c = PromptContent(template="é {{x}}", variables=[VariableSpec("x")])
    expected = json.dumps(canonical_dict(c), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert content_hash(c) == hashlib.sha256(expected.encode()).hexdigest()


def test_to_dict_round_trips_through_json():
    c = valid(
        PromptContent(
            kind="CHAT",
            format="JINJA2",
            system_prompt="S {{ a }}",
            messages=[ChatMessage("user", "{{ b }}")],
            model_settings={"model": "m", "extra": {"seed": 1}},
            output_schema=True,
        ),
        [VariableSpec("a", options=["x", "y"], default="x", description="A"), VariableSpec("b", "JSON", required=False)],
    )
    stored = json.loads(json.dumps(c.to_dict()))
    back = PromptContent.from_dict(stored)
    assert back == c
    assert content_hash(back) == content_hash(c)


def test_inference_skips_parts_that_do_not_parse():
    content = PromptContent(template="{{a}} {{b}}", system_prompt="{{#broken}}")
    assert infer_variables(content) == ["a", "b"]
    _, errors = validate_content(content, None)
    assert fields(errors) == [["systemPrompt"]]


def test_jinja_optional_variable_without_default_is_none():
    n = valid(
        text("[{{ x }}]{% if x %}set{% else %}unset{% endif %}", "JINJA2"),
        [VariableSpec("x", required=False)],
    )
    assert render(n, {}).text == "[]unset"
    assert render(n, {"x": "v"}).text == "[v]set"


def test_concurrent_renders_have_separate_limits():
    from concurrent.futures import ThreadPoolExecutor

    n = valid(text("{% for i in range(2000) %}x{% endfor %}", "JINJA2"))
    tight = RenderLimits(max_output_chars=100)

    def run(i):
        return render(n, {}, limits=tight if i % 2 else None)

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(run, range(16)))
    for i, out in enumerate(outcomes):
        if i % 2:
            assert out.text is None and "longer than 100" in out.errors[0]
        else:
            assert out.text == "x" * 2000
