"""The pool of sandbox worker processes, seen from the server's event loop.

``Pool.run(task, args, limit_seconds=…, what=…)`` hands one task to an idle worker and awaits its answer
without blocking the loop (asyncio subprocess pipes). A worker that is late is killed (SIGKILL) and
replaced; one that ran out of memory answers so and is replaced; one that died is replaced. The
caller gets a :class:`SandboxError` that says which, in words for people ("the template took longer
than 2 s"). A caller that is cancelled (a client that went away, cancelExecution) kills the worker
it was waiting for, so abandoned work stops at once.

Workers are started when the pool starts (``start``: the server's start hook, so the first request
does not wait for a Python to boot) or on first use, and live until ``close``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from . import codec

log = logging.getLogger("promptstudio.sandbox")

#: Seconds a new worker may take to start (import its libraries) before it counts as broken.
START_SECONDS = 30.0
#: Environment variables a worker gets: enough to run Python, nothing secret.
_ENV_KEEP = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "VIRTUAL_ENV", "HOME", "TMPDIR")


class SandboxError(Exception):
    """Untrusted work did not finish: ``kind`` is timeout, memory, output or crashed; the message says
    what happened in words for the person who wrote the template or rule."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(eq=False)
class _Worker:
    process: asyncio.subprocess.Process
    started: float

    @property
    def pid(self) -> int:
        return self.process.pid

    async def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.process.wait(), 5)

    async def read_frame(self, max_reply: int) -> Any:
        stdout = self.process.stdout
        assert stdout is not None
        header = await stdout.readexactly(codec.HEADER.size)
        (size,) = codec.HEADER.unpack(header)
        if size > max_reply + 1024:
            raise SandboxError("output", f"the result is {size} bytes; at most {max_reply} are allowed")
        return json.loads(await stdout.readexactly(size))


class Pool:
    """``size`` worker processes, each limited to ``memory_mb`` more memory than it starts with."""

    def __init__(self, size: int, memory_mb: int, max_reply_bytes: int):
        self.size = size
        self.memory_mb = memory_mb
        self.max_reply_bytes = max_reply_bytes
        self._idle: asyncio.Queue[_Worker] | None = None
        self._starting = 0
        self._workers: set[_Worker] = set()
        #: Workers replaced so far (killed when late, out of memory, died): for tests and metrics.
        self.replaced = 0

    @property
    def busy(self) -> int:
        """Workers running a task now."""
        idle = self._idle.qsize() if self._idle is not None else 0
        return max(0, len(self._workers) - idle)

    @property
    def workers(self) -> int:
        """Workers alive (idle or busy)."""
        return len(self._workers)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the workers now (they are otherwise started on first use)."""
        self._ensure_queue()
        missing = self.size - len(self._workers) - self._starting
        await asyncio.gather(*(self._add() for _ in range(max(0, missing))))

    async def close(self) -> None:
        """Stop every worker (idle or busy); the pool can be started again."""
        workers, self._workers = list(self._workers), set()
        self._idle = None
        for worker in workers:
            stdin = worker.process.stdin
            if stdin is not None:
                stdin.close()  # an idle worker reads EOF and ends
        await asyncio.gather(*(self._wait_or_kill(w) for w in workers))

    @staticmethod
    async def _wait_or_kill(worker: _Worker) -> None:
        try:
            await asyncio.wait_for(worker.process.wait(), 2)
        except TimeoutError:
            await worker.kill()

    def _ensure_queue(self) -> asyncio.Queue[_Worker]:
        if self._idle is None:
            self._idle = asyncio.Queue()
        return self._idle

    async def _spawn(self) -> _Worker:
        env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # import app as this process does
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.sandbox.worker", str(self.memory_mb * 1024 * 1024),
            str(self.max_reply_bytes), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
        worker = _Worker(process, time.monotonic())
        try:
            ready = await asyncio.wait_for(worker.read_frame(self.max_reply_bytes), START_SECONDS)
        except BaseException:
            await worker.kill()
            raise
        if ready[0] != "ready":
            await worker.kill()
            raise RuntimeError(f"a sandbox worker did not start: {ready!r}")
        return worker

    async def _add(self) -> None:
        self._starting += 1
        try:
            worker = await self._spawn()
        except Exception:
            log.exception("could not start a sandbox worker")
            raise
        finally:
            self._starting -= 1
        self._workers.add(worker)
        self._ensure_queue().put_nowait(worker)

    def _replace(self, worker: _Worker) -> None:
        """Kill a worker that cannot be used again, at once (SIGKILL), and start another in its place. The
        dead one is reaped and its successor started in the background: the caller (a request that was
        cancelled, say) does not wait for either."""
        self._workers.discard(worker)
        self.replaced += 1
        if worker.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.process.kill()
        task = asyncio.get_running_loop().create_task(self._reap_and_add(worker))
        task.add_done_callback(_log_failure)

    async def _reap_and_add(self, worker: _Worker) -> None:
        await worker.kill()  # already killed: waits for it to exit
        await self._add()

    # ------------------------------------------------------------------ work

    async def run(self, task: str, args: list[Any], *, limit_seconds: float, what: str, grace: float = 0.0) -> Any:
        """Run ``task`` with ``args`` in a worker: killed after ``limit_seconds`` (+ ``grace``, time for the
        engines' own limits to stop it and say so); ``what`` names the work in messages.

        Raises SandboxError (late, out of memory, too much output, died) or RuntimeError for a task
        that failed with an exception (a bug: the tasks report problems in their results).
        """
        idle = self._ensure_queue()
        if len(self._workers) + self._starting < self.size:
            await self._add()
        worker = await idle.get()
        if worker.process.returncode is not None:  # died while idle
            self._replace(worker)
            return await self.run(task, args, limit_seconds=limit_seconds, what=what, grace=grace)
        healthy = False
        try:
            stdin = worker.process.stdin
            assert stdin is not None
            stdin.write(codec.frame([task, args]))
            await stdin.drain()
            reply = await asyncio.wait_for(worker.read_frame(self.max_reply_bytes), limit_seconds + grace)
            healthy = reply[0] in ("ok", "error", "output")
        except TimeoutError:
            log.warning("sandbox: %s took longer than %g s; worker %d killed", what, limit_seconds + grace, worker.pid)
            raise SandboxError("timeout", f"the {what} took longer than {limit_seconds:g} s") from None
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            code = await _exit_code(worker)
            log.warning("sandbox: worker %d died running the %s (exit %s)", worker.pid, what, code)
            raise SandboxError("crashed", f"the {what} could not finish: it used more than {self.memory_mb} MB "
                                          "of memory or crashed the process running it") from None
        finally:
            if healthy:
                idle.put_nowait(worker)
            else:  # late, dead, cancelled, or it asked to be replaced
                self._replace(worker)
        kind, value = reply
        if kind == "ok":
            return value
        if kind == "memory":
            raise SandboxError("memory", f"the {what} used more than {self.memory_mb} MB of memory")
        if kind == "output":
            raise SandboxError("output", f"the {what} produced too much: {value}")
        raise RuntimeError(f"sandbox task {task} failed: {value}")


async def _exit_code(worker: _Worker) -> int | None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(worker.process.wait(), 1)
    return worker.process.returncode


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("sandbox: could not start a replacement worker: %s", task.exception())
