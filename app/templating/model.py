"""Plain data classes for prompt content, and its canonical (hashable, storable) form.

Nothing here touches a database or GraphQL. `PromptContent.to_dict()` is the form stored in
jsonb columns; it is the canonical form, so storing and hashing agree. Keys use the GraphQL
field names (camelCase: ``systemPrompt``, ``defaultValue``, ``modelSettings``,
``outputSchema``); `PromptContent.from_dict` also accepts their snake_case spellings.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

KINDS = ("TEXT", "CHAT")
FORMATS = ("MUSTACHE", "JINJA2")
VARIABLE_TYPES = ("STRING", "NUMBER", "INTEGER", "BOOLEAN", "JSON")
#: Roles a CHAT message template may have. ``tool`` is left out on purpose: a tool message
#: needs the id of the tool call it answers, which a template cannot supply.
ROLES = ("system", "user", "assistant")

#: Model settings keys (the GraphQL ``ModelSettingsInput`` fields), with accepted aliases.
MODEL_SETTINGS_KEYS = ("provider", "model", "temperature", "maxTokens", "topP", "stop", "extra")
MODEL_SETTINGS_ALIASES = {"max_tokens": "maxTokens", "top_p": "topP"}


@dataclass
class VariableSpec:
    """A declared (or inferred) template variable.

    ``type`` is one of STRING NUMBER INTEGER BOOLEAN JSON. ``options``, when set, lists the
    only values allowed. ``default`` is used when the variable is not given (or given as null).
    """

    name: str
    type: str = "STRING"
    required: bool = True
    default: Any = None
    description: str | None = None
    options: list | None = None


@dataclass
class ChatMessage:
    """One role-tagged message (a template in content, rendered text in a RenderOutcome)."""

    role: str
    content: str


@dataclass
class PromptContent:
    """The content of a prompt version: what is versioned, hashed and diffed."""

    kind: str = "TEXT"
    format: str = "MUSTACHE"
    template: str | None = None
    messages: list[ChatMessage] | None = None
    system_prompt: str | None = None
    variables: list[VariableSpec] = field(default_factory=list)
    model_settings: dict | None = None
    output_schema: Any = None

    def to_dict(self) -> dict:
        """JSON-serialisable dict (the canonical form; see `canonical_dict`)."""
        return canonical_dict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> PromptContent:
        """Build content from `to_dict()` output (camelCase or snake_case keys accepted)."""
        data = dict(data or {})

        def pick(camel: str, snake: str | None = None, default: Any = None) -> Any:
            if camel in data:
                return data[camel]
            if snake is not None and snake in data:
                return data[snake]
            return default

        messages = pick("messages")
        variables = pick("variables") or []
        return cls(
            kind=enum_str(pick("kind", default="TEXT")),
            format=enum_str(pick("format", default="MUSTACHE")),
            template=pick("template"),
            messages=None
            if messages is None
            else [
                m if isinstance(m, ChatMessage) else ChatMessage(role=m.get("role"), content=m.get("content"))
                for m in messages
            ],
            system_prompt=pick("systemPrompt", "system_prompt"),
            variables=[v if isinstance(v, VariableSpec) else variable_from_dict(v) for v in variables],
            model_settings=pick("modelSettings", "model_settings"),
            output_schema=pick("outputSchema", "output_schema"),
        )


@dataclass
class ContentError:
    """A problem with submitted content. ``field`` is a path relative to the GraphQL
    ``content`` input, e.g. ``["template"]`` or ``["messages", "1", "content"]``."""

    field: list[str]
    message: str


@dataclass
class RenderOutcome:
    """What `render` produced. ``text``/``messages``/``system_prompt`` are None on failure."""

    text: str | None
    messages: list[ChatMessage] | None
    system_prompt: str | None
    missing_variables: list[str] = field(default_factory=list)
    unknown_variables: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.missing_variables


def enum_str(value: Any) -> Any:
    """The string behind an enum member (e.g. a Strawberry enum), or the value unchanged."""
    inner = getattr(value, "value", None)
    return inner if isinstance(inner, str) else value


def variable_from_dict(data: dict) -> VariableSpec:
    """A VariableSpec from a stored/input dict (``defaultValue`` or ``default`` accepted)."""
    # Values are taken as given (of any type): app.templating.validation checks them.
    name: Any = data.get("name")
    return VariableSpec(
        name=name,
        type=enum_str(data.get("type") or "STRING"),
        required=True if data.get("required") is None else data["required"],
        default=data.get("defaultValue", data.get("default")),
        description=data.get("description"),
        options=data.get("options"),
    )


def _sorted_json(value: Any) -> Any:
    """Deep copy of a JSON value with dict keys sorted (list order is kept: it matters)."""
    if isinstance(value, dict):
        return {str(k): _sorted_json(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [_sorted_json(v) for v in value]
    return value


def normalise_number(value: Any) -> Any:
    """Integral floats become ints (JSON does not tell 2.0 from 2); everything else unchanged."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def normalise_model_settings(settings: Any) -> Any:
    """Model settings with aliases resolved, None values dropped, numbers in their natural
    type (temperature/topP as float, maxTokens as int). Non-dicts are returned unchanged
    (validation reports them)."""
    if not isinstance(settings, dict):
        return settings
    out: dict = {}
    for name, value in settings.items():
        key = MODEL_SETTINGS_ALIASES.get(name, name)
        if value is not None:
            out[key] = _setting_value(key, value)
    return out


def _setting_value(key: Any, value: Any) -> Any:
    if key in ("temperature", "topP") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if key == "maxTokens" and isinstance(value, float) and value.is_integer():
        return int(value)
    if key == "stop" and isinstance(value, tuple):
        return list(value)
    return value


def _canonical_variable(spec: VariableSpec) -> dict:
    vtype = enum_str(spec.type)
    numeric = vtype in ("NUMBER", "INTEGER")

    def norm(value: Any) -> Any:
        return normalise_number(value) if numeric else value

    out: dict = {"name": spec.name, "type": vtype, "required": bool(spec.required)}
    if spec.default is not None:
        out["defaultValue"] = _sorted_json(norm(spec.default))
    if spec.description:
        out["description"] = spec.description
    if spec.options is not None:
        out["options"] = [_sorted_json(norm(o)) for o in spec.options]
    return {k: out[k] for k in sorted(out)}


def canonical_dict(content: PromptContent) -> dict:
    """The canonical, JSON-serialisable form of content.

    Sorted keys; optional fields that are None (or empty where empty means nothing: an empty
    system prompt, empty model settings, an empty description) are left out; enum members
    become their names; model-setting aliases and integral numbers are normalised. Template
    text, message order and variable order are content and kept exactly.
    """
    out: dict = {
        "kind": enum_str(content.kind),
        "format": enum_str(content.format),
        "variables": [_canonical_variable(v) for v in content.variables or []],
    }
    if content.template is not None:
        out["template"] = content.template
    if content.messages is not None:
        out["messages"] = [{"content": m.content, "role": m.role} for m in content.messages]
    if content.system_prompt:
        out["systemPrompt"] = content.system_prompt
    settings = normalise_model_settings(content.model_settings)
    if settings:
        out["modelSettings"] = _sorted_json(settings)
    if content.output_schema is not None:
        out["outputSchema"] = _sorted_json(content.output_schema)
    return {k: out[k] for k in sorted(out)}


def canonical_json(content: PromptContent) -> str:
    """Canonical JSON text of content (the input of `content_hash`)."""
    return json.dumps(canonical_dict(content), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(content: PromptContent) -> str:
    """SHA-256 hex digest of the canonical JSON: equal content, equal hash."""
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()
