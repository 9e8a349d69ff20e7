"""Validations in GraphQL: Validation, ValidationResult, the ValidationType/ValidationStatus enums,
Prompt.validations (batched) and createValidation / updateValidation / deleteValidation.

``ValidationResult`` and ``ValidationStatus`` are also used by executions:
``ValidationResult.from_data(item)`` builds one from a stored result (a dict such as
``{"validation_id": "...", "name": "...", "passed": true, "message": null}``, or a
``validation_rules.ValidationResultData``).
"""
from __future__ import annotations

import enum
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from app.db import models
from app.services import validations as service
from app.services.access import Action
from app.services.errors import ServiceError

from ..errors import UserError, user_errors
from ..loaders import BaseLoader, VisibleViaPrompt
from ..relay import Node, decode_gid_of, encode_gid, register_node

if TYPE_CHECKING:
    from .identity import User
    from .prompts import Prompt

PromptRef = Annotated["Prompt", strawberry.lazy("app.api.types.prompts")]
UserRef = Annotated["User", strawberry.lazy("app.api.types.identity")]


@strawberry.enum
class ValidationType(enum.Enum):
    JSON_SCHEMA = strawberry.enum_value(
        "JSON_SCHEMA", description='config: {"schema": {...}} — the output must parse as JSON and follow the schema.')
    REGEX = strawberry.enum_value(
        "REGEX", description='config: {"pattern": "...", "flags": "i"} — the output must match.')
    JMESPATH = strawberry.enum_value(
        "JMESPATH",
        description='config: {"expression": "..."} — a JMESPath expression over the parsed output must be truthy.')


@strawberry.enum
class ValidationStatus(enum.Enum):
    PENDING = "PENDING"
    PASSED = "PASSED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


# ------------------------------------------------------------------ loaders


class ValidationsByPrompt(BaseLoader):
    """All validations (active and not) of each prompt, oldest first: one statement per request shape."""

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[models.Validation]]:
        stmt = (select(models.Validation).where(models.Validation.prompt_id.in_(list(set(keys))))
                .order_by(models.Validation.created_at, models.Validation.id))
        async with self.ctx.db() as session:
            rows = (await session.execute(stmt)).scalars().all()
        grouped: dict[uuid.UUID, list[models.Validation]] = defaultdict(list)
        for r in rows:
            grouped[r.prompt_id].append(r)
        return [grouped.get(k, []) for k in keys]


# ------------------------------------------------------------------ types


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
    def from_row(cls, row: models.Validation) -> "Validation":
        return cls(id=strawberry.ID(encode_gid("Validation", row.id)), name=row.name, type=ValidationType(row.type),
                   config=row.config, is_active=row.is_active, created_at=row.created_at, updated_at=row.updated_at,
                   row=row)

    @strawberry.field
    async def prompt(self, info: Info) -> PromptRef:
        from .prompts import Prompt

        row = await info.context.by_id(models.Prompt).load(self.row.prompt_id)
        return Prompt.from_row(row)

    @strawberry.field(description="Who created it; null for API keys and deleted users.")
    async def created_by(self, info: Info) -> UserRef | None:
        if self.row.created_by_id is None:
            return None
        from .identity import User

        row = await info.context.by_id(models.User).load(self.row.created_by_id)
        return User.from_row(row) if row is not None else None


@register_node("Validation")
async def _validation_nodes(info: Info, ids: Sequence[uuid.UUID]) -> list[Validation | None]:
    rows = await info.context.loader(VisibleViaPrompt, models.Validation).load_many(list(ids))
    return [Validation.from_row(r) if r is not None else None for r in rows]


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
    def from_data(cls, item: Any) -> "ValidationResult":
        """From a stored result: a dict (validation_id / validationId, name, passed, message) or an object."""
        if isinstance(item, dict):
            vid = item.get("validation_id", item.get("validationId"))
            return cls(name=str(item.get("name", "")), passed=bool(item.get("passed")), message=item.get("message"),
                       validation_id=_as_uuid(vid))
        return cls(name=str(item.name), passed=bool(item.passed), message=item.message,
                   validation_id=_as_uuid(getattr(item, "validation_id", None)))

    @strawberry.field(description="The validation that produced this result; null once it has been deleted.")
    async def validation(self, info: Info) -> Validation | None:
        if self.validation_id is None:
            return None
        row = await info.context.loader(VisibleViaPrompt, models.Validation).load(self.validation_id)
        return Validation.from_row(row) if row is not None else None


# ------------------------------------------------------------------ mixin


@strawberry.type
class PromptValidationFields:
    """Prompt.validations (mixed into Prompt)."""

    @strawberry.field(description="The prompt's validations, oldest first; inactive ones only when asked.")
    async def validations(self, info: Info, include_inactive: bool | None = False) -> list[Validation]:
        rows = await info.context.loader(ValidationsByPrompt).load(self.row.id)  # type: ignore[attr-defined]
        return [Validation.from_row(r) for r in rows if include_inactive or r.is_active]


# ------------------------------------------------------------------ mutations


@strawberry.input
class CreateValidationInput:
    prompt_id: strawberry.ID
    name: str
    type: ValidationType
    config: JSON
    is_active: bool | None = True


@strawberry.input
class UpdateValidationInput:
    id: strawberry.ID
    name: str | None = strawberry.UNSET
    config: JSON | None = strawberry.UNSET
    is_active: bool | None = strawberry.UNSET


@strawberry.input
class DeleteValidationInput:
    id: strawberry.ID


@strawberry.type
class ValidationPayload:
    validation: Validation | None
    user_errors: list[UserError]


@strawberry.type
class DeleteValidationPayload:
    deleted_id: strawberry.ID | None
    user_errors: list[UserError]


def _given(value: Any) -> Any:
    return service.UNSET if value is strawberry.UNSET else value


async def _validation_payload(call) -> ValidationPayload:
    try:
        row = await call
    except ServiceError as exc:
        return ValidationPayload(validation=None, user_errors=user_errors(exc))
    return ValidationPayload(validation=Validation.from_row(row), user_errors=[])


@strawberry.type
class ValidationMutation:
    @strawberry.mutation(description="Add a validation to a prompt; its config is checked first. Needs WRITE access "
                                     "to prompts (EDITOR, or an API key with PROMPTS_WRITE).")
    async def create_validation(self, info: Info, input: CreateValidationInput) -> ValidationPayload:
        ctx = info.context
        principal = ctx.require_auth()
        return await _validation_payload(service.create_validation(
            ctx.sessionmaker, principal, prompt_id=decode_gid_of(input.prompt_id, "Prompt"), name=input.name,
            type=input.type.value, config=input.config,
            is_active=True if input.is_active is None else input.is_active))

    @strawberry.mutation(description="Change a validation's name, config or active flag (the type cannot change).")
    async def update_validation(self, info: Info, input: UpdateValidationInput) -> ValidationPayload:
        ctx = info.context
        principal = ctx.require_auth()
        return await _validation_payload(service.update_validation(
            ctx.sessionmaker, principal, validation_id=decode_gid_of(input.id, "Validation"),
            name=_given(input.name), config=_given(input.config), is_active=_given(input.is_active)))

    @strawberry.mutation(description="Delete a validation. Results already recorded on executions keep its name.")
    async def delete_validation(self, info: Info, input: DeleteValidationInput) -> DeleteValidationPayload:
        ctx = info.context
        principal = ctx.require_auth()
        try:
            deleted = await service.delete_validation(ctx.sessionmaker, principal,
                                                      validation_id=decode_gid_of(input.id, "Validation"))
        except ServiceError as exc:
            return DeleteValidationPayload(deleted_id=None, user_errors=user_errors(exc))
        return DeleteValidationPayload(deleted_id=strawberry.ID(encode_gid("Validation", deleted)), user_errors=[])


QUERIES: list = []
MUTATIONS: list = [ValidationMutation]
EXTRA_TYPES: list = [Validation, ValidationResult, ValidationStatus]
