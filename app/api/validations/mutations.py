"""createValidation, updateValidation, deleteValidation."""
from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from app.db import models
from app.services import validations as service

from ..core.context import Info
from ..core.enums import ValidationType
from ..core.inputs import or_unset
from ..core.mutations import Payload, mutation, run
from ..core.relay import decode_id, global_id
from .types import Validation


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
class ValidationPayload(Payload):
    validation: Validation | None = None


@strawberry.type
class DeleteValidationPayload(Payload):
    deleted_id: strawberry.ID | None = None


@strawberry.type
class ValidationMutation:
    @mutation("Add a validation to a prompt; its config is checked first. Needs WRITE access to prompts (EDITOR, "
              "or an API key with PROMPTS_WRITE).")
    async def create_validation(self, info: Info, input: CreateValidationInput) -> ValidationPayload:
        row = await run(info, service.create_validation, prompt_id=decode_id(input.prompt_id, models.Prompt),
                        name=input.name, type=input.type.value, config=input.config,
                        is_active=True if input.is_active is None else input.is_active)
        return ValidationPayload(validation=Validation.from_row(row))

    @mutation("Change a validation's name, config or active flag (the type cannot change).")
    async def update_validation(self, info: Info, input: UpdateValidationInput) -> ValidationPayload:
        row = await run(info, service.update_validation, validation_id=decode_id(input.id, Validation),
                        name=or_unset(input.name), config=or_unset(input.config),
                        is_active=or_unset(input.is_active))
        return ValidationPayload(validation=Validation.from_row(row))

    @mutation("Delete a validation. Results already recorded on executions keep its name.")
    async def delete_validation(self, info: Info, input: DeleteValidationInput) -> DeleteValidationPayload:
        deleted = await run(info, service.delete_validation, validation_id=decode_id(input.id, Validation))
        return DeleteValidationPayload(deleted_id=global_id(Validation, deleted))
