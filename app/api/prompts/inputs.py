"""GraphQL inputs of the prompt registry, and their conversion to what the services take."""
from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.services.prompts import normalise_tags
from app.services.search import PromptFilterSpec
from app.templating import ChatMessage, PromptContent, VariableSpec

from ..core.enums import PromptKind, PromptStatus, TemplateFormat
from ..core.inputs import or_none, or_unset
from ..models.types import ModelSettingsInput
from .content import OrderDirection, PromptOrderField, VariableType

UNSET: Any = strawberry.UNSET


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


@strawberry.input
class TemplateVariableInput:
    name: str
    type: VariableType | None = VariableType.STRING
    required: bool | None = True
    default_value: JSON | None = UNSET
    description: str | None = UNSET
    options: list[JSON] | None = UNSET

    def to_spec(self) -> VariableSpec:
        return VariableSpec(name=self.name, type=_enum_value(self.type) or "STRING",
                            required=True if self.required is None else self.required,
                            default=or_none(self.default_value), description=or_none(self.description),
                            options=or_none(self.options))


@strawberry.input
class ChatMessageTemplateInput:
    role: str
    content: str


@strawberry.input(description="The content of a version. Variables left out are inferred from the template.")
class PromptContentInput:
    kind: PromptKind | None = PromptKind.TEXT
    format: TemplateFormat | None = TemplateFormat.MUSTACHE
    template: str | None = UNSET
    messages: list[ChatMessageTemplateInput] | None = UNSET
    system_prompt: str | None = UNSET
    variables: list[TemplateVariableInput] | None = strawberry.field(
        default=UNSET, description="Declared variables, checked against the templates (each one used must be "
                                   "declared and each one declared used). Left out or null: inferred.")
    model_settings: ModelSettingsInput | None = UNSET
    output_schema: JSON | None = strawberry.field(
        default=UNSET, description="JSON Schema that outputs are expected to follow.")

    def to_content(self) -> tuple[PromptContent, list[VariableSpec] | None]:
        """(content to validate, declared variables or None to infer them)."""
        messages = or_none(self.messages)
        settings = or_none(self.model_settings)
        content = PromptContent(
            kind=_enum_value(self.kind) or "TEXT",
            format=_enum_value(self.format) or "MUSTACHE",
            template=or_none(self.template),
            messages=None if messages is None else [ChatMessage(role=m.role, content=m.content) for m in messages],
            system_prompt=or_none(self.system_prompt),
            model_settings=None if settings is None else settings.to_dict(),
            output_schema=or_none(self.output_schema),
        )
        variables = or_none(self.variables)
        declared = None if variables is None else [v.to_spec() for v in variables]
        return content, declared


@strawberry.input
class PromptFilter:
    status: list[PromptStatus] | None = strawberry.field(
        default=UNSET, description="Only these statuses. Left out: every status except ARCHIVED.")
    tags: list[str] | None = strawberry.field(
        default=UNSET, description="Only prompts that have all of these tags (compared lower-cased).")
    category: str | None = strawberry.field(default=UNSET, description="Exact category.")
    search: str | None = strawberry.field(
        default=UNSET, description="Case-insensitive match on name and description.")

    def to_spec(self) -> PromptFilterSpec:
        statuses = or_none(self.status)
        tags, _ = normalise_tags([t for t in or_none(self.tags) or [] if t and t.strip()], [])
        category = or_none(self.category)
        search = or_none(self.search)
        return PromptFilterSpec(
            statuses=None if statuses is None else tuple(sorted({s.value for s in statuses})),
            tags=tuple(sorted(tags)),
            category=category.strip() if isinstance(category, str) and category.strip() else None,
            search=search.strip() if isinstance(search, str) and search.strip() else None,
        )


def filter_spec(value: PromptFilter | None) -> PromptFilterSpec:
    return value.to_spec() if value is not None else PromptFilterSpec()


@strawberry.input
class PromptOrder:
    field: PromptOrderField
    direction: OrderDirection


@strawberry.input
class CreatePromptInput:
    project_id: strawberry.ID
    name: str = strawberry.field(description="1-200 characters: letters, digits, '-', '_', '.' and '/' for "
                                             "folders (not at the start or end, not doubled). Unique per project.")
    description: str | None = strawberry.field(default=UNSET, description="At most 5,000 characters.")
    category: str | None = strawberry.field(default=UNSET, description="At most 100 characters.")
    tags: list[str] | None = strawberry.field(
        default=UNSET, description="Trimmed and lower-cased; 1-64 characters each, at most 50.")
    content: PromptContentInput
    commit_message: str | None = UNSET


@strawberry.input
class UpdatePromptInput:
    id: strawberry.ID
    description: str | None = strawberry.field(default=UNSET, description="Left out: unchanged; null: cleared.")
    category: str | None = strawberry.field(default=UNSET, description="Left out: unchanged; null: cleared.")
    tags: list[str] | None = strawberry.field(
        default=UNSET, description="Replaces the tags. Left out: unchanged; null or []: no tags.")
    status: PromptStatus | None = strawberry.field(
        default=UNSET, description="PUBLISHED sets publishedAt (the first time). ARCHIVED hides the prompt from "
                                   "default listings and search, and stops deployments and executions of it; "
                                   "DRAFT or PUBLISHED restores it.")

    def changes(self) -> dict[str, Any]:
        """Keyword arguments for services.prompts.update_prompt (fields left out stay UNSET)."""
        status = or_unset(self.status)
        return {
            "description": or_unset(self.description),
            "category": or_unset(self.category),
            "tags": [] if self.tags is None else or_unset(self.tags),
            "status": status.value if isinstance(status, PromptStatus) else status,
        }


@strawberry.input
class DeletePromptInput:
    id: strawberry.ID


@strawberry.input
class CreatePromptVersionInput:
    prompt_id: strawberry.ID
    content: PromptContentInput
    commit_message: str | None = UNSET
    base_version: int | None = strawberry.field(
        default=UNSET, description="Optimistic concurrency: the latest version number the caller based this on; "
                                   "a mismatch is a CONFLICT.")


@strawberry.input
class RollbackPromptInput:
    prompt_id: strawberry.ID
    to_version: int = strawberry.field(description="The version whose content becomes the new latest version.")
    commit_message: str | None = UNSET


@strawberry.input
class ForkPromptInput:
    version_id: strawberry.ID = strawberry.field(description="The version to copy (READ_PROMPTS needed there).")
    project_id: strawberry.ID = strawberry.field(
        description="Where the new prompt goes (WRITE_PROMPTS needed there); may be the same project.")
    name: str
