"""The hot path's in-process caches, kept true across processes by NOTIFY; and lastUsedAt, written behind.

Three caches per server process (sizes: PROMPTSTUDIO_TOKEN_CACHE_SIZE, _ROLE_CACHE_SIZE,
_RESOLVE_CACHE_SIZE; least recently used dropped first):

* ``tokens``: a bearer token's SHA-256 -> what authenticating it found (the principal, the expiry,
  the credential's ids). Expiry is checked against the cached time on every use.
* ``roles``: (user, project) -> the user's role there (or None).
* ``resolves``: (project, prompt name, environment, fallback) -> what resolvePrompt needs to answer
  any caller (app.services.deployments.ResolveData).

Invalidation. Database triggers (migration 0013) NOTIFY topic ``caches`` in the transaction of every
change that can alter an entry (deployments, splits, prompts, versions, projects, memberships, users,
sessions, API keys; cascaded deletes included), so a notice goes out exactly when the change
commits, and never for one rolled back. Each process's event bus hands it to :class:`HotCaches`,
which drops the entries concerned at once (synchronously, in the bus's callback).

A read that began before a change committed must not put its stale answer back after the notice
dropped it: every invalidation bumps ``generation``, a miss takes the generation before it reads,
and ``put`` stores only if it has not moved since (any invalidation meanwhile: nothing stored; the
next request reads again).

Bus down. While the LISTEN connection is not in place notices may be missed, so the caches are
not trusted: every lookup misses and nothing is stored (requests query as they did without caches).
The bus's RESYNC after it reconnects clears everything and bumps the generation.

lastUsedAt (:class:`LastUsed`): authenticating never writes. A token used more than
PROMPTSTUDIO_LAST_USED_RESOLUTION_SECONDS after its recorded use is noted in memory; a background
task writes what was noted every PROMPTSTUDIO_LAST_USED_FLUSH_SECONDS, one UPDATE per table for all
tokens, and once more when the process stops. lastUsedAt is therefore approximate: it may lag real
use by the resolution plus the flush interval (and a process killed without stopping loses its
last interval's notes).
"""
from __future__ import annotations

import asyncio
import logging
import re
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.events.bus import Notice, Subscriber
from app.events.publish import encode, publish
from app.events.topics import CACHES

log = logging.getLogger("promptstudio.hot")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING: Any = object()


class LRU(Generic[K, V]):
    """A bounded mapping; the least recently used entry goes first."""

    def __init__(self, size: int):
        self.size = size
        self._d: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, default: Any = None) -> Any:
        value = self._d.get(key, _MISSING)
        if value is _MISSING:
            return default
        self._d.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.size <= 0:
            return
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def pop(self, key: K) -> None:
        self._d.pop(key, None)

    def drop_where(self, test: Callable[[K, V], bool]) -> int:
        gone = [k for k, v in self._d.items() if test(k, v)]
        for k in gone:
            del self._d[k]
        return len(gone)

    def clear(self) -> None:
        self._d.clear()

    def __len__(self) -> int:
        return len(self._d)


class TokenEntry:
    """What authenticating a token found: enough to build its principal and to drop it on a notice."""

    __slots__ = ("cred_id", "expires_at", "is_superuser", "kind", "last_used_at", "project_id", "scopes", "user_id")

    def __init__(self, *, kind: str, cred_id: uuid.UUID, user_id: uuid.UUID | None, project_id: uuid.UUID | None,
                 is_superuser: bool, scopes: frozenset[str], expires_at: datetime | None,
                 last_used_at: datetime | None):
        self.kind = kind
        self.cred_id = cred_id
        self.user_id = user_id
        self.project_id = project_id
        self.is_superuser = is_superuser
        self.scopes = scopes
        self.expires_at = expires_at
        self.last_used_at = last_used_at


class HotCaches:
    """The process's caches (see the module docstring); ``bus``: the event bus whose notices keep them true."""

    def __init__(self, *, token_size: int, role_size: int, resolve_size: int, bus: Any = None):
        self.tokens: LRU[str, TokenEntry] = LRU(token_size)
        self.roles: LRU[tuple, str] = LRU(role_size)
        self.resolves: LRU[tuple, Any] = LRU(resolve_size)
        self.bus = bus
        #: Bumped by every invalidation: ``put`` stores only what was read within one generation.
        self.generation = 0
        #: Notices applied (for tests and metrics).
        self.notices = 0
        #: Sync markers a writer in this process waits for (see :func:`before_commit`).
        self._markers: dict[str, Settle] = {}
        #: Who this is in acknowledgements of sync markers.
        self.ident = uuid.uuid4().hex
        self._acks: set[asyncio.Task] = set()
        _LIVE.add(self)

    @property
    def usable(self) -> bool:
        """Whether entries may be trusted: the bus is LISTENing (otherwise notices may be missed)."""
        bus = self.bus
        return bus is not None and bus.connected

    # --- reading and storing

    def get(self, cache: LRU, key: Any) -> Any:
        """The entry, or None (also whenever the caches cannot be trusted)."""
        if not self.usable:
            return None
        return cache.get(key)

    def put(self, cache: LRU, key: Any, value: Any, generation: int) -> bool:
        """Store ``value`` read during ``generation``; refused when anything was invalidated since."""
        if generation != self.generation or not self.usable:
            return False
        cache.put(key, value)
        return True

    # --- invalidating

    def clear(self) -> None:
        self.generation += 1
        self.tokens.clear()
        self.roles.clear()
        self.resolves.clear()

    def apply(self, notice: Notice) -> None:
        """Drop what a notice of topic ``caches`` concerns (RESYNC: everything)."""
        if "ack" in notice.data and not notice.resync:
            settle = self._markers.get(str(notice.data["ack"]))
            if settle is not None:
                settle.acked(str(notice.data.get("by")))
            return
        if "sync" in notice.data and not notice.resync:
            # Everything committed before the marker has been applied (notices arrive in commit order):
            # tell the writer, wherever it runs.
            if self.bus is not None:
                task = asyncio.get_running_loop().create_task(self.bus.notify(
                    encode([CACHES], {"ack": str(notice.data["sync"]), "by": self.ident})))
                self._acks.add(task)
                task.add_done_callback(self._acks.discard)
            return
        self.generation += 1
        self.notices += 1
        if notice.resync:
            self.clear()
            return
        data: Mapping[str, Any] = notice.data
        if "r" in data:
            project = data["r"]
            if project == "*" or project is None:
                self.resolves.clear()
            else:
                pid = _uuid(project)
                self.resolves.drop_where(lambda k, _v: k[0] == pid)
        if "m" in data:
            user, project = (_uuid(x) for x in data["m"])
            self.roles.pop((user, project))
        if "u" in data:
            uid = _uuid(data["u"])
            self.tokens.drop_where(lambda _k, e: e.user_id == uid)
            self.roles.drop_where(lambda k, _v: k[0] == uid)
        if "s" in data:
            sid = _uuid(data["s"])
            self.tokens.drop_where(lambda _k, e: e.kind == "user" and e.cred_id == sid)
        if "a" in data:
            kid = _uuid(data["a"])
            self.tokens.drop_where(lambda _k, e: e.kind == "api_key" and e.cred_id == kid)

    def subscriber(self) -> Subscriber:
        """The bus subscriber that applies notices at once, in the bus's callback (no task in between)."""
        return _Invalidator(topic=CACHES, caches=self)


#: Every HotCaches of this process (tests run several apps in one process).
_LIVE: weakref.WeakSet[HotCaches] = weakref.WeakSet()

#: Writes that fire the invalidation triggers of migration 0013 (INSERTs of users, sessions and keys do not).
_WRITES = re.compile(r"\s*(?:UPDATE|DELETE\s+FROM)\s+(projects|prompts|prompt_versions|deployments|project_members|"
                     r"users|user_sessions|api_keys)\b|\s*INSERT\s+INTO\s+(prompts|prompt_versions|deployments|"
                     r"project_members)\b", re.IGNORECASE)
_DIRTY = "ps_cache_writes"
#: How long a writer waits for its own process to have applied its notices.
SETTLE_SECONDS = 2.0


def watch_writes(engine: Any) -> None:
    """Mark the connections of ``engine`` (a sync Engine) whose transaction changed what the caches hold."""
    from sqlalchemy import event

    if getattr(engine, "_ps_watched", False):
        return
    engine._ps_watched = True

    def on_begin(conn: Any) -> None:
        conn.info.pop(_DIRTY, None)

    def on_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement[:1] in "UDIudi\n " and _WRITES.match(statement):
            conn.info[_DIRTY] = True

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_execute)


class Settle:
    """What a writer waits for after its commit: every process with caches has applied its notices (each
    acknowledges the marker that follows them)."""

    def __init__(self, marker: str, caches: list[HotCaches], expected: int):
        self.marker = marker
        self.expected = expected
        self._by: set[str] = set()
        self._done = asyncio.Event()
        self._caches = caches
        for c in caches:
            c._markers[marker] = self
        if expected <= 0:
            self._done.set()

    def acked(self, by: str) -> None:
        self._by.add(by)
        if len(self._by) >= self.expected:
            self._done.set()

    def discard(self) -> None:
        """The transaction did not commit: nothing to wait for."""
        for c in self._caches:
            c._markers.pop(self.marker, None)

    async def wait(self, seconds: float = SETTLE_SECONDS) -> bool:
        try:
            await asyncio.wait_for(self._done.wait(), seconds)
            return True
        except TimeoutError:
            log.warning("%d of %d processes acknowledged a change's cache notices within %.1f s (a process whose "
                        "event bus is down does not use its caches)", len(self._by), self.expected, seconds)
            return False
        finally:
            self.discard()


#: application_name of the LISTEN connections of processes with caches (serve, not worker).
CACHE_BUS_NAME = "promptstudio-bus-http"
_COUNT = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND datname = current_database()")


async def before_commit(session: AsyncSession) -> Settle | None:
    """Called by ``app.services.tx.perform`` at the end of a change's transaction: when it changed what the
    caches hold, NOTIFY a marker after the triggers' notices (same transaction, so delivered after them);
    once committed, the writer waits (``Settle.wait``) until every process with caches (counted by the
    application_name of their LISTEN connections) has acknowledged the marker, i.e. applied the notices
    before it: no process answers from a stale entry after the change returned."""
    live = [c for c in _LIVE if c.usable]
    if not live:
        return None
    await session.flush()
    conn = await session.connection()
    if not conn.sync_connection.info.pop(_DIRTY, False):  # type: ignore[union-attr]
        return None
    expected = (await session.execute(_COUNT, {"name": CACHE_BUS_NAME})).scalar_one()
    settle = Settle(uuid.uuid4().hex, live, int(expected))
    await publish(session, [CACHES], {"sync": settle.marker})
    return settle


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


class _Invalidator(Subscriber):
    def __init__(self, *, topic: str, caches: HotCaches):
        super().__init__(topic=topic)
        self._caches = caches

    def offer(self, notice: Notice) -> None:
        try:
            self._caches.apply(notice)
        except Exception:  # a notice we cannot read: trust nothing cached
            log.exception("cache notice %r could not be applied; clearing the caches", notice)
            self._caches.clear()


# --------------------------------------------------------------------------- lastUsedAt, written behind

_FLUSH = {  # table names from the tuple below, never from input
    table: text(f"UPDATE {table} SET last_used_at = v.t "  # noqa: S608
                "FROM unnest(CAST(:ids AS uuid[]), CAST(:ts AS timestamptz[])) AS v(id, t) "
                f"WHERE {table}.id = v.id AND ({table}.last_used_at IS NULL OR {table}.last_used_at < v.t)")
    for table in ("api_keys", "user_sessions")
}


class LastUsed:
    """lastUsedAt of API keys and sessions, noted in memory and written in batches (module docstring)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, flush_seconds: float):
        self._sessionmaker = sessionmaker
        self._flush_seconds = flush_seconds
        self._pending: dict[str, dict[uuid.UUID, datetime]] = {"api_keys": {}, "user_sessions": {}}
        self._task: asyncio.Task | None = None

    def note(self, kind: str, cred_id: uuid.UUID, at: datetime) -> None:
        """Record a use of an API key (kind "api_key") or a session (kind "user")."""
        self._pending["api_keys" if kind == "api_key" else "user_sessions"][cred_id] = at

    @property
    def pending(self) -> int:
        return sum(len(p) for p in self._pending.values())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="last-used-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # the database is away: keep the notes for the next try
                log.warning("writing lastUsedAt failed (%s); trying again in %.0f s", exc, self._flush_seconds)

    async def flush(self) -> int:
        """Write what was noted: one UPDATE per table. Returns how many tokens were written."""
        taken = {table: p for table, p in self._pending.items() if p}
        if not taken:
            return 0
        for table in taken:
            self._pending[table] = {}
        try:
            async with self._sessionmaker() as session, session.begin():
                for table, notes in taken.items():
                    await session.execute(_FLUSH[table], {"ids": list(notes), "ts": list(notes.values())})
        except BaseException:
            for table, notes in taken.items():  # put them back (newer notes win)
                self._pending[table] = {**notes, **self._pending[table]}
            raise
        return sum(len(n) for n in taken.values())
