"""Canonical text of a version and the diff between two versions (no database)."""

import difflib
import random

from app.templating import ChatMessage, PromptContent, VariableSpec
from app.templating.diff import canonical_text, diff_contents, diff_lines


def base(**kw):
    args = dict(
        template="Hello {{name}}\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8",
        variables=[VariableSpec("name")],
    )
    args.update(kw)
    return PromptContent(**args)


def test_canonical_text_sections():
    content = PromptContent(
        kind="CHAT",
        format="JINJA2",
        system_prompt="Be brief.\nBe kind.",
        messages=[ChatMessage("user", "{{ q }}\nThanks"), ChatMessage("assistant", "OK")],
        variables=[VariableSpec("q", description="the question"), VariableSpec("n", "INTEGER", False, 3, None, [1, 3])],
        model_settings={"temperature": 0.5, "model": "m", "max_tokens": 10},
        output_schema={"type": "object", "required": ["a"]},
    )
    assert canonical_text(content).split("\n") == [
        "kind: CHAT",
        "format: JINJA2",
        "--- system prompt ---",
        "Be brief.",
        "Be kind.",
        "--- messages ---",
        "[user]",
        "{{ q }}",
        "Thanks",
        "[assistant]",
        "OK",
        "--- variables ---",
        'q: STRING, required, description: "the question"',
        "n: INTEGER, optional, default: 3, options: [1, 3]",
        "--- model settings ---",
        "maxTokens: 10",
        'model: "m"',
        "temperature: 0.5",
        "--- output schema ---",
        "{",
        '  "required": [',
        '    "a"',
        "  ],",
        '  "type": "object"',
        "}",
    ]


def test_canonical_text_ignores_representation():
    a = base(model_settings={"temperature": 1, "topP": None}, system_prompt="")
    b = base(model_settings={"temperature": 1.0})
    assert canonical_text(a) == canonical_text(b)
    assert diff_contents(a, b, "v1", "v2").unified == ""


def test_identical_contents_have_no_diff():
    d = diff_contents(base(), base(), "v1", "v2")
    assert (d.unified, d.hunks, d.added_lines, d.removed_lines, d.changed_fields) == ("", [], 0, 0, [])
    assert (d.variables_added, d.variables_removed) == ([], [])


def test_line_numbers_and_counts():
    old = base()
    new = base(template="Hello {{name}}!\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9")
    d = diff_contents(old, new, "version 1", "version 2")
    assert (d.added_lines, d.removed_lines) == (2, 1)
    assert d.changed_fields == ["template"]
    # canonical text: 1 kind, 2 format, 3 "--- template ---", 4-11 template, 12-13 variables
    assert [h.header for h in d.hunks] == ["@@ -1,7 +1,7 @@", "@@ -9,5 +9,6 @@"]
    first = [(l.kind, l.text, l.old_number, l.new_number) for l in d.hunks[0].lines]
    assert first == [
        ("CONTEXT", "kind: TEXT", 1, 1),
        ("CONTEXT", "format: MUSTACHE", 2, 2),
        ("CONTEXT", "--- template ---", 3, 3),
        ("REMOVED", "Hello {{name}}", 4, None),
        ("ADDED", "Hello {{name}}!", None, 4),
        ("CONTEXT", "line 2", 5, 5),
        ("CONTEXT", "line 3", 6, 6),
        ("CONTEXT", "line 4", 7, 7),
    ]
    second = [(l.kind, l.text, l.old_number, l.new_number) for l in d.hunks[1].lines]
    assert second == [
        ("CONTEXT", "line 6", 9, 9),
        ("CONTEXT", "line 7", 10, 10),
        ("CONTEXT", "line 8", 11, 11),
        ("ADDED", "line 9", None, 12),
        ("CONTEXT", "--- variables ---", 12, 13),
        ("CONTEXT", "name: STRING, required", 13, 14),
    ]
    assert d.unified.startswith("--- version 1\n+++ version 2\n@@ -1,7 +1,7 @@\n")


def test_unified_matches_difflib_format():
    old, new = base(), base(template="Hi {{name}}\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8")
    expected = difflib.unified_diff(
        canonical_text(old).split("\n"), canonical_text(new).split("\n"), "a", "b", n=2, lineterm=""
    )
    assert diff_contents(old, new, "a", "b", context=2).unified == "\n".join(expected) + "\n"


def test_context_zero_headers_for_pure_insertions_and_deletions():
    hunks = diff_lines(["a", "b", "c"], ["a", "x", "b"], context=0)
    assert [h.header for h in hunks] == ["@@ -1,0 +2 @@", "@@ -3 +3,0 @@"]
    assert [(l.kind, l.old_number, l.new_number) for h in hunks for l in h.lines] == [
        ("ADDED", None, 2),
        ("REMOVED", 3, None),
    ]


def test_changed_fields_in_fixed_order():
    old = PromptContent(kind="TEXT", format="MUSTACHE", template="Hi {{a}}", variables=[VariableSpec("a")])
    new = PromptContent(
        kind="CHAT",
        format="JINJA2",
        messages=[ChatMessage("user", "Hi {{ b }}")],
        system_prompt="S",
        variables=[VariableSpec("b")],
        model_settings={"model": "m"},
        output_schema={"type": "string"},
    )
    d = diff_contents(old, new, "1", "2")
    assert d.changed_fields == [
        "template",
        "messages",
        "systemPrompt",
        "variables",
        "modelSettings",
        "outputSchema",
        "format",
        "kind",
    ]
    assert (d.variables_added, d.variables_removed) == (["b"], ["a"])


def test_variables_added_and_removed_by_name():
    old = base(template="{{a}} {{b}} {{c}}", variables=[VariableSpec("a"), VariableSpec("b"), VariableSpec("c")])
    new = base(template="{{c}} {{d}} {{a}}", variables=[VariableSpec("c"), VariableSpec("d"), VariableSpec("a", "JSON")])
    d = diff_contents(old, new, "1", "2")
    assert (d.variables_added, d.variables_removed) == (["d"], ["b"])
    assert d.changed_fields == ["template", "variables"]


def test_hunks_reconstruct_both_sides_exactly():
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "", "delta"]
    for _ in range(200):
        old = [rng.choice(words) for _ in range(rng.randint(0, 30))]
        new = list(old)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            if op < 0.4 and new:
                del new[rng.randrange(len(new))]
            elif op < 0.8:
                new.insert(rng.randint(0, len(new)), rng.choice(words + ["new"]))
            elif new:
                new[rng.randrange(len(new))] = "changed"
        hunks = diff_lines(old, new, context=rng.randint(0, 3))
        for hunk in hunks:
            for line in hunk.lines:
                if line.kind in ("CONTEXT", "REMOVED"):
                    assert old[line.old_number - 1] == line.text
                if line.kind in ("CONTEXT", "ADDED"):
                    assert new[line.new_number - 1] == line.text
                assert (line.old_number is None) == (line.kind == "ADDED")
                assert (line.new_number is None) == (line.kind == "REMOVED")
        # applying the hunks to the old side gives the new side
        rebuilt, position = [], 0
        for hunk in hunks:
            start = next((l.old_number for l in hunk.lines if l.old_number is not None), None)
            if start is None:  # a pure insertion: it goes after the line named in the header
                start = int(hunk.header.split()[1][1:].split(",")[0]) + 1
            rebuilt += old[position : start - 1]
            rebuilt += [l.text for l in hunk.lines if l.kind != "REMOVED"]
            position = start - 1 + sum(1 for l in hunk.lines if l.kind != "ADDED")
        rebuilt += old[position:]
        assert rebuilt == new, (old, new)
        added = sum(1 for h in hunks for l in h.lines if l.kind == "ADDED")
        removed = sum(1 for h in hunks for l in h.lines if l.kind == "REMOVED")
        assert len(old) - removed + added == len(new)
