"""What happens to an execution, as events and logs, inside the transaction that makes it happen.

``emit_event`` numbers an event (``executions.last_event_seq`` + 1, so sequences are gapless per
execution), stores it in ``execution_events`` and publishes a notice on the execution's topics
(``app.events``) — all in the caller's transaction, so subscribers hear of a change only once it
has committed, and can always read the event (deltas included) back from the table.

``write_log`` inserts a log row and emits its LOG event. Log timestamps come from this process's
clock and strictly increase, so the logs written in one transaction (which share the database's
``now()``) still read back in the order they were written (``Execution.logs`` orders by
timestamp, then id).

``finish`` sets an execution's final status and times (the caller emits the event).
"""
from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.db.models import Execution, ExecutionLog
from app.db.models.enums import ExecutionEventType, ExecutionStatus, LogLevel, ValidationStatus
from app.events import topics
from app.events.publish import publish

_BUMP = text(
    "UPDATE executions SET last_event_seq = last_event_seq + 1 WHERE id = :id "
    "RETURNING last_event_seq, project_id, status"
)
_INSERT = text(
    "INSERT INTO execution_events (execution_id, seq, type, delta, log_id) VALUES (:id, :seq, :type, :delta, :log_id)"
)


async def emit_event(session: AsyncSession, execution: Execution | uuid.UUID, type: str, *, delta: str | None = None,
                     log_id: uuid.UUID | None = None) -> int:
    """Record and announce one event of ``execution`` (a model instance or its id); returns its sequence.

    The notice ({"e": execution, "p": project, "s": sequence, "t": type, "st": status}) goes to the
    execution's topic and its project's executions topic.
    """
    execution_id = execution if isinstance(execution, uuid.UUID) else execution.id
    seq, project_id, status = (await session.execute(_BUMP, {"id": execution_id})).one()
    await session.execute(_INSERT, {"id": execution_id, "seq": seq, "type": str(type), "delta": delta,
                                    "log_id": log_id})
    await publish(session, [topics.execution(execution_id), topics.project_executions(project_id)],
                  {"e": str(execution_id), "p": str(project_id), "s": seq, "t": str(type), "st": status})
    if isinstance(execution, Execution):
        # keep an in-memory instance consistent without a refresh (and without marking it dirty)
        set_committed_value(execution, "last_event_seq", seq)
    return int(seq)


class _LogClock:
    """Now (UTC), strictly later than any value it returned before in this process."""

    _TICK = timedelta(microseconds=1)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: datetime | None = None

    def __call__(self) -> datetime:
        with self._lock:
            now = datetime.now(UTC)
            if self._last is not None and now <= self._last:
                now = self._last + self._TICK
            self._last = now
            return now


log_clock = _LogClock()


async def write_log(session: AsyncSession, execution: Execution | uuid.UUID, level: LogLevel | str, message: str,
                    metadata: dict[str, Any] | None = None) -> ExecutionLog:
    """Insert a log row for ``execution`` (a model instance or its id) and emit its LOG event.

    Runs in the caller's transaction; the caller must have flushed any pending change of the
    execution row first (``emit_event`` reads the row's status for the notice).
    """
    execution_id = execution if isinstance(execution, uuid.UUID) else execution.id
    row = ExecutionLog(execution_id=execution_id, level=str(level), message=message,
                       metadata_=metadata or None, timestamp=log_clock())
    session.add(row)
    await session.flush()
    await emit_event(session, execution, ExecutionEventType.LOG.value, log_id=row.id)
    return row


def finish(row: Execution, status: ExecutionStatus, now: datetime) -> None:
    """Give ``row`` its final status and times (a validation still PENDING becomes SKIPPED)."""
    row.status = status.value
    if row.started_at is None:
        row.started_at = now
    row.completed_at = max(now, row.started_at)
    if row.validation_status == ValidationStatus.PENDING.value:
        row.validation_status = ValidationStatus.SKIPPED.value
