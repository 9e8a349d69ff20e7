"""Validations of a prompt's outputs: create, update, delete (configs checked up front).

A validation is a named rule (JSON_SCHEMA, REGEX or JMESPATH; see
:mod:`app.rules.validation`) that the execution engine applies to every output of the
prompt while it is active. Its config is checked before it is stored, so a schema that is not a
schema, a regex that does not compile or risks catastrophic backtracking, or a JMESPath expression
that does not parse is a user error at ``["input", "config", ...]`` saying why. Names are unique
per prompt (CONFLICT); the type cannot change (make a new validation instead). Writes need
WRITE_PROMPTS and are audited as validation.create / validation.update / validation.delete.
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import sandbox
from app.db.models import Prompt, Validation
from app.db.models.enums import ValidationType
from app.settings import Settings

from .access import Action, require
from .audit import AuditNote
from .errors import ServiceError, conflict, invalid, many, not_found
from .principal import Principal
from .tx import Tx, service
from .unset import UNSET

MAX_NAME_LENGTH = 200


def _check_name(name: Any, field: list[str]) -> str:
    if not isinstance(name, str) or not name.strip():
        raise invalid("The name must not be empty.", field)
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise invalid(f"The name is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed.", field)
    return name


async def _check_config(settings: Settings, type_: str, config: Any) -> dict:
    """The config, checked (compiled) in the sandbox: patterns, schemas and expressions are untrusted."""
    problems = await sandbox.check_rule(settings, type_, config)
    if problems:
        raise many([invalid(p.message, ["input", "config", *p.field]) for p in problems])
    return config


async def _name_taken(session: AsyncSession, prompt_id: uuid.UUID, name: str, except_id: uuid.UUID | None) -> bool:
    stmt = select(Validation.id).where(Validation.prompt_id == prompt_id, Validation.name == name)
    if except_id is not None:
        stmt = stmt.where(Validation.id != except_id)
    return (await session.execute(stmt.limit(1))).first() is not None


def _taken(name: str) -> ServiceError:
    return conflict(f"This prompt already has a validation named {name!r}; choose another name.",
                    ["input", "name"])


async def _flush_unique(session: AsyncSession, name: str) -> None:
    """Flush in a savepoint so a concurrent insert of the same name becomes a CONFLICT, not a crash."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        if "uq_validations_prompt_id_name" in str(exc.orig):
            raise _taken(name) from None
        raise


@service("validation.create")
async def create_validation(tx: Tx, *,
                            prompt_id: uuid.UUID | None, name: str, type: str, config: Any,
                            is_active: bool = True) -> Validation:
    """Add a validation to a prompt."""
    session, note, principal = tx.session, tx.note, tx.principal
    prompt = await session.get(Prompt, prompt_id) if prompt_id else None
    if prompt is None:
        raise not_found("No prompt with this ID.", ["input", "promptId"])
    await require(session, principal, prompt.project_id, Action.WRITE_PROMPTS,
                  field=["input", "promptId"], what="prompt", note=note)
    note.about(Validation)
    errors: list[ServiceError] = []
    clean_name = None
    try:
        clean_name = _check_name(name, ["input", "name"])
    except ServiceError as exc:
        errors.extend(exc.errors)
    type_value = type.value if hasattr(type, "value") else str(type)
    if type_value not in ValidationType.values():
        errors.append(invalid(f"Unknown validation type {type_value!r}; one of: "
                              f"{', '.join(ValidationType.values())}.", ["input", "type"]))
    else:
        try:
            await _check_config(tx.settings, type_value, config)
        except ServiceError as exc:
            errors.extend(exc.errors)
    if errors:
        raise many(errors)
    assert clean_name is not None  # set unless _check_name failed, which left an error
    note.details.update({"promptId": str(prompt.id), "promptName": prompt.name, "name": clean_name,
                         "type": type_value, "config": config, "isActive": bool(is_active)})
    if await _name_taken(session, prompt.id, clean_name, None):
        raise _taken(clean_name)
    row = Validation(prompt_id=prompt.id, name=clean_name, type=type_value, config=config,
                     is_active=bool(is_active), created_by_id=principal.user_id)
    session.add(row)
    await _flush_unique(session, clean_name)
    await session.refresh(row)
    note.resource_id = row.id
    return row


async def _load(session: AsyncSession, validation_id: uuid.UUID | None, *, lock: bool = False) -> Validation | None:
    if validation_id is None:
        return None
    stmt = select(Validation).where(Validation.id == validation_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def _require_validation(session: AsyncSession, principal: Principal, note: AuditNote,
                              validation_id: uuid.UUID | None) -> tuple[Validation, Prompt]:
    row = await _load(session, validation_id)
    prompt = await session.get(Prompt, row.prompt_id) if row is not None else None
    if row is None or prompt is None:
        raise not_found("No validation with this ID.", ["input", "id"])
    await require(session, principal, prompt.project_id, Action.WRITE_PROMPTS,
                  field=["input", "id"], what="validation", note=note)
    note.about(Validation, row.id)
    row = await _load(session, row.id, lock=True)
    if row is None:  # deleted meanwhile
        raise not_found("No validation with this ID.", ["input", "id"])
    return row, prompt


@service("validation.update")
async def update_validation(tx: Tx, *,
                            validation_id: uuid.UUID | None, name: Any = UNSET, config: Any = UNSET,
                            is_active: Any = UNSET) -> Validation:
    """Change a validation's name, config or active flag (its type cannot change).

    Fields left UNSET keep their value; null for ``name``, ``config`` or ``isActive`` is refused.
    """
    session, note, principal = tx.session, tx.note, tx.principal
    row, prompt = await _require_validation(session, principal, note, validation_id)
    errors: list[ServiceError] = []
    changes: dict[str, Any] = {}
    if name is not UNSET:
        try:
            clean = _check_name(name, ["input", "name"])
            if clean != row.name:
                changes["name"] = clean
        except ServiceError as exc:
            errors.extend(exc.errors)
    if config is not UNSET:
        if config is None:
            errors.append(invalid("config cannot be null; leave it out to keep the current one.",
                                  ["input", "config"]))
        else:
            try:
                await _check_config(tx.settings, row.type, config)
                if config != row.config:
                    changes["config"] = config
            except ServiceError as exc:
                errors.extend(exc.errors)
    if is_active is not UNSET:
        if is_active is None:
            errors.append(invalid("isActive cannot be null; give true or false, or leave it out.",
                                  ["input", "isActive"]))
        elif bool(is_active) != row.is_active:
            changes["is_active"] = bool(is_active)
    if errors:
        raise many(errors)
    note.details.update({"promptId": str(prompt.id), "name": changes.get("name", row.name),
                         "changed": sorted(changes)})
    if "name" in changes:
        note.details["previousName"] = row.name
        if await _name_taken(session, prompt.id, changes["name"], row.id):
            raise _taken(changes["name"])
    if "config" in changes:
        note.details["config"] = changes["config"]
    if "is_active" in changes:
        note.details["isActive"] = changes["is_active"]
    if not changes:
        return row
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = func.now()
    await _flush_unique(session, changes.get("name", row.name))
    await session.refresh(row)
    return row


@service("validation.delete")
async def delete_validation(tx: Tx, *,
                            validation_id: uuid.UUID | None) -> uuid.UUID:
    """Delete a validation; returns its id. Past executions keep their results (by name)."""
    session, note, principal = tx.session, tx.note, tx.principal
    row, prompt = await _require_validation(session, principal, note, validation_id)
    note.details.update({"promptId": str(prompt.id), "name": row.name, "type": row.type})
    await session.delete(row)
    await session.flush()
    return row.id

