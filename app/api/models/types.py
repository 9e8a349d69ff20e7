"""ModelConfig, ProviderInfo, and the model settings of a prompt version or an execution."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.db import models

from ..core.relay import Node, global_id, node


@node(models.ModelConfig)
@strawberry.type(description="A model's prices (US dollars per million tokens) from effectiveFrom on. A price "
                             "change is a new row, so costs already recorded never change.")
class ModelConfig(Node):
    id: strawberry.ID
    provider: str
    model_id: str
    display_name: str
    context_length: int | None
    max_output_tokens: int | None
    supports_streaming: bool
    supports_tools: bool
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    cached_input_price_per_million: Decimal | None
    effective_from: datetime
    is_active: bool
    row: strawberry.Private[models.ModelConfig]

    @classmethod
    def from_row(cls, row: models.ModelConfig) -> ModelConfig:
        return cls(id=global_id(cls, row.id), provider=row.provider, model_id=row.model_id,
                   display_name=row.display_name, context_length=row.context_length,
                   max_output_tokens=row.max_output_tokens, supports_streaming=row.supports_streaming,
                   supports_tools=row.supports_tools, input_price_per_million=row.input_price_per_million,
                   output_price_per_million=row.output_price_per_million,
                   cached_input_price_per_million=row.cached_input_price_per_million,
                   effective_from=row.effective_from, is_active=row.is_active, row=row)


@strawberry.type
class ProviderInfo:
    name: str
    configured: bool = strawberry.field(description=(
        "Whether this project has what it needs to call the provider: a stored credential, or a key in the "
        "server's environment (echo needs none)."))
    supports_streaming: bool
    display_name: str
    description: str
    requires_api_key: bool
    has_stored_credential: bool = strawberry.field(description="A credential is stored for this project.")


@strawberry.type
class ModelSettings:
    provider: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    extra: JSON | None = strawberry.field(default=None,
                                          description="Provider-specific parameters passed through as they are.")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ModelSettings | None:
        if not data:
            return None
        return cls(provider=data.get("provider"), model=data.get("model"), temperature=data.get("temperature"),
                   max_tokens=data.get("maxTokens"), top_p=data.get("topP"), stop=data.get("stop"),
                   extra=data.get("extra"))


@strawberry.input
class ModelSettingsInput:
    provider: str | None = strawberry.UNSET
    model: str | None = strawberry.UNSET
    temperature: float | None = strawberry.UNSET
    max_tokens: int | None = strawberry.UNSET
    top_p: float | None = strawberry.UNSET
    stop: list[str] | None = strawberry.UNSET
    extra: JSON | None = strawberry.UNSET

    def to_dict(self) -> dict[str, Any]:
        """The settings given (camelCase keys as stored); fields left out or null are not included."""
        values = {"provider": self.provider, "model": self.model, "temperature": self.temperature,
                  "maxTokens": self.max_tokens, "topP": self.top_p, "stop": self.stop, "extra": self.extra}
        return {k: v for k, v in values.items() if v is not strawberry.UNSET and v is not None}
