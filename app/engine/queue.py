"""The execution queue: PENDING rows of ``executions``, claimed with ``FOR UPDATE SKIP LOCKED``.

* ``claim_next`` takes the highest-priority, oldest PENDING execution (index
  ``ix_executions_queue``), marks it RUNNING with a lease and emits STARTED — one transaction.
* A worker's heartbeat extends the leases it holds (``extend_leases``).
* ``reclaim_expired`` finds RUNNING executions whose lease expired (their worker died): back to
  PENDING for another attempt, or FAILED once the attempts are used up, or CANCELLED when a
  cancel had been asked for.
* ``release`` hands an execution back when its worker stops gracefully (the attempt does not count).

NOTIFY channels: ``ps_queue`` (something was queued: idle workers try to claim) and
``ps_cancel`` (payload: the execution id whose cancellation was asked for).
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Execution
from app.db.models.enums import ExecutionEventType, ExecutionStatus, LogLevel, ValidationStatus
from app.events.emit import emit_event

from .logs import write_log

log = logging.getLogger("promptstudio.engine")

QUEUE_CHANNEL = "ps_queue"
CANCEL_CHANNEL = "ps_cancel"
#: Expired leases handled per sweep transaction.
RECLAIM_BATCH = 100


async def notify_queue(session: AsyncSession) -> None:
    """Wake idle workers (delivered when the caller's transaction commits)."""
    await session.execute(text("SELECT pg_notify(:c, '')"), {"c": QUEUE_CHANNEL})


async def notify_cancel(session: AsyncSession, execution_id: uuid.UUID) -> None:
    """Tell the worker running ``execution_id`` to stop it (delivered on commit)."""
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CANCEL_CHANNEL, "p": str(execution_id)})


async def claim_next(sessionmaker: async_sessionmaker[AsyncSession], worker_id: str,
                     lease_seconds: float) -> Execution | None:
    """Claim the next execution (priority, then age) for ``worker_id``; None when the queue is empty."""
    async with sessionmaker() as session, session.begin():
        row = (await session.execute(
            select(Execution).where(Execution.status == ExecutionStatus.PENDING.value)
            .order_by(Execution.priority.desc(), Execution.created_at, Execution.id)
            .limit(1).with_for_update(skip_locked=True))).scalar_one_or_none()
        if row is None:
            return None
        now = (await session.execute(select(func.now()))).scalar_one()
        row.status = ExecutionStatus.RUNNING.value
        row.started_at = now
        row.attempts = row.attempts + 1
        row.worker_id = worker_id
        row.lease_expires_at = now + timedelta(seconds=lease_seconds)
        row.updated_at = now
        await session.flush()
        await emit_event(session, row, ExecutionEventType.STARTED.value)
        await write_log(session, row, LogLevel.DEBUG,
                        f"claimed by worker {worker_id} (attempt {row.attempts} of {row.max_attempts})",
                        {"worker": worker_id, "attempt": row.attempts, "maxAttempts": row.max_attempts})
    return row


@dataclass
class LeaseState:
    """What a heartbeat learns about one execution it holds."""

    held: bool
    cancel_requested: bool = False


async def extend_leases(sessionmaker: async_sessionmaker[AsyncSession], worker_id: str,
                        execution_ids: Sequence[uuid.UUID], lease_seconds: float) -> dict[uuid.UUID, LeaseState]:
    """Extend the leases ``worker_id`` holds on ``execution_ids`` (one statement).

    An execution missing from the result's held ones was taken away (lease expired and
    reclaimed, or finished by someone else): its run must stop without writing.
    """
    if not execution_ids:
        return {}
    async with sessionmaker() as session, session.begin():
        rows = (await session.execute(
            update(Execution)
            .where(Execution.id.in_(list(execution_ids)), Execution.worker_id == worker_id,
                   Execution.status == ExecutionStatus.RUNNING.value)
            .values(lease_expires_at=func.now() + timedelta(seconds=lease_seconds))
            .returning(Execution.id, Execution.cancel_requested_at)
            .execution_options(synchronize_session=False))).all()
    found = {r[0]: LeaseState(held=True, cancel_requested=r[1] is not None) for r in rows}
    return {i: found.get(i, LeaseState(held=False)) for i in execution_ids}


def gave_up_message(attempts: int) -> str:
    return (f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}: the worker running it stopped "
            "(lease expired)")


async def reclaim_expired(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Handle RUNNING executions whose lease has expired; returns how many were handled."""
    handled = 0
    while True:
        async with sessionmaker() as session, session.begin():
            rows = (await session.execute(
                select(Execution)
                .where(Execution.status == ExecutionStatus.RUNNING.value, Execution.lease_expires_at < func.now())
                .order_by(Execution.lease_expires_at).limit(RECLAIM_BATCH)
                .with_for_update(skip_locked=True))).scalars().all()
            if not rows:
                return handled
            requeued = False
            now = (await session.execute(select(func.now()))).scalar_one()
            for row in rows:
                requeued |= await _reclaim_one(session, row, now)
            if requeued:
                await notify_queue(session)
        handled += len(rows)
        if len(rows) < RECLAIM_BATCH:
            return handled


async def _reclaim_one(session: AsyncSession, row: Execution, now: datetime) -> bool:
    """Requeue, fail or cancel one expired execution. True when it went back to the queue."""
    worker = row.worker_id
    meta = {"worker": worker, "attempt": row.attempts, "maxAttempts": row.max_attempts}
    row.worker_id = None
    row.lease_expires_at = None
    row.updated_at = now
    if row.cancel_requested_at is not None:
        finish_row(row, ExecutionStatus.CANCELLED, now)
        await session.flush()
        await write_log(session, row, LogLevel.WARN,
                        f"the worker running it ({worker}) stopped (lease expired); cancelled as requested", meta)
        await emit_event(session, row, ExecutionEventType.CANCELLED.value)
        return False
    if row.attempts >= row.max_attempts:
        finish_row(row, ExecutionStatus.FAILED, now)
        row.error = gave_up_message(row.attempts)
        await session.flush()
        await write_log(session, row, LogLevel.ERROR, row.error, meta)
        await emit_event(session, row, ExecutionEventType.FAILED.value)
        log.warning("execution %s failed: %s", row.id, row.error)
        return False
    _back_to_queue(row)
    await session.flush()
    await write_log(session, row, LogLevel.WARN,
                    f"the worker running it ({worker}) stopped (lease expired); queued again for attempt "
                    f"{row.attempts + 1} of {row.max_attempts}", meta)
    await emit_event(session, row, ExecutionEventType.QUEUED.value)
    log.info("execution %s requeued after its lease expired (worker %s)", row.id, worker)
    return True


def _back_to_queue(row: Execution) -> None:
    """PENDING again: the next attempt starts from scratch (output and measurements cleared)."""
    row.status = ExecutionStatus.PENDING.value
    row.started_at = None
    row.completed_at = None
    row.output = None
    row.time_to_first_token_ms = None
    row.latency_ms = None
    row.input_tokens = None
    row.output_tokens = None
    row.cost_usd = None


def finish_row(row: Execution, status: ExecutionStatus, now: datetime) -> None:
    row.status = status.value
    if row.started_at is None:
        row.started_at = now
    row.completed_at = max(now, row.started_at)
    if row.validation_status == ValidationStatus.PENDING.value:
        row.validation_status = ValidationStatus.SKIPPED.value


async def release(sessionmaker: async_sessionmaker[AsyncSession], execution_id: uuid.UUID, worker_id: str,
                  reason: str) -> bool:
    """Give an execution back to the queue (its worker is stopping); the attempt is not counted."""
    async with sessionmaker() as session, session.begin():
        row = (await session.execute(
            select(Execution).where(Execution.id == execution_id, Execution.worker_id == worker_id,
                                    Execution.status == ExecutionStatus.RUNNING.value)
            .with_for_update())).scalar_one_or_none()
        if row is None:
            return False
        now = (await session.execute(select(func.now()))).scalar_one()
        row.worker_id = None
        row.lease_expires_at = None
        row.updated_at = now
        if row.cancel_requested_at is not None:
            finish_row(row, ExecutionStatus.CANCELLED, now)
            await session.flush()
            await write_log(session, row, LogLevel.INFO, "cancelled as requested")
            await emit_event(session, row, ExecutionEventType.CANCELLED.value)
            return True
        row.attempts = max(row.attempts - 1, 0)
        _back_to_queue(row)
        await session.flush()
        await write_log(session, row, LogLevel.WARN, f"{reason}; handed back to the queue (this attempt is not counted)")
        await emit_event(session, row, ExecutionEventType.QUEUED.value)
        await notify_queue(session)
    return True

