"""Live subscriptions: ``executionUpdated`` (one execution, deltas and logs included) and
``projectExecutions`` (status changes of a project's executions).

How an event reaches a subscriber: the transaction that changes an execution also numbers the
event (``executions.last_event_seq``), stores it in ``execution_events`` and publishes a notice on
the topics of the execution and of its project's executions (``app.services.execution_events``).
Every server process LISTENs once (``app.events.bus``) and wakes the subscribers of those topics.
A woken subscriber reads what is new from the table — one query for every wake-up, however many
notices arrived meanwhile — so the notices are only hints: none carries data, and losing one (a
reconnect of the LISTEN connection, which sends a RESYNC) costs a catch-up read, never an event.

No race between the snapshot and the stream: ``executionUpdated`` registers with the bus
*before* it reads the execution row. The row's ``last_event_seq`` is bumped in the same
transaction as every change, so the snapshot is exactly the state after event
``last_event_seq``; any event committed later has a higher number and its notice reaches the
already registered subscriber, which then reads ``seq > last sent``. Events are committed in
sequence order (the bump locks the row), so what a read sees is always a gapless prefix.

Errors: anonymous callers get UNAUTHENTICATED; an execution or project that does not exist or
that the caller may not read gives NOT_FOUND ("No execution with this ID.") — both before
anything is streamed. A subscriber that falls more than ``PROMPTSTUDIO_SUBSCRIBER_BUFFER``
notices behind (its client does not read) gets a FELL_BEHIND error and its stream ends.
"""
from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta

import strawberry
from sqlalchemy import select, tuple_

from app.db import models
from app.db.models.enums import ExecutionEventType as EventType
from app.db.models.enums import ExecutionStatus
from app.events import topics
from app.services.access import Action

from ..core.context import Info
from ..core.errors import ClientError
from ..core.live import AccessCheck, EventStream, client_alive, event_bus, fell_behind, not_found, subscribe_checked
from ..core.relay import decode_id
from .loaders import filter_conditions
from .types import Execution, ExecutionEvent, ExecutionFilter, filter_args

#: Event types that end an execution's stream.
TERMINAL_TYPES = frozenset({EventType.COMPLETED.value, EventType.FAILED.value, EventType.CANCELLED.value})
#: The status each status-change event moves an execution to (projectExecutions streams only these).
STATUS_OF_EVENT = {
    EventType.QUEUED.value: ExecutionStatus.PENDING.value,
    EventType.STARTED.value: ExecutionStatus.RUNNING.value,
    EventType.COMPLETED.value: ExecutionStatus.COMPLETED.value,
    EventType.FAILED.value: ExecutionStatus.FAILED.value,
    EventType.CANCELLED.value: ExecutionStatus.CANCELLED.value,
}
_TERMINAL_STATUSES = frozenset(s.value for s in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED,
                                                 ExecutionStatus.CANCELLED))

#: Events read per query (a long catch-up is read in several).
READ_LIMIT = 500
#: An idle executionUpdated subscriber re-reads the table this often anyway (a safety net).
CATCH_UP_SECONDS = 30.0
#: ... and this often while the bus's LISTEN connection is down.
OUTAGE_POLL_SECONDS = 1.0
#: After a bus reconnect, projectExecutions catches up on events this far back (deduplicated).
RESYNC_WINDOW = timedelta(seconds=60)
#: projectExecutions remembers the last delivered sequence of at most this many executions.
SEEN_LIMIT = 10_000


# ---------------------------------------------------------------------------- executionUpdated


async def read_snapshot(ctx, execution_id: uuid.UUID) -> models.Execution | None:
    """The execution row as it is now (its ``last_event_seq`` numbers the state)."""
    async with ctx.db() as session:
        return (await session.execute(select(models.Execution).where(models.Execution.id == execution_id))
                ).scalar_one_or_none()


async def read_new_events(ctx, execution_id: uuid.UUID, after: int, limit: int = READ_LIMIT
                          ) -> tuple[models.Execution | None, list[tuple[models.ExecutionEvent,
                                                                          models.ExecutionLog | None]]]:
    """The execution row now, and its events numbered above ``after`` (at most ``limit``, up to the
    row's ``last_event_seq``).

    The row is read first: every event up to its ``last_event_seq`` has committed, so the events
    returned are a gapless run, and the row is exactly as new as the last event it numbers. Two
    queries (the events with their log rows joined in one); one when nothing is new.
    """
    async with ctx.db() as session:
        row = (await session.execute(select(models.Execution).where(models.Execution.id == execution_id))
               ).scalar_one_or_none()
        if row is None or row.last_event_seq <= after:
            return row, []
        ev, lg = models.ExecutionEvent, models.ExecutionLog
        result = await session.execute(
            select(ev, lg).outerjoin(lg, lg.id == ev.log_id)
            .where(ev.execution_id == execution_id, ev.seq > after, ev.seq <= min(row.last_event_seq, after + limit))
            .order_by(ev.seq))
        return row, [(e, log) for e, log in result.all()]


async def open_execution_stream(info: Info, gid: strawberry.ID) -> EventStream:
    ctx = info.context
    ctx.require_auth()
    execution_id = decode_id(gid, Execution)
    if execution_id is None:
        raise not_found("execution")
    bus = event_bus(info)
    # Register first, read second: whatever commits after the read below is notified to `sub`.
    sub = bus.subscribe(topics.execution(execution_id), alive=client_alive(info))
    try:
        ctx.refresh_loaders()
        row = await read_snapshot(ctx, execution_id)
        if row is None or not await ctx.can(row.project_id, Action.READ_EXECUTIONS):
            raise not_found("execution")
    except BaseException:
        bus.unsubscribe(sub)
        raise
    return EventStream(bus, sub, _execution_events(ctx, bus, sub, row))


async def _execution_events(ctx, bus, sub, row: models.Execution) -> AsyncGenerator[ExecutionEvent, None]:
    yield ExecutionEvent.snapshot(row)
    if row.status in _TERMINAL_STATUSES:
        return
    execution_id, last = row.id, row.last_event_seq
    known = last  # the highest sequence known to exist
    recheck = AccessCheck(ctx, row.project_id, "execution", Action.READ_EXECUTIONS)
    while True:
        if last >= known:  # all known events sent: wait for news
            batch = await sub.next_batch(CATCH_UP_SECONDS if bus.connected else OUTAGE_POLL_SECONDS)
            if sub.closed:
                return  # its client is gone
            if sub.overflowed:
                raise fell_behind(sub)
            if batch and not any(n.resync or int(n.data["s"]) > last for n in batch):
                continue  # only notices of events already sent (e.g. covered by the snapshot)
        else:
            sub.drain()  # catching up from the table anyway: what the notices announce is read below
        ctx.refresh_loaders()  # the WebSocket context lives as long as the connection
        await recheck()
        now, events = await read_new_events(ctx, execution_id, last, READ_LIMIT)
        if now is None:
            raise ClientError("This execution was deleted.", "NOT_FOUND")
        known = now.last_event_seq
        for event, log in events:
            if sub.overflowed:
                raise fell_behind(sub)
            yield ExecutionEvent.from_row(event, now, log)
            last = event.seq
            if event.type in TERMINAL_TYPES:
                return


# ---------------------------------------------------------------------------- projectExecutions


def _status_types(statuses: tuple[str, ...] | None) -> frozenset[str]:
    """The status-change event types wanted by a status filter (all of them without one)."""
    return frozenset(t for t, s in STATUS_OF_EVENT.items() if statuses is None or s in statuses)


async def read_project_events(ctx, project_id: uuid.UUID, types: frozenset[str], conditions: list, *,
                              keys: list[tuple[uuid.UUID, int]] | None = None, since: datetime | None = None,
                              limit: int | None = None) -> list[tuple[models.ExecutionEvent, models.Execution]]:
    """Status-change events of the project's executions that match the filter, with their rows (one query).

    Either the events named by ``keys`` ((execution id, seq) of the notices of a batch) or all
    since ``since`` (catching up after a RESYNC). The project is checked on the rows too.
    """
    ev, ex = models.ExecutionEvent, models.Execution
    stmt = (select(ev, ex).join(ex, ex.id == ev.execution_id)
            .where(ex.project_id == project_id, ev.type.in_(sorted(types)), *conditions))
    if keys is not None:
        stmt = stmt.where(tuple_(ev.execution_id, ev.seq).in_(keys))
    if since is not None:
        stmt = stmt.where(ev.at >= since).order_by(ev.at, ev.execution_id, ev.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    async with ctx.db() as session:
        return [(e, x) for e, x in (await session.execute(stmt)).all()]


async def open_project_stream(info: Info, gid: strawberry.ID, filter: ExecutionFilter | None) -> EventStream:
    ctx = info.context
    principal = ctx.require_auth()
    project_id = decode_id(gid, models.Project)
    if project_id is None:
        raise not_found("project")
    args = filter_args(filter)
    statuses, rest = args[0], (None, *args[1:])
    types = _status_types(statuses)
    bus, sub, started = await subscribe_checked(info, principal, topics.project_executions(project_id), project_id,
                                                Action.READ_EXECUTIONS, accept=lambda data: data.get("t") in types)
    events = _project_events(ctx, bus, sub, project_id, types, filter_conditions(rest), started)
    return EventStream(bus, sub, events)


async def _project_events(ctx, bus, sub, project_id: uuid.UUID, types: frozenset[str], conditions: list,
                          started: datetime) -> AsyncGenerator[ExecutionEvent, None]:
    seen: dict[uuid.UUID, tuple[int, datetime]] = {}  # execution -> (last seq delivered, its time)
    last_at = started
    recheck = AccessCheck(ctx, project_id, "project", Action.READ_EXECUTIONS)
    while True:
        batch = await sub.next_batch()
        if sub.closed:
            return  # its client is gone
        if sub.overflowed:
            raise fell_behind(sub)
        notices = [n for n in batch if not n.resync]
        resync = any(n.resync for n in batch)
        if not notices and not resync:
            continue
        ctx.refresh_loaders()
        await recheck()
        if resync:
            # Notices may have been lost while the bus reconnected: read what happened lately.
            since = max(started, last_at - RESYNC_WINDOW)
            rows = await read_project_events(ctx, project_id, types, conditions, since=since,
                                             limit=sub.maxsize + 1)
            if len(rows) > sub.maxsize:
                raise fell_behind(sub)
        else:
            order = {(uuid.UUID(n.data["e"]), int(n.data["s"])): i for i, n in enumerate(notices)}
            rows = await read_project_events(ctx, project_id, types, conditions, keys=list(order))
            rows.sort(key=lambda r: order[(r[0].execution_id, r[0].seq)])  # commit order
        for event, execution in rows:
            done = seen.get(event.execution_id)
            if done is not None and event.seq <= done[0]:
                continue
            if sub.overflowed:
                raise fell_behind(sub)
            yield ExecutionEvent.from_row(event, execution)
            seen[event.execution_id] = (event.seq, event.at)
            last_at = max(last_at, event.at)
        if len(seen) > SEEN_LIMIT:
            horizon = last_at - 2 * RESYNC_WINDOW
            for key in [k for k, (_, at) in seen.items() if at < horizon]:
                del seen[key]


# ---------------------------------------------------------------------------- the root type


@strawberry.type
class ExecutionSubscription:
    @strawberry.subscription(description=(
        "Live status of one execution: a SNAPSHOT first, then every change until it ends; completes after the "
        "final event."))
    async def execution_updated(self, info: Info, id: strawberry.ID) -> AsyncIterator[ExecutionEvent]:
        return await open_execution_stream(info, id)

    @strawberry.subscription(description=(
        "Every status change of a project's executions, for live monitors (no output deltas)."))
    async def project_executions(self, info: Info, project_id: strawberry.ID,
                                 filter: ExecutionFilter | None = None) -> AsyncIterator[ExecutionEvent]:
        return await open_project_stream(info, project_id, filter)


