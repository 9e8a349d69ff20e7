"""Fields validations supply to other domains' types: Prompt.validations."""
from __future__ import annotations

import uuid

from ..core.context import Info
from .loaders import ValidationsByPrompt
from .types import Validation


async def prompt_validations(info: Info, prompt_id: uuid.UUID, include_inactive: bool | None) -> list[Validation]:
    rows = await info.context.loader(ValidationsByPrompt).load(prompt_id)
    return [Validation.from_row(r) for r in rows if include_inactive or r.is_active]
