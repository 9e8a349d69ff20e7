"""Versions: commit a new one, roll back to an old one, fork one into a new prompt.

Versions are immutable and numbered 1, 2, 3, ... per prompt with no gaps. A new number is taken
by locking the prompt row (``SELECT ... FOR UPDATE``) and incrementing ``prompts.latest_version``
in the same transaction as the INSERT, so concurrent commits to one prompt queue up on that lock
and each gets the next number; the unique (prompt_id, number) constraint backs this up.

Archived prompts are read-only: committing to them or rolling them back is a CONFLICT until they
are restored (status DRAFT or PUBLISHED). Forking a version of an archived prompt is allowed
(it only reads it).
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Prompt, PromptVersion
from app.db.models.enums import PromptStatus
from app.templating import PromptContent, VariableSpec

from . import access
from .access import Action
from .errors import ServiceError, conflict, invalid, many, not_found
from .principal import Principal
from .prompts import (
    check_commit_message,
    check_content,
    check_name,
    content_of,
    finish_write,
    insert_prompt,
    new_version,
    prompt_for,
    version_values,
)
from .tx import Tx, service


async def _latest(session: AsyncSession, prompt: Prompt) -> PromptVersion:
    return (await session.execute(select(PromptVersion).where(
        PromptVersion.prompt_id == prompt.id, PromptVersion.number == prompt.latest_version))).scalar_one()


def _writable(prompt: Prompt, field: list[str]) -> None:
    if prompt.status == PromptStatus.ARCHIVED.value:
        raise conflict(f'The prompt "{prompt.name}" is archived and read-only; restore it first '
                       "(updatePrompt with status DRAFT or PUBLISHED).", field)


async def _append(session: AsyncSession, prompt: Prompt, values: dict[str, Any], principal: Principal,
                  commit_message: str | None, restored_from_id: uuid.UUID | None = None) -> PromptVersion:
    """Add the next version to a prompt whose row this transaction has locked."""
    number = prompt.latest_version + 1
    version = new_version(prompt, number, values, principal, commit_message, restored_from_id)
    session.add(version)
    prompt.latest_version = number
    prompt.updated_at = func.now()
    await finish_write(session, prompt, [version])
    return version


@service("prompt_version.create")
async def create_prompt_version(tx: Tx, *,
                                prompt_id: uuid.UUID | None, content: PromptContent,
                                declared: list[VariableSpec] | None, commit_message: Any = None,
                                base_version: int | None = None) -> PromptVersion:
    """Commit new content as the prompt's next version (audited as prompt_version.create).

    CONFLICT when the content equals the latest version's ("no changes"), when ``base_version``
    is given and is no longer the latest (someone else committed first), or when the prompt is
    archived.
    """
    session, note, principal = tx.session, tx.note, tx.principal
    prompt = await prompt_for(session, principal, prompt_id, Action.WRITE_PROMPTS, ["input", "promptId"],
                              lock=True, note=note, resource=PromptVersion)
    errors: list[ServiceError] = []
    commit_message, err = check_commit_message(commit_message, ["input", "commitMessage"])
    errors += [err] if err else []
    content, content_errors = await check_content(tx.settings, content, declared, ["input", "content"])
    errors += content_errors
    if base_version is not None and not 1 <= base_version <= prompt.latest_version:
        errors.append(invalid(f"baseVersion {base_version} does not exist; this prompt's versions are "
                              f"1 to {prompt.latest_version}.", ["input", "baseVersion"]))
    if errors:
        raise many(errors)
    _writable(prompt, ["input", "promptId"])
    if base_version is not None and base_version != prompt.latest_version:
        raise conflict(f"This change was based on version {base_version}, but someone else committed version "
                       f"{base_version + 1} first (the latest is now {prompt.latest_version}); "
                       "review their change and commit again with baseVersion "
                       f"{prompt.latest_version}.", ["input", "baseVersion"])
    values = version_values(content)
    latest = await _latest(session, prompt)
    if latest.content_hash == values["content_hash"]:
        raise conflict(f"No changes: the content is identical to the latest version ({latest.number}).",
                       ["input", "content"])
    version = await _append(session, prompt, values, principal, commit_message)
    note.resource_id = version.id
    note.details = {"promptId": str(prompt.id), "number": version.number, "contentHash": version.content_hash}
    return version


@service("prompt.rollback")
async def rollback_prompt(tx: Tx, *,
                          prompt_id: uuid.UUID | None, to_version: int, commit_message: Any = None) -> PromptVersion:
    """A new latest version with the content of version ``to_version`` and restoredFrom set to it.

    History stays whole: nothing is deleted or edited. CONFLICT when that content already is the
    latest version's (nothing would change) or when the prompt is archived.
    """
    session, note, principal = tx.session, tx.note, tx.principal
    prompt = await prompt_for(session, principal, prompt_id, Action.WRITE_PROMPTS, ["input", "promptId"],
                              lock=True, note=note, resource=PromptVersion)
    commit_message, err = check_commit_message(commit_message, ["input", "commitMessage"])
    if err:
        raise err
    target = (await session.execute(select(PromptVersion).where(
        PromptVersion.prompt_id == prompt.id, PromptVersion.number == to_version))).scalar_one_or_none()
    if target is None:
        raise not_found(f"This prompt has no version {to_version}; its versions are 1 to "
                        f"{prompt.latest_version}.", ["input", "toVersion"])
    _writable(prompt, ["input", "promptId"])
    latest = await _latest(session, prompt)
    if latest.content_hash == target.content_hash:
        which = "is the latest version" if latest.number == target.number else \
            f"has the same content as the latest version ({latest.number})"
        raise conflict(f"Nothing to roll back: version {to_version} {which}.", ["input", "toVersion"])
    values = version_values(content_of(target))
    version = await _append(session, prompt, values, principal,
                            commit_message or f"Roll back to version {to_version}", restored_from_id=target.id)
    note.resource_id = version.id
    note.details = {"promptId": str(prompt.id), "number": version.number, "restoredFrom": to_version}
    return version


@service("prompt.fork")
async def fork_prompt(tx: Tx, *,
                      version_id: uuid.UUID | None, project_id: uuid.UUID | None,
                      name: Any) -> tuple[Prompt, PromptVersion]:
    """Copy a version into a new prompt (version 1, forkedFrom set), in the same or another project.

    The caller needs READ_PROMPTS where the version is and WRITE_PROMPTS where the fork goes. The
    new prompt takes the source prompt's description, category and tags, and starts as DRAFT.
    """
    session, note, principal = tx.session, tx.note, tx.principal
    source = await session.get(PromptVersion, version_id) if version_id is not None else None
    if source is None:
        raise not_found("No prompt version with this ID.", ["input", "versionId"])
    source_prompt = await prompt_for(session, principal, source.prompt_id, Action.READ_PROMPTS,
                                     ["input", "versionId"], note=note)
    note.resource_id = None
    project = await access.require(session, principal, project_id, Action.WRITE_PROMPTS, field=["input", "projectId"],
                                   note=note)
    name, err = check_name(name, ["input", "name"])
    if err:
        raise err
    prompt = await insert_prompt(session, project_id=project.id, name=name, field=["input", "name"],
                                 description=source_prompt.description, category=source_prompt.category,
                                 tags=list(source_prompt.tags), status=PromptStatus.DRAFT.value,
                                 latest_version=1, created_by_id=principal.user_id,
                                 forked_from_version_id=source.id)
    values = version_values(content_of(source))
    version = new_version(prompt, 1, values, principal,
                          f'Forked from "{source_prompt.name}" version {source.number}')
    session.add(version)
    await finish_write(session, prompt, [version])
    note.resource_id = prompt.id
    note.details = {"name": prompt.name, "forkedFromVersionId": str(source.id),
                    "forkedFromPromptId": str(source_prompt.id), "versionId": str(version.id)}
    return prompt, version
