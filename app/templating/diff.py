"""The difference between two versions' content.

Both versions are first written as `canonical_text`, a stable, readable, line-oriented form
(built from the canonical dict, so representation details never show up as changes); the
diff is a line diff of the two texts (difflib, without its "junk" heuristic, so long
templates with many repeated lines diff exactly). Line numbers are 1-based, per side.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from app.templating.model import PromptContent, canonical_dict

#: Field names reported in `ContentDiff.changed_fields`, in this order (GraphQL names).
DIFF_FIELDS = ("template", "messages", "systemPrompt", "variables", "modelSettings", "outputSchema", "format", "kind")


@dataclass
class DiffLine:
    """One line of a hunk. CONTEXT lines have both numbers, REMOVED only the old one,
    ADDED only the new one."""

    kind: Literal["CONTEXT", "ADDED", "REMOVED"]
    text: str
    old_number: int | None
    new_number: int | None


@dataclass
class Hunk:
    """A run of changes with its context; ``header`` is the unified-diff ``@@ -a,b +c,d @@``."""

    header: str
    lines: list[DiffLine] = field(default_factory=list)


@dataclass
class ContentDiff:
    unified: str
    hunks: list[Hunk]
    added_lines: int
    removed_lines: int
    changed_fields: list[str]
    variables_added: list[str]
    variables_removed: list[str]


def _json(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, **kwargs)


def _variable_line(var: dict) -> str:
    parts = [var["type"], "required" if var.get("required", True) else "optional"]
    if "defaultValue" in var:
        parts.append(f"default: {_json(var['defaultValue'])}")
    if "options" in var:
        parts.append(f"options: {_json(var['options'])}")
    if "description" in var:
        parts.append(f"description: {_json(var['description'])}")
    return f"{var['name']}: {', '.join(parts)}"


def canonical_text(content: PromptContent) -> str:
    """A stable multi-line text form of content, for reading and diffing.

    Sections, each only when it has something: ``kind:``/``format:`` lines, ``--- system
    prompt ---``, ``--- template ---`` or ``--- messages ---`` (each message as ``[role]``
    followed by its lines), ``--- variables ---`` (one per line), ``--- model settings ---``
    (sorted ``key: value``, values as JSON), ``--- output schema ---`` (pretty JSON).
    """
    data = canonical_dict(content)
    lines = [f"kind: {data['kind']}", f"format: {data['format']}"]
    if "systemPrompt" in data:
        lines += ["--- system prompt ---", *data["systemPrompt"].split("\n")]
    if "template" in data:
        lines += ["--- template ---", *data["template"].split("\n")]
    if "messages" in data:
        lines.append("--- messages ---")
        for message in data["messages"]:
            lines += [f"[{message['role']}]", *str(message["content"]).split("\n")]
    if data["variables"]:
        lines += ["--- variables ---", *(_variable_line(v) for v in data["variables"])]
    if "modelSettings" in data:
        lines.append("--- model settings ---")
        lines += [f"{key}: {_json(value)}" for key, value in sorted(data["modelSettings"].items())]
    if "outputSchema" in data:
        lines += ["--- output schema ---", *_json(data["outputSchema"], indent=2).split("\n")]
    return "\n".join(lines)


def _range(start: int, stop: int) -> str:
    """A unified-diff range, as difflib writes it: 1-based start, and the length unless it is 1;
    an empty range names the line before it."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start if length == 0 else start + 1},{length}"


def diff_lines(old: list[str], new: list[str], context: int = 3) -> list[Hunk]:
    """Hunks of a line diff, with per-side 1-based line numbers."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    hunks: list[Hunk] = []
    for group in matcher.get_grouped_opcodes(max(0, context)):
        header = f"@@ -{_range(group[0][1], group[-1][2])} +{_range(group[0][3], group[-1][4])} @@"
        hunk = Hunk(header)
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                hunk.lines += [DiffLine("CONTEXT", old[i], i + 1, j1 + (i - i1) + 1) for i in range(i1, i2)]
                continue
            if tag in ("replace", "delete"):
                hunk.lines += [DiffLine("REMOVED", old[i], i + 1, None) for i in range(i1, i2)]
            if tag in ("replace", "insert"):
                hunk.lines += [DiffLine("ADDED", new[j], None, j + 1) for j in range(j1, j2)]
        hunks.append(hunk)
    return hunks


_PREFIX = {"CONTEXT": " ", "ADDED": "+", "REMOVED": "-"}


def diff_contents(
    old: PromptContent, new: PromptContent, old_label: str, new_label: str, context: int = 3
) -> ContentDiff:
    """The difference from ``old`` to ``new``; ``unified`` is empty when they are equal."""
    hunks = diff_lines(canonical_text(old).split("\n"), canonical_text(new).split("\n"), context)
    unified = ""
    if hunks:
        out = [f"--- {old_label}", f"+++ {new_label}"]
        for hunk in hunks:
            out.append(hunk.header)
            out += [_PREFIX[line.kind] + line.text for line in hunk.lines]
        unified = "\n".join(out) + "\n"
    all_lines = [line for hunk in hunks for line in hunk.lines]

    old_data, new_data = canonical_dict(old), canonical_dict(new)
    changed = [name for name in DIFF_FIELDS if _json(old_data.get(name)) != _json(new_data.get(name))]
    old_names = [v["name"] for v in old_data["variables"]]
    new_names = [v["name"] for v in new_data["variables"]]
    return ContentDiff(
        unified=unified,
        hunks=hunks,
        added_lines=sum(1 for line in all_lines if line.kind == "ADDED"),
        removed_lines=sum(1 for line in all_lines if line.kind == "REMOVED"),
        changed_fields=changed,
        variables_added=[n for n in new_names if n not in old_names],
        variables_removed=[n for n in old_names if n not in new_names],
    )
