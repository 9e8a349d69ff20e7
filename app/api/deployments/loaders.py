"""Per-request loaders of deployments: one statement per field and request shape, whatever the
number of prompts."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from app.db import models

from ..core.child_pages import ChildPageLoader
from ..core.loaders import ManyByKeyLoader


class ActiveDeploymentsByPrompt(ManyByKeyLoader):
    """Active deployments of each prompt (all environments), in resolve order within an environment."""

    model = models.Deployment
    key_column = "prompt_id"
    order_by = (models.Deployment.environment, models.Deployment.deployed_at, models.PromptVersion.number,
                models.Deployment.id)

    def where(self, stmt: Select[Any]) -> Select[Any]:
        return (stmt.join(models.PromptVersion, models.PromptVersion.id == models.Deployment.version_id)
                .where(models.Deployment.retired_at.is_(None)))


class ActiveDeploymentsByVersion(ManyByKeyLoader):
    """Active deployments that serve each version."""

    model = models.Deployment
    key_column = "version_id"
    order_by = (models.Deployment.environment, models.Deployment.id)

    def where(self, stmt: Select[Any]) -> Select[Any]:
        return stmt.where(models.Deployment.retired_at.is_(None))


class DeploymentHistoryPage(ChildPageLoader):
    """Prompt.deploymentHistory: every deployment row, newest first, optionally of one environment;
    args = (environment or None,). All prompts of a request in one window-function statement over
    ``ix_deployments_history``."""

    model = models.Deployment
    parent_col = models.Deployment.prompt_id
    sort_col = models.Deployment.deployed_at
    id_col = models.Deployment.id
    descending = True

    def base(self) -> Select[Any]:
        (environment,) = self.args
        stmt = select(models.Deployment)
        return stmt if environment is None else stmt.where(models.Deployment.environment == environment)
