"""Query.models, Query.providers and Query.costReport."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.db import models as db
from app.services import access, credentials
from app.services import cost_report as reports
from app.services import models as model_service
from app.services.access import Action
from app.services.errors import ServiceError

from ..core.context import Info
from ..core.errors import BadRequest, ClientError
from ..core.relay import decode_id
from ..core.selection import selects
from .types import CostBucket, CostDimension, CostReport, CostTotals, ModelConfig, ProviderInfo, TimeBucket

#: GraphQL's Int is 32-bit.
INT_MAX = 2**31 - 1


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

    @strawberry.field(description=(
        "Calls, tokens, cost and latency of a project's model calls (executions and ingested LLM spans alike) in "
        "[from, to), in UTC calendar buckets (the first holds `from`), optionally grouped. Empty buckets are zeros: "
        "without groupBy every bucket of the range is listed; with groupBy every group with a call in the range has "
        "a row in every bucket. Times without a zone are UTC. BAD_USER_INPUT when `from` is after `to`, when the "
        "range holds more buckets than the server allows (PROMPTSTUDIO_COST_REPORT_MAX_BUCKETS, 1000 by default) "
        "or the report more rows (PROMPTSTUDIO_COST_REPORT_MAX_ROWS). Needs EXECUTIONS_* or TRACES_* (keys), any "
        "role (members)."))
    async def cost_report(
        self, info: Info, project_id: strawberry.ID,
        from_: Annotated[datetime, strawberry.argument(name="from", description="At or after (inclusive).")],
        to: Annotated[datetime, strawberry.argument(description="Before (exclusive).")],
        bucket: TimeBucket | None = TimeBucket.DAY,
        group_by: list[CostDimension] | None = [],  # noqa: B006 - the contract's default; never mutated
    ) -> CostReport:
        ctx = info.context
        ctx.require_auth()
        pid = decode_id(project_id, db.Project)
        if pid is None:
            raise ClientError("No project with this ID.", "NOT_FOUND")
        unit = bucket or TimeBucket.DAY
        dims = list(group_by or [])
        async with ctx.db() as session:
            try:
                await access.require(session, ctx.principal, pid, Action.READ_USAGE)
                data = await reports.cost_report(
                    session, pid, start=from_, end=to, bucket=unit, group_by=dims,
                    with_p95=selects(info, "buckets", "p95LatencyMs"),
                    max_buckets=ctx.settings.cost_report_max_buckets, max_rows=ctx.settings.cost_report_max_rows)
            except ServiceError as exc:
                if exc.code in ("NOT_FOUND", "FORBIDDEN"):
                    raise ClientError(exc.message, exc.code) from None
                raise BadRequest(exc.message) from None
        t = data.totals
        if max(t.calls, t.input_tokens + t.output_tokens) > INT_MAX:
            raise BadRequest(f"the report's totals exceed what a GraphQL Int holds ({INT_MAX:,} tokens); ask for a "
                             "shorter range")
        return CostReport(from_=data.start, to=data.end, bucket=data.bucket, group_by=list(data.group_by),
                          totals=CostTotals.of(t.calls, t.input_tokens, t.output_tokens, t.cost_usd),
                          buckets=[CostBucket.from_row(r) for r in data.rows])
