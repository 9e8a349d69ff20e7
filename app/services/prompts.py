"""Prompts: create (with version 1), update metadata, delete; the rules for names, tags and content.

Rules decided here (and documented in the GraphQL descriptions):

- **Names** are 1-200 characters of ASCII letters, digits, ``-``, ``_``, ``.`` and ``/`` (folders,
  e.g. ``support/refund-reply``); no leading or trailing ``/``, no ``//``, no folder named ``.`` or
  ``..``. Surrounding whitespace is trimmed. Names are unique per project (case-sensitive, as
  ``resolvePrompt`` matches them exactly).
- **Tags** are trimmed and lower-cased (so ``Support`` and ``support`` are one tag), 1-64
  characters without control characters, at most 50 per prompt; duplicates are dropped, the
  first spelling's position is kept.
- **Description** at most 5,000 characters, **category** at most 100, **commit message** at most
  2,000; each is trimmed and an empty one counts as none.
- **Content** is checked by ``app.templating.validate_content``, in the sandbox; its problems are reported under
  ``["input", "content", ...]``.

Every function here runs inside ``audited(...)`` (one transaction) and checks permissions first.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import sandbox
from app.db.models import Experiment, ExperimentVariant, Prompt, PromptVersion
from app.db.models.enums import ExperimentStatus, PromptStatus
from app.settings import Settings
from app.templating import (
    PromptContent,
    VariableSpec,
    canonical_dict,
    content_hash,
)

from . import access
from .access import Action
from .audit import AuditNote
from .embeddings import queue_versions
from .errors import ServiceError, conflict, invalid, many, not_found
from .principal import Principal
from .search import refresh_search
from .tx import Tx, service
from .unset import UNSET

MAX_NAME = 200
MAX_TAGS = 50
MAX_TAG = 64
MAX_DESCRIPTION = 5_000
MAX_CATEGORY = 100
MAX_COMMIT_MESSAGE = 2_000

_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-/]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ------------------------------------------------------------------ checks of single fields

def check_name(name: Any, field: list[str]) -> tuple[str | None, ServiceError | None]:
    """The prompt name trimmed, or the problem with it."""
    if not isinstance(name, str) or not name.strip():
        return None, invalid("A prompt needs a name (1-200 characters).", field)
    name = name.strip()
    if len(name) > MAX_NAME:
        return None, invalid(f"The name is {len(name)} characters long; at most {MAX_NAME} are allowed.", field)
    if not _NAME_CHARS.match(name):
        bad = next(ch for ch in name if not _NAME_CHARS.match(ch))
        return None, invalid(f"The name {name!r} contains {bad!r}; a prompt name may use letters A-Z and a-z, "
                             "digits, '-', '_', '.' and '/' (for folders).", field)
    if name.startswith("/") or name.endswith("/"):
        return None, invalid("A prompt name cannot start or end with '/'; use '/' only between folder names, "
                             "e.g. support/refund-reply.", field)
    if "//" in name:
        return None, invalid("A prompt name cannot contain '//' (an empty folder name).", field)
    if any(part in (".", "..") for part in name.split("/")):
        return None, invalid("A folder or prompt name cannot be '.' or '..'.", field)
    return name, None


def normalise_tags(tags: Sequence[Any] | None, field: list[str]) -> tuple[list[str], list[ServiceError]]:
    """Tags trimmed, lower-cased and de-duplicated (first position kept), with their problems."""
    if tags is None:
        return [], []
    errors: list[ServiceError] = []
    out: list[str] = []
    for i, raw in enumerate(tags):
        path = [*field, str(i)]
        tag = raw.strip().lower() if isinstance(raw, str) else ""
        if not tag:
            errors.append(invalid("A tag cannot be empty.", path))
        elif len(tag) > MAX_TAG:
            errors.append(invalid(f"The tag {tag[:20]!r}... is {len(tag)} characters long; at most {MAX_TAG} "
                                  "are allowed.", path))
        elif _CONTROL.search(tag):
            errors.append(invalid(f"The tag {tag!r} contains a control character.", path))
        elif tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        errors.append(invalid(f"{len(out)} different tags are given; a prompt has at most {MAX_TAGS}.", field))
    return out, errors


def _optional_text(value: Any, limit: int, what: str, field: list[str]) -> tuple[str | None, ServiceError | None]:
    if value is None:
        return None, None
    if not isinstance(value, str):
        return None, invalid(f"The {what} must be a string.", field)
    value = value.strip()
    if len(value) > limit:
        return None, invalid(f"The {what} is {len(value)} characters long; at most {limit} are allowed.", field)
    return value or None, None


def check_description(value: Any, field: list[str]):
    return _optional_text(value, MAX_DESCRIPTION, "description", field)


def check_category(value: Any, field: list[str]):
    return _optional_text(value, MAX_CATEGORY, "category", field)


def check_commit_message(value: Any, field: list[str]):
    return _optional_text(value, MAX_COMMIT_MESSAGE, "commit message", field)


async def check_content(settings: Settings, content: PromptContent, declared: list[VariableSpec] | None,
                        field: list[str]) -> tuple[PromptContent, list[ServiceError]]:
    """Content validated and normalised by app.templating (in the sandbox: templates are untrusted), its
    problems as INVALID errors under ``field``."""
    normalised, problems = await sandbox.check_content(settings, content, declared)
    return normalised, [invalid(p.message, [*field, *p.field]) for p in problems]


# ------------------------------------------------------------------ versions as rows

def version_values(content: PromptContent) -> dict[str, Any]:
    """Column values of a version holding ``content`` (already validated), with its hash.

    Only columns with a value are returned: a JSONB column set to None would store JSON ``null``
    rather than SQL NULL.
    """
    data = canonical_dict(content)
    values = {
        "kind": data["kind"],
        "format": data["format"],
        "template": data.get("template"),
        "messages": data.get("messages"),
        "system_prompt": data.get("systemPrompt"),
        "variables": data["variables"],
        "model_settings": data.get("modelSettings"),
        "output_schema": data.get("outputSchema"),
        "content_hash": content_hash(content),
    }
    return {k: v for k, v in values.items() if v is not None}


def content_of(version: PromptVersion) -> PromptContent:
    """The content of a stored version, as app.templating works with it."""
    return PromptContent.from_dict({
        "kind": version.kind,
        "format": version.format,
        "template": version.template,
        "messages": version.messages,
        "systemPrompt": version.system_prompt,
        "variables": version.variables or [],
        "modelSettings": version.model_settings,
        "outputSchema": version.output_schema,
    })


def new_version(prompt: Prompt, number: int, values: dict[str, Any], principal: Principal,
                commit_message: str | None, restored_from_id: uuid.UUID | None = None) -> PromptVersion:
    return PromptVersion(prompt_id=prompt.id, number=number, author_id=principal.user_id,
                         commit_message=commit_message, restored_from_id=restored_from_id, **values)


# ------------------------------------------------------------------ loading with permission checks

async def prompt_for(session: AsyncSession, principal: Principal, prompt_id: uuid.UUID | None, action: Action,
                     field: list[str], *, lock: bool = False, note: AuditNote | None = None,
                     resource: type = Prompt) -> Prompt:
    """The prompt, if the principal may do ``action`` with it; NOT_FOUND when missing or not visible.

    ``lock``: re-read it ``FOR UPDATE`` after the check (version numbering serialises on this row).
    ``note``: given, it is told the prompt's project (and the resource acted on: the prompt, or a
    ``resource`` model such as PromptVersion) before the check, so that refused attempts are in
    the project's audit log too. Whoever may not even read the project's prompts gets NOT_FOUND,
    never FORBIDDEN: they must not learn that the prompt exists.
    """
    prompt = await session.get(Prompt, prompt_id) if prompt_id is not None else None
    if prompt is None:
        raise not_found("No prompt with this ID.", field)
    if note is not None:
        note.project_id = prompt.project_id
        note.about(resource, prompt.id if resource is Prompt else None)
    await access.require(session, principal, prompt.project_id, action, field=field, what="prompt",
                         conceal_unless=Action.READ_PROMPTS)
    if lock:
        prompt = (await session.execute(
            select(Prompt).where(Prompt.id == prompt.id).with_for_update()
            .execution_options(populate_existing=True))).scalar_one()
    return prompt


async def insert_prompt(session: AsyncSession, *, project_id: uuid.UUID, name: str, field: list[str],
                        **values: Any) -> Prompt:
    """INSERT the prompt row; CONFLICT when the project already has a prompt of that name.

    ``ON CONFLICT DO NOTHING`` keeps the transaction usable (and is race-free under concurrent
    creates of the same name), so no savepoint is needed.
    """
    stmt = (insert(Prompt).values(project_id=project_id, name=name, **values)
            .on_conflict_do_nothing(constraint="uq_prompts_project_id_name").returning(Prompt))
    prompt = (await session.execute(stmt)).scalar_one_or_none()
    if prompt is None:
        raise conflict(f'This project already has a prompt named "{name}"; choose another name.', field)
    return prompt


async def finish_write(session: AsyncSession, prompt: Prompt, new_versions: Sequence[PromptVersion] = ()) -> Prompt:
    """Flush, rebuild the prompt's search document, queue the embedding of ``new_versions`` (done by
    a job after the commit) and reload the row (updated_at etc.)."""
    await session.flush()
    await refresh_search(session, [prompt.id])
    await queue_versions(session, new_versions, prompt.project_id)
    await session.refresh(prompt)
    return prompt


# ------------------------------------------------------------------ create / update / delete

@service("prompt.create")
async def create_prompt(tx: Tx, *,
                        project_id: uuid.UUID | None, name: Any, content: PromptContent,
                        declared: list[VariableSpec] | None, description: Any = None, category: Any = None,
                        tags: Sequence[Any] | None = None,
                        commit_message: Any = None) -> tuple[Prompt, PromptVersion]:
    """A new prompt and its version 1, in the caller's transaction (audited as prompt.create)."""
    session, note, principal = tx.session, tx.note, tx.principal
    note.about(Prompt)
    project = await access.require(session, principal, project_id, Action.WRITE_PROMPTS, field=["input", "projectId"],
                                   note=note)
    errors: list[ServiceError] = []
    name, err = check_name(name, ["input", "name"])
    errors += [err] if err else []
    description, err = check_description(description, ["input", "description"])
    errors += [err] if err else []
    category, err = check_category(category, ["input", "category"])
    errors += [err] if err else []
    tags, tag_errors = normalise_tags(tags, ["input", "tags"])
    errors += tag_errors
    commit_message, err = check_commit_message(commit_message, ["input", "commitMessage"])
    errors += [err] if err else []
    content, content_errors = await check_content(tx.settings, content, declared, ["input", "content"])
    errors += content_errors
    if errors:
        raise many(errors)

    prompt = await insert_prompt(session, project_id=project.id, name=name, field=["input", "name"],
                                 description=description, category=category, tags=tags,
                                 status=PromptStatus.DRAFT.value, latest_version=1,
                                 created_by_id=principal.user_id)
    version = new_version(prompt, 1, version_values(content), principal, commit_message)
    session.add(version)
    await finish_write(session, prompt, [version])
    note.resource_id = prompt.id
    note.details = {"name": prompt.name, "versionId": str(version.id), "contentHash": version.content_hash}
    return prompt, version


@service("prompt.update")
async def update_prompt(tx: Tx, *,
                        prompt_id: uuid.UUID | None, description: Any = UNSET, category: Any = UNSET,
                        tags: Any = UNSET, status: Any = UNSET) -> Prompt:
    """Change a prompt's metadata (never its content). Fields left UNSET stay as they are; None clears.

    Status PUBLISHED sets publishedAt the first time; ARCHIVED hides the prompt from default
    listings and stops deployments and executions of it; DRAFT or PUBLISHED restores it.
    """
    session, note, principal = tx.session, tx.note, tx.principal
    prompt = await prompt_for(session, principal, prompt_id, Action.WRITE_PROMPTS, ["input", "id"], note=note)
    errors: list[ServiceError] = []
    changes: dict[str, Any] = {}
    if description is not UNSET:
        changes["description"], err = check_description(description, ["input", "description"])
        errors += [err] if err else []
    if category is not UNSET:
        changes["category"], err = check_category(category, ["input", "category"])
        errors += [err] if err else []
    if tags is not UNSET:
        changes["tags"], tag_errors = normalise_tags(tags, ["input", "tags"])
        errors += tag_errors
    if status is not UNSET:
        if status not in PromptStatus.values():
            errors.append(invalid("status must be one of " + ", ".join(PromptStatus.values()) + ".",
                                  ["input", "status"]))
        else:
            changes["status"] = status
    if errors:
        raise many(errors)

    changed = {k: v for k, v in changes.items() if getattr(prompt, k) != v}
    for key, value in changed.items():
        setattr(prompt, key, value)
    if changed.get("status") == PromptStatus.PUBLISHED.value and prompt.published_at is None:
        prompt.published_at = func.now()
    if changed:
        prompt.updated_at = func.now()
        await finish_write(session, prompt)
    note.details = {"changed": sorted(changed), **({"status": changed["status"]} if "status" in changed else {})}
    return prompt


@service("prompt.delete")
async def delete_prompt(tx: Tx, *,
                        prompt_id: uuid.UUID | None) -> uuid.UUID:
    """Delete a prompt and everything under it (versions, deployments, validations, executions, and the
    variants of experiments that used its versions: the foreign keys cascade). OWNER and ADMIN only; not
    while a running experiment uses it (CONFLICT)."""
    session, note, principal = tx.session, tx.note, tx.principal
    prompt = await prompt_for(session, principal, prompt_id, Action.DELETE_PROMPTS, ["input", "id"], note=note)
    note.details = {"name": prompt.name, "versions": prompt.latest_version}
    running = (await session.execute(
        select(Experiment.name).join(ExperimentVariant, ExperimentVariant.experiment_id == Experiment.id)
        .join(PromptVersion, PromptVersion.id == ExperimentVariant.version_id)
        .where(PromptVersion.prompt_id == prompt.id, Experiment.status == ExperimentStatus.RUNNING.value)
        .limit(1))).scalar_one_or_none()
    if running is not None:
        raise conflict(f"Experiment {running!r} is running with versions of this prompt; cancel it (or wait for it to "
                       "end) before deleting the prompt.", ["input", "id"])
    await session.execute(delete(Prompt).where(Prompt.id == prompt.id))
    return prompt.id
