"""The audit log, and the one way mutations run: one transaction, audited.

``audited(sessionmaker, principal, action, fn)`` runs ``fn(session, note)`` in a transaction.
On success the SUCCESS event is written in that same transaction (so there is no change without
its audit row, and no audit row for a change that did not commit). On an expected problem
(ServiceError) the transaction is rolled back — nothing is half-written — and a FAILURE (or
DENIED, for FORBIDDEN) event is written in a transaction of its own. Unexpected exceptions are
audited as FAILURE too and re-raised (the API masks them).
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import AuditEvent
from app.db.models.enums import AuditResult

from .errors import ServiceError
from .principal import Principal

log = logging.getLogger("promptstudio.audit")
R = TypeVar("R")


@dataclass
class AuditNote:
    """What a service tells the audit log about the action it is carrying out."""

    action: str
    project_id: uuid.UUID | None = None
    resource_type: str | None = None
    resource_id: uuid.UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: Set by sign-up / log-in, whose actor is only known once the action ran.
    actor_id: uuid.UUID | None = None


def _event(principal: Principal, note: AuditNote, result: AuditResult, extra: dict | None = None) -> AuditEvent:
    details = dict(note.details)
    if extra:
        details.update(extra)
    return AuditEvent(
        project_id=note.project_id,
        action=note.action,
        resource_type=note.resource_type,
        resource_id=note.resource_id,
        result=result.value,
        actor_id=note.actor_id or principal.user_id,
        api_key_id=principal.api_key_id,
        ip_address=principal.ip_address,
        user_agent=(principal.user_agent or "")[:512] or None,
        details=details or None,
    )


async def audited(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, action: str,
                  fn: Callable[[AsyncSession, AuditNote], Awaitable[R]]) -> R:
    note = AuditNote(action=action)
    try:
        async with sessionmaker() as session:
            async with session.begin():
                result = await fn(session, note)
                session.add(_event(principal, note, AuditResult.SUCCESS))
            return result
    except ServiceError as exc:
        outcome = AuditResult.DENIED if exc.code == "FORBIDDEN" else AuditResult.FAILURE
        await _record_apart(sessionmaker, principal, note, outcome,
                            {"error": {"code": exc.code, "message": exc.message}})
        raise
    except Exception:
        await _record_apart(sessionmaker, principal, note, AuditResult.FAILURE, {"error": {"code": "INTERNAL"}})
        raise


async def _record_apart(sessionmaker, principal: Principal, note: AuditNote, result: AuditResult,
                        extra: dict) -> None:
    try:
        async with sessionmaker() as session:
            async with session.begin():
                session.add(_event(principal, note, result, extra))
    except Exception:  # the audit write must not hide the original problem
        log.exception("could not write the audit event for %s", note.action)
