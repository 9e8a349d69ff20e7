"""Execution logs: one row per step, each announced as a LOG event in the same transaction.

Log timestamps come from this process's clock and strictly increase, so the logs written in
one transaction (which share the database's ``now()``) still read back in the order they were
written (``Execution.logs`` orders by timestamp, then id).
"""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ExecutionLog
from app.db.models.enums import ExecutionEventType, LogLevel
from app.events.emit import emit_event

_lock = threading.Lock()
_last: datetime | None = None
_TICK = timedelta(microseconds=1)


def log_clock() -> datetime:
    """Now (UTC), strictly later than any value this function returned before in this process."""
    global _last
    with _lock:
        now = datetime.now(timezone.utc)
        if _last is not None and now <= _last:
            now = _last + _TICK
        _last = now
        return now


async def write_log(session: AsyncSession, execution: Any, level: LogLevel | str, message: str,
                    metadata: dict | None = None) -> ExecutionLog:
    """Insert a log row for ``execution`` (a model instance or its id) and emit its LOG event.

    Runs in the caller's transaction; the caller must have flushed any pending change of the
    execution row first (``emit_event`` reads the row's status for the NOTIFY payload).
    """
    execution_id = execution if isinstance(execution, uuid.UUID) else execution.id
    row = ExecutionLog(execution_id=execution_id, level=str(level), message=message,
                       metadata_=metadata or None, timestamp=log_clock())
    session.add(row)
    await session.flush()
    await emit_event(session, execution, ExecutionEventType.LOG.value, log_id=row.id)
    return row
