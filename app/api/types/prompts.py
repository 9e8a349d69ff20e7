"""The prompt registry in GraphQL: Prompt, PromptVersion, diffs, rendering, Project.prompts/prompt/tags, search.

Other domains add fields to Prompt and PromptVersion through their mixins (deployments,
validations, executions). Every relation is read through a per-request dataloader
(``prompt_loaders``), so a request's statement count depends on its shape, not on its rows.
Mutations live in ``prompt_mutations``; inputs in ``prompt_inputs``; value types in ``prompt_content``.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.db import models
from app.services import search as search_service
from app.services.access import Action
from app.services.prompts import content_of
from app.templating import render as render_content
from app.templating.diff import diff_contents

from ..child_pages import child_connection
from ..errors import BadRequest
from ..pagination import Connection
from ..relay import MAX_PAGE, Node, decode_gid_of, encode_gid, register_node
from .deployments import PromptDeploymentFields, VersionDeploymentFields
from .executions import PromptExecutionFields, VersionExecutionFields
from .prompt_content import (ChatMessageTemplate, DiffHunk, DiffLineKind, ModelSettings, OrderDirection, PromptKind,
                             PromptOrderField, PromptStatus, RenderResult, SearchMode, TemplateFormat,
                             TemplateVariable, VariableType)
from .prompt_inputs import PromptFilter, PromptOrder, filter_spec
from .prompt_loaders import (PROMPT_PAGES, ProjectTags, PromptByName, VersionByNumber, VersionsPage, VisiblePrompts,
                             VisibleVersions, check_cursor)
from .validations import PromptValidationFields

UserRef = Annotated["User", strawberry.lazy("app.api.types.identity")]
ProjectRef = Annotated["Project", strawberry.lazy("app.api.types.projects")]


async def _user(info: Info, user_id: uuid.UUID | None):
    if user_id is None:
        return None
    from .identity import User

    row = await info.context.by_id(models.User).load(user_id)
    return User.from_row(row) if row is not None else None


async def _visible_version(info: Info, version_id: uuid.UUID | None) -> "PromptVersion | None":
    if version_id is None:
        return None
    row = await info.context.loader(VisibleVersions).load(version_id)
    return PromptVersion.from_row(row) if row is not None else None


# ------------------------------------------------------------------ Prompt

@strawberry.type
class Prompt(PromptDeploymentFields, PromptValidationFields, PromptExecutionFields, Node):
    id: strawberry.ID
    row: strawberry.Private[models.Prompt]
    name: str
    description: str | None
    category: str | None
    tags: list[str]
    status: PromptStatus = strawberry.field(
        description="ARCHIVED prompts are hidden from default listings and search, cannot be deployed or "
                    "executed, and are read-only until restored (status DRAFT or PUBLISHED).")
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None = strawberry.field(description="When the prompt was first PUBLISHED.")

    @classmethod
    def from_row(cls, row: models.Prompt) -> "Prompt":
        return cls(id=strawberry.ID(encode_gid("Prompt", row.id)), row=row, name=row.name,
                   description=row.description, category=row.category, tags=list(row.tags or []),
                   status=PromptStatus(row.status), created_at=row.created_at, updated_at=row.updated_at,
                   published_at=row.published_at)

    @strawberry.field
    async def project(self, info: Info) -> ProjectRef:
        from .projects import Project

        row = await info.context.by_id(models.Project).load(self.row.project_id)
        return Project.from_row(row)

    @strawberry.field
    async def created_by(self, info: Info) -> UserRef | None:
        return await _user(info, self.row.created_by_id)

    @strawberry.field
    async def latest_version(self, info: Info) -> "PromptVersion":
        row = await info.context.loader(VersionByNumber).load((self.row.id, self.row.latest_version))
        return PromptVersion.from_row(row)

    @strawberry.field
    async def version(self, info: Info, number: int) -> "PromptVersion | None":
        if not 1 <= number <= self.row.latest_version:
            return None
        row = await info.context.loader(VersionByNumber).load((self.row.id, number))
        return PromptVersion.from_row(row) if row is not None else None

    @strawberry.field(description="Newest first.")
    async def versions(self, info: Info, first: int | None = 20,
                       after: str | None = None) -> Connection["PromptVersion"]:
        check_cursor(after, "NUMBER")
        conn = await child_connection(info, VersionsPage, self.row.id, first=first, after=after,
                                      wrap=PromptVersion.from_row)
        latest = self.row.latest_version

        async def count() -> int:  # versions are numbered without gaps and never deleted one by one
            return latest

        conn._count = count
        return conn

    @strawberry.field(description="Versions are numbered 1, 2, 3, ... without gaps: this is the latest number.")
    def version_count(self) -> int:
        return self.row.latest_version

    @strawberry.field(description="The version this prompt was forked from, if any (null when that version was "
                                  "deleted or is not visible to you).")
    async def forked_from(self, info: Info) -> "PromptVersion | None":
        return await _visible_version(info, self.row.forked_from_version_id)


# ------------------------------------------------------------------ PromptVersion

@strawberry.type(description="An immutable snapshot of a prompt's content. Versions are never edited; a change "
                             "is a new version.")
class PromptVersion(VersionDeploymentFields, VersionExecutionFields, Node):
    id: strawberry.ID
    row: strawberry.Private[models.PromptVersion]
    number: int = strawberry.field(description="1, 2, 3, ... per prompt.")
    kind: PromptKind
    format: TemplateFormat
    template: str | None = strawberry.field(description="The template, for TEXT prompts.")
    messages: list[ChatMessageTemplate] | None = strawberry.field(description="The message templates, for CHAT "
                                                                              "prompts.")
    system_prompt: str | None
    variables: list[TemplateVariable]
    model_settings: ModelSettings | None
    output_schema: strawberry.scalars.JSON | None = strawberry.field(
        description="JSON Schema that the output is expected to follow, if any.")
    commit_message: str | None
    created_at: datetime
    content_hash: str = strawberry.field(description="SHA-256 of the canonical content; equal content, equal hash.")

    @classmethod
    def from_row(cls, row: models.PromptVersion) -> "PromptVersion":
        messages = None
        if row.messages is not None:
            messages = [ChatMessageTemplate(role=m["role"], content=m["content"]) for m in row.messages]
        return cls(id=strawberry.ID(encode_gid("PromptVersion", row.id)), row=row, number=row.number,
                   kind=PromptKind(row.kind), format=TemplateFormat(row.format), template=row.template,
                   messages=messages, system_prompt=row.system_prompt,
                   variables=[TemplateVariable.from_dict(v) for v in row.variables or []],
                   model_settings=ModelSettings.from_dict(row.model_settings), output_schema=row.output_schema,
                   commit_message=row.commit_message, created_at=row.created_at, content_hash=row.content_hash)

    @strawberry.field
    async def prompt(self, info: Info) -> Prompt:
        row = await info.context.by_id(models.Prompt).load(self.row.prompt_id)
        return Prompt.from_row(row)

    @strawberry.field
    async def author(self, info: Info) -> UserRef | None:
        return await _user(info, self.row.author_id)

    @strawberry.field
    async def is_latest(self, info: Info) -> bool:
        prompt = await info.context.by_id(models.Prompt).load(self.row.prompt_id)
        return prompt is not None and prompt.latest_version == self.row.number

    @strawberry.field(description="The version before this one; null for version 1.")
    async def previous(self, info: Info) -> "PromptVersion | None":
        if self.row.number <= 1:
            return None
        row = await info.context.loader(VersionByNumber).load((self.row.prompt_id, self.row.number - 1))
        return PromptVersion.from_row(row) if row is not None else None

    @strawberry.field(description="Set when this version was made by rolling back to an older one.")
    async def restored_from(self, info: Info) -> "PromptVersion | None":
        if self.row.restored_from_id is None:
            return None
        row = await info.context.by_id(models.PromptVersion).load(self.row.restored_from_id)
        return PromptVersion.from_row(row) if row is not None else None

    @strawberry.field(description=(
        "Difference from another version of the same prompt (`against` is the old side, this version the new "
        "one); from the previous version when omitted, and null for version 1 then (nothing comes before it). "
        "Null when `against` does not exist or is not visible; a version of another prompt is an error "
        "(BAD_USER_INPUT)."))
    async def diff(self, info: Info, against: strawberry.ID | None = None) -> "PromptVersionDiff | None":
        if against is None:
            if self.row.number <= 1:
                return None
            old = await info.context.loader(VersionByNumber).load((self.row.prompt_id, self.row.number - 1))
        else:
            old_id = decode_gid_of(against, "PromptVersion")
            old = await info.context.loader(VisibleVersions).load(old_id) if old_id is not None else None
        if old is None:
            return None
        if old.prompt_id != self.row.prompt_id:
            raise BadRequest("Versions of different prompts cannot be diffed; `against` must be a version of "
                             "the same prompt.")
        return PromptVersionDiff.between(PromptVersion.from_row(old), self)

    @strawberry.field(description="Render with the given variables, without calling any model. Never fails: "
                                  "problems are reported in the result.")
    async def render(self, variables: strawberry.scalars.JSON) -> RenderResult:
        outcome = await asyncio.to_thread(render_content, content_of(self.row), variables)
        return RenderResult.from_outcome(outcome)


@strawberry.type
class PromptVersionDiff:
    from_: PromptVersion = strawberry.field(name="from")
    to: PromptVersion
    unified: str = strawberry.field(description="A unified diff of the canonical text of both versions (empty "
                                                "when their content is equal).")
    hunks: list[DiffHunk]
    added_lines: int
    removed_lines: int
    changed_fields: list[str] = strawberry.field(description=(
        "Which parts differ: template, messages, systemPrompt, variables, modelSettings, outputSchema, format, "
        "kind."))
    variables_added: list[str]
    variables_removed: list[str]

    @classmethod
    def between(cls, old: PromptVersion, new: PromptVersion) -> "PromptVersionDiff":
        d = diff_contents(content_of(old.row), content_of(new.row), f"version {old.row.number}",
                          f"version {new.row.number}")
        return cls(from_=old, to=new, unified=d.unified, hunks=[DiffHunk.from_hunk(h) for h in d.hunks],
                   added_lines=d.added_lines, removed_lines=d.removed_lines, changed_fields=d.changed_fields,
                   variables_added=d.variables_added, variables_removed=d.variables_removed)


@strawberry.type
class PromptSearchHit:
    prompt: Prompt
    version: PromptVersion | None = strawberry.field(
        description="The version whose content matched best: the latest version (only the latest version's "
                    "content is indexed).")
    score: float = strawberry.field(description="ts_rank_cd of the full-text match plus the trigram similarity "
                                                "of the name; higher is better.")
    snippet: str | None = strawberry.field(description="Text around the matches, matches marked "
                                                       "<mark>…</mark>; null when only the name matched "
                                                       "by similarity.")


# ------------------------------------------------------------------ Project.prompts / prompt / tags (mixin)

@strawberry.type
class ProjectPromptFields:
    """Project.prompts / prompt / tags (mixed into Project; ``self.row`` is the project row)."""

    @strawberry.field(description=(
        "The project's prompts. Without a status filter ARCHIVED prompts are left out. Ordered by orderBy "
        "(default CREATED_AT DESC); keyset pagination."))
    async def prompts(self, info: Info, first: int | None = 20, after: str | None = None,
                      filter: PromptFilter | None = None,
                      order_by: PromptOrder | None = None) -> Connection[Prompt]:
        project_id = self.row.id  # type: ignore[attr-defined]
        field = order_by.field.value if order_by is not None else PromptOrderField.CREATED_AT.value
        descending = order_by.direction == OrderDirection.DESC if order_by is not None else True
        check_cursor(after, field)
        if not await info.context.can(project_id, Action.READ_PROMPTS):
            return Connection.empty()
        cls = PROMPT_PAGES[(field, descending)]
        ctx = info.context
        # Later fields (Prompt.project, PromptVersion.prompt) find these rows without querying again.
        ctx.by_id(models.Project).prime(project_id, self.row)  # type: ignore[attr-defined]

        def wrap(row: models.Prompt) -> Prompt:
            ctx.by_id(models.Prompt).prime(row.id, row)
            return Prompt.from_row(row)

        return await child_connection(info, cls, project_id, first=first, after=after, wrap=wrap,
                                      args=(filter_spec(filter),))

    @strawberry.field(description="The prompt of this name (exact), whatever its status; null when there is none "
                                  "or you may not read prompts here.")
    async def prompt(self, info: Info, name: str) -> Prompt | None:
        project_id = self.row.id  # type: ignore[attr-defined]
        if not await info.context.can(project_id, Action.READ_PROMPTS):
            return None
        row = await info.context.loader(PromptByName).load((project_id, name.strip()))
        return Prompt.from_row(row) if row is not None else None

    @strawberry.field(description="The distinct tags of the project's prompts (all statuses), sorted.")
    async def tags(self, info: Info) -> list[str]:
        project_id = self.row.id  # type: ignore[attr-defined]
        if not await info.context.can(project_id, Action.READ_PROMPTS):
            return []
        return await info.context.loader(ProjectTags).load(project_id)


# ------------------------------------------------------------------ Query.searchPrompts

@strawberry.type
class PromptQuery:
    @strawberry.field(description=(
        "Prompts ranked by how well their name, tags, description and latest version's text match `query` "
        "(PostgreSQL full-text search with the english and simple configurations, so inflections and other "
        "languages match; web-search syntax: quotes, or, -word) plus trigram similarity of names, so misspelt "
        "names are found. `mode`: semantic ranking is not available yet, so SEMANTIC and HYBRID currently rank "
        "exactly as FULLTEXT. ARCHIVED prompts are left out unless the filter asks for them. Empty when the "
        "project is not visible or you may not read its prompts. `first`: 1-100."))
    async def search_prompts(self, info: Info, project_id: strawberry.ID, query: str,
                             mode: SearchMode | None = SearchMode.HYBRID, first: int | None = 10,
                             filter: PromptFilter | None = None) -> list[PromptSearchHit]:
        limit = 10 if first is None else first
        if limit < 0:
            raise BadRequest("`first` must not be negative")
        if len(query) > search_service.MAX_QUERY:
            raise BadRequest(f"the query is {len(query)} characters long; at most {search_service.MAX_QUERY} "
                             "are allowed")
        pid = decode_gid_of(project_id, "Project")
        ctx = info.context
        if pid is None or not await ctx.can(pid, Action.READ_PROMPTS):
            return []
        async with ctx.db() as session:
            hits = await search_service.search_prompts(session, pid, query, min(limit, MAX_PAGE),
                                                       filter_spec(filter))
        for hit in hits:
            ctx.by_id(models.Prompt).prime(hit.prompt.id, hit.prompt)
        versions = await ctx.loader(VersionByNumber).load_many([(h.prompt.id, h.prompt.latest_version)
                                                                for h in hits])
        return [PromptSearchHit(prompt=Prompt.from_row(h.prompt), score=h.score, snippet=h.snippet,
                                version=PromptVersion.from_row(v) if v is not None else None)
                for h, v in zip(hits, versions)]


# ------------------------------------------------------------------ node registry

@register_node("Prompt")
async def _prompt_nodes(info: Info, ids: Sequence[uuid.UUID]) -> list[Prompt | None]:
    rows = await info.context.loader(VisiblePrompts).load_many(list(ids))
    return [Prompt.from_row(r) if r is not None else None for r in rows]


@register_node("PromptVersion")
async def _version_nodes(info: Info, ids: Sequence[uuid.UUID]) -> list[PromptVersion | None]:
    rows = await info.context.loader(VisibleVersions).load_many(list(ids))
    return [PromptVersion.from_row(r) if r is not None else None for r in rows]


from .prompt_mutations import PromptMutation  # noqa: E402  (needs the types above)

QUERIES: list = [PromptQuery]
MUTATIONS: list = [PromptMutation]
EXTRA_TYPES: list = [Prompt, PromptVersion, VariableType, DiffLineKind]

__all__ = ["Prompt", "PromptVersion", "PromptVersionDiff", "PromptSearchHit", "ProjectPromptFields"]
