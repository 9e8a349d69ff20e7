"""Project types: Project, ProjectSettings, ProjectMember, ProviderCredential; project/projects;
createProject, updateProject, add/update/removeProjectMember, setProviderCredential.

Project gets the fields of other domains through mixins (ProjectPromptFields, ProjectExecutionFields).
Other domains build a Project for a relation with ``await load_project(info, project_id)``.
"""
from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime

import strawberry
from sqlalchemy import false, select
from sqlalchemy.orm import aliased
from strawberry.types import Info

from app.db import models
from app.db.models.enums import ProjectRole as ProjectRoleValue
from app.services import credentials as credential_service
from app.services import projects as project_service
from app.services.access import Action
from app.services.errors import ServiceError

from ..child_pages import ChildPageLoader, child_connection
from ..errors import UserError, user_errors
from ..loaders import ManyByKeyLoader
from ..pagination import Connection, keyset_connection
from ..relay import Node, decode_gid_of, encode_gid, register_node
from .executions import ProjectExecutionFields
from .identity import ApiKey, AuditEvent, AuditResult, User, load_user
from .prompts import ProjectPromptFields


@strawberry.enum
class ProjectRole(enum.Enum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    EDITOR = "EDITOR"
    VIEWER = "VIEWER"


@strawberry.type
class ProjectSettings:
    environments: list[str]
    default_environment: str
    trace_retention_days: int | None = strawberry.field(
        description="Traces and spans older than this are deleted; null keeps them forever.")
    execution_retention_days: int | None = strawberry.field(
        description="Finished executions older than this are deleted; null keeps them forever.")


@strawberry.type
class ProjectMember:
    role: ProjectRole
    added_at: datetime
    row: strawberry.Private[models.ProjectMember]

    @classmethod
    def from_row(cls, row: models.ProjectMember) -> "ProjectMember":
        return cls(role=ProjectRole(row.role), added_at=row.added_at, row=row)

    @strawberry.field
    async def user(self, info: Info) -> User:
        return await load_user(info, self.row.user_id)


@strawberry.type
class ProviderCredential(Node):
    id: strawberry.ID
    provider: str
    base_url: str | None
    key_hint: str = strawberry.field(description="Last four characters of the stored key. The key itself is "
                                                 "stored encrypted and never returned.")
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[models.ProviderCredential]

    @classmethod
    def from_row(cls, row: models.ProviderCredential) -> "ProviderCredential":
        return cls(id=strawberry.ID(encode_gid("ProviderCredential", row.id)), provider=row.provider,
                   base_url=row.base_url, key_hint=row.key_hint, created_at=row.created_at,
                   updated_at=row.updated_at, row=row)


# ---------------------------------------------------------------------- nested pages (batched)

class MembersPage(ChildPageLoader):
    model = models.ProjectMember
    parent_col = models.ProjectMember.project_id
    sort_col = models.ProjectMember.added_at
    id_col = models.ProjectMember.user_id


class ApiKeysPage(ChildPageLoader):
    """args = (include_revoked,)"""

    model = models.ApiKey
    parent_col = models.ApiKey.project_id
    sort_col = models.ApiKey.created_at
    id_col = models.ApiKey.id

    def base(self):
        (include_revoked,) = self.args
        stmt = select(models.ApiKey)
        return stmt if include_revoked else stmt.where(models.ApiKey.revoked_at.is_(None))


class AuditEventsPage(ChildPageLoader):
    """Newest first. args = (action, actor_id | "none", result, from, to)."""

    model = models.AuditEvent
    parent_col = models.AuditEvent.project_id
    sort_col = models.AuditEvent.created_at
    id_col = models.AuditEvent.id
    descending = True

    def base(self):
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


class CredentialsByProject(ManyByKeyLoader):
    model = models.ProviderCredential
    key_column = "project_id"
    order_by = (models.ProviderCredential.provider,)


@strawberry.input
class AuditFilter:
    action: str | None = None
    actor_id: strawberry.ID | None = None
    result: AuditResult | None = None
    from_: datetime | None = strawberry.field(name="from", default=None, description="Events at or after this time.")
    to: datetime | None = strawberry.field(default=None, description="Events before this time.")


# ---------------------------------------------------------------------- Project

@strawberry.type
class Project(ProjectPromptFields, ProjectExecutionFields, Node):
    id: strawberry.ID
    slug: str
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[models.Project]

    @classmethod
    def from_row(cls, row: models.Project) -> "Project":
        return cls(id=strawberry.ID(encode_gid("Project", row.id)), slug=row.slug, name=row.name,
                   description=row.description, created_at=row.created_at, updated_at=row.updated_at, row=row)

    @strawberry.field
    def settings(self) -> ProjectSettings:
        r = self.row
        return ProjectSettings(environments=list(r.environments), default_environment=r.default_environment,
                               trace_retention_days=r.trace_retention_days,
                               execution_retention_days=r.execution_retention_days)

    @strawberry.field(description="The signed-in viewer's role here; null for superusers who are not members.")
    async def viewer_role(self, info: Info) -> ProjectRole | None:
        if info.context.principal.kind != "user":
            return None
        role = (await info.context.roles([self.row.id]))[self.row.id]
        return ProjectRole(role.value) if role is not None else None

    @strawberry.field
    async def members(self, info: Info, first: int | None = 20,
                      after: str | None = None) -> Connection[ProjectMember]:
        if not await info.context.can(self.row.id, Action.VIEW_MEMBERS):
            return Connection.empty()
        return await child_connection(info, MembersPage, self.row.id, first=first, after=after,
                                      wrap=ProjectMember.from_row)

    @strawberry.field
    async def api_keys(self, info: Info, first: int | None = 20, after: str | None = None,
                       include_revoked: bool | None = False) -> Connection[ApiKey]:
        if not await info.context.can(self.row.id, Action.ADMIN_PROJECT):
            return Connection.empty()
        return await child_connection(info, ApiKeysPage, self.row.id, first=first, after=after,
                                      wrap=ApiKey.from_row, args=(bool(include_revoked),))

    @strawberry.field
    async def provider_credentials(self, info: Info) -> list[ProviderCredential]:
        if not await info.context.can(self.row.id, Action.ADMIN_PROJECT):
            return []
        rows = await info.context.loader(CredentialsByProject).load(self.row.id)
        return [ProviderCredential.from_row(r) for r in rows]

    @strawberry.field(description="Newest first.")
    async def audit_events(self, info: Info, first: int | None = 20, after: str | None = None,
                           filter: AuditFilter | None = None) -> Connection[AuditEvent]:
        if not await info.context.can(self.row.id, Action.ADMIN_PROJECT):
            return Connection.empty()
        f = filter or AuditFilter()
        actor: uuid.UUID | str | None = None
        if f.actor_id is not None:
            actor = decode_gid_of(f.actor_id, "User") or "none"
        args = (f.action, actor, f.result.value if f.result is not None else None, f.from_, f.to)
        return await child_connection(info, AuditEventsPage, self.row.id, first=first, after=after,
                                      wrap=AuditEvent.from_row, args=args)


async def load_project(info: Info, project_id: uuid.UUID | None) -> Project | None:
    """The Project with this id, batched; no visibility check (for relations of visible objects)."""
    if project_id is None:
        return None
    row = await info.context.by_id(models.Project).load(project_id)
    return Project.from_row(row) if row is not None else None


@register_node("Project")
async def _projects_by_id(info: Info, ids: Sequence[uuid.UUID]) -> list[Project | None]:
    rows = await info.context.by_id(models.Project).load_many(list(ids))
    present = [r.id for r in rows if r is not None]
    ok = await info.context.can_many(present, Action.VIEW_PROJECT) if present else {}
    return [Project.from_row(r) if r is not None and ok.get(r.id) else None for r in rows]


@register_node("ProviderCredential")
async def _credentials_by_id(info: Info, ids: Sequence[uuid.UUID]) -> list[ProviderCredential | None]:
    rows = await info.context.by_id(models.ProviderCredential).load_many(list(ids))
    present = [r.project_id for r in rows if r is not None]
    ok = await info.context.can_many(present, Action.ADMIN_PROJECT) if present else {}
    return [ProviderCredential.from_row(r) if r is not None and ok.get(r.project_id) else None for r in rows]


# ---------------------------------------------------------------------- queries

def visible_projects_stmt(principal):
    """select(Project) restricted to what the principal may see."""
    stmt = select(models.Project)
    if principal.kind == "user":
        if principal.is_superuser:
            return stmt
        m = aliased(models.ProjectMember)
        return stmt.where(models.Project.id.in_(select(m.project_id).where(m.user_id == principal.user_id)))
    if principal.kind == "api_key":
        return stmt.where(models.Project.id == principal.api_key_project_id)
    return stmt.where(false())


@strawberry.type
class ProjectQuery:
    @strawberry.field
    async def project(self, info: Info, slug: str) -> Project | None:
        ctx = info.context
        if not ctx.principal.is_authenticated:
            return None
        async with ctx.db() as session:
            row = (await session.execute(select(models.Project).where(models.Project.slug == slug))
                   ).scalar_one_or_none()
        if row is None or not await ctx.can(row.id, Action.VIEW_PROJECT):
            return None
        return Project.from_row(row)

    @strawberry.field(description="The caller's projects (all of them for superusers; its own for an API key).")
    async def projects(self, info: Info, first: int | None = 20, after: str | None = None) -> Connection[Project]:
        ctx = info.context
        if not ctx.principal.is_authenticated:
            return Connection.empty()
        conn = await keyset_connection(info, visible_projects_stmt(ctx.principal), sort_col=models.Project.created_at,
                                       id_col=models.Project.id, first=first, after=after, wrap=Project.from_row)
        if conn.nodes:
            await ctx.roles([n.row.id for n in conn.nodes])  # one query for every project's access checks
        return conn


# ---------------------------------------------------------------------- mutations

@strawberry.input
class CreateProjectInput:
    name: str
    slug: str
    description: str | None = None


@strawberry.input
class ProjectSettingsInput:
    environments: list[str] | None = strawberry.UNSET
    default_environment: str | None = strawberry.UNSET
    trace_retention_days: int | None = strawberry.UNSET
    execution_retention_days: int | None = strawberry.UNSET


@strawberry.input
class UpdateProjectInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    settings: ProjectSettingsInput | None = strawberry.UNSET


@strawberry.type
class ProjectPayload:
    project: Project | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class AddProjectMemberInput:
    project_id: strawberry.ID
    login: str = strawberry.field(description="Email or username of an existing user.")
    role: ProjectRole


@strawberry.input
class UpdateProjectMemberInput:
    project_id: strawberry.ID
    user_id: strawberry.ID
    role: ProjectRole


@strawberry.input
class RemoveProjectMemberInput:
    project_id: strawberry.ID
    user_id: strawberry.ID


@strawberry.type
class ProjectMemberPayload:
    member: ProjectMember | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SetProviderCredentialInput:
    project_id: strawberry.ID
    provider: str
    api_key: str
    base_url: str | None = None


@strawberry.type
class ProviderCredentialPayload:
    credential: ProviderCredential | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _keep(value):
    return project_service.KEEP if value is strawberry.UNSET else value


def _project_id(gid) -> uuid.UUID | None:
    return decode_gid_of(gid, "Project")


@strawberry.type
class ProjectMutation:
    @strawberry.mutation(description="Create a project; you become its OWNER.")
    async def create_project(self, info: Info, input: CreateProjectInput) -> ProjectPayload:
        ctx = info.context
        principal = ctx.require_auth()
        try:
            row = await project_service.create_project(ctx.sessionmaker, principal, name=input.name,
                                                       slug=input.slug, description=input.description)
        except ServiceError as exc:
            return ProjectPayload(user_errors=user_errors(exc))
        return ProjectPayload(project=Project.from_row(row))

    @strawberry.mutation(description="Change a project's name, description or settings (ADMIN or OWNER).")
    async def update_project(self, info: Info, input: UpdateProjectInput) -> ProjectPayload:
        ctx = info.context
        principal = ctx.require_auth()
        change = None
        s = input.settings
        if s is not strawberry.UNSET and s is not None:
            change = project_service.SettingsChange(
                environments=_keep(s.environments), default_environment=_keep(s.default_environment),
                trace_retention_days=_keep(s.trace_retention_days),
                execution_retention_days=_keep(s.execution_retention_days))
        try:
            row = await project_service.update_project(
                ctx.sessionmaker, principal, project_id=_project_id(input.id), name=_keep(input.name),
                description=_keep(input.description), settings=change)
        except ServiceError as exc:
            return ProjectPayload(user_errors=user_errors(exc))
        return ProjectPayload(project=Project.from_row(row))

    @strawberry.mutation(description="Add an existing user to a project.")
    async def add_project_member(self, info: Info, input: AddProjectMemberInput) -> ProjectMemberPayload:
        ctx = info.context
        principal = ctx.require_auth()
        try:
            row = await project_service.add_member(ctx.sessionmaker, principal, project_id=_project_id(input.project_id),
                                                   login=input.login, role=ProjectRoleValue(input.role.value))
        except ServiceError as exc:
            return ProjectMemberPayload(user_errors=user_errors(exc))
        return ProjectMemberPayload(member=ProjectMember.from_row(row))

    @strawberry.mutation(description="Change a member's role.")
    async def update_project_member(self, info: Info, input: UpdateProjectMemberInput) -> ProjectMemberPayload:
        ctx = info.context
        principal = ctx.require_auth()
        try:
            row = await project_service.update_member(
                ctx.sessionmaker, principal, project_id=_project_id(input.project_id),
                user_id=decode_gid_of(input.user_id, "User"), role=ProjectRoleValue(input.role.value))
        except ServiceError as exc:
            return ProjectMemberPayload(user_errors=user_errors(exc))
        return ProjectMemberPayload(member=ProjectMember.from_row(row))

    @strawberry.mutation(description="Remove a member, or leave a project (your own user ID).")
    async def remove_project_member(self, info: Info, input: RemoveProjectMemberInput) -> ProjectMemberPayload:
        ctx = info.context
        principal = ctx.require_auth()
        try:
            row = await project_service.remove_member(ctx.sessionmaker, principal,
                                                      project_id=_project_id(input.project_id),
                                                      user_id=decode_gid_of(input.user_id, "User"))
        except ServiceError as exc:
            return ProjectMemberPayload(user_errors=user_errors(exc))
        return ProjectMemberPayload(member=ProjectMember.from_row(row))

    @strawberry.mutation(description="Store a provider's API key for a project (encrypted; only a hint is shown).")
    async def set_provider_credential(self, info: Info, input: SetProviderCredentialInput) -> ProviderCredentialPayload:
        ctx = info.context
        principal = ctx.require_auth()
        try:
            row = await credential_service.set_provider_credential(
                ctx.sessionmaker, principal, ctx.settings, project_id=_project_id(input.project_id),
                provider=input.provider, api_key=input.api_key, base_url=input.base_url)
        except ServiceError as exc:
            return ProviderCredentialPayload(user_errors=user_errors(exc))
        return ProviderCredentialPayload(credential=ProviderCredential.from_row(row))


QUERIES = [ProjectQuery]
MUTATIONS = [ProjectMutation]
EXTRA_TYPES = [Project, ProviderCredential]
