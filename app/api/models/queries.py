"""Query.models and Query.providers."""
from __future__ import annotations

import strawberry

from app.db import models as db
from app.services import credentials
from app.services import models as model_service
from app.services.access import Action

from ..core.context import Info
from ..core.relay import decode_id
from .types import ModelConfig, ProviderInfo


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
        pid = decode_id(project_id, db.Project)
        if pid is None or not await ctx.can(pid, Action.VIEW_PROJECT):
            return []
        async with ctx.db() as session:
            statuses = await credentials.provider_statuses(session, ctx.settings, pid)
        return [ProviderInfo(name=s.info.name, configured=s.configured, supports_streaming=s.info.supports_streaming,
                             display_name=s.info.display_name, description=s.info.description,
                             requires_api_key=s.info.requires_api_key, has_stored_credential=s.has_stored_credential)
                for s in statuses]
