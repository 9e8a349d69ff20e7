"""Start and stop what a server process runs besides HTTP: engine, event bus, workers, periodic jobs."""
from __future__ import annotations

import logging

from app.db.engine import create_engine_and_sessionmaker
from app.runtime import Runtime
from app.settings import Settings

log = logging.getLogger("promptstudio")


async def start_runtime(settings: Settings, database_url: str | None, *, http: bool = True) -> Runtime:
    if not database_url:
        raise RuntimeError("no database: set DATABASE_URL, or start the server with `promptstudio serve`, "
                           "which runs the embedded PostgreSQL")
    engine, sessionmaker = create_engine_and_sessionmaker(database_url, settings)
    runtime = Runtime(settings=settings, database_url=database_url, engine=engine, sessionmaker=sessionmaker)
    for hook in _start_hooks():
        await hook(runtime, http=http)
    return runtime


async def stop_runtime(runtime: Runtime) -> None:
    for hook in reversed(_stop_hooks()):
        try:
            await hook(runtime)
        except Exception:  # keep stopping the rest
            log.exception("error while stopping %s", getattr(hook, "__module__", hook))
    await runtime.engine.dispose()


async def _start_bus(runtime: Runtime, *, http: bool = True) -> None:
    from app.events.bus import EventBus

    runtime.bus = EventBus(runtime.database_url, buffer=runtime.settings.subscriber_buffer)
    await runtime.bus.start()


async def _stop_bus(runtime: Runtime) -> None:
    if runtime.bus is not None:
        await runtime.bus.stop()


def _start_hooks() -> list:
    """Components that run beside HTTP, started in this order (and stopped in reverse)."""
    from app import engine
    from app.services import crypto

    return [crypto.start_hook, _start_bus, engine.start]


def _stop_hooks() -> list:
    from app import engine

    return [_stop_bus, engine.stop]
