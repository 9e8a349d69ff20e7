"""Fields executions supply to other domains' types: Project.executions, Prompt.executions,
Prompt.splitReport and PromptVersion.stats."""
from __future__ import annotations

from datetime import datetime

from app.db import models
from app.services.access import Action
from app.services.stats import VersionStatsData

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.pagination import Connection
from ..deployments.loaders import ActiveDeploymentsByPrompt
from .loaders import ProjectExecutionsPage, PromptExecutionsPage, StatsLoader
from .types import Execution, ExecutionFilter, VersionStats, filter_args


async def project_executions(info: Info, project: models.Project, first: int | None, after: str | None,
                             filter: ExecutionFilter | None) -> Connection[Execution]:
    if not await info.context.can(project.id, Action.READ_EXECUTIONS):
        return Connection.empty()
    return await child_connection(info, ProjectExecutionsPage, project.id, first=first, after=after,
                                  wrap=Execution.from_row, args=filter_args(filter))


async def prompt_executions(info: Info, prompt: models.Prompt, first: int | None, after: str | None,
                            filter: ExecutionFilter | None) -> Connection[Execution]:
    if not await info.context.can(prompt.project_id, Action.READ_EXECUTIONS):
        return Connection.empty()
    return await child_connection(info, PromptExecutionsPage, prompt.id, first=first, after=after,
                                  wrap=Execution.from_row, args=filter_args(filter))


async def prompt_split_report(info: Info, prompt: models.Prompt, environment: str, from_: datetime | None,
                              to: datetime | None) -> list[VersionStats]:
    if not await info.context.can(prompt.project_id, Action.READ_EXECUTIONS):
        return []
    deployments = [d for d in await info.context.loader(ActiveDeploymentsByPrompt).load(prompt.id)
                   if d.environment == environment]
    version_ids = list(dict.fromkeys(d.version_id for d in deployments))
    stats = await info.context.loader(StatsLoader, from_, to, environment).load_many(version_ids)
    return [VersionStats.from_data(s) for s in stats]


async def version_stats(info: Info, version: models.PromptVersion, from_: datetime | None,
                        to: datetime | None) -> VersionStats:
    prompt = await info.context.by_id(models.Prompt).load(version.prompt_id)
    if prompt is None or not await info.context.can(prompt.project_id, Action.READ_EXECUTIONS):
        return VersionStats.from_data(VersionStatsData(version_id=version.id), version)
    data = await info.context.loader(StatsLoader, from_, to, None).load(version.id)
    return VersionStats.from_data(data, version)
