"""Permissions, in one place: a user's project role or an API key's scopes decide; superusers may do anything.

Every service function calls ``require`` before it touches anything; readers (GraphQL loaders)
call ``Access.can`` to filter what they return. Something the principal may not even see is
reported as NOT_FOUND (so IDs of other tenants reveal nothing); something visible but not
allowed is FORBIDDEN.
"""
from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Project, ProjectMember
from app.db.models.enums import ROLE_RANK, ApiScope, ProjectRole

from .errors import forbidden, not_found
from .principal import Principal


@dataclass(frozen=True)
class Rule:
    min_role: ProjectRole
    #: Scopes any one of which lets an API key do it; None: API keys may never do it.
    scopes: frozenset[str] | None


def _scopes(*s: ApiScope) -> frozenset[str]:
    return frozenset(x.value for x in s) | {ApiScope.PROJECT_ADMIN.value}


class Action(enum.Enum):
    #: See the project itself (name, settings): any member, any key of the project.
    VIEW_PROJECT = Rule(ProjectRole.VIEWER, frozenset(s.value for s in ApiScope))
    READ_PROMPTS = Rule(ProjectRole.VIEWER, _scopes(ApiScope.PROMPTS_READ, ApiScope.PROMPTS_WRITE))
    WRITE_PROMPTS = Rule(ProjectRole.EDITOR, _scopes(ApiScope.PROMPTS_WRITE))
    DELETE_PROMPTS = Rule(ProjectRole.ADMIN, _scopes())
    READ_EXECUTIONS = Rule(ProjectRole.VIEWER, _scopes(ApiScope.EXECUTIONS_READ, ApiScope.EXECUTIONS_WRITE))
    WRITE_EXECUTIONS = Rule(ProjectRole.EDITOR, _scopes(ApiScope.EXECUTIONS_WRITE))
    #: Members, settings, provider credentials, audit log.
    ADMIN_PROJECT = Rule(ProjectRole.ADMIN, _scopes())
    #: Creating and revoking API keys: people only (a key must not mint keys).
    MANAGE_API_KEYS = Rule(ProjectRole.ADMIN, None)
    #: Seeing the member list: any member; keys need PROJECT_ADMIN.
    VIEW_MEMBERS = Rule(ProjectRole.VIEWER, _scopes())


def allowed(principal: Principal, role: ProjectRole | None, project_id: uuid.UUID, action: Action) -> bool:
    """The decision, given the principal's role in the project (None when not a member)."""
    rule: Rule = action.value
    if principal.kind == "user":
        if principal.is_superuser:
            return True
        return role is not None and ROLE_RANK[role] >= ROLE_RANK[rule.min_role]
    if principal.kind == "api_key":
        if principal.api_key_project_id != project_id or rule.scopes is None:
            return False
        return bool(principal.scopes & rule.scopes)
    return False


def visible(principal: Principal, role: ProjectRole | None, project_id: uuid.UUID) -> bool:
    """Whether the principal may know the project exists at all."""
    if principal.kind == "user":
        return principal.is_superuser or role is not None
    if principal.kind == "api_key":
        return principal.api_key_project_id == project_id
    return False


async def roles_in(session: AsyncSession, principal: Principal,
                   project_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, ProjectRole]:
    ids = list(set(project_ids))
    if principal.kind != "user" or not ids:
        return {}
    rows = await session.execute(
        select(ProjectMember.project_id, ProjectMember.role)
        .where(ProjectMember.user_id == principal.user_id, ProjectMember.project_id.in_(ids)))
    return {pid: ProjectRole(role) for pid, role in rows.all()}


async def role_in(session: AsyncSession, principal: Principal, project_id: uuid.UUID) -> ProjectRole | None:
    return (await roles_in(session, principal, [project_id])).get(project_id)


async def require(session: AsyncSession, principal: Principal, project_id: uuid.UUID | None, action: Action,
                  *, field: list[str] | None = None, what: str = "project") -> Project:
    """Load the project and check that the principal may do ``action`` in it.

    Raises NOT_FOUND when the project does not exist or is not visible to the principal (the two
    are not told apart), FORBIDDEN when it is visible but the action is not allowed.
    """
    project = await session.get(Project, project_id) if project_id is not None else None
    role = await role_in(session, principal, project.id) if project is not None else None
    if project is None or not visible(principal, role, project.id):
        raise not_found(f"No {what} with this ID.", field)
    if not allowed(principal, role, project.id, action):
        raise forbidden(_denied_message(principal, action), field)
    return project


def _denied_message(principal: Principal, action: Action) -> str:
    rule: Rule = action.value
    if principal.kind == "api_key":
        if rule.scopes is None:
            return "API keys cannot do this; sign in as a project admin."
        return "This API key lacks the scope for this; one of: " + ", ".join(sorted(rule.scopes)) + "."
    return f"Your role in this project does not allow this; it needs {rule.min_role.value} or higher."


def require_user(principal: Principal, message: str = "Only signed-in users can do this.") -> uuid.UUID:
    if principal.kind != "user" or principal.user_id is None:
        raise forbidden(message)
    return principal.user_id


def require_superuser(principal: Principal) -> None:
    if not (principal.kind == "user" and principal.is_superuser):
        raise forbidden("Only superusers can do this.")
