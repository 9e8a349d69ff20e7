"""Execution figures per prompt version, aggregated in SQL (PromptVersion.stats, Prompt.splitReport).

One statement gives the figures of any number of versions for one window (and optionally one
environment); the GraphQL loader batches every version asked for in a request into it.

Definitions (executions counted by ``created_at`` in ``[from, to)``):

- ``executions``: all of them, whatever their status; ``completed`` / ``failed``: by status.
- ``successRate``: completed / (completed + failed) — cancelled and unfinished ones are left
  out; null when none has finished.
- ``validationPassRate``: PASSED / (PASSED + FAILED) validation statuses; null when none was
  validated (no active validations gives SKIPPED, which is left out).
- ``avgLatencyMs`` / ``p95LatencyMs`` (continuous percentile): over COMPLETED executions.
- ``avgInputTokens`` / ``avgOutputTokens`` / ``avgCostUsd``: over executions that have them
  (a call that never reached the model has none); ``totalCostUsd``: their sum, 0 when none.
- ``avgRating`` / ``ratingCount``: over the feedback given to those executions.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import ColumnElement, Float, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Execution, Feedback
from app.db.models.enums import ExecutionStatus, ValidationStatus

_MONEY = Decimal("0.000001")


@dataclass(frozen=True)
class VersionStatsData:
    version_id: uuid.UUID
    executions: int = 0
    completed: int = 0
    failed: int = 0
    success_rate: float | None = None
    validation_pass_rate: float | None = None
    avg_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    avg_input_tokens: float | None = None
    avg_output_tokens: float | None = None
    avg_cost_usd: Decimal | None = None
    total_cost_usd: Decimal = Decimal("0")
    avg_rating: float | None = None
    rating_count: int = 0


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _float(value) -> float | None:
    return float(value) if value is not None else None


async def version_stats(session: AsyncSession, version_ids: Sequence[uuid.UUID], *, start: datetime | None = None,
                        end: datetime | None = None,
                        environment: str | None = None) -> dict[uuid.UUID, VersionStatsData]:
    """Figures of each version (zeros for versions without executions) — one SQL statement."""
    ids = list(set(version_ids))
    if not ids:
        return {}
    e = Execution
    conditions: list[ColumnElement[bool]] = [e.version_id.in_(ids)]
    if start is not None:
        conditions.append(e.created_at >= start)
    if end is not None:
        conditions.append(e.created_at < end)
    if environment is not None:
        conditions.append(e.environment == environment)
    completed = e.status == ExecutionStatus.COMPLETED.value
    figures = (
        select(
            e.version_id.label("version_id"),
            func.count().label("executions"),
            func.count().filter(completed).label("completed"),
            func.count().filter(e.status == ExecutionStatus.FAILED.value).label("failed"),
            func.count().filter(e.validation_status == ValidationStatus.PASSED.value).label("v_passed"),
            func.count().filter(e.validation_status == ValidationStatus.FAILED.value).label("v_failed"),
            cast(func.avg(e.latency_ms).filter(completed), Float).label("avg_latency"),
            func.percentile_cont(0.95).within_group(e.latency_ms).filter(completed).label("p95_latency"),
            cast(func.avg(e.input_tokens), Float).label("avg_input"),
            cast(func.avg(e.output_tokens), Float).label("avg_output"),
            func.avg(e.cost_usd).label("avg_cost"),
            func.coalesce(func.sum(e.cost_usd), 0).label("total_cost"),
        ).where(*conditions).group_by(e.version_id).subquery("figures"))
    ratings = (
        select(e.version_id.label("version_id"), cast(func.avg(Feedback.rating), Float).label("avg_rating"),
               func.count(Feedback.id).label("rating_count"))
        .join(Feedback, Feedback.execution_id == e.id)
        .where(*conditions).group_by(e.version_id).subquery("ratings"))
    stmt = (select(figures, ratings.c.avg_rating, ratings.c.rating_count)
            .outerjoin(ratings, ratings.c.version_id == figures.c.version_id))
    out: dict[uuid.UUID, VersionStatsData] = {}
    for r in (await session.execute(stmt)).mappings():
        finished = r["completed"] + r["failed"]
        avg_cost = r["avg_cost"]
        out[r["version_id"]] = VersionStatsData(
            version_id=r["version_id"], executions=r["executions"], completed=r["completed"], failed=r["failed"],
            success_rate=_ratio(r["completed"], finished),
            validation_pass_rate=_ratio(r["v_passed"], r["v_passed"] + r["v_failed"]),
            avg_latency_ms=_float(r["avg_latency"]), p95_latency_ms=_float(r["p95_latency"]),
            avg_input_tokens=_float(r["avg_input"]), avg_output_tokens=_float(r["avg_output"]),
            avg_cost_usd=Decimal(avg_cost).quantize(_MONEY, rounding=ROUND_HALF_UP) if avg_cost is not None else None,
            total_cost_usd=Decimal(r["total_cost"]).quantize(_MONEY),
            avg_rating=_float(r["avg_rating"]), rating_count=int(r["rating_count"] or 0))
    return {i: out.get(i, VersionStatsData(version_id=i)) for i in ids}
