"""createProject, updateProject, addProjectMember, updateProjectMember, removeProjectMember,
setProviderCredential."""
from __future__ import annotations

import strawberry

from app.db import models
from app.services import credentials, projects

from ..core.context import Info
from ..core.enums import ProjectRole
from ..core.inputs import or_unset
from ..core.mutations import Payload, mutation, run
from ..core.relay import decode_id
from .types import Project, ProjectMember, ProviderCredential


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

    def to_change(self) -> projects.SettingsChange:
        return projects.SettingsChange(
            environments=or_unset(self.environments), default_environment=or_unset(self.default_environment),
            trace_retention_days=or_unset(self.trace_retention_days),
            execution_retention_days=or_unset(self.execution_retention_days))


@strawberry.input
class UpdateProjectInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    settings: ProjectSettingsInput | None = strawberry.UNSET


@strawberry.type
class ProjectPayload(Payload):
    project: Project | None = None


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
class ProjectMemberPayload(Payload):
    member: ProjectMember | None = None


@strawberry.input
class SetProviderCredentialInput:
    project_id: strawberry.ID
    provider: str
    api_key: str
    base_url: str | None = None


@strawberry.type
class ProviderCredentialPayload(Payload):
    credential: ProviderCredential | None = None


@strawberry.type
class ProjectMutation:
    @mutation("Create a project; you become its OWNER.")
    async def create_project(self, info: Info, input: CreateProjectInput) -> ProjectPayload:
        row = await run(info, projects.create_project, name=input.name, slug=input.slug,
                        description=input.description)
        return ProjectPayload(project=Project.from_row(row))

    @mutation("Change a project's name, description or settings (ADMIN or OWNER).")
    async def update_project(self, info: Info, input: UpdateProjectInput) -> ProjectPayload:
        settings = input.settings.to_change() if input.settings else None
        row = await run(info, projects.update_project, project_id=decode_id(input.id, Project),
                        name=or_unset(input.name), description=or_unset(input.description), settings=settings)
        return ProjectPayload(project=Project.from_row(row))

    @mutation("Add an existing user to a project.")
    async def add_project_member(self, info: Info, input: AddProjectMemberInput) -> ProjectMemberPayload:
        row = await run(info, projects.add_member, project_id=decode_id(input.project_id, Project),
                        login=input.login, role=input.role)
        return ProjectMemberPayload(member=ProjectMember.from_row(row))

    @mutation("Change a member's role.")
    async def update_project_member(self, info: Info, input: UpdateProjectMemberInput) -> ProjectMemberPayload:
        row = await run(info, projects.update_member, project_id=decode_id(input.project_id, Project),
                        user_id=decode_id(input.user_id, models.User), role=input.role)
        return ProjectMemberPayload(member=ProjectMember.from_row(row))

    @mutation("Remove a member, or leave a project (your own user ID).")
    async def remove_project_member(self, info: Info, input: RemoveProjectMemberInput) -> ProjectMemberPayload:
        row = await run(info, projects.remove_member, project_id=decode_id(input.project_id, Project),
                        user_id=decode_id(input.user_id, models.User))
        return ProjectMemberPayload(member=ProjectMember.from_row(row))

    @mutation("Store a provider's API key for a project (encrypted; only a hint is shown).")
    async def set_provider_credential(self, info: Info, input: SetProviderCredentialInput) -> ProviderCredentialPayload:
        row = await run(info, credentials.set_provider_credential, project_id=decode_id(input.project_id, Project),
                        provider=input.provider, api_key=input.api_key, base_url=input.base_url)
        return ProviderCredentialPayload(credential=ProviderCredential.from_row(row))
