"""Project, ProjectSettings, ProjectMember and ProviderCredential.

Every field of Project is declared here. Fields whose data belongs to another domain (prompts,
executions, API keys, the audit log) are one-line calls into that domain's ``resolvers``.
"""
from __future__ import annotations

from datetime import datetime

import strawberry

from app.db import models
from app.services import access
from app.services.access import Action

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.enums import ProjectRole
from ..core.pagination import Connection
from ..core.relay import Node, global_id, node, related
from ..executions import resolvers as executions
from ..executions.types import Execution, ExecutionFilter
from ..experiments import resolvers as experiments
from ..experiments.types import Dataset, Evaluator, Experiment, ExperimentStatus
from ..identity import resolvers as identity
from ..identity.types import ApiKey, AuditEvent, AuditFilter, User
from ..prompts import resolvers as prompts
from ..prompts.inputs import PromptFilter, PromptOrder
from ..prompts.types import Prompt
from ..traces import resolvers as traces
from ..traces.types import Trace, TraceFilter
from .loaders import CredentialsByProject, MembersPage


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
    def from_row(cls, row: models.ProjectMember) -> ProjectMember:
        return cls(role=ProjectRole(row.role), added_at=row.added_at, row=row)

    user: User = related(models.User, "user_id", seen_with_owner=True)


@node(models.ProviderCredential)
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
    def from_row(cls, row: models.ProviderCredential) -> ProviderCredential:
        return cls(id=global_id(cls, row.id), provider=row.provider, base_url=row.base_url, key_hint=row.key_hint,
                   created_at=row.created_at, updated_at=row.updated_at, row=row)


@node(models.Project)
@strawberry.type
class Project(Node):
    id: strawberry.ID
    slug: str
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[models.Project]

    @classmethod
    def from_row(cls, row: models.Project) -> Project:
        return cls(id=global_id(cls, row.id), slug=row.slug, name=row.name, description=row.description,
                   created_at=row.created_at, updated_at=row.updated_at, row=row)

    @strawberry.field
    def settings(self) -> ProjectSettings:
        r = self.row
        return ProjectSettings(environments=list(r.environments), default_environment=r.default_environment,
                               trace_retention_days=r.trace_retention_days,
                               execution_retention_days=r.execution_retention_days)

    @strawberry.field(description="The signed-in viewer's role here; null for superusers who are not members.")
    async def viewer_role(self, info: Info) -> ProjectRole | None:
        if not access.has_roles(info.context.principal):
            return None
        return await info.context.role(self.row.id)

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
        return await identity.project_api_keys(info, self.row.id, first, after, include_revoked)

    @strawberry.field
    async def provider_credentials(self, info: Info) -> list[ProviderCredential]:
        if not await info.context.can(self.row.id, Action.ADMIN_PROJECT):
            return []
        rows = await info.context.loader(CredentialsByProject).load(self.row.id)
        return [ProviderCredential.from_row(r) for r in rows]

    @strawberry.field(description="Newest first.")
    async def audit_events(self, info: Info, first: int | None = 20, after: str | None = None,
                           filter: AuditFilter | None = None) -> Connection[AuditEvent]:
        return await identity.project_audit_events(info, self.row.id, first, after, filter)

    @strawberry.field(description=(
        "The project's prompts. Without a status filter ARCHIVED prompts are left out. Ordered by orderBy "
        "(default CREATED_AT DESC); keyset pagination."))
    async def prompts(self, info: Info, first: int | None = 20, after: str | None = None,
                      filter: PromptFilter | None = None, order_by: PromptOrder | None = None) -> Connection[Prompt]:
        return await prompts.project_prompts(info, self.row, first, after, filter, order_by)

    @strawberry.field(description="The prompt of this name (exact), whatever its status; null when there is none "
                                  "or you may not read prompts here.")
    async def prompt(self, info: Info, name: str) -> Prompt | None:
        return await prompts.project_prompt(info, self.row, name)

    @strawberry.field(description="The distinct tags of the project's prompts (all statuses), sorted.")
    async def tags(self, info: Info) -> list[str]:
        return await prompts.project_tags(info, self.row)

    @strawberry.field(description="Newest first.")
    async def executions(self, info: Info, first: int | None = 20, after: str | None = None,
                         filter: ExecutionFilter | None = None) -> Connection[Execution]:
        return await executions.project_executions(info, self.row, first, after, filter)

    @strawberry.field(description="Newest first (by start time); keyset pagination.")
    async def traces(self, info: Info, first: int | None = 20, after: str | None = None,
                     filter: TraceFilter | None = None) -> Connection[Trace]:
        return await traces.project_traces(info, self.row, first, after, filter)

    @strawberry.field(description="The trace with this id (32 hex characters, any case); null when there is none or "
                                  "you may not read traces here.")
    async def trace(self, info: Info, trace_id: str) -> Trace | None:
        return await traces.project_trace(info, self.row, trace_id)

    @strawberry.field(description="Newest first. Empty unless you may read experiments (EXPERIMENTS_READ).")
    async def datasets(self, info: Info, first: int | None = 20, after: str | None = None) -> Connection[Dataset]:
        return await experiments.project_datasets(info, self.row.id, first, after)

    @strawberry.field(description="Newest first. Empty unless you may read experiments (EXPERIMENTS_READ).")
    async def evaluators(self, info: Info, first: int | None = 20, after: str | None = None) -> Connection[Evaluator]:
        return await experiments.project_evaluators(info, self.row.id, first, after)

    @strawberry.field(description="Newest first, optionally of one status. Empty unless you may read experiments "
                                  "(EXPERIMENTS_READ).")
    async def experiments(self, info: Info, first: int | None = 20, after: str | None = None,
                          status: ExperimentStatus | None = None) -> Connection[Experiment]:
        return await experiments.project_experiments(info, self.row.id, first, after, status)
