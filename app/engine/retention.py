"""Retention: finished executions older than their project's ``execution_retention_days`` go.

"Older" is by completion time. Deletes run per project in batches (each its own short
transaction, rows locked with SKIP LOCKED so concurrent sweeps from several processes never
wait on each other). Logs, events and feedback go with their execution (ON DELETE CASCADE);
usage records stay for cost reporting (their execution_id becomes null).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Execution, Project
from app.db.models.enums import TERMINAL_STATUSES

log = logging.getLogger("promptstudio.engine")

BATCH_SIZE = 500


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


async def retention_loop(sessionmaker: async_sessionmaker[AsyncSession], interval_seconds: float,
                         stopping: asyncio.Event) -> None:
    """Sweep now, then every ``interval_seconds`` until ``stopping`` is set."""
    while not stopping.is_set():
        try:
            await sweep_executions(sessionmaker)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention sweep failed; trying again in %s s", interval_seconds)
        try:
            await asyncio.wait_for(stopping.wait(), interval_seconds)
        except TimeoutError:
            pass
