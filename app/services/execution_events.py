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

``Events`` gathers the events and logs of one transaction and writes them with ``record`` in ONE
statement (numbering, log rows, event rows and the notices): what an execution's state change
costs in round trips does not grow with the number of logs it writes. The rules are the same as
``emit_event``'s (gapless numbering under the execution's row lock, notices in the caller's
transaction, same notice payload); every event of a batch carries the status the row has when the
batch is recorded, so the caller records it after flushing the state change.
"""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.types import Text

from app.db.models import Execution, ExecutionLog
from app.db.models.enums import ExecutionEventType, ExecutionStatus, LogLevel, ValidationStatus
from app.events import topics
from app.events.publish import CHANNEL, publish

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


# One statement for a batch of events (and their logs) of any number of executions: each execution's
# counter is bumped once by its number of events (row lock: gapless, in order), the logs and events are
# inserted, and one notice per event goes out, byte for byte what ``emit_event`` sends (``publish.encode``
# of the same topics and data; types and statuses are plain words, so nothing needs escaping).
_RECORD = text("""
WITH given AS MATERIALIZED (
  SELECT i.*, CASE WHEN i.level IS NOT NULL THEN gen_random_uuid() END AS log_id
  FROM unnest(:eids, :types, :deltas, :levels, :messages, :metas, :stamps)
       WITH ORDINALITY AS i(execution_id, type, delta, level, message, metadata, stamp, ord)
), counts AS (
  SELECT execution_id, count(*) AS n FROM given GROUP BY execution_id
), bump AS (
  UPDATE executions e SET last_event_seq = e.last_event_seq + c.n FROM counts c WHERE e.id = c.execution_id
  RETURNING e.id, e.last_event_seq - c.n AS base, e.project_id, e.status
), numbered AS MATERIALIZED (
  SELECT i.*, b.base + row_number() OVER (PARTITION BY i.execution_id ORDER BY i.ord) AS seq, b.project_id,
         b.status
  FROM given i JOIN bump b ON b.id = i.execution_id
), logs AS (
  INSERT INTO execution_logs (id, execution_id, level, message, metadata, timestamp)
  SELECT log_id, execution_id, level, message, metadata::jsonb, stamp FROM numbered WHERE log_id IS NOT NULL
), events AS (
  INSERT INTO execution_events (execution_id, seq, type, delta, log_id)
  SELECT execution_id, seq, type, delta, log_id FROM numbered
)
SELECT count(pg_notify(:channel,
  '{"k"\\:["execution\\:' || n.execution_id || '","project\\:' || n.project_id || '\\:executions"],"d"\\:{"e"\\:"'
  || n.execution_id || '","p"\\:"' || n.project_id || '","s"\\:' || n.seq || ',"t"\\:"' || n.type || '","st"\\:"'
  || n.status || '"}}'))
FROM (SELECT * FROM numbered ORDER BY ord) n
""").bindparams(
    bindparam("eids", type_=ARRAY(UUID(as_uuid=True))), bindparam("types", type_=ARRAY(Text)),
    bindparam("deltas", type_=ARRAY(Text)), bindparam("levels", type_=ARRAY(Text)),
    bindparam("messages", type_=ARRAY(Text)), bindparam("metas", type_=ARRAY(Text)),
    bindparam("stamps", type_=ARRAY(TIMESTAMP(timezone=True))))

assert topics.execution(uuid.UUID(int=0)) == f"execution:{uuid.UUID(int=0)}"  # the topics _RECORD spells out
assert topics.project_executions(uuid.UUID(int=0)) == f"project:{uuid.UUID(int=0)}:executions"


@dataclass
class Events:
    """The events (and logs) of one transaction, written together by :meth:`record`."""

    items: list[tuple[uuid.UUID, str, str | None, str | None, str | None, Any, datetime | None]] = field(
        default_factory=list)

    def event(self, execution: Execution | uuid.UUID, type: str, *, delta: str | None = None) -> None:
        self.items.append((_id(execution), str(type), delta, None, None, None, None))

    def log(self, execution: Execution | uuid.UUID, level: LogLevel | str, message: str,
            metadata: dict[str, Any] | None = None) -> None:
        """A log row and its LOG event (timestamped now, after every earlier log of this process)."""
        self.items.append((_id(execution), ExecutionEventType.LOG.value, None, str(level), message,
                           json.dumps(metadata, default=str) if metadata else None, log_clock()))

    async def record(self, session: AsyncSession) -> None:
        """Write and announce everything gathered (one statement), in the caller's transaction; the caller
        flushes the execution's state change first (the notices carry its status)."""
        if not self.items:
            return
        cols = list(zip(*self.items, strict=True))
        await session.execute(_RECORD, {"eids": list(cols[0]), "types": list(cols[1]), "deltas": list(cols[2]),
                                        "levels": list(cols[3]), "messages": list(cols[4]),
                                        "metas": list(cols[5]), "stamps": list(cols[6]), "channel": CHANNEL})
        self.items.clear()


def _id(execution: Execution | uuid.UUID) -> uuid.UUID:
    return execution if isinstance(execution, uuid.UUID) else execution.id
