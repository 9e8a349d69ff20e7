"""Fields deployments supply to other domains' types: Prompt.deployments, Prompt.deploymentHistory and
PromptVersion.deployments."""
from __future__ import annotations

import uuid

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.pagination import Connection
from .loaders import ActiveDeploymentsByPrompt, ActiveDeploymentsByVersion, DeploymentHistoryPage
from .types import Deployment


async def prompt_deployments(info: Info, prompt_id: uuid.UUID, environment: str | None) -> list[Deployment]:
    rows = await info.context.loader(ActiveDeploymentsByPrompt).load(prompt_id)
    return [Deployment.from_row(r) for r in rows if environment is None or r.environment == environment]


async def prompt_deployment_history(info: Info, prompt_id: uuid.UUID, first: int | None, after: str | None,
                                    environment: str | None) -> Connection[Deployment]:
    return await child_connection(info, DeploymentHistoryPage, prompt_id, first=first, after=after,
                                  wrap=Deployment.from_row, args=(environment,))


async def version_deployments(info: Info, version_id: uuid.UUID) -> list[Deployment]:
    rows = await info.context.loader(ActiveDeploymentsByVersion).load(version_id)
    return [Deployment.from_row(r) for r in rows]
