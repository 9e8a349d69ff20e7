"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per test.

* ``pg_server`` — the embedded server (or the server of ``TEST_DATABASE_URL`` when set), started once.
* ``template_db`` — a database migrated to head once; each test's database is cloned from it
  (``CREATE DATABASE … TEMPLATE …``), which takes milliseconds.
* ``db_url`` — that fresh database's URL; ``app``/``client`` — the real app on it, called through
  httpx's ASGI transport; ``gql`` — a small GraphQL client on ``client``.
* ``live`` — the app served by a real uvicorn on a free loopback port (for WebSockets).
* ``sql_counter`` — counts SQL statements sent by the app's engine (N+1 checks).
"""
from __future__ import annotations

import asyncio
import os
import socket
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Cheap password hashing for tests (sign-ups are in most tests); production keeps RFC 9106's cost.
os.environ.setdefault("PROMPTSTUDIO_ARGON2_TIME_COST", "1")
os.environ.setdefault("PROMPTSTUDIO_ARGON2_MEMORY_KIB", "8192")
# `promptstudio serve` started by a test runs one server process unless the test asks for more (--workers).
os.environ.setdefault("PROMPTSTUDIO_SERVER_PROCESSES", "1")

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import pytest
import pytest_asyncio
from sqlalchemy import event

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
#: One template per test session, so concurrent pytest runs on one server do not collide.
TEMPLATE = f"ps_test_template_{os.getpid()}"


def _server_url(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database, drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server():
    """Yields a function database-name -> URL on the test PostgreSQL server."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield lambda db: _server_url(external, db)
        return
    from app.db.embedded import EmbeddedPostgres

    data_dir = Path(os.environ.get("PROMPTSTUDIO_TEST_DATA_DIR", ROOT / ".test-pgdata"))
    pg = EmbeddedPostgres(data_dir, database="postgres",
                          server_settings={"fsync": False, "synchronous_commit": False,
                                           "full_page_writes": False, "max_connections": 300})
    pg.start()
    try:
        yield pg.url_for
    finally:
        pg.stop()


async def _admin(pg_server) -> asyncpg.Connection:
    return await asyncpg.connect(pg_server("postgres"))


@pytest_asyncio.fixture(scope="session", autouse=True)
async def sandbox_workers():
    """One sandbox pool for the whole test session (each test's app would otherwise start and stop
    its own, as a server does once): held here, so stopping a test's app does not close it."""
    from app import sandbox

    from app import embeddings

    await sandbox.start(Settings())
    await embeddings.start(Settings(), queries=False, documents=False)  # likewise the embedding model workers
    yield
    await embeddings.stop()
    await sandbox.stop()


@pytest_asyncio.fixture(scope="session")
async def template_db(pg_server) -> str:
    from app.db.migrate import upgrade

    conn = await _admin(pg_server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, pg_server(TEMPLATE))
    yield TEMPLATE
    conn = await _admin(pg_server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def db_url(pg_server, template_db) -> str:
    name = "ps_test_" + uuid.uuid4().hex[:12]
    conn = await _admin(pg_server)
    try:
        try:  # FILE_COPY copies the (small) template's files at once: faster than WAL_LOG's block by block
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}" STRATEGY FILE_COPY')
        except asyncpg.PostgresSyntaxError:  # PostgreSQL before 15 (TEST_DATABASE_URL)
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    finally:
        await conn.close()
    yield pg_server(name)
    conn = await _admin(pg_server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


#: Every test request comes from 127.0.0.1, and tests sign up, log in and render far more often than
#: people do: the rate limit's bucket is made large enough for that (it still applies; the tests of
#: the limits set their own figures: tests/hardening/test_limits.py).
TEST_RATE_LIMIT = {"rate_limit_capacity": 100_000_000}


@pytest.fixture
def settings() -> Settings:
    """Test settings: in-process workers off unless a test asks for them (see ``make_app``)."""
    return Settings(workers=0, data_dir=ROOT / ".test-pgdata", heartbeat_seconds=1.0, lease_seconds=5,
                    poll_seconds=1.0, last_used_resolution_seconds=0, **TEST_RATE_LIMIT)


@asynccontextmanager
async def running_app(settings: Settings, db_url: str):
    from app.main import create_app

    app = create_app(settings, database_url=db_url)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def app(settings, db_url):
    async with running_app(settings, db_url) as a:
        yield a


@pytest.fixture
def make_app(db_url):
    """Start another app instance on the same database with changed settings: ``async with make_app(workers=2)``."""

    def factory(**overrides):
        base = Settings(workers=0, data_dir=ROOT / ".test-pgdata", heartbeat_seconds=1.0, lease_seconds=5,
                        poll_seconds=1.0, last_used_resolution_seconds=0, **TEST_RATE_LIMIT)
        return running_app(base.replace(**overrides), db_url)

    return factory


@pytest_asyncio.fixture
async def client(app):
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as c:
        yield c


@dataclass
class GQL:
    """A tiny GraphQL client: ``await gql(query, variables, token=...)`` returns the JSON body."""

    client: httpx.AsyncClient
    token: str | None = None

    async def post(self, query: str, variables: dict | None = None, *, token: str | None = None,
                   headers: dict | None = None) -> httpx.Response:
        """The raw HTTP response (for status codes and headers)."""
        h = dict(headers or {})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        return await self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=h)

    async def __call__(self, query: str, variables: dict | None = None, *, token: str | None = None,
                       headers: dict | None = None, check: bool = True) -> dict[str, Any]:
        resp = await self.post(query, variables, token=token, headers=headers)
        body = resp.json()
        if check:
            assert resp.status_code == 200, (resp.status_code, body)
            assert "errors" not in body, body["errors"]
        return body

    async def refused(self, query: str, variables: dict | None = None, *, token: str | None = None,
                      headers: dict | None = None) -> str:
        """Assert the request is refused as UNAUTHENTICATED (HTTP 401, no data); returns the message."""
        resp = await self.post(query, variables, token=token, headers=headers)
        body = resp.json()
        assert resp.status_code == 401, (resp.status_code, body)
        assert resp.headers["www-authenticate"].startswith("Bearer"), resp.headers
        assert "data" not in body, body
        assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"], body
        return body["errors"][0]["message"]

    def as_(self, token: str | None) -> "GQL":
        return GQL(self.client, token)


@pytest.fixture
def gql(client) -> GQL:
    return GQL(client)


@pytest.fixture
def sql_counter(app):
    """``with sql_counter() as c: ...; c.count`` — statements the app's engine sent meanwhile."""
    engine = app.state.runtime.engine.sync_engine

    class Counter:
        def __init__(self):
            self.count = 0
            self.statements: list[str] = []

        def __enter__(self):
            event.listen(engine, "before_cursor_execute", self._on)
            return self

        def __exit__(self, *exc):
            event.remove(engine, "before_cursor_execute", self._on)

        def _on(self, conn, cursor, statement, parameters, context, executemany):
            self.count += 1
            self.statements.append(statement)

    return Counter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live(settings, db_url):
    """``async with live(**setting_overrides) as server:`` — a real uvicorn on a free loopback port,
    the way ``promptstudio serve`` runs it; ``server.url``, ``server.app``, ``server.bus``."""
    import uvicorn

    from app.main import create_app

    class Server:
        def __init__(self, url, app):
            self.url, self.app = url, app

        @property
        def bus(self):
            return self.app.state.runtime.bus

    @asynccontextmanager
    async def run(**overrides):
        port = free_port()
        app = create_app(settings.replace(**overrides) if overrides else settings, database_url=db_url)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                                ws="auto")  # what `promptstudio serve` uses
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        try:
            yield Server(f"http://127.0.0.1:{port}", app)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 20)

    return run
