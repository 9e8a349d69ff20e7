"""deployPromptVersion, setTrafficSplit, undeployPrompt."""
from __future__ import annotations

import strawberry

from app.db import models
from app.db.models import Deployment as DeploymentRow
from app.services import deployments as service

from ..core.context import Info
from ..core.mutations import Payload, mutation, run
from ..core.relay import decode_id
from .types import Deployment


@strawberry.input
class DeployPromptVersionInput:
    version_id: strawberry.ID
    environment: str


@strawberry.input
class TrafficSplitInput:
    version_id: strawberry.ID
    percentage: int


@strawberry.input
class SetTrafficSplitInput:
    prompt_id: strawberry.ID
    environment: str
    splits: list[TrafficSplitInput] = strawberry.field(description="Percentages must add up to 100.")


@strawberry.input
class UndeployPromptInput:
    prompt_id: strawberry.ID
    environment: str


@strawberry.type
class DeploymentPayload(Payload):
    deployments: list[Deployment] = strawberry.field(
        default_factory=list, description="The active deployments of the environment after the change.")

    @classmethod
    def of(cls, rows: list[DeploymentRow]) -> DeploymentPayload:
        return cls(deployments=[Deployment.from_row(r) for r in rows])


@strawberry.type
class DeploymentMutation:
    @mutation("Serve one version at 100% of an environment (retiring what served it before). Needs WRITE access "
              "to prompts (EDITOR, or an API key with PROMPTS_WRITE).")
    async def deploy_prompt_version(self, info: Info, input: DeployPromptVersionInput) -> DeploymentPayload:
        return DeploymentPayload.of(await run(
            info, service.deploy_version, version_id=decode_id(input.version_id, models.PromptVersion),
            environment=input.environment))

    @mutation("Serve several versions of one prompt in an environment, with percentages (1-100 each, no version "
              "twice) that add up to 100; atomic.")
    async def set_traffic_split(self, info: Info, input: SetTrafficSplitInput) -> DeploymentPayload:
        splits = [service.SplitItem(decode_id(s.version_id, models.PromptVersion), s.percentage)
                  for s in input.splits]
        return DeploymentPayload.of(await run(
            info, service.set_traffic_split, prompt_id=decode_id(input.prompt_id, models.Prompt),
            environment=input.environment, splits=splits))

    @mutation("Stop serving a prompt in an environment (its deployments are retired and stay in the history). "
              "Nothing deployed there is not an error.")
    async def undeploy_prompt(self, info: Info, input: UndeployPromptInput) -> DeploymentPayload:
        return DeploymentPayload.of(await run(
            info, service.undeploy, prompt_id=decode_id(input.prompt_id, models.Prompt),
            environment=input.environment))
