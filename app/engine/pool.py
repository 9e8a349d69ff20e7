"""The worker pool of one process: N concurrent tasks running jobs of every kind it has a handler for.

* Worker tasks claim jobs (``app.services.jobs.claim_many``: priority, then age) and run them through
  their kind's handler; idle ones wait for a NOTIFY or poll every ``poll_seconds``. One task claims at a
  time, for itself and every other idle task (one transaction for the batch, never more jobs than idle
  tasks, so a process does not hoard work other processes could run); the others take theirs from the
  batch (``ready``) at once.
* One dedicated asyncpg connection LISTENs on ``ps_queue`` (wake idle workers at once) and
  ``ps_cancel`` (payload: a job id; stop its run if it is ours). If it drops, it is re-opened with
  back-off; meanwhile the workers fall back to polling, and after a reconnect everyone looks again.
* A heartbeat task extends the leases of every job this pool runs, in one statement every
  ``heartbeat_seconds``; it also notices cancels whose NOTIFY was missed and jobs taken away from
  us (lease expired while we were stalled).
* A reaper task handles expired leases of any worker (``app.services.jobs.reclaim_expired``).

A handler (``Handler``) is a kind's queue hooks (``app.services.jobs.JobHooks``) plus ``load`` (the
job's subject, as the claim left it) and ``start`` (a ``Running`` for it). Adding a kind of work is
adding a handler to :func:`handlers`.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import uuid
from typing import Any, Protocol

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import plain_url
from app.db.models import Job
from app.services import jobs
from app.settings import Settings

from .embeddings import EmbeddingHandler
from .executions import ExecutionHandler
from .running import STOP_CANCEL, STOP_LEASE_LOST, STOP_SHUTDOWN, Running
from .scoring import ScoringHandler

log = logging.getLogger("promptstudio.engine")

#: Seconds a stopping pool waits for runs to hand their jobs back before abandoning them.
STOP_GRACE_SECONDS = 10.0


class Handler(jobs.JobHooks, Protocol):
    kind: str

    async def load(self, job: Job) -> Any: ...

    def start(self, job: Job, subject: Any, worker_id: str) -> Running: ...


def handlers(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Handler]:
    """Every kind of job this process runs, by kind."""
    return {h.kind: h for h in (ExecutionHandler(settings, sessionmaker), EmbeddingHandler(settings, sessionmaker),
                                ScoringHandler(settings, sessionmaker))}


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WorkerPool:
    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], database_url: str,
                 *, concurrency: int | None = None, worker_id: str | None = None):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.database_url = database_url
        self.concurrency = settings.workers if concurrency is None else concurrency
        self.worker_id = worker_id or new_worker_id()
        self.handlers = handlers(settings, sessionmaker)
        #: job id -> its run, for the jobs this pool holds now.
        self.runs: dict[uuid.UUID, Running] = {}
        self._wakes: list[asyncio.Event] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        #: Jobs claimed for idle tasks and not yet started (with their subjects), oldest first.
        self._ready: collections.deque[tuple[Job, Any]] = collections.deque()
        self._claiming = asyncio.Lock()
        self._busy = 0
        #: Wake-ups so far (NOTIFYs, reconnects, reaped leases), and their count when the last claim that found
        #: fewer jobs than it asked for began: a task woken by no later one has nothing to look for.
        self._wakeups = 0
        self._drained_at = -1

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._stopping.clear()
        await self._connect_listener()
        self._tasks.append(asyncio.create_task(self._listener_supervisor(), name="ps-engine-listener"))
        self._tasks.append(asyncio.create_task(self._heartbeat_loop(), name="ps-engine-heartbeat"))
        self._tasks.append(asyncio.create_task(self._reaper_loop(), name="ps-engine-reaper"))
        for i in range(self.concurrency):
            wake = asyncio.Event()
            wake.set()  # look at the queue right away
            self._wakes.append(wake)
            self._tasks.append(asyncio.create_task(self._worker_loop(wake), name=f"ps-engine-worker-{i}"))
        log.info("workers started: %d tasks as %s, running jobs of kinds %s", self.concurrency, self.worker_id,
                 ", ".join(self.handlers))

    async def stop(self) -> None:
        """Stop claiming; runs in progress hand their jobs back to the queue."""
        self._stopping.set()
        for run in list(self.runs.values()):
            run.request_stop(STOP_SHUTDOWN)
        self.wake_all()
        workers = [t for t in self._tasks if t.get_name().startswith("ps-engine-worker")]
        if workers:
            _, pending = await asyncio.wait(workers, timeout=STOP_GRACE_SECONDS)
            for t in pending:
                t.cancel()
        for t in self._tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._ready:  # claimed for a task that is gone: back to the queue, the attempt not counted
            job, _ = self._ready.popleft()
            try:
                await jobs.release(self.sessionmaker, job.id, self.worker_id, self.handlers[job.kind],
                                   "the worker is stopping")
            except Exception:
                log.exception("could not hand job %s back; its lease will expire", job.id)
        self._tasks.clear()
        self._wakes.clear()
        await self._close_listener()
        log.info("workers stopped (%s)", self.worker_id)

    def wake_all(self) -> None:
        self._wakeups += 1
        for wake in self._wakes:
            wake.set()

    # ------------------------------------------------------------------ LISTEN

    async def _connect_listener(self) -> bool:
        try:
            conn = await asyncpg.connect(plain_url(self.database_url),
                                         server_settings={"application_name": "promptstudio-worker"})
            await conn.add_listener(jobs.QUEUE_CHANNEL, self._on_queue)
            await conn.add_listener(jobs.CANCEL_CHANNEL, self._on_cancel)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("workers cannot LISTEN (%s); polling every %.1f s until it works",
                        exc, self.settings.poll_seconds)
            return False
        self._listener = conn
        self._listening.set()
        return True

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        self._listening.clear()
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:
                conn.terminate()

    async def _listener_supervisor(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            await asyncio.sleep(1.0 if self._listener is not None else backoff)
            conn = self._listener
            if conn is not None and not conn.is_closed():
                backoff = 0.5
                continue
            self._listening.clear()
            self._listener = None
            if await self._connect_listener():
                log.info("workers LISTEN again; looking for missed work")
                self.wake_all()
                backoff = 0.5
            else:
                backoff = min(backoff * 2, 30.0)

    def _on_queue(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        self.wake_all()

    def _on_cancel(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            job_id = uuid.UUID(payload)
        except ValueError:
            return
        run = self.runs.get(job_id)
        if run is not None:
            run.request_stop(STOP_CANCEL)

    # ------------------------------------------------------------------ loops

    async def _worker_loop(self, wake: asyncio.Event) -> None:
        polled = True  # the first look, and every look after a poll interval, claims whatever is due
        while not self._stopping.is_set():
            wake.clear()
            try:
                job, run = await self._next(None if polled else self._wakeups)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not claim a job; trying again in %.1f s", self.settings.poll_seconds)
                job = run = None
            if job is None or run is None:
                try:
                    await asyncio.wait_for(wake.wait(), self.settings.poll_seconds)
                    polled = False
                except TimeoutError:
                    polled = True  # jobs whose run_after came wake nobody
                continue
            polled = False
            self.runs[job.id] = run
            if self._stopping.is_set():
                run.request_stop(STOP_SHUTDOWN)
            self._busy += 1
            try:
                await run.execute()
            finally:
                self._busy -= 1
                self.runs.pop(job.id, None)

    async def _next(self, woken_at: int | None) -> tuple[Job | None, Running | None]:
        """A job and its run: from the batch another task claimed, or claimed now (with jobs for the other idle
        tasks, who are woken to take them). ``woken_at``: the wake-ups count when this task was woken (None: it
        polled), to skip a claim that one begun since then has made pointless."""
        async with self._claiming:
            pointless = woken_at is not None and self._drained_at >= woken_at
            if not self._ready and not self._stopping.is_set() and not pointless:
                idle = self.concurrency - self._busy
                started_at = self._wakeups
                batch = await jobs.claim_many(self.sessionmaker, self.worker_id, self.handlers,
                                              self.settings.lease_seconds, max(1, idle))
                if batch.short:
                    self._drained_at = max(self._drained_at, started_at)
                for job in batch.jobs:
                    subject = await self.handlers[job.kind].load(job)
                    if subject is not None:  # deleted between the claim and now: the reaper tidies up
                        self._ready.append((job, subject))
                if len(self._ready) > 1:
                    self.wake_all()
            if not self._ready:
                return None, None
            job, subject = self._ready.popleft()
        return job, self.handlers[job.kind].start(job, subject, self.worker_id)

    async def _heartbeat_loop(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(self.settings.heartbeat_seconds)
            ids = list(self.runs) + [job.id for job, _ in self._ready]
            if not ids:
                continue
            try:
                states = await jobs.extend_leases(self.sessionmaker, self.worker_id, ids, self.settings.lease_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("heartbeat failed; leases were not extended")
                continue
            for job_id, state in states.items():
                run = self.runs.get(job_id)
                if run is None:
                    continue
                if not state.held:
                    run.request_stop(STOP_LEASE_LOST)
                elif state.cancel_requested:
                    run.request_stop(STOP_CANCEL)

    async def _reaper_loop(self) -> None:
        interval = max(0.25, min(self.settings.lease_seconds / 4, self.settings.poll_seconds))
        while not self._stopping.is_set():
            try:
                handled = await jobs.reclaim_expired(self.sessionmaker, self.handlers)
                if handled:
                    self.wake_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not reclaim expired leases")
            await asyncio.sleep(interval)
