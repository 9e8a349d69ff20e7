"""Live subscriptions: ``executionUpdated`` (one execution, deltas and logs included) and
``projectExecutions`` (status changes of a project's executions).

How an event reaches a subscriber: the transaction that changes an execution also numbers the
event (``executions.last_event_seq``), stores it in ``execution_events`` and publishes a notice on
the topics of the execution and of its project's executions (``app.services.execution_events``).
Every server process LISTENs once (``app.events.bus``) and wakes the subscribers of those topics.
An ``executionUpdated`` subscriber, woken, reads what is new from the table — one query for every
wake-up, however many notices arrived meanwhile — so the notices are only hints: none carries data,
and losing one (a reconnect of the LISTEN connection, which sends a RESYNC) costs a catch-up read,
never an event. ``projectExecutions``, which a thousand monitors may watch, has a shared feed per
project and process instead (``ProjectExecutionsReader``, ``app.events.feed``): one read per batch
of notices, on the bus's own pool, whose events (the same objects) every subscriber filters for
itself; rights are re-checked for all of them at once.

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

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta

import strawberry
from sqlalchemy import select, tuple_

from app.db import models
from app.db.models.enums import ExecutionEventType as EventType
from app.db.models.enums import ExecutionStatus
from app.events import topics
from app.events.bus import Notice
from app.services.access import Action

from ..core import live
from ..core.context import Info
from ..core.errors import ClientError
from ..core.live import (
    AccessCheck,
    EventStream,
    FeedAccessCheck,
    client_alive,
    event_bus,
    fell_behind,
    not_found,
    subscribe_checked,
)
from ..core.relay import decode_id
from .loaders import filter_matches
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


_ALL_STATUS_TYPES = _status_types(None)


async def read_project_events(sessionmaker, project_id: uuid.UUID, types: frozenset[str], conditions: list, *,
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
    async with sessionmaker() as session:
        return [(e, x) for e, x in (await session.execute(stmt)).all()]


class ProjectExecutionsReader:
    """The shared feed of one project's ``projectExecutions`` in this process (``app.events.feed``).

    For each batch of notices it reads the status-change events they name with their execution rows
    (one query, on the bus's pool), in commit order, each delivered once (a RESYNC's catch-up is
    deduplicated against what was sent), and hands the same ``ExecutionEvent`` objects to every
    subscriber; each keeps those its filter matches (``filter_matches``, evaluated on the row).
    """

    def __init__(self, bus, project_id: uuid.UUID):
        self.bus, self.project_id = bus, project_id
        self.topic = topics.project_executions(project_id)
        self.sessionmaker = bus.sessionmaker
        self.access = FeedAccessCheck(bus.sessionmaker, project_id, "project", Action.READ_EXECUTIONS)
        #: execution -> (last seq delivered, its time)
        self.seen: dict[uuid.UUID, tuple[int, datetime]] = {}
        #: The database time of the first subscriber's check, and of the latest event delivered.
        self.started: datetime | None = None
        self.last_at: datetime | None = None

    def check_due(self) -> bool:
        return self.access.due()

    async def check(self, subscribers) -> None:
        await self.access(subscribers)

    async def read(self, notices, resync: int | None) -> list[tuple[int, Notice]]:
        tagged: list[tuple[int, models.ExecutionEvent, models.Execution]] = []
        if notices:
            order = {(uuid.UUID(n.data["e"]), int(n.data["s"])): i for i, n in notices}
            rows = await read_project_events(self.sessionmaker, self.project_id, _ALL_STATUS_TYPES, [],
                                             keys=list(order))
            tagged = sorted(((order[(e.execution_id, e.seq)], e, x) for e, x in rows), key=lambda t: t[0])
        if resync is not None and (self.started is not None or self.last_at is not None):
            # Notices may have been lost while the bus reconnected: read what happened lately.
            anchor = self.last_at or self.started
            assert anchor is not None
            since = max(self.started or anchor, anchor - RESYNC_WINDOW)
            rows = await read_project_events(self.sessionmaker, self.project_id, _ALL_STATUS_TYPES, [],
                                             since=since, limit=self.bus.buffer + 1)
            if len(rows) > self.bus.buffer:
                for sub in list(self.bus._by_topic.get(self.topic, ())):
                    sub.fall_behind()
                rows = []
            tagged.extend((resync, e, x) for e, x in rows)
        out: list[tuple[int, Notice]] = []
        for n, event, execution in tagged:
            done = self.seen.get(event.execution_id)
            if done is not None and event.seq <= done[0]:
                continue
            self.seen[event.execution_id] = (event.seq, event.at)
            self.last_at = event.at if self.last_at is None else max(self.last_at, event.at)
            out.append((n, Notice(topic=self.topic, data={
                "t": event.type, "at": event.at, "row": execution, "resync": n == resync,
                "event": ExecutionEvent.from_row(event, execution, shared=True)})))
        if len(self.seen) > SEEN_LIMIT and self.last_at is not None:
            horizon = self.last_at - 2 * RESYNC_WINDOW
            for key in [k for k, (_, at) in self.seen.items() if at < horizon]:
                del self.seen[key]
        return out


async def open_project_stream(info: Info, gid: strawberry.ID, filter: ExecutionFilter | None) -> EventStream:
    ctx = info.context
    principal = ctx.require_auth()
    project_id = decode_id(gid, models.Project)
    if project_id is None:
        raise not_found("project")
    args = filter_args(filter)
    statuses, rest = args[0], (None, *args[1:])
    types = _status_types(statuses)
    matches = filter_matches(rest)
    joined: list[datetime] = []  # the database time of the check, once known

    def accept(data) -> bool:
        if data["t"] not in types:
            return False
        if data["resync"] and joined and data["at"] < joined[0]:
            return False  # caught up after a RESYNC, but older than this subscription
        return matches(data["row"])

    bus = event_bus(info)
    if bus.sessionmaker is None:
        raise ClientError("Live updates are not available: this server process's event bus has no feed pool.",
                          "UNAVAILABLE")

    def feed():
        return ProjectExecutionsReader(bus, project_id), lambda data: data.get("t") in _ALL_STATUS_TYPES

    bus, sub, started = await subscribe_checked(info, principal, topics.project_executions(project_id), project_id,
                                                Action.READ_EXECUTIONS, accept=accept, feed=feed)
    joined.append(started)
    shared = bus.feed(sub.topic)
    if shared is not None and shared.reader.started is None:
        shared.reader.started = started
    return EventStream(bus, sub, _project_events(ctx, sub))


async def _project_events(ctx, sub) -> AsyncGenerator[ExecutionEvent, None]:
    """What the project's feed hands this subscriber: the events its filter matches, in commit order."""
    refreshed = time.monotonic()
    while True:
        batch = await sub.next_batch()
        if sub.closed:
            return  # its client is gone
        if sub.error is not None:
            raise sub.error  # its rights were withdrawn (the feed's re-check)
        if sub.overflowed:
            raise fell_behind(sub)
        if time.monotonic() - refreshed >= live.ACCESS_RECHECK_SECONDS:
            ctx.refresh_loaders()  # the WebSocket context lives as long as the connection
            refreshed = time.monotonic()
        for notice in batch:
            if notice.resync:
                continue  # the feed catches up for everyone
            if sub.error is not None:
                raise sub.error
            if sub.overflowed:
                raise fell_behind(sub)
            yield notice.data["event"]


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


