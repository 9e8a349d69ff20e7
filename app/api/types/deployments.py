"""Deployment types (owner: deployments). Placeholder until deployments land."""
from __future__ import annotations

import strawberry


@strawberry.type
class PromptDeploymentFields:
    """Prompt.deployments / deploymentHistory (mixed into Prompt)."""


@strawberry.type
class VersionDeploymentFields:
    """PromptVersion.deployments (mixed into PromptVersion)."""


QUERIES: list = []
MUTATIONS: list = []
