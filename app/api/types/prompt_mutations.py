"""Mutations of the prompt registry: create, update, delete, commit a version, roll back, fork.

Each one: the caller must be signed in (else a top-level UNAUTHENTICATED error); the service runs
in one audited transaction; expected problems come back as ``userErrors`` with the field path.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import strawberry
from strawberry.types import Info

from app.services import prompt_versions as version_service
from app.services import prompts as prompt_service
from app.services.audit import audited
from app.services.errors import ServiceError

from ..errors import UserError, user_errors
from ..relay import decode_gid_of, encode_gid
from .prompt_inputs import (CreatePromptInput, CreatePromptVersionInput, DeletePromptInput, ForkPromptInput,
                            RollbackPromptInput, UpdatePromptInput, given)

PromptRef = Annotated["Prompt", strawberry.lazy("app.api.types.prompts")]
VersionRef = Annotated["PromptVersion", strawberry.lazy("app.api.types.prompts")]
R = TypeVar("R")


@strawberry.type
class CreatePromptPayload:
    prompt: PromptRef | None = None
    version: VersionRef | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PromptPayload:
    prompt: PromptRef | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeletePromptPayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PromptVersionPayload:
    version: VersionRef | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


async def _run(info: Info, action: str, fn: Callable[..., Awaitable[R]], **kwargs: Any) -> R:
    """Run a service function in one audited transaction as the signed-in caller."""
    ctx = info.context
    principal = ctx.require_auth()
    return await audited(ctx.sessionmaker, principal, action,
                         lambda session, note: fn(session, note, principal, **kwargs))


def _types():
    from .prompts import Prompt, PromptVersion

    return Prompt, PromptVersion


@strawberry.type
class PromptMutation:
    @strawberry.mutation(description=(
        "Create a prompt with its version 1, in one transaction. Needs WRITE_PROMPTS (EDITOR or higher; API "
        "keys: PROMPTS_WRITE). The prompt starts as DRAFT."))
    async def create_prompt(self, info: Info, input: CreatePromptInput) -> CreatePromptPayload:
        content, declared = input.content.to_content()
        try:
            prompt, version = await _run(
                info, "prompt.create", prompt_service.create_prompt,
                project_id=decode_gid_of(input.project_id, "Project"), name=input.name, content=content,
                declared=declared, description=given(input.description), category=given(input.category),
                tags=given(input.tags), commit_message=given(input.commit_message))
        except ServiceError as exc:
            return CreatePromptPayload(user_errors=user_errors(exc))
        Prompt, PromptVersion = _types()
        return CreatePromptPayload(prompt=Prompt.from_row(prompt), version=PromptVersion.from_row(version))

    @strawberry.mutation(description=(
        "Change a prompt's metadata (description, category, tags, status); content changes are new versions. "
        "Needs WRITE_PROMPTS."))
    async def update_prompt(self, info: Info, input: UpdatePromptInput) -> PromptPayload:
        try:
            prompt = await _run(info, "prompt.update", prompt_service.update_prompt,
                                prompt_id=decode_gid_of(input.id, "Prompt"), **input.changes())
        except ServiceError as exc:
            return PromptPayload(user_errors=user_errors(exc))
        Prompt, _ = _types()
        return PromptPayload(prompt=Prompt.from_row(prompt))

    @strawberry.mutation(description=(
        "Delete a prompt and everything under it (versions, deployments, validations, executions). OWNER and "
        "ADMIN only (API keys: PROJECT_ADMIN)."))
    async def delete_prompt(self, info: Info, input: DeletePromptInput) -> DeletePromptPayload:
        try:
            deleted = await _run(info, "prompt.delete", prompt_service.delete_prompt,
                                 prompt_id=decode_gid_of(input.id, "Prompt"))
        except ServiceError as exc:
            return DeletePromptPayload(user_errors=user_errors(exc))
        return DeletePromptPayload(deleted_id=strawberry.ID(encode_gid("Prompt", deleted)))

    @strawberry.mutation(description=(
        "Commit new content as the prompt's next version (numbers have no gaps, even under concurrent "
        "commits). CONFLICT when the content equals the latest version (\"no changes\"), when baseVersion is "
        "not the latest any more, or when the prompt is ARCHIVED. Needs WRITE_PROMPTS."))
    async def create_prompt_version(self, info: Info, input: CreatePromptVersionInput) -> PromptVersionPayload:
        content, declared = input.content.to_content()
        try:
            version = await _run(info, "prompt_version.create", version_service.create_prompt_version,
                                 prompt_id=decode_gid_of(input.prompt_id, "Prompt"), content=content,
                                 declared=declared, commit_message=given(input.commit_message),
                                 base_version=given(input.base_version))
        except ServiceError as exc:
            return PromptVersionPayload(user_errors=user_errors(exc))
        _, PromptVersion = _types()
        return PromptVersionPayload(version=PromptVersion.from_row(version))

    @strawberry.mutation(description=(
        "Make a new latest version with the content of version `toVersion` (restoredFrom points at it); "
        "history stays whole. CONFLICT when that content already is the latest. Needs WRITE_PROMPTS."))
    async def rollback_prompt(self, info: Info, input: RollbackPromptInput) -> PromptVersionPayload:
        try:
            version = await _run(info, "prompt.rollback", version_service.rollback_prompt,
                                 prompt_id=decode_gid_of(input.prompt_id, "Prompt"), to_version=input.to_version,
                                 commit_message=given(input.commit_message))
        except ServiceError as exc:
            return PromptVersionPayload(user_errors=user_errors(exc))
        _, PromptVersion = _types()
        return PromptVersionPayload(version=PromptVersion.from_row(version))

    @strawberry.mutation(description=(
        "Copy a version into a new prompt (its version 1; forkedFrom points at the source), in the same or "
        "another project. Needs READ_PROMPTS on the source and WRITE_PROMPTS on the target project. The new "
        "prompt takes the source prompt's description, category and tags and starts as DRAFT."))
    async def fork_prompt(self, info: Info, input: ForkPromptInput) -> CreatePromptPayload:
        try:
            prompt, version = await _run(info, "prompt.fork", version_service.fork_prompt,
                                         version_id=decode_gid_of(input.version_id, "PromptVersion"),
                                         project_id=decode_gid_of(input.project_id, "Project"), name=input.name)
        except ServiceError as exc:
            return CreatePromptPayload(user_errors=user_errors(exc))
        Prompt, PromptVersion = _types()
        return CreatePromptPayload(prompt=Prompt.from_row(prompt), version=PromptVersion.from_row(version))
