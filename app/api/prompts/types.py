"""Prompt, PromptVersion, PromptVersionDiff and PromptSearchHit.

Every field is declared here, on its type. Fields whose data belongs to another domain
(deployments, validations, executions) are one-line calls into that domain's ``resolvers``.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from app import sandbox
from app.db import models
from app.services.prompts import content_of
from app.templating.diff import diff_contents

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.enums import EmbeddingStatus, PromptKind, PromptStatus, TemplateFormat
from ..core.errors import BadRequest
from ..core.loaders import Visible
from ..core.pagination import MAX_PAGE, Connection
from ..core.relay import Node, decode_id, global_id, node, related
from ..deployments import resolvers as deployments
from ..deployments.types import Deployment
from ..executions import resolvers as executions
from ..executions.types import Execution, ExecutionFilter, FromArg, ToArg, VersionStats
from ..models.types import ModelSettings
from ..validations import resolvers as validations
from ..validations.types import Validation
from .content import ChatMessageTemplate, DiffHunk, RenderResult, TemplateVariable
from .loaders import EmbeddingOfVersion, SimilarPrompts, VersionByNumber, VersionsPage, check_cursor

if TYPE_CHECKING:
    from ..identity.types import User
    from ..projects.types import Project

UserRef = Annotated["User", strawberry.lazy("app.api.identity.types")]
ProjectRef = Annotated["Project", strawberry.lazy("app.api.projects.types")]


@node(models.Prompt)
@strawberry.type
class Prompt(Node):
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
    def from_row(cls, row: models.Prompt) -> Prompt:
        return cls(id=global_id(cls, row.id), row=row, name=row.name, description=row.description,
                   category=row.category, tags=list(row.tags or []), status=PromptStatus(row.status),
                   created_at=row.created_at, updated_at=row.updated_at, published_at=row.published_at)

    project: ProjectRef = related(models.Project, "project_id")
    created_by: UserRef | None = related(models.User, "created_by_id")

    @strawberry.field
    async def latest_version(self, info: Info) -> PromptVersion:
        row = await info.context.loader(VersionByNumber).load((self.row.id, self.row.latest_version))
        return PromptVersion.from_row(row)

    @strawberry.field
    async def version(self, info: Info, number: int) -> PromptVersion | None:
        if not 1 <= number <= self.row.latest_version:
            return None
        row = await info.context.loader(VersionByNumber).load((self.row.id, number))
        return PromptVersion.from_row(row) if row is not None else None

    @strawberry.field(description="Newest first.")
    async def versions(self, info: Info, first: int | None = 20,
                       after: str | None = None) -> Connection[PromptVersion]:
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
    async def forked_from(self, info: Info) -> PromptVersion | None:
        if self.row.forked_from_version_id is None:
            return None
        row = await info.context.loader(Visible, models.PromptVersion).load(self.row.forked_from_version_id)
        return PromptVersion.from_row(row) if row is not None else None

    @strawberry.field(description="Active deployments, optionally of one environment.")
    async def deployments(self, info: Info, environment: str | None = None) -> list[Deployment]:
        return await deployments.prompt_deployments(info, self.row.id, environment)

    @strawberry.field(description="Every deployment row, active and retired, newest first: who served what and when.")
    async def deployment_history(self, info: Info, first: int | None = 20, after: str | None = None,
                                 environment: str | None = None) -> Connection[Deployment]:
        return await deployments.prompt_deployment_history(info, self.row.id, first, after, environment)

    @strawberry.field(description="The prompt's validations, oldest first; inactive ones only when asked.")
    async def validations(self, info: Info, include_inactive: bool | None = False) -> list[Validation]:
        return await validations.prompt_validations(info, self.row.id, include_inactive)

    @strawberry.field(description="Newest first.")
    async def executions(self, info: Info, first: int | None = 20, after: str | None = None,
                         filter: ExecutionFilter | None = None) -> Connection[Execution]:
        return await executions.prompt_executions(info, self.row, first, after, filter)

    @strawberry.field(description=(
        "The project's prompts whose latest content means nearly the same, most similar first (semantic): the "
        "cosine similarity of their best-matching version to this prompt's latest embedded version, through the "
        "HNSW index. Archived prompts are left out. Empty until this prompt's embedding is ready. `first`: 1-100."))
    async def similar(self, info: Info, first: int | None = 5) -> list[PromptSearchHit]:
        limit = 5 if first is None else first
        if not 0 <= limit <= MAX_PAGE:
            raise BadRequest(f"`first` must be between 0 and {MAX_PAGE}")
        if limit == 0:
            return []
        hits = await info.context.loader(SimilarPrompts).load((self.row.id, limit))
        return await search_hits(info, [(h.prompt_id, h.version_id, h.similarity, None) for h in hits])

    @strawberry.field(description=(
        "Side-by-side figures of the versions live in one environment's traffic split: the versions of the "
        "environment's active deployments now (in split order), each with the figures of its executions in that "
        "environment within the window. Empty when nothing is deployed there."))
    async def split_report(self, info: Info, environment: str, from_: FromArg = None,
                           to: ToArg = None) -> list[VersionStats]:
        return await executions.prompt_split_report(info, self.row, environment, from_, to)


@node(models.PromptVersion)
@strawberry.type(description="An immutable snapshot of a prompt's content. Versions are never edited; a change "
                             "is a new version.")
class PromptVersion(Node):
    id: strawberry.ID
    row: strawberry.Private[models.PromptVersion]
    number: int = strawberry.field(description="1, 2, 3, ... per prompt.")
    kind: PromptKind
    format: TemplateFormat
    template: str | None = strawberry.field(description="The template, for TEXT prompts.")
    system_prompt: str | None
    commit_message: str | None
    created_at: datetime
    content_hash: str = strawberry.field(description="SHA-256 of the canonical content; equal content, equal hash.")

    @classmethod
    def from_row(cls, row: models.PromptVersion) -> PromptVersion:
        # Only the plain columns: the JSON ones are decoded by their fields, when selected. A VersionRow
        # (a versions page, passed as Any) has the attributes of a models.PromptVersion that this type reads.
        return cls(id=global_id(cls, row.id), row=row, number=row.number,
                   kind=PromptKind(row.kind), format=TemplateFormat(row.format), template=row.template,
                   system_prompt=row.system_prompt, commit_message=row.commit_message, created_at=row.created_at,
                   content_hash=row.content_hash)

    @strawberry.field(description="The message templates, for CHAT prompts.")
    def messages(self) -> list[ChatMessageTemplate] | None:
        messages = self.row.messages
        if messages is None:
            return None
        return [ChatMessageTemplate(role=m["role"], content=m["content"]) for m in messages]

    @strawberry.field
    def variables(self) -> list[TemplateVariable]:
        return [TemplateVariable.from_dict(v) for v in self.row.variables or []]

    @strawberry.field
    def model_settings(self) -> ModelSettings | None:
        return ModelSettings.from_dict(self.row.model_settings)

    @strawberry.field(description="JSON Schema that the output is expected to follow, if any.")
    def output_schema(self) -> JSON | None:
        return self.row.output_schema

    prompt: Prompt = related(models.Prompt, "prompt_id")
    author: UserRef | None = related(models.User, "author_id")

    @strawberry.field
    async def is_latest(self, info: Info) -> bool:
        prompt = await info.context.by_id(models.Prompt).load(self.row.prompt_id)
        return prompt is not None and prompt.latest_version == self.row.number

    @strawberry.field(description="The version before this one; null for version 1.")
    async def previous(self, info: Info) -> PromptVersion | None:
        if self.row.number <= 1:
            return None
        row = await info.context.loader(VersionByNumber).load((self.row.prompt_id, self.row.number - 1))
        return PromptVersion.from_row(row) if row is not None else None

    restored_from: PromptVersion | None = related(
        models.PromptVersion, "restored_from_id",
        description="Set when this version was made by rolling back to an older one.")

    @strawberry.field(description=(
        "Difference from another version of the same prompt (`against` is the old side, this version the new "
        "one); from the previous version when omitted, and null for version 1 then (nothing comes before it). "
        "Null when `against` does not exist or is not visible; a version of another prompt is an error "
        "(BAD_USER_INPUT)."))
    async def diff(self, info: Info, against: strawberry.ID | None = None) -> PromptVersionDiff | None:
        if against is None:
            if self.row.number <= 1:
                return None
            old = await info.context.loader(VersionByNumber).load((self.row.prompt_id, self.row.number - 1))
        else:
            old_id = decode_id(against, PromptVersion)
            old = await info.context.loader(Visible, models.PromptVersion).load(old_id) if old_id else None
        if old is None:
            return None
        if old.prompt_id != self.row.prompt_id:
            raise BadRequest("Versions of different prompts cannot be diffed; `against` must be a version of "
                             "the same prompt.")
        return PromptVersionDiff.between(PromptVersion.from_row(old), self)

    @strawberry.field(description="Render with the given variables, without calling any model. Never fails: "
                                  "problems are reported in the result.")
    async def render(self, info: Info, variables: JSON) -> RenderResult:
        outcome = await sandbox.render(info.context.settings, content_of(self.row), variables)
        return RenderResult.from_outcome(outcome)

    @strawberry.field(description="Its embedding for semantic search (status PENDING, READY or FAILED); null "
                                  "only for a version created before embeddings existed and not yet reindexed.")
    async def embedding(self, info: Info) -> VersionEmbedding | None:
        row = await info.context.loader(EmbeddingOfVersion).load((self.row.id,))
        return VersionEmbedding.from_row(row) if row is not None else None

    @strawberry.field(description="Active deployments that serve this version.")
    async def deployments(self, info: Info) -> list[Deployment]:
        return await deployments.version_deployments(info, self.row.id)

    @strawberry.field(description="Figures of this version's executions (all environments) in the window; zeros "
                                  "for viewers who may not read the project's executions.")
    async def stats(self, info: Info, from_: FromArg = None, to: ToArg = None) -> VersionStats:
        return await executions.version_stats(info, self.row, from_, to)


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
    def between(cls, old: PromptVersion, new: PromptVersion) -> PromptVersionDiff:
        d = diff_contents(content_of(old.row), content_of(new.row), f"version {old.row.number}",
                          f"version {new.row.number}")
        return cls(from_=old, to=new, unified=d.unified, hunks=[DiffHunk.from_hunk(h) for h in d.hunks],
                   added_lines=d.added_lines, removed_lines=d.removed_lines, changed_fields=d.changed_fields,
                   variables_added=d.variables_added, variables_removed=d.variables_removed)


@strawberry.type
class PromptSearchHit:
    prompt: Prompt
    version: PromptVersion | None = strawberry.field(
        description="The version whose content matched best: for FULLTEXT the latest version (only the latest "
                    "version's text is indexed for words); for SEMANTIC, similar and HYBRID the version whose "
                    "embedding is nearest (every version is embedded).")
    score: float = strawberry.field(description=(
        "Higher is better. FULLTEXT: ts_rank_cd of the match plus the trigram similarity of the name. SEMANTIC and "
        "Prompt.similar: the cosine similarity of the embeddings (-1..1). HYBRID: the sum over the full-text and "
        "semantic rankings of 1 / (60 + rank), so at most 2/61 ≈ 0.033."))
    snippet: str | None = strawberry.field(description="Text around the matches, matches marked "
                                                       "<mark>…</mark>; null when only the name matched "
                                                       "by similarity.")


async def search_hits(info: Info, items: list[tuple[uuid.UUID, uuid.UUID | None, float, str | None]]
                      ) -> list[PromptSearchHit]:
    """Hits from (prompt id, best version id or None for the latest, score, snippet), loaded in batches."""
    ctx = info.context
    prompts = await ctx.by_id(models.Prompt).load_many([pid for pid, _, _, _ in items])
    by_id = await ctx.by_id(models.PromptVersion).load_many([vid for _, vid, _, _ in items if vid is not None])
    versions = dict(zip([vid for _, vid, _, _ in items if vid is not None], by_id, strict=True))
    latest_keys = [(p.id, p.latest_version) for p, (_, vid, _, _) in zip(prompts, items, strict=True)
                   if p is not None and vid is None]
    latest = dict(zip(latest_keys, await ctx.loader(VersionByNumber).load_many(latest_keys), strict=True))
    hits = []
    for prompt, (_, vid, score, snippet) in zip(prompts, items, strict=True):
        if prompt is None:
            continue  # deleted meanwhile
        version = versions.get(vid) if vid is not None else latest.get((prompt.id, prompt.latest_version))
        hits.append(PromptSearchHit(prompt=Prompt.from_row(prompt), score=score, snippet=snippet,
                                    version=PromptVersion.from_row(version) if version is not None else None))
    return hits


@strawberry.type(description="A prompt version's embedding for semantic search: made by a job after the version "
                             "is created, once (versions are immutable).")
class VersionEmbedding:
    status: EmbeddingStatus
    model: str | None = strawberry.field(description='The model that made the vector, e.g. "builtin:wordllama"; '
                                                     "searches use the vectors of the configured model only.")
    dimensions: int | None = strawberry.field(description="The vector's length.")
    error: str | None = strawberry.field(description="Why it FAILED, or the last error of a PENDING one being "
                                                     "retried.")
    updated_at: datetime

    @classmethod
    def from_row(cls, row: models.VersionEmbedding) -> VersionEmbedding:
        return cls(status=EmbeddingStatus(row.status), model=row.model, dimensions=row.dimensions, error=row.error,
                   updated_at=row.updated_at)
