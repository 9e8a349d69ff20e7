"""Execution types (owner: executions). Placeholder until executions land."""
from __future__ import annotations

import strawberry


@strawberry.type
class ProjectExecutionFields:
    """Project.executions (mixed into Project)."""


@strawberry.type
class PromptExecutionFields:
    """Prompt.executions / splitReport (mixed into Prompt)."""


@strawberry.type
class VersionExecutionFields:
    """PromptVersion.stats (mixed into PromptVersion)."""


QUERIES: list = []
MUTATIONS: list = []
SUBSCRIPTIONS: list = []
