"""Workers: a real worker process killed with SIGKILL, lease expiry and attempts, cancelling, graceful
stop, and NOTIFY wake-ups."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.lifecycle import run_worker
from app.settings import Settings, SettingsError

from .util import ERR, db_execute, db_fetch, execute_ok, get_execution, raw_uuid, signup, tenant, wait_for

ROOT = Path(__file__).resolve().parents[2]
SLOW = {"extra": {"chunkSize": 1, "chunkDelayMs": 60}}
FAST_LEASES = dict(lease_seconds=2, heartbeat_seconds=0.5, poll_seconds=0.5)
CANCEL = f"""mutation($id: ID!) {{ cancelExecution(input: {{id: $id}}) {{
  execution {{ id status output startedAt completedAt cancelRequestedAt }} {ERR} }} }}"""


def start_worker_process(db_url: str, workers: int = 2) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=db_url, PROMPTSTUDIO_WORKERS=str(workers),
               PROMPTSTUDIO_LEASE_SECONDS="2", PROMPTSTUDIO_HEARTBEAT_SECONDS="0.5",
               PROMPTSTUDIO_POLL_SECONDS="0.5", PROMPTSTUDIO_DATA_DIR=str(ROOT / ".test-pgdata"),
               PROMPTSTUDIO_LOG_LEVEL="warning")
    return subprocess.Popen([sys.executable, "-m", "app", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def event_types(db_url, eid) -> list[str]:
    rows = await db_fetch(db_url, "SELECT seq, type FROM execution_events WHERE execution_id = $1 ORDER BY seq",
                          raw_uuid(eid))
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    return [r["type"] for r in rows]


async def test_a_killed_worker_process_leaves_a_lease_that_expires(gql, make_app, db_url):
    text = "the quick brown fox jumps"
    t = await tenant(gql, "ann", template=text + "{{name}}")
    retried = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "!"}, modelSettings=SLOW)
    doomed = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "?"}, modelSettings=SLOW)
    await db_execute(db_url, "UPDATE jobs SET max_attempts = 1 WHERE subject_id = $1", raw_uuid(doomed))

    proc = start_worker_process(db_url)
    try:
        for eid in (retried, doomed):
            await wait_for(gql, t.token, eid, ("RUNNING",), timeout=20, predicate=lambda e: bool(e["output"]))
        rows = await db_fetch(db_url, "SELECT worker_id, status, kind FROM jobs WHERE kind = 'execution'")
        assert len(rows) == 2 and all(f":{proc.pid}:" in r["worker_id"] for r in rows)  # the process holds both
        assert {(r["status"], r["kind"]) for r in rows} == {("RUNNING", "execution")}
        os.kill(proc.pid, signal.SIGKILL)
        assert await asyncio.to_thread(proc.wait, 10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()

    partial = (await get_execution(gql, t.token, retried))["output"]
    assert partial and partial != text + "!"
    async with make_app(workers=1, **FAST_LEASES):
        done = await wait_for(gql, t.token, retried, timeout=15)
        failed = await wait_for(gql, t.token, doomed, timeout=15)
    assert done["status"] == "COMPLETED" and done["attempts"] == 2
    assert done["output"] == text + "!"  # the second attempt started over
    assert failed["status"] == "FAILED" and failed["attempts"] == 1
    assert failed["error"] == "gave up after 1 attempt: the worker running it stopped (lease expired)"
    assert failed["completedAt"] >= failed["startedAt"]

    types = await event_types(db_url, retried)
    assert types[0] == "QUEUED" and types[-1] == "COMPLETED"
    assert types.count("STARTED") == 2 and types.count("QUEUED") == 2
    logs = [r["message"] for r in await db_fetch(
        db_url, "SELECT message FROM execution_logs WHERE execution_id = $1 ORDER BY timestamp", raw_uuid(retried))]
    assert any("(lease expired); queued again for attempt 2 of 3" in m for m in logs)
    types = await event_types(db_url, doomed)
    assert types[-1] == "FAILED" and types[-2] == "LOG"
    assert await db_fetch(db_url, "SELECT id FROM jobs WHERE kind = 'execution'") == []  # finished work leaves no job behind


async def test_attempts_exhausted_and_cancel_of_a_dead_workers_execution(gql, make_app, db_url):
    t = await tenant(gql, "bob")
    stuck = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
    cancelled = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "b"})
    # As a worker that died on its third attempt would leave them:
    await db_execute(db_url, "UPDATE executions SET status = 'RUNNING', started_at = now() - interval '1 minute', "
                             "attempts = 3")
    await db_execute(db_url, "UPDATE jobs SET status = 'RUNNING', attempts = 3, worker_id = 'dead:1:x', "
                             "lease_expires_at = now() - interval '1 second'")
    await db_execute(db_url, "UPDATE executions SET cancel_requested_at = now(), attempts = 1 WHERE id = $1",
                     raw_uuid(cancelled))
    await db_execute(db_url, "UPDATE jobs SET cancel_requested_at = now(), attempts = 1 WHERE subject_id = $1",
                     raw_uuid(cancelled))
    async with make_app(workers=1, **FAST_LEASES):
        e = await wait_for(gql, t.token, stuck, timeout=5)
        c = await wait_for(gql, t.token, cancelled, timeout=5)
    assert e["status"] == "FAILED" and e["attempts"] == 3
    assert e["error"] == "gave up after 3 attempts: the worker running it stopped (lease expired)"
    assert e["validationStatus"] == "SKIPPED"
    assert c["status"] == "CANCELLED" and c["attempts"] == 1


async def test_cancel_pending(gql, db_url):
    t = await tenant(gql, "cyd")
    eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
    body = await gql(CANCEL, {"id": eid}, token=t.token)
    p = body["data"]["cancelExecution"]
    assert p["userErrors"] == []
    e = p["execution"]
    assert e["status"] == "CANCELLED" and e["startedAt"] == e["completedAt"] == e["cancelRequestedAt"]
    again = (await gql(CANCEL, {"id": eid}, token=t.token))["data"]["cancelExecution"]
    assert [(x["code"], x["field"]) for x in again["userErrors"]] == [("CONFLICT", ["input", "id"])]
    assert await event_types(db_url, eid) == ["QUEUED", "LOG", "LOG", "CANCELLED"]
    assert await db_fetch(db_url, "SELECT id FROM jobs WHERE kind = 'execution'") == []  # its job went with it
    other, _ = await signup(gql, "oth")
    p = (await gql(CANCEL, {"id": eid}, token=other))["data"]["cancelExecution"]
    assert [(x["code"], x["field"]) for x in p["userErrors"]] == [("NOT_FOUND", ["input", "id"])]
    rows = await db_fetch(db_url, "SELECT result FROM audit_events WHERE action = 'execution.cancel' "
                                  "ORDER BY created_at")
    assert [r["result"] for r in rows] == ["SUCCESS", "FAILURE", "FAILURE"]


async def test_cancel_running_stops_the_stream_promptly(gql, make_app, db_url):
    t = await tenant(gql, "deb", template="x" * 400 + "{{name}}")
    async with make_app(workers=1, **FAST_LEASES):
        eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"},
                               modelSettings={"extra": {"chunkSize": 1, "chunkDelayMs": 20}})
        await wait_for(gql, t.token, eid, ("RUNNING",), predicate=lambda e: bool(e["output"]))
        started = time.monotonic()
        p = (await gql(CANCEL, {"id": eid}, token=t.token))["data"]["cancelExecution"]
        took = time.monotonic() - started
        # the mutation waits (up to 3 s) for the worker: CANCELLED in the payload means it stopped by then
        assert p["userErrors"] == [] and p["execution"]["status"] == "CANCELLED", (p, took)
        output = p["execution"]["output"]
        assert 0 < len(output) < 401
        await asyncio.sleep(0.3)
        e = await get_execution(gql, t.token, eid)
    assert e["output"] == output and e["status"] == "CANCELLED"  # nothing more was written
    assert e["usage"]["outputTokens"] > 0 and e["validationStatus"] == "SKIPPED"
    types = await event_types(db_url, eid)
    assert types[-1] == "CANCELLED" and types.count("CANCELLED") == 1
    usage = await db_fetch(db_url, "SELECT tokens_reported FROM llm_usage WHERE execution_id = $1", raw_uuid(eid))
    assert [u["tokens_reported"] for u in usage] == [False]


async def test_a_stopping_server_hands_its_executions_back(gql, make_app, db_url):
    t = await tenant(gql, "eve", template="y" * 100 + "{{name}}")
    async with make_app(workers=1, **FAST_LEASES):
        eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"},
                               modelSettings={"extra": {"chunkSize": 5, "chunkDelayMs": 40}})
        await wait_for(gql, t.token, eid, ("RUNNING",), predicate=lambda e: bool(e["output"]))
    e = await get_execution(gql, t.token, eid)
    assert e["status"] == "PENDING" and e["attempts"] == 0 and e["output"] is None and e["startedAt"] is None
    async with make_app(workers=1, **FAST_LEASES):
        e = await wait_for(gql, t.token, eid)
    assert e["status"] == "COMPLETED" and e["attempts"] == 1 and e["output"] == "y" * 100 + "a"


async def test_notify_wakes_idle_workers_without_polling(gql, make_app, db_url):
    t = await tenant(gql, "fay")
    async with make_app(workers=2, poll_seconds=60):
        await asyncio.sleep(0.3)  # the workers have looked at the empty queue and sleep on LISTEN
        started = time.monotonic()
        eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"},
                               modelSettings={"extra": {"chunkDelayMs": 0}})
        e = await wait_for(gql, t.token, eid, timeout=5)
        took = time.monotonic() - started
    assert e["status"] == "COMPLETED" and took < 5.0  # far below the 60 s poll: NOTIFY woke a worker


async def test_worker_command_stops_gracefully_on_sigterm(gql, db_url):
    t = await tenant(gql, "gil", template="z" * 60 + "{{name}}")
    eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"}, modelSettings=SLOW)
    proc = start_worker_process(db_url, workers=1)
    try:
        await wait_for(gql, t.token, eid, ("RUNNING",), timeout=20, predicate=lambda e: bool(e["output"]))
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
    e = await get_execution(gql, t.token, eid)
    assert e["status"] == "PENDING" and e["attempts"] == 0 and e["output"] is None
    logs = [r["message"] for r in await db_fetch(
        db_url, "SELECT message FROM execution_logs WHERE execution_id = $1 ORDER BY timestamp", raw_uuid(eid))]
    assert logs[-1] == "the worker is stopping; handed back to the queue (this attempt is not counted)"


async def test_a_worker_process_needs_at_least_one_task(db_url):
    with pytest.raises(SettingsError, match="PROMPTSTUDIO_WORKERS is 0"):
        await run_worker(Settings(workers=0, database_url=db_url))
