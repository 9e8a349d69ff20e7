"""The hot path's caches (app/services/hot.py): never a stale answer after a change committed, across processes.

Two real server processes (uvicorn, as `promptstudio serve` runs the app) on one database: B's caches are
warmed, A changes something, and right after A's mutation returned B must answer the new state — many times
over, so a race would show. Then, in one process: the generation guard (a read that began before a change
does not put its stale answer back), the fallback while the event bus is down, RESYNC clearing the caches,
and lastUsedAt written behind.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from app.services import deployments as deployments_service
from tests.helpers import kill_bus_connections

from .util import add_version, create_api_key, create_project, create_prompt, deploy, raw_uuid, signup, split

ROOT = Path(__file__).resolve().parents[2]

RESOLVE = """query($p: ID!, $k: String) { resolvePrompt(projectId: $p, name: "greeting", subjectKey: $k) {
  prompt { description status } version { id number } deployment { id } } }"""
VIEWER = "query { viewer { id username } }"
REVOKE = """mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id } userErrors { message } } }"""
KEY = """mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret apiKey { id } userErrors { message } } }"""
LOG_OUT = "mutation { logOut { ok userErrors { message } } }"
LOG_IN = """mutation($i: LogInInput!) { logIn(input: $i) { token userErrors { message } } }"""
UPDATE = """mutation($i: UpdatePromptInput!) { updatePrompt(input: $i) { userErrors { message } } }"""
ROUNDS = 40


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def server_process(db_url: str):
    """The app in a process of its own (uvicorn with the app factory, what `promptstudio serve` runs)."""
    port = _free_port()
    env = dict(os.environ, DATABASE_URL=db_url, PROMPTSTUDIO_WORKERS="0", PROMPTSTUDIO_LOG_LEVEL="warning",
               PROMPTSTUDIO_RATE_LIMIT_CAPACITY="100000000", PROMPTSTUDIO_DATA_DIR=str(ROOT / ".test-pgdata"),
               PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app_from_env",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, f"server exited with {proc.returncode}"
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "server not ready in 90 s"
                await asyncio.sleep(0.2)
            yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Client:
    """``await c(query, variables, token)`` -> (status, body)."""

    def __init__(self, http: httpx.AsyncClient):
        self.http = http

    async def __call__(self, query: str, variables: dict | None = None, token: str | None = None,
                       check: bool = True) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        resp = await self.http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
        body = resp.json()
        body["_status"] = resp.status_code
        if check:
            assert resp.status_code == 200 and "errors" not in body, body
        return body


async def test_two_processes_never_answer_stale_after_a_change(db_url):
    async with server_process(db_url) as http_a, server_process(db_url) as http_b:
        a, b = Client(http_a), Client(http_b)
        owner, _ = await signup(a, "twin")
        project = await create_project(a, owner, "twin-proj")
        prompt, v1 = await create_prompt(a, owner, project, "greeting", "v1 {{x}}")
        versions = [v1, await add_version(a, owner, prompt, "v2 {{x}}"), await add_version(a, owner, prompt, "v3 {{x}}")]
        assert (await deploy(a, owner, versions[0]))["userErrors"] == []
        key = await create_api_key(a, owner, project, ["PROMPTS_READ"])

        async def on_b(token: str = key) -> dict:
            return (await b(RESOLVE, {"p": project, "k": "subject"}, token))["data"]["resolvePrompt"]

        # Deploys and splits on A; B answers the new version right after A's mutation returned.
        for i in range(ROUNDS):
            want = versions[i % 3]
            for _ in range(2):  # warm B's caches with the current answer
                await on_b()
            if i % 2:
                assert (await deploy(a, owner, want))["userErrors"] == []
            else:
                assert (await split(a, owner, prompt, [(want, 100)]))["userErrors"] == []
            got = await on_b()
            assert got["version"]["id"] == want, (i, got)
            # the user's path too (their role is cached as well)
            got = (await b(RESOLVE, {"p": project, "k": "s"}, owner))["data"]["resolvePrompt"]
            assert got["version"]["id"] == want, (i, got)

        # Prompt changes (description, archiving) reach B at once too.
        for i in range(10):
            await on_b()
            text = f"round {i}"
            body = await a(UPDATE, {"i": {"id": prompt, "description": text,
                                          "status": "ARCHIVED" if i % 2 else "PUBLISHED"}}, owner)
            assert body["data"]["updatePrompt"]["userErrors"] == []
            got = await on_b()
            assert got["prompt"]["description"] == text and got["prompt"]["status"] == (
                "ARCHIVED" if i % 2 else "PUBLISHED"), (i, got)

        # API key revocation: B refuses at once.
        for i in range(10):
            made = (await a(KEY, {"i": {"projectId": project, "name": f"k{i}", "scopes": ["PROMPTS_READ"]}},
                            owner))["data"]["createApiKey"]
            secret = made["secret"]
            for _ in range(2):
                assert (await on_b(secret))["version"] is not None
            assert (await a(REVOKE, {"id": made["apiKey"]["id"]}, owner))["data"]["revokeApiKey"]["userErrors"] == []
            refused = await b(RESOLVE, {"p": project, "k": "s"}, secret, check=False)
            assert refused["_status"] == 401 and "revoked" in refused["errors"][0]["message"], (i, refused)

        # Logout: B refuses the session at once.
        for i in range(10):
            token = (await a(LOG_IN, {"i": {"login": "twin", "password": "correct horse battery"}}))["data"][
                "logIn"]["token"]
            for _ in range(2):
                assert (await b(VIEWER, token=token))["data"]["viewer"]["username"] == "twin"
            assert (await a(LOG_OUT, token=token))["data"]["logOut"]["ok"] is True
            refused = await b(VIEWER, token=token, check=False)
            assert refused["_status"] == 401, (i, refused)


# ------------------------------------------------------------------ one process


async def _tenant(gql):
    owner, _ = await signup(gql, "solo")
    project = await create_project(gql, owner, "solo-proj")
    prompt, v1 = await create_prompt(gql, owner, project, "greeting", "v1 {{x}}")
    v2 = await add_version(gql, owner, prompt, "v2 {{x}}")
    assert (await deploy(gql, owner, v1))["userErrors"] == []
    key = await create_api_key(gql, owner, project, ["PROMPTS_READ"])
    return owner, project, prompt, v1, v2, key


async def _resolve(gql, project, key) -> dict:
    return (await gql(RESOLVE, {"p": project, "k": "s"}, token=key))["data"]["resolvePrompt"]


async def test_a_read_that_began_before_a_change_does_not_store_its_stale_answer(app, gql, monkeypatch):
    owner, project, prompt, v1, v2, key = await _tenant(gql)
    caches = app.state.runtime.caches
    read_done, release = asyncio.Event(), asyncio.Event()
    original = deployments_service._read

    async def slow_read(*args, **kwargs):
        found = await original(*args, **kwargs)  # read before the change committed
        read_done.set()
        await release.wait()
        return found

    monkeypatch.setattr(deployments_service, "_read", slow_read)
    pending = asyncio.create_task(_resolve(gql, project, key))
    await asyncio.wait_for(read_done.wait(), 10)
    monkeypatch.setattr(deployments_service, "_read", original)
    assert (await deploy(gql, owner, v2))["userErrors"] == []  # commits; its notice bumps the generation
    release.set()
    assert (await pending)["version"]["id"] == v1  # it read before the change: fine to answer so
    assert len(caches.resolves) == 0  # but it did not store what it read
    assert (await _resolve(gql, project, key))["version"]["id"] == v2
    assert len(caches.resolves) == 1


async def _until(test, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not test():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_while_the_bus_is_down_the_caches_are_not_trusted(app, gql, db_url, sql_counter, monkeypatch):
    owner, project, prompt, v1, v2, key = await _tenant(gql)
    bus, caches = app.state.runtime.bus, app.state.runtime.caches
    await _resolve(gql, project, key)
    with sql_counter() as c:
        assert (await _resolve(gql, project, key))["version"]["id"] == v1
    assert c.count == 0, c.statements

    # The LISTEN connection dies and cannot come back for now: notices are missed meanwhile.
    original_connect = bus._connect

    async def refuse():
        raise OSError("database unreachable (test)")

    monkeypatch.setattr(bus, "_connect", refuse)
    await kill_bus_connections(db_url)
    await _until(lambda: not bus.connected)
    conn = await asyncpg.connect(db_url)
    try:  # changes whose notices nobody hears
        await conn.execute("UPDATE deployments SET version_id = $1 WHERE version_id = $2 AND retired_at IS NULL",
                           raw_uuid(v2), raw_uuid(v1))
        await conn.execute("UPDATE api_keys SET revoked_at = now()")
    finally:
        await conn.close()
    # Not trusted: the token and the answer are read again, so the revocation holds at once.
    with sql_counter() as c:
        body = await gql(RESOLVE, {"p": project, "k": "s"}, token=key, check=False)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" and c.count == 1, (body, c.statements)
    key2 = await create_api_key(gql, owner, project, ["PROMPTS_READ"], name="second")
    for _ in range(2):  # nothing is stored while the bus is down: every request reads
        with sql_counter() as c:
            assert (await _resolve(gql, project, key2))["version"]["id"] == v2
        assert c.count == 2, c.statements

    # Back: RESYNC cleared the caches; they fill and serve again.
    generation = caches.generation
    monkeypatch.setattr(bus, "_connect", original_connect)
    await _until(lambda: bus.connected, 15)
    assert caches.generation > generation and len(caches.tokens) == 0 and len(caches.resolves) == 0
    await _resolve(gql, project, key2)
    with sql_counter() as c:
        assert (await _resolve(gql, project, key2))["version"]["id"] == v2
    assert c.count == 0, c.statements


async def test_resync_after_a_reconnect_clears_the_caches(app, gql, db_url):
    owner, project, prompt, v1, v2, key = await _tenant(gql)
    bus, caches = app.state.runtime.bus, app.state.runtime.caches
    await _resolve(gql, project, key)
    assert len(caches.resolves) == 1 and len(caches.tokens) >= 1
    reconnects = bus.reconnects
    await kill_bus_connections(db_url)
    await _until(lambda: bus.reconnects > reconnects and bus.connected, 15)
    assert len(caches.resolves) == 0 and len(caches.tokens) == 0


async def test_role_changes_and_expiry_take_effect_at_once(app, gql, db_url):
    owner, project, prompt, v1, v2, key = await _tenant(gql)
    reader, _ = await signup(gql, "reader")
    body = await gql("""mutation($i: AddProjectMemberInput!) { addProjectMember(input: $i) { userErrors { message } } }""",
                     {"i": {"projectId": project, "login": "reader", "role": "VIEWER"}}, token=owner)
    assert body["data"]["addProjectMember"]["userErrors"] == []
    for _ in range(2):
        assert (await _resolve(gql, project, reader))["version"]["id"] == v1
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("DELETE FROM project_members WHERE user_id = (SELECT id FROM users WHERE username = 'reader')")
        await _until(lambda: len(app.state.runtime.caches.roles) == 0, 5)
        assert (await gql(RESOLVE, {"p": project, "k": "s"}, token=reader))["data"]["resolvePrompt"] is None
        # expiry is checked against the cached time on every use (no notice needed when it passes)
        caches = app.state.runtime.caches
        await _resolve(gql, project, key)
        entry = next(e for e in caches.tokens._d.values() if e.kind == "api_key")
        entry.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        body = await gql(RESOLVE, {"p": project, "k": "s"}, token=key, check=False)
        assert "expired" in body["errors"][0]["message"]
    finally:
        await conn.close()


async def test_last_used_is_written_behind_in_one_batch(make_app, db_url):
    async with make_app(last_used_flush_seconds=0.3, last_used_resolution_seconds=60) as app:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=30) as http:
            c = Client(http)
            owner, project, prompt, v1, v2, key = await _tenant(c)
            conn = await asyncpg.connect(db_url)
            try:
                for _ in range(5):
                    await _resolve(c, project, key)
                last_used = app.state.runtime.last_used
                deadline = time.monotonic() + 10
                while (await conn.fetchval("SELECT last_used_at FROM api_keys")) is None:
                    assert time.monotonic() < deadline, "lastUsedAt was never written"
                    await asyncio.sleep(0.05)
                first = await conn.fetchval("SELECT last_used_at FROM api_keys")
                for _ in range(3):  # within the resolution: nothing more is noted
                    await _resolve(c, project, key)
                assert last_used.pending == 0
                await asyncio.sleep(0.5)
                assert await conn.fetchval("SELECT last_used_at FROM api_keys") == first
            finally:
                await conn.close()

