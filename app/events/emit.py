"""Emit an execution event inside the transaction that changes the execution.

``emit_event`` numbers the event (executions.last_event_seq + 1, so sequences are gapless per
execution), stores it in ``execution_events`` and calls ``pg_notify`` — all in the caller's
transaction, so subscribers hear of a change only once it has committed, and can always read
the event (deltas included) back from the table. The NOTIFY payload is small and fixed-size
(ids, sequence, type, status): output deltas are never put in it, so the 8000-byte limit of
NOTIFY payloads cannot be hit.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

#: Channel of execution events (payload: {"e", "p", "s", "t", "st"}).
EXEC_CHANNEL = "ps_exec"

_BUMP = text(
    "UPDATE executions SET last_event_seq = last_event_seq + 1 WHERE id = :id "
    "RETURNING last_event_seq, project_id, status"
)
_INSERT = text(
    "INSERT INTO execution_events (execution_id, seq, type, delta, log_id) VALUES (:id, :seq, :type, :delta, :log_id)"
)
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


async def emit_event(session: AsyncSession, execution: Any, type: str, *, delta: str | None = None,
                     log_id: uuid.UUID | None = None) -> int:
    """Record and announce one event of ``execution`` (a model instance or its id); returns its sequence."""
    execution_id = execution if isinstance(execution, uuid.UUID) else execution.id
    row = (await session.execute(_BUMP, {"id": execution_id})).one()
    seq, project_id, status = row
    await session.execute(_INSERT, {"id": execution_id, "seq": seq, "type": str(type), "delta": delta,
                                    "log_id": log_id})
    payload = json.dumps({"e": str(execution_id), "p": str(project_id), "s": seq, "t": str(type), "st": status},
                         separators=(",", ":"))
    await session.execute(_NOTIFY, {"channel": EXEC_CHANNEL, "payload": payload})
    if not isinstance(execution, uuid.UUID) and hasattr(execution, "last_event_seq"):
        # keep an in-memory instance consistent without a refresh (and without marking it dirty)
        set_committed_value(execution, "last_event_seq", seq)
    return seq
