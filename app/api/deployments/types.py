"""Deployment and ResolvedPrompt."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.db import models
from app.services import deployments as service

from ..core.relay import Node, global_id, node, related, wrap

if TYPE_CHECKING:
    from ..identity.types import User
    from ..prompts.types import Prompt, PromptVersion

PromptRef = Annotated["Prompt", strawberry.lazy("app.api.prompts.types")]
VersionRef = Annotated["PromptVersion", strawberry.lazy("app.api.prompts.types")]
UserRef = Annotated["User", strawberry.lazy("app.api.identity.types")]

BUCKET_DOC = (
    "0-99: where the subject key fell in the traffic split; the same key always falls in the same place. "
    "With a subjectKey: int.from_bytes(sha256(f\"{promptId}:{environment}:{subjectKey}\".encode(\"utf-8\"))"
    ".digest()[:8], \"big\") % 100, where promptId is the prompt's UUID (lower-case, hyphenated: the part after "
    "\"Prompt:\" in its base64url-decoded global ID) and environment is the environment used. Without a "
    "subjectKey: random."
)


@node(models.Deployment)
@strawberry.type(description="Which version serves an environment, and with what share of its traffic. Kept as "
                             "history: a change retires the old rows.")
class Deployment(Node):
    id: strawberry.ID
    environment: str
    traffic_percentage: int
    is_active: bool
    deployed_at: datetime
    retired_at: datetime | None
    row: strawberry.Private[models.Deployment]

    @classmethod
    def from_row(cls, row: models.Deployment) -> Deployment:
        return cls(id=global_id(cls, row.id), environment=row.environment,
                   traffic_percentage=row.traffic_percentage, is_active=row.retired_at is None,
                   deployed_at=row.deployed_at, retired_at=row.retired_at, row=row)

    prompt: PromptRef = related(models.Prompt, "prompt_id")
    version: VersionRef = related(models.PromptVersion, "version_id")
    deployed_by: UserRef | None = related(
        models.User, "deployed_by_id",
        description="Who made the change that deployed this; null for API keys and deleted users.")
    retired_by: UserRef | None = related(
        models.User, "retired_by_id",
        description="Who made the change that retired this; null while active, for API keys and "
                    "for deleted users.")


@strawberry.type(description="The answer to: which version should this caller use in this environment right now?")
class ResolvedPrompt:
    environment: str
    bucket: int = strawberry.field(description=BUCKET_DOC)
    resolution: strawberry.Private[service.Resolution]

    @strawberry.field
    def prompt(self) -> PromptRef:
        return wrap(self.resolution.prompt)

    @strawberry.field
    def version(self) -> VersionRef:
        return wrap(self.resolution.version)

    @strawberry.field(description="The deployment that chose the version; null when the answer fell back to the "
                                  "latest version.")
    def deployment(self) -> Deployment | None:
        d = self.resolution.deployment
        return Deployment.from_row(d) if d is not None else None
