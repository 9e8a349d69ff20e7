"""Models and providers in GraphQL: ModelConfig, ProviderInfo; Query.models / providers; upsertModelConfig."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from app.db import models
from app.providers.registry import PROVIDERS
from app.services import models as model_service
from app.services.access import Action
from app.services.errors import ServiceError

from ..errors import UserError, user_errors
from ..relay import Node, decode_gid_of, encode_gid, register_node


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
    def from_row(cls, row: models.ModelConfig) -> "ModelConfig":
        return cls(id=strawberry.ID(encode_gid("ModelConfig", row.id)), provider=row.provider,
                   model_id=row.model_id, display_name=row.display_name, context_length=row.context_length,
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


@register_node("ModelConfig")
async def _model_config_nodes(info: Info, ids: Sequence[uuid.UUID]) -> list[ModelConfig | None]:
    rows = await info.context.by_id(models.ModelConfig).load_many(list(ids))
    return [ModelConfig.from_row(r) if r is not None else None for r in rows]


def _env_configured(settings, name: str) -> bool:
    if name == "openai":
        return bool(settings.openai_api_key) or settings.openai_base_url.rstrip("/") != "https://api.openai.com/v1"
    if name == "anthropic":
        return bool(settings.anthropic_api_key)
    return False


@strawberry.type
class ModelQuery:
    @strawberry.field(description="The prices in force now for every active model (optionally of one provider), "
                                  "by provider and model id. Public: prices are no secret.")
    async def models(self, info: Info, provider: str | None = None) -> list[ModelConfig]:
        async with info.context.db() as session:
            rows = (await session.execute(model_service.current_configs_stmt(provider))).scalars().all()
        return [ModelConfig.from_row(r) for r in rows]

    @strawberry.field(description="The providers and whether this project can call each; empty for a project "
                                  "you cannot see.")
    async def providers(self, info: Info, project_id: strawberry.ID) -> list[ProviderInfo]:
        ctx = info.context
        pid = decode_gid_of(project_id, "Project")
        if pid is None or not await ctx.can(pid, Action.VIEW_PROJECT):
            return []
        async with ctx.db() as session:
            stored = set((await session.execute(
                select(models.ProviderCredential.provider)
                .where(models.ProviderCredential.project_id == pid))).scalars())
        out = []
        for p in PROVIDERS:
            has = p.name in stored
            configured = (not p.requires_api_key) or has or _env_configured(ctx.settings, p.name)
            out.append(ProviderInfo(name=p.name, configured=configured, supports_streaming=p.supports_streaming,
                                    display_name=p.display_name, description=p.description,
                                    requires_api_key=p.requires_api_key, has_stored_credential=has))
        return out


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
class ModelConfigPayload:
    model_config: ModelConfig | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ModelMutation:
    @strawberry.mutation(description=(
        "Superusers: add a model's prices effective from effectiveFrom (default now). Earlier prices, and the "
        "costs recorded with them, stay; the same provider, model and effectiveFrom updates that row. Fields "
        "left out are taken from the model's latest row."))
    async def upsert_model_config(self, info: Info, input: UpsertModelConfigInput) -> ModelConfigPayload:
        ctx = info.context
        principal = ctx.require_auth()
        data = model_service.ModelConfigInput(
            provider=input.provider, model_id=input.model_id, input_price_per_million=input.input_price_per_million,
            output_price_per_million=input.output_price_per_million, display_name=input.display_name,
            context_length=input.context_length, max_output_tokens=input.max_output_tokens,
            supports_streaming=input.supports_streaming, supports_tools=input.supports_tools,
            cached_input_price_per_million=input.cached_input_price_per_million,
            effective_from=input.effective_from)
        try:
            row = await model_service.upsert_model_config(ctx.sessionmaker, principal, data)
        except ServiceError as exc:
            return ModelConfigPayload(user_errors=user_errors(exc))
        return ModelConfigPayload(model_config=ModelConfig.from_row(row))


QUERIES: list = [ModelQuery]
MUTATIONS: list = [ModelMutation]
EXTRA_TYPES: list = []
