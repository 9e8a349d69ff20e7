"""Value types of prompt content (variables, messages, render results, diff parts) and the registry's
GraphQL-only enums. The enums stored in the database (PromptStatus, PromptKind, TemplateFormat) are
``app.api.core.enums``."""
from __future__ import annotations

import enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.templating import RenderOutcome
from app.templating.diff import DiffLine as ContentDiffLine
from app.templating.diff import Hunk


@strawberry.enum
class VariableType(enum.Enum):
    STRING = "STRING"
    NUMBER = "NUMBER"
    INTEGER = "INTEGER"
    BOOLEAN = "BOOLEAN"
    JSON = "JSON"


@strawberry.enum
class OrderDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.enum
class PromptOrderField(enum.Enum):
    NAME = "NAME"
    CREATED_AT = "CREATED_AT"
    UPDATED_AT = "UPDATED_AT"


@strawberry.enum
class SearchMode(enum.Enum):
    FULLTEXT = strawberry.enum_value(
        "FULLTEXT", description="PostgreSQL full-text search (english and simple configurations) plus trigram "
                                "similarity of names.")
    SEMANTIC = strawberry.enum_value(
        "SEMANTIC", description="Meaning, not words: prompts ranked by the cosine similarity of their best-matching "
                                "version's embedding to the query's (pgvector HNSW index); finds paraphrases and other "
                                "languages. An error (EMBEDDINGS_NOT_READY, EMBEDDING_PROVIDER_UNAVAILABLE) when it "
                                "cannot run.")
    HYBRID = strawberry.enum_value(
        "HYBRID", description="Full-text and semantic ranks fused (reciprocal rank fusion, k = 60). When the semantic "
                              "half cannot run (embeddings not ready, provider down) it ranks as FULLTEXT.")


@strawberry.enum
class DiffLineKind(enum.Enum):
    CONTEXT = "CONTEXT"
    ADDED = "ADDED"
    REMOVED = "REMOVED"


@strawberry.type
class TemplateVariable:
    name: str
    type: VariableType
    required: bool
    default_value: JSON | None
    description: str | None
    options: list[JSON] | None = strawberry.field(
        description="Allowed values, where the variable is an enumeration.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemplateVariable:
        return cls(name=data["name"], type=VariableType(data.get("type") or "STRING"),
                   required=bool(data.get("required", True)), default_value=data.get("defaultValue"),
                   description=data.get("description"), options=data.get("options"))


@strawberry.type
class ChatMessageTemplate:
    role: str
    content: str


@strawberry.type
class RenderedMessage:
    role: str
    content: str


@strawberry.type
class RenderResult:
    text: str | None = strawberry.field(description="The rendered text (TEXT prompts); null when rendering failed.")
    messages: list[RenderedMessage] | None = strawberry.field(
        description="The rendered messages (CHAT prompts); null when rendering failed.")
    system_prompt: str | None
    missing_variables: list[str]
    unknown_variables: list[str] = strawberry.field(
        description="Variables given that the version does not declare; they are ignored and do not make "
                    "rendering fail.")
    errors: list[str]

    @classmethod
    def from_outcome(cls, outcome: RenderOutcome) -> RenderResult:
        messages = None
        if outcome.messages is not None:
            messages = [RenderedMessage(role=m.role, content=m.content) for m in outcome.messages]
        return cls(text=outcome.text, messages=messages, system_prompt=outcome.system_prompt,
                   missing_variables=list(outcome.missing_variables),
                   unknown_variables=list(outcome.unknown_variables), errors=list(outcome.errors))


@strawberry.type
class DiffLine:
    kind: DiffLineKind
    text: str
    old_number: int | None = strawberry.field(description="1-based line number in the old text; null for ADDED.")
    new_number: int | None = strawberry.field(description="1-based line number in the new text; null for REMOVED.")

    @classmethod
    def from_line(cls, line: ContentDiffLine) -> DiffLine:
        return cls(kind=DiffLineKind(line.kind), text=line.text, old_number=line.old_number,
                   new_number=line.new_number)


@strawberry.type
class DiffHunk:
    header: str = strawberry.field(description="The unified-diff header, e.g. @@ -3,4 +3,5 @@.")
    lines: list[DiffLine]

    @classmethod
    def from_hunk(cls, hunk: Hunk) -> DiffHunk:
        return cls(header=hunk.header, lines=[DiffLine.from_line(x) for x in hunk.lines])
