"""The audit log: what a mutation tells it (``AuditNote``) and how its events are written.

Every change runs through :func:`app.services.tx.perform`, which writes the SUCCESS event in the
change's own transaction, and a FAILURE or DENIED event apart when the change is refused.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.errors import is_database_unavailable
from app.db.models import AuditEvent
from app.db.models.enums import AuditResult

from .principal import Principal

log = logging.getLogger("promptstudio.audit")


@dataclass
class AuditNote:
    """What a service tells the audit log about the action it is carrying out."""

    action: str
    project_id: uuid.UUID | None = None
    #: The GraphQL type name of the resource (the model's class name: models and node types share names).
    resource_type: str | None = None
    resource_id: uuid.UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: Set by sign-up / log-in, whose actor is only known once the action ran.
    actor_id: uuid.UUID | None = None

    def about(self, model: type, resource_id: uuid.UUID | None = None) -> None:
        """The resource acted on: a model class (``Prompt``) and, once known, the row's id."""
        self.resource_type = model.__name__
        if resource_id is not None:
            self.resource_id = resource_id


def event(principal: Principal, note: AuditNote, result: AuditResult, extra: dict | None = None) -> AuditEvent:
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


async def record_apart(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, note: AuditNote,
                       result: AuditResult, extra: dict) -> None:
    """Write a FAILURE or DENIED event in a transaction of its own (the change was rolled back)."""
    try:
        async with sessionmaker() as session, session.begin():
            session.add(event(principal, note, result, extra))
    except Exception as exc:  # the audit write must not hide the original problem
        if is_database_unavailable(exc):  # the original problem, most likely: no traceback for it
            log.warning("could not write the audit event for %s: the database is unavailable (%s)",
                        note.action, type(exc).__name__)
        else:
            log.exception("could not write the audit event for %s", note.action)
