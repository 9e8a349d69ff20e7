"""Per-request loaders of the identity domain (one statement per relation and request shape)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Select, false, select

from app.db import models
from app.services import access

from ..core.child_pages import ChildPageLoader


class UserProjectsPage(ChildPageLoader):
    """User.projects: the user's projects that the caller may see; args = (caller's principal,)."""

    model = models.Project
    parent_col = models.ProjectMember.user_id
    sort_col = models.Project.created_at
    id_col = models.Project.id

    def base(self) -> Select[Any]:
        (principal,) = self.args
        return (select(models.Project)
                .join(models.ProjectMember, models.ProjectMember.project_id == models.Project.id)
                .where(access.visible_projects(principal)))


class ApiKeysPage(ChildPageLoader):
    """Project.apiKeys, oldest first; args = (include_revoked,)."""

    model = models.ApiKey
    parent_col = models.ApiKey.project_id
    sort_col = models.ApiKey.created_at
    id_col = models.ApiKey.id

    def base(self) -> Select[Any]:
        (include_revoked,) = self.args
        stmt = select(models.ApiKey)
        return stmt if include_revoked else stmt.where(models.ApiKey.revoked_at.is_(None))


class AuditEventsPage(ChildPageLoader):
    """Project.auditEvents, newest first; args = (action, actor id or "none", result, from, to)."""

    model = models.AuditEvent
    parent_col = models.AuditEvent.project_id
    sort_col = models.AuditEvent.created_at
    id_col = models.AuditEvent.id
    descending = True

    def base(self) -> Select[Any]:
        action, actor, result, from_, to = self.args
        e = models.AuditEvent
        stmt = select(e)
        if action is not None:
            stmt = stmt.where(e.action == action)
        if actor == "none":
            stmt = stmt.where(false())
        elif actor is not None:
            stmt = stmt.where(e.actor_id == actor)
        if result is not None:
            stmt = stmt.where(e.result == result)
        if from_ is not None:
            stmt = stmt.where(e.created_at >= from_)
        if to is not None:
            stmt = stmt.where(e.created_at < to)
        return stmt
