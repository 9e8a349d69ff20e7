"""Retention: finished executions older than their project's ``execution_retention_days`` go, and traces
older than its ``trace_retention_days``.

"Older" is by completion time for executions; for traces, by their start and their last span's end
(both before the cutoff). Deletes run per project in batches (each its own short transaction, rows
locked with SKIP LOCKED so concurrent sweeps from several processes never wait on each other). Logs,
events and feedback go with their execution, spans with their trace (ON DELETE CASCADE); usage records
stay for cost reporting (their execution_id or span_pk becomes null). A batch of traces holds at most
``SPANS_PER_BATCH`` spans (and at least one trace), so a trace of many spans does not make one huge
transaction.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Execution, Project
from app.db.models.enums import TERMINAL_STATUSES

log = logging.getLogger("promptstudio.engine")

BATCH_SIZE = 500
#: Spans deleted per transaction at most (with their traces), unless one trace alone has more.
SPANS_PER_BATCH = 20_000


async def sweep_executions(sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime | None = None,
                           batch_size: int = BATCH_SIZE) -> int:
    """Delete every finished execution past its project's retention; returns how many were deleted."""
    now = now or datetime.now(UTC)
    async with sessionmaker() as session:
        projects = (await session.execute(
            select(Project.id, Project.execution_retention_days)
            .where(Project.execution_retention_days.is_not(None)))).all()
    total = 0
    terminal = [s.value for s in TERMINAL_STATUSES]
    for project_id, days in projects:
        cutoff = now - timedelta(days=days or 0)
        while True:
            async with sessionmaker() as session, session.begin():
                # created_at <= completed_at, so the created_at bound only narrows the index scan
                ids = select(Execution.id).where(
                    Execution.project_id == project_id, Execution.created_at < cutoff,
                    Execution.completed_at < cutoff, Execution.status.in_(terminal),
                ).limit(batch_size).with_for_update(skip_locked=True).scalar_subquery()
                result = await session.execute(delete(Execution).where(Execution.id.in_(ids))
                                               .execution_options(synchronize_session=False))
                deleted = result.rowcount or 0  # type: ignore[attr-defined]  # a CursorResult for DELETE
            total += deleted
            if deleted < batch_size:
                break
    if total:
        log.info("retention: deleted %d finished executions", total)
    return total


# The oldest traces past the cutoff, locked, then as many of them as keep the batch's spans within the
# limit (the first always).
_TRACES_BATCH = """
WITH candidates AS (
    SELECT id, start_time, span_count FROM traces
    WHERE project_id = :project AND start_time < :cutoff AND coalesce(end_time, start_time) < :cutoff
    ORDER BY start_time, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), chosen AS (
    SELECT id FROM (
        SELECT id, span_count, sum(span_count) OVER (ORDER BY start_time, id) - span_count AS spans_before
        FROM candidates
    ) AS c WHERE spans_before = 0 OR spans_before + span_count <= :max_spans
)
DELETE FROM traces WHERE id IN (SELECT id FROM chosen)
RETURNING span_count
"""


class TraceSweep(NamedTuple):
    traces: int
    spans: int
    #: transactions that deleted something
    batches: int


async def sweep_traces(sessionmaker: async_sessionmaker[AsyncSession], *, now: datetime | None = None,
                       batch_size: int = BATCH_SIZE, spans_per_batch: int = SPANS_PER_BATCH) -> TraceSweep:
    """Delete every trace (and its spans) past its project's retention; returns what was deleted."""
    now = now or datetime.now(UTC)
    async with sessionmaker() as session:
        projects = (await session.execute(
            select(Project.id, Project.trace_retention_days).where(Project.trace_retention_days.is_not(None)))).all()
    traces = spans = batches = 0
    for project_id, days in projects:
        cutoff = now - timedelta(days=days or 0)
        while True:
            async with sessionmaker() as session, session.begin():
                deleted = (await session.execute(text(_TRACES_BATCH), {
                    "project": project_id, "cutoff": cutoff, "limit": batch_size,
                    "max_spans": spans_per_batch})).scalars().all()
            if not deleted:
                break
            traces += len(deleted)
            spans += sum(deleted)
            batches += 1
    if traces:
        log.info("retention: deleted %d traces with %d spans in %d batches", traces, spans, batches)
    return TraceSweep(traces, spans, batches)


async def retention_loop(sessionmaker: async_sessionmaker[AsyncSession], interval_seconds: float,
                         stopping: asyncio.Event) -> None:
    """Sweep now, then every ``interval_seconds`` until ``stopping`` is set."""
    while not stopping.is_set():
        try:
            await sweep_executions(sessionmaker)
            await sweep_traces(sessionmaker)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention sweep failed; trying again in %s s", interval_seconds)
        try:
            await asyncio.wait_for(stopping.wait(), interval_seconds)
        except TimeoutError:
            pass
