"""upsertModelConfig."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from app.services import models as model_service

from ..core.context import Info
from ..core.mutations import Payload, mutation, run
from .types import ModelConfig


@strawberry.input
class UpsertModelConfigInput:
    provider: str
    model_id: str
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    display_name: str | None = None
    context_length: int | None = None
    max_output_tokens: int | None = None
    supports_streaming: bool | None = None
    supports_tools: bool | None = None
    cached_input_price_per_million: Decimal | None = None
    effective_from: datetime | None = strawberry.field(default=None, description="Default: now.")


@strawberry.type
class ModelConfigPayload(Payload):
    model_config: ModelConfig | None = None


@strawberry.type
class ModelMutation:
    @mutation(
        "Superusers: add a model's prices effective from effectiveFrom (default now). Earlier prices, and the "
        "costs recorded with them, stay; the same provider, model and effectiveFrom updates that row. Fields "
        "left out are taken from the model's latest row.")
    async def upsert_model_config(self, info: Info, input: UpsertModelConfigInput) -> ModelConfigPayload:
        data = model_service.ModelConfigInput(
            provider=input.provider, model_id=input.model_id, input_price_per_million=input.input_price_per_million,
            output_price_per_million=input.output_price_per_million, display_name=input.display_name,
            context_length=input.context_length, max_output_tokens=input.max_output_tokens,
            supports_streaming=input.supports_streaming, supports_tools=input.supports_tools,
            cached_input_price_per_million=input.cached_input_price_per_million,
            effective_from=input.effective_from)
        row = await run(info, model_service.upsert_model_config, data=data)
        return ModelConfigPayload(model_config=ModelConfig.from_row(row))
