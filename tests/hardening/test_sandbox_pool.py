"""The sandbox pool itself: real worker processes, real limits set by the operating system."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from app.sandbox import Pool, SandboxError


@pytest.fixture
async def pool():
    p = Pool(size=1, memory_mb=128, max_reply_bytes=100_000)
    await p.start()
    yield p
    await p.close()


async def test_a_late_task_is_killed_its_worker_replaced_and_the_pool_goes_on(pool):
    (first,) = [w.pid for w in pool._workers]
    started = time.monotonic()
    with pytest.raises(SandboxError) as caught:
        await pool.run("sleep", [30], limit_seconds=0.3, what="template")
    assert caught.value.kind == "timeout" and caught.value.message == "the template took longer than 0.3 s"
    assert time.monotonic() - started < 2
    assert pool.replaced == 1
    assert await pool.run("sleep", [0.01], limit_seconds=5, what="x") == 0.01  # a new worker answers
    assert first not in [w.pid for w in pool._workers]
    with pytest.raises(ProcessLookupError):
        os.kill(first, 0)  # the late one is gone


async def test_memory_beyond_the_cap_fails_the_task_not_the_server(pool):
    with pytest.raises(SandboxError) as caught:
        await pool.run("allocate", [512], limit_seconds=10, what="validation")
    assert caught.value.kind == "memory"
    assert caught.value.message == "the validation used more than 128 MB of memory"
    assert await pool.run("allocate", [32], limit_seconds=10, what="x") == 32 * 2**20  # within the cap: fine


async def test_a_reply_too_big_is_refused(pool):
    with pytest.raises(SandboxError) as caught:
        await pool.run("render", [{"kind": "TEXT", "format": "MUSTACHE", "template": "x" * 200_000,
                                   "messages": None, "system_prompt": None, "variables": [],
                                   "model_settings": None, "output_schema": None}, {},
                                  {"max_output_chars": 1_000_000}], limit_seconds=10, what="template")
    assert caught.value.kind == "output" and "at most 100000" in caught.value.message


async def test_a_cancelled_caller_kills_the_work_it_waited_for(pool):
    task = asyncio.create_task(pool.run("sleep", [30], limit_seconds=60, what="x"))
    await asyncio.sleep(0.3)
    (busy,) = [w.pid for w in pool._workers]
    assert pool.busy == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(busy, 0)
    assert pool.replaced == 1 and await pool.run("sleep", [0], limit_seconds=5, what="x") == 0


async def test_a_worker_that_dies_is_replaced(pool):
    (pid,) = [w.pid for w in pool._workers]
    task = asyncio.create_task(pool.run("sleep", [30], limit_seconds=60, what="template"))
    await asyncio.sleep(0.3)
    os.kill(pid, 9)
    with pytest.raises(SandboxError) as caught:
        await task
    assert caught.value.kind == "crashed"
    assert await pool.run("sleep", [0], limit_seconds=5, what="x") == 0


async def test_workers_get_no_secrets_and_write_no_files(pool, tmp_path, monkeypatch):
    """Defence in depth: were a template ever to escape its sandboxed engine, the process it runs in has
    no credentials in its environment and may not write files."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    monkeypatch.setenv("DATABASE_URL", "postgresql://secret@db/x")
    await pool.close()
    await pool.start()  # new workers, started with the variables above set here
    (pid,) = [w.pid for w in pool._workers]
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read().decode()
    assert "sk-must-not-leak" not in environ and "DATABASE_URL" not in environ
    with open(f"/proc/{pid}/limits") as f:
        limits = f.read()
    assert any(line.startswith("Max file size") and " 0 " in line for line in limits.splitlines()), limits
