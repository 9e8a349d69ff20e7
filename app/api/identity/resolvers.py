"""Fields identity supplies to other domains' types: Project.apiKeys and Project.auditEvents."""
from __future__ import annotations

import uuid

from app.db import models
from app.services.access import Action

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.pagination import Connection
from ..core.relay import decode_id
from .loaders import ApiKeysPage, AuditEventsPage
from .types import ApiKey, AuditEvent, AuditFilter


async def project_api_keys(info: Info, project_id: uuid.UUID, first: int | None, after: str | None,
                           include_revoked: bool | None) -> Connection[ApiKey]:
    if not await info.context.can(project_id, Action.ADMIN_PROJECT):
        return Connection.empty()
    return await child_connection(info, ApiKeysPage, project_id, first=first, after=after, wrap=ApiKey.from_row,
                                  args=(bool(include_revoked),))


async def project_audit_events(info: Info, project_id: uuid.UUID, first: int | None, after: str | None,
                               filter: AuditFilter | None) -> Connection[AuditEvent]:
    if not await info.context.can(project_id, Action.ADMIN_PROJECT):
        return Connection.empty()
    f = filter or AuditFilter()
    actor: uuid.UUID | str | None = None
    if f.actor_id is not None:
        actor = decode_id(f.actor_id, models.User) or "none"
    args = (f.action, actor, f.result.value if f.result is not None else None, f.from_, f.to)
    return await child_connection(info, AuditEventsPage, project_id, first=first, after=after,
                                  wrap=AuditEvent.from_row, args=args)
