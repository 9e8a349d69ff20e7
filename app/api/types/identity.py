"""Identity types: User, ApiKey, AuditEvent; viewer/users; signUp, logIn, logOut, createApiKey, revokeApiKey.

Other domains reference these lazily, e.g.
``Annotated["User", strawberry.lazy("app.api.types.identity")]``, and build them with
``await load_user(info, user_id)`` (no visibility check: for relations of an object the viewer
already sees, like Prompt.createdBy).
"""
from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import strawberry
from sqlalchemy import false, select
from sqlalchemy.orm import aliased
from strawberry.scalars import JSON
from strawberry.types import Info

from app.db import models
from app.db.models.enums import ApiScope as ApiScopeValue
from app.services import api_keys as api_key_service
from app.services import identity as identity_service
from app.services.access import Action
from app.services.errors import ServiceError

from ..child_pages import ChildPageLoader, child_connection
from ..errors import UserError, user_errors
from ..pagination import Connection, keyset_connection
from ..relay import Node, decode_gid_of, encode_gid, register_node

ProjectRef = Annotated["Project", strawberry.lazy("app.api.types.projects")]


@strawberry.enum
class ApiScope(enum.Enum):
    PROMPTS_READ = "PROMPTS_READ"
    PROMPTS_WRITE = "PROMPTS_WRITE"
    EXECUTIONS_READ = "EXECUTIONS_READ"
    EXECUTIONS_WRITE = "EXECUTIONS_WRITE"
    TRACES_READ = "TRACES_READ"
    TRACES_WRITE = "TRACES_WRITE"
    EXPERIMENTS_READ = "EXPERIMENTS_READ"
    EXPERIMENTS_WRITE = "EXPERIMENTS_WRITE"
    PROJECT_ADMIN = "PROJECT_ADMIN"


@strawberry.enum
class AuditResult(enum.Enum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DENIED = "DENIED"


# ---------------------------------------------------------------------- User

class UserProjectsPage(ChildPageLoader):
    """User.projects: the user's projects that the viewer may see; args = viewer_scope(principal)."""

    model = models.Project
    parent_col = models.ProjectMember.user_id
    sort_col = models.Project.created_at
    id_col = models.Project.id

    def base(self):
        stmt = select(models.Project).join(models.ProjectMember, models.ProjectMember.project_id == models.Project.id)
        kind, ref = self.args
        if kind == "user":
            mine = aliased(models.ProjectMember)
            stmt = stmt.where(models.Project.id.in_(select(mine.project_id).where(mine.user_id == ref)))
        elif kind == "project":
            stmt = stmt.where(models.Project.id == ref)
        elif kind != "all":
            stmt = stmt.where(false())
        return stmt


def viewer_scope(principal) -> tuple[str, uuid.UUID | None]:
    """Which projects the principal sees, as a hashable loader argument: ("all", None) for
    superusers, ("user", id) for members, ("project", id) for API keys, ("none", None) otherwise."""
    if principal.kind == "user":
        return ("all", None) if principal.is_superuser else ("user", principal.user_id)
    if principal.kind == "api_key":
        return ("project", principal.api_key_project_id)
    return ("none", None)


@strawberry.type
class User(Node):
    id: strawberry.ID
    username: str
    display_name: str | None
    is_active: bool
    is_superuser: bool
    created_at: datetime
    row: strawberry.Private[models.User]
    #: Set in signUp/logIn payloads: the caller has just proven to be this user (or created them).
    reveal_email: strawberry.Private[bool] = False

    @classmethod
    def from_row(cls, row: models.User, *, reveal_email: bool = False) -> "User":
        return cls(id=strawberry.ID(encode_gid("User", row.id)), username=row.username,
                   display_name=row.display_name, is_active=row.is_active, is_superuser=row.is_superuser,
                   created_at=row.created_at, row=row, reveal_email=reveal_email)

    @strawberry.field(description="Visible to the user themself and to superusers; null for others.")
    def email(self, info: Info) -> str | None:
        p = info.context.principal
        if self.reveal_email or (p.kind == "user" and (p.is_superuser or p.user_id == self.row.id)):
            return self.row.email
        return None

    @strawberry.field(description="The user's projects that the viewer may see.")
    async def projects(self, info: Info, first: int | None = 20,
                       after: str | None = None) -> Connection[ProjectRef]:
        from .projects import Project

        conn = await child_connection(info, UserProjectsPage, self.row.id, first=first, after=after,
                                      wrap=Project.from_row, args=viewer_scope(info.context.principal))
        if conn.nodes:
            await info.context.roles([n.row.id for n in conn.nodes])  # viewerRole etc. without a query per row
        return conn


async def load_user(info: Info, user_id: uuid.UUID | None) -> User | None:
    """The User with this id, batched; no visibility check (for relations of visible objects)."""
    if user_id is None:
        return None
    row = await info.context.by_id(models.User).load(user_id)
    return User.from_row(row) if row is not None else None


@register_node("User")
async def _users_by_id(info: Info, ids: Sequence[uuid.UUID]) -> list[User | None]:
    """A user is visible to themself, to superusers, and to members (or keys) of a project they are in."""
    ctx = info.context
    p = ctx.principal
    wanted = list(set(ids))
    if p.kind == "user" and p.is_superuser:
        visible = set(wanted)
    elif p.kind == "user":
        mine, theirs = aliased(models.ProjectMember), aliased(models.ProjectMember)
        async with ctx.db() as session:
            rows = await session.execute(
                select(theirs.user_id).distinct().join(mine, mine.project_id == theirs.project_id)
                .where(mine.user_id == p.user_id, theirs.user_id.in_(wanted)))
            visible = {r for (r,) in rows.all()} | ({p.user_id} & set(wanted))
    elif p.kind == "api_key":
        async with ctx.db() as session:
            rows = await session.execute(
                select(models.ProjectMember.user_id).where(models.ProjectMember.project_id == p.api_key_project_id,
                                                           models.ProjectMember.user_id.in_(wanted)))
            visible = {r for (r,) in rows.all()}
    else:
        visible = set()
    rows = await ctx.by_id(models.User).load_many([i for i in ids if i in visible])
    by_id = {r.id: r for r in rows if r is not None}
    return [User.from_row(by_id[i]) if i in by_id else None for i in ids]


# ---------------------------------------------------------------------- ApiKey

@strawberry.type
class ApiKey(Node):
    id: strawberry.ID
    name: str
    prefix: str = strawberry.field(description="First characters of the secret, enough to recognise it; the "
                                               "secret itself is shown once, at creation.")
    scopes: list[ApiScope]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    row: strawberry.Private[models.ApiKey]

    @classmethod
    def from_row(cls, row: models.ApiKey) -> "ApiKey":
        return cls(id=strawberry.ID(encode_gid("ApiKey", row.id)), name=row.name, prefix=row.prefix,
                   scopes=[ApiScope(s) for s in row.scopes], created_at=row.created_at, expires_at=row.expires_at,
                   last_used_at=row.last_used_at, revoked_at=row.revoked_at, row=row)

    @strawberry.field
    async def project(self, info: Info) -> ProjectRef:
        from .projects import load_project

        return await load_project(info, self.row.project_id)

    @strawberry.field
    async def created_by(self, info: Info) -> User | None:
        return await load_user(info, self.row.created_by_id)


async def _visible_in_projects(info: Info, rows: Sequence, action: Action) -> list:
    """Keep rows (with .project_id) whose project allows ``action``; None for the others."""
    present = [r for r in rows if r is not None and r.project_id is not None]
    allowed = await info.context.can_many([r.project_id for r in present], action) if present else {}
    return [r if r is not None and r.project_id is not None and allowed.get(r.project_id) else None for r in rows]


@register_node("ApiKey")
async def _api_keys_by_id(info: Info, ids: Sequence[uuid.UUID]) -> list[ApiKey | None]:
    rows = await info.context.by_id(models.ApiKey).load_many(list(ids))
    return [ApiKey.from_row(r) if r is not None else None
            for r in await _visible_in_projects(info, rows, Action.ADMIN_PROJECT)]


# ---------------------------------------------------------------------- AuditEvent

@strawberry.type
class AuditEvent(Node):
    id: strawberry.ID
    action: str = strawberry.field(description="e.g. prompt.create, prompt_version.create, deployment.set, "
                                               "api_key.revoke")
    resource_type: str | None
    resource_id: strawberry.ID | None
    result: AuditResult
    ip_address: str | None
    user_agent: str | None
    details: JSON | None
    created_at: datetime
    row: strawberry.Private[models.AuditEvent]

    @classmethod
    def from_row(cls, row: models.AuditEvent) -> "AuditEvent":
        rid = None
        if row.resource_type and row.resource_id is not None:
            rid = strawberry.ID(encode_gid(row.resource_type, row.resource_id))
        return cls(id=strawberry.ID(encode_gid("AuditEvent", row.id)), action=row.action,
                   resource_type=row.resource_type, resource_id=rid, result=AuditResult(row.result),
                   ip_address=row.ip_address, user_agent=row.user_agent, details=row.details,
                   created_at=row.created_at, row=row)

    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        return await load_user(info, self.row.actor_id)

    @strawberry.field
    async def api_key(self, info: Info) -> ApiKey | None:
        if self.row.api_key_id is None:
            return None
        row = await info.context.by_id(models.ApiKey).load(self.row.api_key_id)
        return ApiKey.from_row(row) if row is not None else None


@register_node("AuditEvent")
async def _audit_events_by_id(info: Info, ids: Sequence[uuid.UUID]) -> list[AuditEvent | None]:
    """Project events: for the project's admins. Account events (sign-up, log-in): superusers only."""
    rows = await info.context.by_id(models.AuditEvent).load_many(list(ids))
    p = info.context.principal
    superuser = p.kind == "user" and p.is_superuser
    in_projects = await _visible_in_projects(info, rows, Action.ADMIN_PROJECT)
    out: list[AuditEvent | None] = []
    for row, visible in zip(rows, in_projects):
        ok = row is not None and (visible is not None or (row.project_id is None and superuser))
        out.append(AuditEvent.from_row(row) if ok else None)
    return out


# ---------------------------------------------------------------------- queries

@strawberry.type
class IdentityQuery:
    @strawberry.field(description="The signed-in user; null for API keys and anonymous callers.")
    async def viewer(self, info: Info) -> User | None:
        p = info.context.principal
        if p.kind != "user":
            return None
        return await load_user(info, p.user_id)

    @strawberry.field(description="Superusers only.")
    async def users(self, info: Info, first: int | None = 20, after: str | None = None) -> Connection[User]:
        p = info.context.principal
        if not (p.kind == "user" and p.is_superuser):
            return Connection.empty()
        return await keyset_connection(info, select(models.User), sort_col=models.User.created_at,
                                       id_col=models.User.id, first=first, after=after, wrap=User.from_row)


# ---------------------------------------------------------------------- mutations

@strawberry.input
class SignUpInput:
    email: str
    username: str
    password: str
    display_name: str | None = None


@strawberry.input
class LogInInput:
    login: str = strawberry.field(description="Email or username.")
    password: str


@strawberry.type
class AuthPayload:
    token: str | None = strawberry.field(
        default=None, description="A bearer token for the Authorization header; null on failure.")
    user: User | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class LogOutPayload:
    ok: bool
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class CreateApiKeyInput:
    project_id: strawberry.ID
    name: str
    scopes: list[ApiScope]
    expires_at: datetime | None = None


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKey | None = None
    secret: str | None = strawberry.field(default=None, description="The whole key. Shown here once, never again.")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RevokeApiKeyInput:
    id: strawberry.ID


@strawberry.type
class ApiKeyPayload:
    api_key: ApiKey | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(description="Create an account (the first one becomes superuser) and sign in.")
    async def sign_up(self, info: Info, input: SignUpInput) -> AuthPayload:
        ctx = info.context
        try:
            user, token = await identity_service.sign_up(
                ctx.sessionmaker, ctx.principal, ctx.settings, email=input.email, username=input.username,
                password=input.password, display_name=input.display_name)
        except ServiceError as exc:
            return AuthPayload(user_errors=user_errors(exc))
        return AuthPayload(token=token, user=User.from_row(user, reveal_email=True))

    @strawberry.mutation(description="Sign in by email or username; returns a session token.")
    async def log_in(self, info: Info, input: LogInInput) -> AuthPayload:
        ctx = info.context
        try:
            user, token = await identity_service.log_in(ctx.sessionmaker, ctx.principal, ctx.settings,
                                                        login=input.login, password=input.password)
        except ServiceError as exc:
            return AuthPayload(user_errors=user_errors(exc))
        return AuthPayload(token=token, user=User.from_row(user, reveal_email=True))

    @strawberry.mutation(description="End the current session: its token stops working.")
    async def log_out(self, info: Info) -> LogOutPayload:
        ctx = info.context
        principal = ctx.require_auth()
        try:
            await identity_service.log_out(ctx.sessionmaker, principal)
        except ServiceError as exc:
            return LogOutPayload(ok=False, user_errors=user_errors(exc))
        return LogOutPayload(ok=True)

    @strawberry.mutation(description="Create an API key of a project (ADMIN or OWNER); the secret is shown once.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        ctx = info.context
        principal = ctx.require_auth()
        try:
            key, secret = await api_key_service.create_api_key(
                ctx.sessionmaker, principal, project_id=decode_gid_of(input.project_id, "Project"),
                name=input.name, scopes=[ApiScopeValue(s.value) for s in input.scopes],
                expires_at=input.expires_at)
        except ServiceError as exc:
            return CreateApiKeyPayload(user_errors=user_errors(exc))
        return CreateApiKeyPayload(api_key=ApiKey.from_row(key), secret=secret)

    @strawberry.mutation(description="Revoke an API key at once.")
    async def revoke_api_key(self, info: Info, input: RevokeApiKeyInput) -> ApiKeyPayload:
        ctx = info.context
        principal = ctx.require_auth()
        try:
            key = await api_key_service.revoke_api_key(ctx.sessionmaker, principal,
                                                       key_id=decode_gid_of(input.id, "ApiKey"))
        except ServiceError as exc:
            return ApiKeyPayload(user_errors=user_errors(exc))
        return ApiKeyPayload(api_key=ApiKey.from_row(key))


QUERIES = [IdentityQuery]
MUTATIONS = [IdentityMutation]
EXTRA_TYPES = [User, ApiKey, AuditEvent]
