"""User, ApiKey and AuditEvent."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from app.db import models
from app.services import access

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.enums import ApiScope, AuditResult
from ..core.pagination import Connection
from ..core.relay import Node, encode_gid, global_id, node, related, wrap
from .loaders import UserProjectsPage

if TYPE_CHECKING:
    from ..projects.types import Project

ProjectRef = Annotated["Project", strawberry.lazy("app.api.projects.types")]


@node(models.User)
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
    def from_row(cls, row: models.User, *, reveal_email: bool = False) -> User:
        return cls(id=global_id(cls, row.id), username=row.username, display_name=row.display_name,
                   is_active=row.is_active, is_superuser=row.is_superuser, created_at=row.created_at, row=row,
                   reveal_email=reveal_email)

    @strawberry.field(description="Visible to the user themself and to superusers; null for others.")
    def email(self, info: Info) -> str | None:
        if self.reveal_email or access.may_see_email(info.context.principal, self.row.id):
            return self.row.email
        return None

    @strawberry.field(description="The user's projects that the viewer may see.")
    async def projects(self, info: Info, first: int | None = 20, after: str | None = None) -> Connection[ProjectRef]:
        return await child_connection(info, UserProjectsPage, self.row.id, first=first, after=after, wrap=wrap,
                                      args=(info.context.principal,))


@node(models.ApiKey)
@strawberry.type
class ApiKey(Node):
    id: strawberry.ID
    name: str
    prefix: str = strawberry.field(description="First characters of the secret, enough to recognise it; the "
                                               "secret itself is shown once, at creation.")
    scopes: list[ApiScope]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = strawberry.field(description=(
        "When the key was last used, approximately: uses are recorded at most once per "
        "PROMPTSTUDIO_LAST_USED_RESOLUTION_SECONDS and written in batches every "
        "PROMPTSTUDIO_LAST_USED_FLUSH_SECONDS."))
    revoked_at: datetime | None
    row: strawberry.Private[models.ApiKey]

    @classmethod
    def from_row(cls, row: models.ApiKey) -> ApiKey:
        return cls(id=global_id(cls, row.id), name=row.name, prefix=row.prefix,
                   scopes=[ApiScope(s) for s in row.scopes], created_at=row.created_at, expires_at=row.expires_at,
                   last_used_at=row.last_used_at, revoked_at=row.revoked_at, row=row)

    project: ProjectRef = related(models.Project, "project_id")
    created_by: User | None = related(models.User, "created_by_id")


@node(models.AuditEvent)
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
    def from_row(cls, row: models.AuditEvent) -> AuditEvent:
        rid = None
        if row.resource_type and row.resource_id is not None:
            rid = strawberry.ID(encode_gid(row.resource_type, row.resource_id))
        return cls(id=global_id(cls, row.id), action=row.action, resource_type=row.resource_type, resource_id=rid,
                   result=AuditResult(row.result), ip_address=row.ip_address, user_agent=row.user_agent,
                   details=row.details, created_at=row.created_at, row=row)

    actor: User | None = related(models.User, "actor_id")
    api_key: ApiKey | None = related(models.ApiKey, "api_key_id")


@strawberry.input
class AuditFilter:
    action: str | None = None
    actor_id: strawberry.ID | None = None
    result: AuditResult | None = None
    from_: datetime | None = strawberry.field(name="from", default=None, description="Events at or after this time.")
    to: datetime | None = strawberry.field(default=None, description="Events before this time.")
