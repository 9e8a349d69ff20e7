"""Database enums (``app.db.models.enums``) exposed as GraphQL enums, not copied by hand.

Each one is the database's own class made a GraphQL enum (in place: import it from here), so
resolvers receive and may return its members (or the plain stored strings, which are equal to
them). Descriptions of values live here. GraphQL-only enums (orderings, search modes) stay with
their domain.
"""
from __future__ import annotations

from enum import Enum
from typing import TypeVar

import strawberry

from app.db.models.enums import (
    ApiScope,
    AuditResult,
    EmbeddingStatus,
    ExecutionEventType,
    ExecutionStatus,
    LogLevel,
    Priority,
    ProjectRole,
    PromptKind,
    PromptStatus,
    SpanKind,
    SpanStatus,
    TemplateFormat,
    ValidationStatus,
    ValidationType,
)

E = TypeVar("E", bound=type[Enum])


def graphql_enum(cls: E, *, description: str | None = None, values: dict[str, str] | None = None) -> E:
    """Make a database enum a GraphQL enum (same name), with descriptions of some of its values."""
    strawberry.enum(cls, description=description)
    described = values or {}
    unknown = set(described) - set(cls.__members__)
    if unknown:
        raise ValueError(f"{cls.__name__} has no values {sorted(unknown)}")
    for value in cls.__strawberry_definition__.values:  # type: ignore[attr-defined]
        if value.name in described:
            value.description = described[value.name]
    return cls


graphql_enum(ProjectRole)
graphql_enum(ApiScope)
graphql_enum(AuditResult)
graphql_enum(PromptStatus)
graphql_enum(PromptKind, values={
    "TEXT": "One text template.",
    "CHAT": "A list of role-tagged message templates.",
})
graphql_enum(TemplateFormat, values={
    "MUSTACHE": "{{variable}}, sections and inverted sections. Values are inserted as they are (no HTML escaping).",
    "JINJA2": "Jinja2, rendered in a sandbox (no access to internals, files or imports; output size and time are "
              "bounded).",
})
graphql_enum(ValidationType, values={
    "JSON_SCHEMA": 'config: {"schema": {...}} — the output must parse as JSON and follow the schema.',
    "REGEX": 'config: {"pattern": "...", "flags": "i"} — the output must match.',
    "JMESPATH": 'config: {"expression": "..."} — a JMESPath expression over the parsed output must be truthy.',
})
graphql_enum(ValidationStatus)
graphql_enum(EmbeddingStatus, description="Where a prompt version's embedding (semantic search) is.", values={
    "PENDING": "Queued: a worker embeds it soon after the version was created (or retries after an error).",
    "READY": "Embedded: semantic search and Prompt.similar find it.",
    "FAILED": "The model could not embed it (see error); `promptstudio reindex` tries again.",
})
graphql_enum(ExecutionStatus)
graphql_enum(Priority)
graphql_enum(LogLevel)
graphql_enum(ExecutionEventType, values={
    "SNAPSHOT": "The state at the moment of subscribing; always the first event.",
    "QUEUED": "Queued (again, when a worker stopped mid-run: the output starts over).",
})
graphql_enum(SpanKind, description="What a span did: OpenInference's span kinds, plus HTTP, DATABASE and INTERNAL "
                                "(the default).", values={
    "LLM": "A call to a language model (its usage: Span.usage).",
})
graphql_enum(SpanStatus, description="OpenTelemetry's status of a span (and of a trace: ERROR when any span errored, "
                                     "else its root's).")
