"""Start and stop what a server process runs besides HTTP: engine, event bus, workers, periodic jobs;
and ``run_worker``, the whole of a ``promptstudio worker`` process.

``start_runtime`` builds the database engine and runs the start hooks in order (secret key check,
sandbox workers, embedding model workers, event bus, engine: pricing seed, worker pool, retention);
``stop_runtime`` runs the stop hooks in reverse and disposes of the engine.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from app import embeddings, engine, sandbox
from app.db.engine import create_engine_and_sessionmaker
from app.events.bus import EventBus
from app.providers import aclose_providers
from app.runtime import Runtime
from app.services import crypto
from app.services.hot import CACHE_BUS_NAME, HotCaches, LastUsed, watch_writes
from app.settings import Settings, SettingsError

log = logging.getLogger("promptstudio")


async def start_runtime(settings: Settings, database_url: str | None, *, http: bool = True) -> Runtime:
    if not database_url:
        raise RuntimeError("no database: set DATABASE_URL, or start the server with `promptstudio serve`, "
                           "which runs the embedded PostgreSQL")
    db_engine, sessionmaker = create_engine_and_sessionmaker(database_url, settings)
    runtime = Runtime(settings=settings, database_url=database_url, engine=db_engine, sessionmaker=sessionmaker)
    for hook in START_HOOKS:
        await hook(runtime, http=http)
    return runtime


async def stop_runtime(runtime: Runtime) -> None:
    for hook in reversed(STOP_HOOKS):
        try:
            await hook(runtime)
        except Exception:  # keep stopping the rest
            log.exception("error while stopping %s", getattr(hook, "__module__", hook))
    await runtime.engine.dispose()


async def _start_sandbox(runtime: Runtime, *, http: bool = True) -> None:
    await sandbox.start(runtime.settings)


async def _stop_sandbox(runtime: Runtime) -> None:
    await sandbox.stop()


async def _start_bus(runtime: Runtime, *, http: bool = True) -> None:
    settings = runtime.settings
    # The live feeds' own small pool: a thousand subscribers never take the requests' connections.
    live_engine, live_sessions = create_engine_and_sessionmaker(
        runtime.database_url, settings.replace(db_pool_size=settings.live_pool_size, db_max_overflow=0))
    runtime.extras["live_engine"] = live_engine
    runtime.bus = EventBus(runtime.database_url, buffer=settings.subscriber_buffer, sessionmaker=live_sessions,
                           application_name=CACHE_BUS_NAME if http else "promptstudio-bus")
    await runtime.bus.start()


async def _stop_bus(runtime: Runtime) -> None:
    if runtime.bus is not None:
        await runtime.bus.stop()
    live_engine = runtime.extras.pop("live_engine", None)
    if live_engine is not None:
        await live_engine.dispose()


async def _start_hot(runtime: Runtime, *, http: bool = True) -> None:
    """The hot path's caches, kept true by the bus (app.services.hot), and the lastUsedAt writer."""
    s = runtime.settings
    runtime.last_used = LastUsed(runtime.sessionmaker, flush_seconds=s.last_used_flush_seconds)
    runtime.last_used.start()
    if http and runtime.bus is not None:
        runtime.caches = HotCaches(token_size=s.token_cache_size, role_size=s.role_cache_size,
                                   resolve_size=s.resolve_cache_size, bus=runtime.bus)
        runtime.bus.attach(runtime.caches.subscriber())
    watch_writes(runtime.engine.sync_engine)


async def _stop_hot(runtime: Runtime) -> None:
    if runtime.last_used is not None:
        await runtime.last_used.stop()  # writes what is still noted


async def _start_embeddings(runtime: Runtime, *, http: bool = True) -> None:
    await embeddings.start(runtime.settings, queries=http, documents=runtime.settings.workers > 0)


async def _stop_embeddings(runtime: Runtime) -> None:
    await embeddings.stop()  # the last runtime stops the built-in models' worker processes


#: Components that run beside HTTP, started in this order (and stopped in reverse).
START_HOOKS: list[Callable[..., Awaitable[None]]] = [crypto.start_hook, _start_sandbox, _start_embeddings, _start_bus,
                                                     _start_hot, engine.start]
STOP_HOOKS: list[Callable[[Runtime], Awaitable[None]]] = [_stop_sandbox, _stop_embeddings, _stop_bus, _stop_hot,
                                                          engine.stop]


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """``promptstudio worker``: workers without HTTP, until SIGINT or SIGTERM (or ``stop``, for embedding
    and tests) says to stop; then jobs in progress are handed back to the queue for another worker."""
    if settings.workers < 1:
        raise SettingsError("PROMPTSTUDIO_WORKERS is 0: a worker process needs at least 1 execution task")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, stop.set)
            installed[sig] = previous
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            pass
    try:
        runtime = await start_runtime(settings, settings.database_url, http=False)
        try:
            log.info("worker %s running %d worker tasks; stop with Ctrl-C or SIGTERM",
                     runtime.workers.worker_id, settings.workers)
            await stop.wait()
            log.info("stopping: jobs in progress go back to the queue")
        finally:
            await stop_runtime(runtime)
            await aclose_providers()  # this process's provider connection pools
    finally:
        for sig, previous in installed.items():
            loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)  # e.g. the CLI's handler, for its own cleanup
