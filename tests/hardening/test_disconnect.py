"""A client that hangs up: the work of its request is cancelled (app/http/disconnect.py).

Real uvicorn servers (the ``live`` fixture) and raw sockets, closed while the server works.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from urllib.parse import urlencode, urlsplit

import asyncpg
import httpx
import pytest

from app import sandbox
from app.sandbox import codec
from app.sandbox.pool import Pool
from app.http.disconnect import CancelOnDisconnect
from tests.helpers import create_project, signup

#: A Jinja2 template that takes a good part of a second to render (250,000 loop steps).
SLOW = "{% for i in range(500) %}{% for j in range(500) %}{{ j }}{% endfor %}{% endfor %}"
RENDERS = 24  # 24,049 points: within the default budget (a render weighs 1,000)


@pytest.fixture
def settings(settings):
    # The renders below are metered (they spend from the rate limit); room for them all.
    return settings.replace(rate_limit_capacity=1_000_000)


async def _prompt(gql, token: str, project_id: str, template: str) -> str:
    body = await gql("""mutation($i: CreatePromptInput!) { createPrompt(input: $i) {
        version { id } userErrors { code message } } }""",
                     {"i": {"projectId": project_id, "name": "slow",
                            "content": {"template": template, "format": "JINJA2"}}}, token=token)
    assert body["data"]["createPrompt"]["userErrors"] == [], body
    return body["data"]["createPrompt"]["version"]["id"]


async def _open(url: str, query: str, variables: dict, token: str, method: str = "POST"
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A GraphQL request on a raw connection (to hang up on it): POST with a JSON body, or GET."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = f"Host: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
    if method == "GET":
        target = "/graphql?" + urlencode({"query": query, "variables": json.dumps(variables)})
        writer.write(f"GET {target} HTTP/1.1\r\n{head}\r\n".encode())
    else:
        body = json.dumps({"query": query, "variables": variables}).encode()
        writer.write(f"POST /graphql HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    return reader, writer


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_renders_stop_when_the_client_hangs_up(gql, live, monkeypatch, caplog, method):
    token, _ = await signup(gql, "ada")
    project_id = await create_project(gql, token, "proj")
    version_id = await _prompt(gql, token, project_id, SLOW)

    # Renders run in the sandbox's worker processes: a render starts when its task is written to a
    # worker, and ends when the server stops waiting for it (answered, or cancelled: worker killed).
    started: list[float] = []
    ended: list[tuple[float, str]] = []
    real_frame, real_run = codec.frame, Pool.run

    def frame(value):
        if isinstance(value, list) and value and value[0] == "render":
            started.append(time.monotonic())
        return real_frame(value)

    async def run(self, task, *args, **kwargs):
        outcome = "answered"
        try:
            return await real_run(self, task, *args, **kwargs)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            if task == "render":
                ended.append((time.monotonic(), outcome))

    monkeypatch.setattr(codec, "frame", frame)
    monkeypatch.setattr(Pool, "run", run)
    aliases = " ".join(f"r{i}: render(variables: {{}}) {{ text errors }}" for i in range(RENDERS))
    query = f"query($id: ID!) {{ node(id: $id) {{ ... on PromptVersion {{ {aliases} }} }} }}"
    caplog.set_level(logging.INFO, logger="promptstudio.http")

    async with live() as server:
        pool = sandbox.pool(server.app.state.settings)
        _, writer = await _open(server.url, query, {"id": version_id}, token, method)
        await _until(lambda: started, 20, "the first render")
        await asyncio.sleep(0.3)
        replaced = pool.replaced
        writer.close()  # the client hangs up
        hung_up = time.monotonic()
        await writer.wait_closed()
        # Every render waited for stops: those in a worker by killing it, the others never start.
        try:
            await _until(lambda: len(ended) == RENDERS, 5, "every render to end")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {len(started)} handed to a worker, {len(ended)} of {RENDERS} ended "
                                 f"{[(round(t - hung_up, 2), o) for t, o in ended]}; pool: {pool.workers} workers, "
                                 f"{pool.busy} busy, {pool.replaced - replaced} replaced") from None
        await asyncio.sleep(1.0)  # and nothing starts afterwards
        starts, ends = list(started), list(ended)
        assert len(starts) < RENDERS, len(starts)
        late = [t - hung_up for t in starts if t > hung_up + 0.2]
        assert not late, f"renders started {late} s after the client hung up"
        last = max(t for t, _ in ends) - hung_up
        assert last < 0.5, f"the last render ended {last:.2f} s after the client hung up"
        assert sum(1 for _, outcome in ends if outcome == "cancelled") > RENDERS - len(starts), ends
        assert pool.replaced > replaced, "the workers rendering for the client were not killed"
        assert "the client disconnected before the response; its handling was cancelled" in caplog.text

        # The server goes on serving, with the same connection pool.
        pool = server.app.state.runtime.engine.pool
        await _until(lambda: pool.checkedout() == 0, 5, "the pool's connections to come back")


async def test_a_read_waiting_on_the_database_is_cancelled_and_its_connection_returned(gql, live, db_url):
    token, _ = await signup(gql, "ada")
    project_id = await create_project(gql, token, "proj")
    query = "query($id: ID!) { node(id: $id) { ... on Project { name } } }"
    admin = await asyncpg.connect(db_url)
    locker = await asyncpg.connect(db_url)
    try:
        async with live() as server:
            pool = server.app.state.runtime.engine.pool
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")

            async def waiting() -> list:
                return await admin.fetch(
                    "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> $1", locker.get_server_pid())

            _, writer = await _open(server.url, query, {"id": project_id}, token)
            deadline = time.monotonic() + 10
            while not await waiting():
                assert time.monotonic() < deadline, "the request's read never waited on the lock"
                await asyncio.sleep(0.02)
            assert pool.checkedout() >= 1
            writer.close()  # the client hangs up while its read waits on the lock
            await writer.wait_closed()
            deadline = time.monotonic() + 5
            while await waiting() or pool.checkedout():
                assert time.monotonic() < deadline, (await waiting(), pool.checkedout())
                await asyncio.sleep(0.02)
            # Nothing of the app is left in a transaction (only the locker's own).
            stuck = await admin.fetch(
                "SELECT pid, state, query FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%' AND pid <> $1", locker.get_server_pid())
            assert stuck == [], stuck
            await tx.rollback()
            # The same query answers once the lock is gone, through the same pool.
            body = await gql(query, {"id": project_id}, token=token)
            assert body["data"]["node"] == {"name": "proj"}
    finally:
        await locker.close()
        await admin.close()


# ---------------------------------------------------------------- the middleware alone, on a real uvicorn


@asynccontextmanager
async def _serve(asgi_app):
    import uvicorn

    from tests.conftest import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(CancelOnDisconnect(asgi_app), host="127.0.0.1", port=port,
                                          log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await _until(lambda: server.started, 10, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_streaming_responses_and_quick_answers_are_left_alone():
    """A response that has started (a stream: subscriptions over SSE or multipart would be one) is never
    cancelled here; its client leaving ends it as before. Plain answers, GETs and bodies are untouched."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    streamed: list[int] = []
    finished = asyncio.Event()

    async def stream(request: Request) -> StreamingResponse:
        async def chunks():
            try:
                for i in range(50):
                    streamed.append(i)
                    yield f"data: {i}\n\n"
                    await asyncio.sleep(0.05)
            finally:
                finished.set()

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def echo(request: Request) -> JSONResponse:
        body = await request.json()
        await asyncio.sleep(0.2)  # slower than the body: the watch runs meanwhile
        return JSONResponse({"got": body, "disconnected": await request.is_disconnected()})

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": request.query_params.get("name")})

    routes = [Route("/stream", stream), Route("/echo", echo, methods=["POST"]), Route("/hello", hello)]
    async with _serve(Starlette(routes=routes)) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        # A stream runs to its end, long after its request was read.
        async with http.stream("GET", "/stream") as response:
            received = [line async for line in response.aiter_lines() if line.startswith("data:")]
        assert len(received) == 50
        # One whose client leaves half-way stops (Starlette's own disconnect handling), without errors.
        streamed.clear()
        finished.clear()
        async with http.stream("GET", "/stream") as response:
            async for line in response.aiter_lines():
                if line == "data: 5":
                    break
        await asyncio.wait_for(finished.wait(), 5)
        assert len(streamed) < 50
        # Requests with and without bodies, several on one keep-alive connection.
        for i in range(3):
            r = await http.post("/echo", json={"i": i})
            assert r.json() == {"got": {"i": i}, "disconnected": False}
            r = await http.get("/hello", params={"name": f"ada{i}"})
            assert r.json() == {"hello": f"ada{i}"}


async def test_a_request_without_a_body_gets_its_body_messages_however_they_come():
    """Content-Length 0 may arrive as an empty chunk and then the end (httpx's ASGI transport does that):
    the app reads both, and is answered (this hung once)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    async def echo(scope, receive, send):
        body = await Request(scope, receive).body()
        await JSONResponse({"length": len(body)})(scope, receive, send)

    transport = httpx.ASGITransport(app=CancelOnDisconnect(echo))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for method in ("POST", "PUT", "GET"):
            r = await asyncio.wait_for(client.request(method, "/", content=b""), 5)
            assert r.json() == {"length": 0}, method
        r = await asyncio.wait_for(client.post("/", content=b"abc"), 5)
        assert r.json() == {"length": 3}
