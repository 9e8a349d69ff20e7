"""``promptstudio worker``: execution workers without HTTP, next to any number of servers.

``run(settings)`` starts the runtime (engine, pricing seed, ``settings.workers`` execution tasks,
retention) on ``settings.database_url`` and runs until SIGINT or SIGTERM, then stops gracefully:
executions in progress are handed back to the queue for another worker.
"""
from __future__ import annotations

import asyncio
import logging
import signal

from app.settings import Settings, SettingsError

log = logging.getLogger("promptstudio.engine")


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run workers until a signal (or ``stop``, for embedding and tests) says to stop."""
    from app.lifecycle import start_runtime, stop_runtime

    if settings.workers < 1:
        raise SettingsError("PROMPTSTUDIO_WORKERS is 0: a worker process needs at least 1 execution task")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: dict[int, object] = {}
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
            log.info("worker %s running %d execution tasks; stop with Ctrl-C or SIGTERM",
                     runtime.workers.worker_id, settings.workers)
            await stop.wait()
            log.info("stopping: executions in progress go back to the queue")
        finally:
            await stop_runtime(runtime)
            from app.providers import aclose_providers

            await aclose_providers()  # this process's provider connection pools
    finally:
        for sig, previous in installed.items():
            loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)  # e.g. the CLI's handler, for its own cleanup
