"""Runtime hooks of the engine: pricing seed, worker pool and retention job of one process."""
from __future__ import annotations

import asyncio
import logging

from app.runtime import Runtime
from app.services.models import seed_pricing

from .pool import WorkerPool
from .retention import retention_loop

log = logging.getLogger("promptstudio.engine")


async def start(runtime: Runtime, *, http: bool = True) -> None:
    inserted = await seed_pricing(runtime.sessionmaker)
    if inserted:
        log.info("model prices: %d rows added from the shipped pricing table", inserted)
    settings = runtime.settings
    if settings.workers > 0:
        pool = WorkerPool(settings, runtime.sessionmaker, runtime.database_url)
        await pool.start()
        runtime.workers = pool
    stopping = asyncio.Event()
    task = asyncio.create_task(
        retention_loop(runtime.sessionmaker, settings.retention_interval_seconds, stopping), name="ps-retention")
    runtime.extras["retention"] = (stopping, task)


async def stop(runtime: Runtime) -> None:
    retention = runtime.extras.pop("retention", None)
    if retention is not None:
        stopping, task = retention
        stopping.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    pool = runtime.workers
    if pool is not None:
        runtime.workers = None
        await pool.stop()
