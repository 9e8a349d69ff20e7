"""A shared feed: one reader per topic per process, whose reads are handed to every subscriber of the topic.

Without a feed, each subscriber of a topic wakes on the notices and reads what is new itself: with a
thousand monitors of one project that is a thousand identical queries per wake-up. A topic with a feed
(``EventBus.subscribe(..., feed=...)``) instead routes its notices to the feed's one task, which

1. waits for notices (bursts coalesce: whatever arrived while it was busy is taken in one go),
2. reads what they announce once (``FeedReader.read``, on the bus's own small connection pool, never
   the request pool), retrying a failing read with a growing delay — a database hiccup delays
   delivery, it never ends a stream,
3. runs the periodic, batched re-check of its subscribers' rights when one is due
   (``FeedReader.check``: one round of queries for all of them, instead of queries per subscriber),
4. offers the items read, in order, to every subscriber of the topic through its usual bounded inbox
   (``Subscriber.offer``: each subscriber's ``accept`` filters them, a subscriber that falls behind
   is marked ``overflowed`` and told FELL_BEHIND; others are never held up).

A subscriber gets the items of the notices that arrived after it subscribed (``Subscriber.since``),
exactly as it would have read them itself. After a reconnect of the bus (RESYNC) the reader catches up
from the tables once, for everyone. The feed lives while its topic has subscribers.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .bus import EventBus, Notice, Subscriber

log = logging.getLogger("promptstudio.events")

#: Delays between attempts of a failing read (the last one repeats).
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)


class FeedReader(Protocol):
    async def read(self, notices: Sequence[tuple[int, Notice]], resync: int | None) -> list[tuple[int, Notice]]:
        """What ``notices`` (each with its arrival number) announce, as item notices tagged with the number of
        the notice that announced them, in the order to deliver them. ``resync`` (the arrival number of a
        RESYNC) asks to catch up from the tables as well. Raises when the read fails (it is retried)."""

    def check_due(self) -> bool:
        """Whether the subscribers' rights should be checked again before this delivery."""

    async def check(self, subscribers: Sequence[Subscriber]) -> None:
        """Check the subscribers' rights (batched); ``Subscriber.fail`` those that lost them."""


class Feed:
    def __init__(self, bus: EventBus, topic: str, reader: FeedReader, *,
                 accept: Callable[[Mapping[str, Any]], bool] | None = None):
        self.bus, self.topic, self.reader, self.accept = bus, topic, reader, accept
        #: Notices received so far (numbers the notices; a subscriber takes those numbered from its ``since``).
        self.received = 0
        self._pending: list[tuple[int, Notice]] = []
        self._resync: int | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        #: Reads done and reads that failed (for tests and metrics).
        self.reads = 0
        self.failures = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"feed {self.topic}")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def notify(self, notice: Notice) -> None:
        """Called by the bus; never blocks."""
        n = self.received
        self.received += 1
        if notice.resync:
            self._resync = n
        elif self.accept is None or self.accept(notice.data):
            self._pending.append((n, notice))
            if len(self._pending) > 20 * self.bus.buffer:
                # The reader cannot keep up (the database is down, say): catch up from the tables instead.
                self._pending.clear()
                self._resync = n
        else:
            return
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            notices, self._pending = self._pending, []
            resync, self._resync = self._resync, None
            if not notices and resync is None:
                continue
            items = await self._read(notices, resync)
            try:
                if self.reader.check_due():
                    await self.reader.check(self.subscribers())
            except Exception:  # rights are checked again before the next delivery
                log.exception("feed %s: checking its subscribers' rights failed", self.topic)
            self._deliver(items)

    async def _read(self, notices: list[tuple[int, Notice]], resync: int | None) -> list[tuple[int, Notice]]:
        attempt = 0
        while True:
            try:
                items = await self.reader.read(notices, resync)
                self.reads += 1
                return items
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
                attempt += 1
                log.warning("feed %s: reading failed (%s: %s); retrying in %.2fs", self.topic,
                            type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                # what arrived meanwhile is read in the same go
                notices = notices + self._pending
                self._pending = []
                if self._resync is not None:
                    resync, self._resync = self._resync, None

    def subscribers(self) -> list[Subscriber]:
        return list(self.bus._by_topic.get(self.topic, ()))

    def _deliver(self, items: list[tuple[int, Notice]]) -> None:
        if not items:
            return
        for sub in self.subscribers():
            since = sub.since
            try:
                for n, item in items:
                    if n >= since:
                        sub.offer(item)
            except Exception as exc:  # one subscriber's broken filter must not stop the others' feed
                log.exception("feed %s: offering to a subscriber failed; ending its stream", self.topic)
                sub.fail(exc)
