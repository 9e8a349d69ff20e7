"""The per-process event bus: one LISTEN connection, fanned out to in-process subscribers by topic.

Every server process (``serve`` or ``worker``) may host subscribers. The bus holds one asyncpg
connection LISTENing on ``ps_events`` (``app.events.publish``); each notice names its topics and
is offered to the subscribers of each of them. The bus knows nothing of what the topics are: a
new live feed subscribes to a new topic. Notices are only hints ("execution e reached event s"):
subscribers read what is new themselves (e.g. from ``execution_events``), so none is lost to
coalescing, and a reconnect of the LISTEN connection simply tells everyone to catch up
(a ``RESYNC`` notice).

A subscriber's backlog is bounded (``PROMPTSTUDIO_SUBSCRIBER_BUFFER`` notices it has not taken
yet). Offering never blocks: a subscriber that falls further behind is marked ``overflowed``
and woken, and its subscription ends with an error telling it so — it never slows the bus,
other subscribers or the workers. A subscriber may also say which notices it cares about
(``accept``: a project monitor wants status changes, not output deltas); others are dropped before
they take any room. Subscribers may carry a liveness check of their client; every few seconds
the bus sweeps away those whose client is gone, even if nobody closed their stream.

A topic may have a shared feed (``app.events.feed``): its notices then go to the feed's one reader,
which reads what they announce once and offers the items read to every subscriber of the topic
(same inboxes, same bounds). The feeds read on the bus's own small connection pool (``sessionmaker``),
so live updates never take connections from the requests.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.db.engine import plain_url

from .feed import Feed, FeedReader
from .publish import CHANNEL

log = logging.getLogger("promptstudio.events")

#: Seconds between checks that the idle LISTEN connection still answers.
HEALTH_CHECK_SECONDS = 30.0
#: Seconds between sweeps for subscribers whose client is gone (see ``Subscriber.alive``).
SWEEP_SECONDS = 2.0


@dataclass(frozen=True)
class Notice:
    """One notice of the topic ``topic``: its ``data`` as published (e.g. {"e": execution, "s": seq, ...})."""

    topic: str | None
    data: Mapping[str, Any] = field(default_factory=dict)
    #: True when the bus reconnected and notices may have been missed: catch up from the tables.
    resync: bool = False


RESYNC = Notice(topic=None, resync=True)


@dataclass(eq=False)
class Subscriber:
    """The inbox of one subscription to a topic: notices not taken yet, at most ``maxsize`` of them."""

    topic: str
    maxsize: int = 1000
    #: Which notices to keep, by their data (None: all). RESYNC always gets through.
    accept: Callable[[Mapping[str, Any]], bool] | None = None
    overflowed: bool = False
    #: Says whether the subscriber's client is still there (e.g. its WebSocket is open). The bus
    #: sweeps away subscribers whose client is gone even if their stream was never closed.
    alive: Callable[[], bool] | None = None
    #: Swept away by the bus: the stream should end.
    closed: bool = False
    #: A RESYNC is waiting to be taken (it takes no room and never overflows the inbox).
    resync: bool = False
    #: Whose subscription this is (e.g. the principal, for a feed's batched re-check of rights).
    owner: Any = None
    #: For a topic with a feed: the first notice number (``Feed.received``) this subscriber gets items of.
    since: int = 0
    #: The stream should end with this error (its rights were withdrawn, say): set by ``fail``.
    error: BaseException | None = None
    _pending: deque[Notice] = field(default_factory=deque, init=False, repr=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def fail(self, error: BaseException) -> None:
        """End the stream with ``error`` at its next wake-up (which is now); nothing more is delivered."""
        if self.error is None:
            self.error = error
            self._pending.clear()
            self._wake.set()

    def offer(self, notice: Notice) -> None:
        """Called by the bus; never blocks."""
        if self.overflowed or self.closed or self.error is not None:
            return
        if notice.resync:
            self.resync = True
            self._wake.set()
            return
        if self.accept is not None and not self.accept(notice.data):
            return
        if len(self._pending) >= self.maxsize:
            self.fall_behind()
            return
        self._pending.append(notice)
        self._wake.set()

    def fall_behind(self) -> None:
        """Mark it ``overflowed`` (its stream ends with FELL_BEHIND) and wake it, so it notices at once."""
        if self.overflowed:
            return
        self.overflowed = True
        self._pending.clear()
        log.warning("subscriber of %s fell more than %d events behind; closing it", self.topic, self.maxsize)
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def next_batch(self, timeout: float | None = None) -> list[Notice]:  # noqa: ASYNC109 (an idle timeout, not a deadline)
        """Wait for notices, then take all that are waiting (bursts coalesce into one batch).

        Returns ``[]`` when ``timeout`` passes first, or when the subscriber overflowed, was
        closed or failed (check ``overflowed``, ``closed`` and ``error``). A pending RESYNC comes last
        in the batch.
        """
        if not (self._pending or self.resync or self.overflowed or self.closed or self.error is not None):
            self._wake.clear()
            try:
                if timeout is None:
                    await self._wake.wait()
                else:
                    await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return []
        return self.drain()

    def drain(self) -> list[Notice]:
        """Take whatever is waiting, without waiting (``[]`` once overflowed, closed or failed)."""
        if self.overflowed or self.closed or self.error is not None:
            return []
        batch = list(self._pending)
        self._pending.clear()
        if self.resync:
            self.resync = False
            batch.append(RESYNC)
        return batch


class EventBus:
    def __init__(self, database_url: str, *, buffer: int = 1000, reconnect_delay: float = 1.0,
                 health_check_seconds: float = HEALTH_CHECK_SECONDS, sweep_seconds: float = SWEEP_SECONDS,
                 sessionmaker: Any = None, application_name: str = "promptstudio-bus"):
        self._url = plain_url(database_url)
        #: Sessions for the feeds' reads: the bus's own small pool, apart from the requests' (None: no feeds).
        self.sessionmaker = sessionmaker
        self._feeds: dict[str, Feed] = {}
        #: The LISTEN connection's application_name (app.services.hot counts the processes with caches by it).
        self.application_name = application_name
        self._buffer = buffer
        self._reconnect_delay = reconnect_delay
        self._health_check_seconds = health_check_seconds
        self._sweep_seconds = sweep_seconds
        self._sweeper: asyncio.Task | None = None
        self._by_topic: dict[str, set[Subscriber]] = defaultdict(set)
        #: Subscribers of the process itself (``attach``), not counted as subscriptions.
        self._attached: set[Subscriber] = set()
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        self._lost = asyncio.Event()
        #: Statements on the LISTEN connection (health checks, ``notify``) take turns.
        self._conn_lock = asyncio.Lock()
        self._closing = False
        #: How many times the LISTEN connection was re-established (for tests and metrics).
        self.reconnects = 0

    @property
    def buffer(self) -> int:
        return self._buffer

    @property
    def connected(self) -> bool:
        """LISTEN is in place right now (while False, notices may be missed; a RESYNC follows)."""
        return self._conn is not None and not self._conn.is_closed() and not self._lost.is_set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-bus")
        # wait until LISTEN is in place, so nothing committed after start() is missed
        waiter = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiter.cancel()
            self._task.result()  # raises the connection error
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="event-bus-sweeper")

    async def stop(self) -> None:
        self._closing = True
        for feed in list(self._feeds.values()):
            feed.stop()
        self._feeds.clear()
        for task in (self._task, self._sweeper):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)  # it ends cancelled, or with its error
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    async def _connect(self) -> asyncpg.Connection:
        lost = self._lost
        conn = await asyncpg.connect(self._url, server_settings={"application_name": self.application_name})
        conn.add_termination_listener(lambda c: lost.set())
        await conn.add_listener(CHANNEL, self._on_notify)
        return conn

    async def _run(self) -> None:
        first = True
        while not self._closing:
            self._lost = asyncio.Event()
            try:
                self._conn = await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if first:
                    raise
                log.warning("event bus: cannot reconnect (%s); retrying in %.1fs", exc, self._reconnect_delay)
                await asyncio.sleep(self._reconnect_delay)
                continue
            if not first:
                self.reconnects += 1
                log.info("event bus: reconnected; subscribers catch up from the event table")
                self._broadcast(RESYNC)
            first = False
            self._ready.set()
            await self._watch(self._conn)
            if not self._closing:
                log.warning("event bus: LISTEN connection lost; reconnecting")
                if not self._conn.is_closed():
                    self._conn.terminate()

    async def _watch(self, conn: asyncpg.Connection) -> None:
        """Return when the connection is lost (closed by the server, or no longer answering)."""
        while not self._closing:
            try:
                await asyncio.wait_for(self._lost.wait(), self._health_check_seconds)
                return
            except TimeoutError:
                pass
            try:
                async with self._conn_lock:
                    await conn.fetchval("SELECT 1", timeout=min(10.0, self._health_check_seconds))
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("event bus: health check failed (%s)", exc)
                self._lost.set()
                return

    # ------------------------------------------------------------------ sweeping

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_seconds)
            try:
                self.sweep()
            except Exception:  # a broken alive() must not stop the sweeps
                log.exception("event bus: sweep failed")

    def sweep(self) -> int:
        """Forget subscribers whose client is gone; returns how many.

        A stream is normally closed by its server when the client leaves, which unsubscribes it;
        this catches the ones that were abandoned without being closed (a send that failed half
        way, say) before the garbage collector gets to them.
        """
        gone = [sub for subs in list(self._by_topic.values())
                for sub in subs if sub.alive is not None and not sub.alive()]
        for sub in gone:
            self.unsubscribe(sub)
            sub.closed = True
            sub._wake.set()
        if gone:
            log.info("event bus: swept away %d subscriber(s) whose client had gone", len(gone))
        return len(gone)

    # ------------------------------------------------------------------ routing

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            topics, data = message["k"], message["d"]
            if not isinstance(topics, list) or not isinstance(data, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            log.warning("event bus: ignoring malformed notification %r", payload[:200])
            return
        for topic in topics:
            self.dispatch(Notice(topic=str(topic), data=data))

    def dispatch(self, notice: Notice) -> None:
        """Offer a notice to the subscribers of its topic (to its feed, if it has one)."""
        feed = self._feeds.get(notice.topic or "")
        if feed is not None:
            feed.notify(notice)
            return
        for sub in tuple(self._by_topic.get(notice.topic or "", ())):
            sub.offer(notice)

    def _broadcast(self, notice: Notice) -> None:
        for topic, subs in list(self._by_topic.items()):
            feed = self._feeds.get(topic)
            if feed is not None:
                feed.notify(notice)  # the feed catches up for all its subscribers
                continue
            for sub in tuple(subs):
                sub.offer(notice)

    def subscribe(self, topic: str, *, accept: Callable[[Mapping[str, Any]], bool] | None = None,
                  alive: Callable[[], bool] | None = None, owner: Any = None,
                  feed: Callable[[], tuple[FeedReader, Callable[[Mapping[str, Any]], bool] | None]] | None = None
                  ) -> Subscriber:
        """Register a subscriber of ``topic`` (``app.events.topics``), keeping the notices ``accept`` takes.

        Notices committed after this call reach it; call ``unsubscribe`` when done. ``alive`` tells
        whether its client is still there (checked every few seconds). ``feed`` makes the topic a shared
        feed (if it is not one yet): it returns the reader and which notices the reader wants; the
        subscriber then receives the items the feed reads (for notices arriving after this call).
        """
        sub = Subscriber(topic=topic, maxsize=self._buffer, accept=accept, alive=alive, owner=owner)
        shared = self._feeds.get(topic)
        if shared is None and feed is not None:
            if self._by_topic.get(topic):
                raise RuntimeError(f"topic {topic} has subscribers without a feed")
            reader, wanted = feed()
            shared = self._feeds[topic] = Feed(self, topic, reader, accept=wanted)
            shared.start()
        if shared is not None:
            sub.since = shared.received
        self._by_topic[topic].add(sub)
        return sub

    def feed(self, topic: str) -> Feed | None:
        """The shared feed of ``topic``, if it has one now."""
        return self._feeds.get(topic)

    async def notify(self, payload: str) -> None:
        """NOTIFY ``payload`` (``publish.encode``) on the bus's own connection, outside any transaction."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return
        async with self._conn_lock:  # one operation at a time on a connection (asyncpg refuses more)
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    def attach(self, sub: Subscriber) -> Subscriber:
        """Register a subscriber built elsewhere (e.g. one whose ``offer`` acts at once, in the bus's
        callback: app.services.hot's cache invalidator); ``unsubscribe`` it when done."""
        self._by_topic[sub.topic].add(sub)
        self._attached.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a subscriber (idempotent); the topic's feed stops with its last subscriber."""
        self._attached.discard(sub)
        subs = self._by_topic.get(sub.topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_topic[sub.topic]
                feed = self._feeds.pop(sub.topic, None)
                if feed is not None:
                    feed.stop()

    @property
    def subscriber_count(self) -> int:
        """Subscriptions of clients (not the process's own ``attach``-ed subscribers)."""
        return sum(len(s) for s in self._by_topic.values()) - len(self._attached)
