"""``projectTraces``: a project's traces as they arrive and change, throttled per trace.

``write_spans`` publishes, at commit, a notice on ``project:<id>:traces`` naming the trace rows a batch
changed. A subscriber registers with the bus before it checks anything, then, for each wake-up, reads the
named traces that are due (one query) and sends those that match its filter and changed since it last
sent them.

Throttling, per trace: a trace not sent in the last ``PROMPTSTUDIO_TRACE_FEED_INTERVAL_SECONDS`` (1 s)
is sent at once (its first arrival, or its first change after a quiet spell); a trace sent more recently
is marked and sent when its interval has passed, in the state it has then — however many changes came
meanwhile, one message, and the last state is never dropped (the end of a burst is always sent). A
busy agent writing spans continuously gives its monitor one message per second, not one per batch.

No snapshot: only traces that change after subscribing are sent (list older ones with Project.traces).
A trace that stops matching the filter (say, status OK, then ERROR) is simply no longer sent. After a
reconnect of the bus (RESYNC) the traces changed in the last minute before it are read again.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any

import strawberry
from sqlalchemy import select

from app.db import models
from app.events import topics
from app.services.access import Action

from ..core.context import Context, Info
from ..core.live import AccessCheck, EventStream, fell_behind, not_found, subscribe_checked
from ..core.relay import decode_id
from .loaders import TraceFilterSpec, trace_conditions
from .types import Trace, TraceFilter, filter_spec

#: Traces read per query.
READ_CHUNK = 500
#: After a bus reconnect, the traces changed this far back are read again (sent when changed).
RESYNC_WINDOW = timedelta(seconds=60)


def _version(row: models.Trace) -> tuple[Any, ...]:
    """What tells two states of a trace apart (updated_at alone is a transaction's start time)."""
    return row.updated_at, row.span_count, row.end_time, row.status, row.name


class Throttle:
    """Per trace: when it was last sent (and in which state), and when it is due again.

    Memory stays bounded: a trace is remembered while it was sent within the last interval or is waiting
    to be sent; after that it would be sent at once anyway, so it is forgotten.
    """

    def __init__(self, interval: float):
        self.interval = interval
        self.sent_at: dict[uuid.UUID, tuple[float, tuple[Any, ...]]] = {}
        self.due: dict[uuid.UUID, float] = {}

    def changed(self, ids: Iterable[uuid.UUID], now: float) -> None:
        for trace in ids:
            if trace in self.due:
                continue  # already waiting: it will be read in its state then
            last = self.sent_at.get(trace)
            self.due[trace] = now if last is None else max(now, last[0] + self.interval)

    def take_due(self, now: float) -> list[uuid.UUID]:
        ready = [t for t, at in self.due.items() if at <= now]
        for t in ready:
            del self.due[t]
        return ready

    def wait(self, now: float) -> float | None:
        """Seconds until the next trace is due (None: none is waiting)."""
        if not self.due:
            return None
        return max(0.0, min(self.due.values()) - now)

    def is_new(self, row: models.Trace) -> bool:
        last = self.sent_at.get(row.id)
        return last is None or last[1] != _version(row)

    def mark_sent(self, row: models.Trace, now: float) -> None:
        self.sent_at[row.id] = (now, _version(row))

    def forget_old(self, now: float) -> None:
        horizon = now - self.interval
        for t in [t for t, (at, _) in self.sent_at.items() if at <= horizon and t not in self.due]:
            del self.sent_at[t]


async def read_traces(ctx: Context, project_id: uuid.UUID, spec: TraceFilterSpec, *,
                      ids: list[uuid.UUID] | None = None, since: datetime | None = None,
                      limit: int | None = None) -> list[models.Trace]:
    """The project's traces named by ``ids`` (or changed since ``since``) that match the filter, oldest change
    first (one query per READ_CHUNK ids)."""
    t = models.Trace
    base = select(t).where(t.project_id == project_id, *trace_conditions(spec)).order_by(t.updated_at, t.id)
    out: list[models.Trace] = []
    async with ctx.db() as session:
        if ids is None:
            stmt = base.where(t.updated_at >= since) if since is not None else base
            return list((await session.execute(stmt.limit(limit))).scalars().all())
        for i in range(0, len(ids), READ_CHUNK):
            out.extend((await session.execute(base.where(t.id.in_(ids[i:i + READ_CHUNK])))).scalars().all())
    return out


async def open_traces_stream(info: Info, gid: strawberry.ID, filter: TraceFilter | None) -> EventStream:
    ctx = info.context
    principal = ctx.require_auth()
    project_id = decode_id(gid, models.Project)
    if project_id is None:
        raise not_found("project")
    spec = filter_spec(filter)
    bus, sub, started = await subscribe_checked(info, principal, topics.project_traces(project_id), project_id,
                                                Action.READ_TRACES)
    throttle = Throttle(ctx.settings.trace_feed_interval_seconds)
    return EventStream(bus, sub, _trace_events(ctx, sub, project_id, spec, throttle, started))


async def _trace_events(ctx: Context, sub: Any, project_id: uuid.UUID, spec: TraceFilterSpec, throttle: Throttle,
                        started: datetime) -> AsyncGenerator[Trace, None]:
    recheck = AccessCheck(ctx, project_id, "project", Action.READ_TRACES)
    last_change = started  # the latest updated_at seen (database time), for catching up after a RESYNC
    while True:
        batch = await sub.next_batch(throttle.wait(time.monotonic()))
        if sub.closed:
            return  # its client is gone
        if sub.overflowed:
            raise fell_behind(sub)
        now = time.monotonic()
        throttle.changed((uuid.UUID(t) for n in batch if not n.resync for t in n.data.get("traces", ())), now)
        if any(n.resync for n in batch):
            # Notices may have been lost while the bus reconnected: read what changed lately.
            since = max(started, last_change - RESYNC_WINDOW)
            recent = await read_traces(ctx, project_id, spec, since=since, limit=sub.maxsize + 1)
            if len(recent) > sub.maxsize:
                raise fell_behind(sub)
            throttle.changed((r.id for r in recent), now)
        due = throttle.take_due(now)
        if due:
            ctx.refresh_loaders()  # the WebSocket context lives as long as the connection
            await recheck()
            for row in await read_traces(ctx, project_id, spec, ids=due):
                last_change = max(last_change, row.updated_at)
                if not throttle.is_new(row):
                    continue  # e.g. announced again while its last change was being read
                if sub.overflowed:
                    raise fell_behind(sub)
                yield Trace.from_row(row)
                throttle.mark_sent(row, time.monotonic())
        throttle.forget_old(time.monotonic())


@strawberry.type
class TraceSubscription:
    @strawberry.subscription(description=(
        "Traces of a project as they arrive or change (new spans, an end, an error), for live monitors: a trace is "
        "sent when it first arrives and when it changes, at most about once a second each "
        "(PROMPTSTUDIO_TRACE_FEED_INTERVAL_SECONDS); the last state of a burst is always sent. Traces that do not "
        "match the filter are not sent. No snapshot of older traces (list them with Project.traces)."))
    async def project_traces(self, info: Info, project_id: strawberry.ID,
                             filter: TraceFilter | None = None) -> AsyncIterator[Trace]:
        return await open_traces_stream(info, project_id, filter)
