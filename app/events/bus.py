"""The per-process event bus: one LISTEN connection, fanned out to in-process subscribers.

Every server process (``serve`` or ``worker``) may host subscribers. The bus holds one asyncpg
connection LISTENing on ``ps_exec``; each notification is routed to the subscribers of that
execution and of that project. A subscriber's queue is bounded
(``PROMPTSTUDIO_SUBSCRIBER_BUFFER``): a subscriber that falls that far behind is marked
``overflowed`` and its subscription ends with an error telling it so — it never blocks the bus,
other subscribers or the workers. Notifications are only hints ("something happened, up to
sequence s"): subscribers read the events themselves from ``execution_events``, so none is lost
to reordering, and a reconnect of the LISTEN connection simply tells everyone to catch up.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.db.engine import plain_url

from .emit import EXEC_CHANNEL

log = logging.getLogger("promptstudio.events")


@dataclass(frozen=True)
class Notice:
    """One notification: execution ``execution_id`` of ``project_id`` reached event ``seq`` (type, status)."""

    execution_id: uuid.UUID | None
    project_id: uuid.UUID | None
    seq: int
    type: str
    status: str | None
    #: True when the bus reconnected and events may have been missed: catch up from the table.
    resync: bool = False


RESYNC = Notice(execution_id=None, project_id=None, seq=0, type="RESYNC", status=None, resync=True)


@dataclass(eq=False)
class Subscriber:
    execution_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    maxsize: int = 1000
    queue: asyncio.Queue = field(init=False)
    overflowed: bool = False

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.maxsize)

    def offer(self, notice: Notice) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(notice)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("subscriber of %s fell more than %d events behind; closing it",
                        self.execution_id or self.project_id, self.maxsize)
            # wake the subscriber so it notices at once
            try:
                self.queue.get_nowait()
                self.queue.put_nowait(RESYNC)
            except (asyncio.QueueEmpty, asyncio.QueueFull):
                pass

    async def next_batch(self, timeout: float | None = None) -> list[Notice]:
        """Wait for at least one notice, then take all that are queued (coalescing bursts)."""
        if timeout is None:
            first = await self.queue.get()
        else:
            first = await asyncio.wait_for(self.queue.get(), timeout)
        batch = [first]
        while True:
            try:
                batch.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                return batch


class EventBus:
    def __init__(self, database_url: str, *, buffer: int = 1000, reconnect_delay: float = 1.0):
        self._url = plain_url(database_url)
        self._buffer = buffer
        self._reconnect_delay = reconnect_delay
        self._by_execution: dict[uuid.UUID, set[Subscriber]] = defaultdict(set)
        self._by_project: dict[uuid.UUID, set[Subscriber]] = defaultdict(set)
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-bus")
        # wait until LISTEN is in place, so nothing committed after start() is missed
        waiter = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiter.cancel()
            self._task.result()  # raises the connection error

    async def stop(self) -> None:
        self._closing = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self._url, server_settings={"application_name": "promptstudio-bus"})
        await conn.add_listener(EXEC_CHANNEL, self._on_notify)
        conn.add_termination_listener(lambda c: self._lost.set())
        return conn

    async def _run(self) -> None:
        first = True
        while not self._closing:
            self._lost = asyncio.Event()
            try:
                self._conn = await self._connect()
            except (OSError, asyncpg.PostgresError) as exc:
                if first:
                    raise
                log.warning("event bus: cannot reconnect (%s); retrying in %.1fs", exc, self._reconnect_delay)
                await asyncio.sleep(self._reconnect_delay)
                continue
            if not first:
                log.info("event bus: reconnected; subscribers catch up from the event table")
                self._broadcast(RESYNC)
            first = False
            self._ready.set()
            await self._lost.wait()
            if not self._closing:
                log.warning("event bus: LISTEN connection lost")

    # ------------------------------------------------------------------ routing

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            notice = Notice(execution_id=uuid.UUID(data["e"]), project_id=uuid.UUID(data["p"]), seq=int(data["s"]),
                            type=data["t"], status=data.get("st"))
        except (ValueError, KeyError, TypeError):
            log.warning("event bus: ignoring malformed notification %r", payload[:200])
            return
        for sub in tuple(self._by_execution.get(notice.execution_id, ())):
            sub.offer(notice)
        for sub in tuple(self._by_project.get(notice.project_id, ())):
            sub.offer(notice)

    def _broadcast(self, notice: Notice) -> None:
        for subs in list(self._by_execution.values()) + list(self._by_project.values()):
            for sub in tuple(subs):
                sub.offer(notice)

    def subscribe(self, *, execution_id: uuid.UUID | None = None, project_id: uuid.UUID | None = None) -> Subscriber:
        if (execution_id is None) == (project_id is None):
            raise ValueError("subscribe to exactly one of execution_id or project_id")
        sub = Subscriber(execution_id=execution_id, project_id=project_id, maxsize=self._buffer)
        if execution_id is not None:
            self._by_execution[execution_id].add(sub)
        else:
            self._by_project[project_id].add(sub)  # type: ignore[index]
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        for index, key in ((self._by_execution, sub.execution_id), (self._by_project, sub.project_id)):
            if key is not None and key in index:
                index[key].discard(sub)
                if not index[key]:
                    del index[key]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_execution.values()) + sum(len(s) for s in self._by_project.values())
