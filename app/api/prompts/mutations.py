"""Mutations of the prompt registry: create, update, delete, commit a version, roll back, fork."""
from __future__ import annotations

import strawberry

from app.db import models
from app.services import prompt_versions, prompts

from ..core.context import Info
from ..core.inputs import or_none
from ..core.mutations import Payload, mutation, run
from ..core.relay import decode_id, global_id
from .inputs import (
    CreatePromptInput,
    CreatePromptVersionInput,
    DeletePromptInput,
    ForkPromptInput,
    RollbackPromptInput,
    UpdatePromptInput,
)
from .types import Prompt, PromptVersion


@strawberry.type
class CreatePromptPayload(Payload):
    prompt: Prompt | None = None
    version: PromptVersion | None = None


@strawberry.type
class PromptPayload(Payload):
    prompt: Prompt | None = None


@strawberry.type
class DeletePromptPayload(Payload):
    deleted_id: strawberry.ID | None = None


@strawberry.type
class PromptVersionPayload(Payload):
    version: PromptVersion | None = None


@strawberry.type
class PromptMutation:
    @mutation(
        "Create a prompt with its version 1, in one transaction. Needs WRITE_PROMPTS (EDITOR or higher; API "
        "keys: PROMPTS_WRITE). The prompt starts as DRAFT.")
    async def create_prompt(self, info: Info, input: CreatePromptInput) -> CreatePromptPayload:
        content, declared = input.content.to_content()
        prompt, version = await run(
            info, prompts.create_prompt, project_id=decode_id(input.project_id, models.Project), name=input.name,
            content=content, declared=declared, description=or_none(input.description),
            category=or_none(input.category), tags=or_none(input.tags), commit_message=or_none(input.commit_message))
        return CreatePromptPayload(prompt=Prompt.from_row(prompt), version=PromptVersion.from_row(version))

    @mutation(
        "Change a prompt's metadata (description, category, tags, status); content changes are new versions. "
        "Needs WRITE_PROMPTS.")
    async def update_prompt(self, info: Info, input: UpdatePromptInput) -> PromptPayload:
        prompt = await run(info, prompts.update_prompt, prompt_id=decode_id(input.id, Prompt), **input.changes())
        return PromptPayload(prompt=Prompt.from_row(prompt))

    @mutation(
        "Delete a prompt and everything under it (versions, deployments, validations, executions). OWNER and "
        "ADMIN only (API keys: PROJECT_ADMIN).")
    async def delete_prompt(self, info: Info, input: DeletePromptInput) -> DeletePromptPayload:
        deleted = await run(info, prompts.delete_prompt, prompt_id=decode_id(input.id, Prompt))
        return DeletePromptPayload(deleted_id=global_id(Prompt, deleted))

    @mutation(
        "Commit new content as the prompt's next version (numbers have no gaps, even under concurrent "
        "commits). CONFLICT when the content equals the latest version (\"no changes\"), when baseVersion is "
        "not the latest any more, or when the prompt is ARCHIVED. Needs WRITE_PROMPTS.")
    async def create_prompt_version(self, info: Info, input: CreatePromptVersionInput) -> PromptVersionPayload:
        content, declared = input.content.to_content()
        version = await run(info, prompt_versions.create_prompt_version,
                            prompt_id=decode_id(input.prompt_id, Prompt), content=content, declared=declared,
                            commit_message=or_none(input.commit_message), base_version=or_none(input.base_version))
        return PromptVersionPayload(version=PromptVersion.from_row(version))

    @mutation(
        "Make a new latest version with the content of version `toVersion` (restoredFrom points at it); "
        "history stays whole. CONFLICT when that content already is the latest. Needs WRITE_PROMPTS.")
    async def rollback_prompt(self, info: Info, input: RollbackPromptInput) -> PromptVersionPayload:
        version = await run(info, prompt_versions.rollback_prompt, prompt_id=decode_id(input.prompt_id, Prompt),
                            to_version=input.to_version, commit_message=or_none(input.commit_message))
        return PromptVersionPayload(version=PromptVersion.from_row(version))

    @mutation(
        "Copy a version into a new prompt (its version 1; forkedFrom points at the source), in the same or "
        "another project. Needs READ_PROMPTS on the source and WRITE_PROMPTS on the target project. The new "
        "prompt takes the source prompt's description, category and tags and starts as DRAFT.")
    async def fork_prompt(self, info: Info, input: ForkPromptInput) -> CreatePromptPayload:
        prompt, version = await run(info, prompt_versions.fork_prompt,
                                    version_id=decode_id(input.version_id, PromptVersion),
                                    project_id=decode_id(input.project_id, models.Project), name=input.name)
        return CreatePromptPayload(prompt=Prompt.from_row(prompt), version=PromptVersion.from_row(version))
