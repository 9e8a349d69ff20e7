"""Two real server processes on one database: subscribe on A, execute on B (which runs the workers).

Events travel through PostgreSQL NOTIFY issued in the transaction that changes the execution, so
A's subscribers hear of what B's workers do.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from tests.conftest import GQL, free_port
from tests.helpers import create_project, signup
from tests.ws_client import GraphQLWebSocket

from .util import ERR, EXECUTION_UPDATED, PROJECT_EXECUTIONS, create_prompt, echo_settings, execute, sequences

ROOT = Path(__file__).resolve().parents[2]
TEXT = "".join(f"<{i:03d}>" for i in range(120))


@contextmanager
def _servers(db_url: str, tmp_path: Path, workers: list[int]):
    procs: list[tuple[subprocess.Popen, str, Path]] = []
    secret = Fernet.generate_key().decode()  # one key for both (credentials written by one, read by the other)
    try:
        for n, count in enumerate(workers):
            port = free_port()
            log = tmp_path / f"server-{n}.log"
            env = {**os.environ, "DATABASE_URL": db_url, "PROMPTSTUDIO_WORKERS": str(count),
                   "PROMPTSTUDIO_DATA_DIR": str(tmp_path), "PROMPTSTUDIO_SECRET_KEY": secret,
                   "PROMPTSTUDIO_LOG_LEVEL": "warning",
                   "PROMPTSTUDIO_POLL_SECONDS": "1"}
            with open(log, "wb") as out:
                proc = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)], cwd=ROOT,
                                        env=env, stdout=out, stderr=subprocess.STDOUT)
            procs.append((proc, f"http://127.0.0.1:{port}", log))
        yield [(p, url) for p, url, _ in procs]
    except BaseException:
        for _, _, log in procs:
            sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}\n")
        raise
    finally:
        for proc, _, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _, _ in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _ready(proc: subprocess.Popen, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the server at {url} exited with {proc.returncode}"
            try:
                if (await http.get(url + "/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} was not ready in {timeout} s")


async def _cancel(gql: GQL, token: str, eid: str) -> None:
    body = await gql(f"""mutation($input: CancelExecutionInput!) {{ cancelExecution(input: $input) {{
        execution {{ status }} {ERR} }} }}""", {"input": {"id": eid}}, token=token)
    assert body["data"]["cancelExecution"]["userErrors"] == [], body


async def test_subscribe_on_one_process_execute_on_another(db_url, tmp_path):
    with _servers(db_url, tmp_path, workers=[0, 2]) as [(proc_a, url_a), (proc_b, url_b)]:
        await asyncio.gather(_ready(proc_a, url_a), _ready(proc_b, url_b))
        async with asyncio.timeout(150):
            await _scenario(proc_a, url_a, proc_b, url_b)
        assert proc_a.poll() is None and proc_b.poll() is None


async def _scenario(proc_a, url_a, proc_b, url_b) -> None:
    async with httpx.AsyncClient(base_url=url_b, timeout=30) as http_b:
        gql_b = GQL(http_b)
        token, _ = await signup(gql_b, "ann")
        project_id = await create_project(gql_b, token, "ann-proj")
        prompt_id, _ = await create_prompt(gql_b, token, project_id, "echo", "{{text}}")
        async with GraphQLWebSocket(url_a, token=token, timeout=30) as ws:
            monitor: list[dict] = []

            async def watch_project():
                async for payload in ws.subscribe(PROJECT_EXECUTIONS, {"id": project_id}, timeout=90):
                    assert not payload.get("errors"), payload
                    monitor.append(payload["data"]["projectExecutions"])

            watcher = asyncio.create_task(watch_project())
            # a quick probe: once A reports its completion, the project subscription is surely in place
            probe = await execute(gql_b, token, prompt_id, {"text": "probe"})
            for _ in range(600):
                if any(e["execution"]["id"] == probe and e["type"] == "COMPLETED" for e in monitor):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"A never reported the probe's completion: {monitor}")
            # keep B's two workers busy, so the execution we watch waits in the queue
            blockers = [await execute(gql_b, token, prompt_id, {"text": "z" * 400},
                                      modelSettings=echo_settings(1, 100)) for _ in range(2)]
            eid = await execute(gql_b, token, prompt_id, {"text": TEXT}, modelSettings=echo_settings(10, 5))
            got: list[dict] = []
            snapshot_seen = asyncio.Event()

            async def watch_execution():
                async for payload in ws.subscribe(EXECUTION_UPDATED, {"id": eid}, timeout=90):
                    assert not payload.get("errors"), payload
                    got.append(payload["data"]["executionUpdated"])
                    snapshot_seen.set()

            follower = asyncio.create_task(watch_execution())
            await asyncio.wait_for(snapshot_seen.wait(), 30)
            for blocker in blockers:  # free the workers: B runs ours now
                await _cancel(gql_b, token, blocker)
            await asyncio.wait_for(follower, 90)

            snap, rest = got[0], got[1:]
            assert snap["type"] == "SNAPSHOT" and snap["execution"]["status"] == "PENDING"
            assert snap["sequence"] == 2  # QUEUED and its log, written by B's executePrompt
            assert sequences(got) == list(range(2, 2 + len(got)))
            types = [e["type"] for e in rest]
            assert types[0] == "STARTED" and types[-1] == "COMPLETED"
            assert set(types) == {"STARTED", "LOG", "OUTPUT_DELTA", "COMPLETED"}
            assert types.count("OUTPUT_DELTA") >= 2
            assert "".join(e["delta"] for e in rest if e["type"] == "OUTPUT_DELTA") == TEXT
            assert rest[-1]["execution"]["output"] == TEXT and rest[-1]["execution"]["status"] == "COMPLETED"
            claimed = [e["log"]["message"] for e in rest if e["type"] == "LOG"
                       and e["log"]["message"].startswith("claimed by worker")]
            assert len(claimed) == 1 and f":{proc_b.pid}:" in claimed[0]  # B's worker ran it

            # the project monitor on A saw every status change B made, and nothing else
            for _ in range(100):
                if any(e["type"] == "COMPLETED" and e["execution"]["id"] == eid for e in monitor):
                    break
                await asyncio.sleep(0.05)
            ours = [e["type"] for e in monitor if e["execution"]["id"] == eid]
            assert ours == ["QUEUED", "STARTED", "COMPLETED"]
            for blocker in blockers:
                assert [e["type"] for e in monitor if e["execution"]["id"] == blocker] == [
                    "QUEUED", "STARTED", "CANCELLED"]
            watcher.cancel()
