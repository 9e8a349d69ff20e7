"""Validation and ValidationResult.

``ValidationResult.from_data(item)`` builds one from a result stored on an execution (a dict such
as ``{"validationId": "...", "name": "...", "passed": true, "message": null}``).
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.db import models

from ..core.context import Info
from ..core.enums import ValidationType
from ..core.loaders import Visible
from ..core.relay import Node, global_id, node, related

if TYPE_CHECKING:
    from ..identity.types import User
    from ..prompts.types import Prompt

PromptRef = Annotated["Prompt", strawberry.lazy("app.api.prompts.types")]
UserRef = Annotated["User", strawberry.lazy("app.api.identity.types")]


@node(models.Validation)
@strawberry.type(description="A rule every output of the prompt is checked against while it is active.")
class Validation(Node):
    id: strawberry.ID
    name: str
    type: ValidationType
    config: JSON
    is_active: bool
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[models.Validation]

    @classmethod
    def from_row(cls, row: models.Validation) -> Validation:
        return cls(id=global_id(cls, row.id), name=row.name, type=ValidationType(row.type), config=JSON(row.config),
                   is_active=row.is_active, created_at=row.created_at, updated_at=row.updated_at, row=row)

    prompt: PromptRef = related(models.Prompt, "prompt_id")
    created_by: UserRef | None = related(
        models.User, "created_by_id",
        description="Who created it; null for API keys and deleted users.")


def _as_uuid(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


@strawberry.type(description="The outcome of one validation on one output.")
class ValidationResult:
    name: str
    passed: bool
    message: str | None = None
    validation_id: strawberry.Private[uuid.UUID | None] = None

    @classmethod
    def from_data(cls, item: dict[str, Any]) -> ValidationResult:
        """From a stored result: validationId (or validation_id), name, passed, message."""
        vid = item.get("validationId", item.get("validation_id"))
        return cls(name=str(item.get("name", "")), passed=bool(item.get("passed")), message=item.get("message"),
                   validation_id=_as_uuid(vid))

    @strawberry.field(description="The validation that produced this result; null once it has been deleted.")
    async def validation(self, info: Info) -> Validation | None:
        if self.validation_id is None:
            return None
        row = await info.context.loader(Visible, models.Validation).load(self.validation_id)
        return Validation.from_row(row) if row is not None else None
