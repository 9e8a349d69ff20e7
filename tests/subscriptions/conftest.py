"""Fixtures of the subscription tests: a real uvicorn that also hands out its app (to look at the bus)."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio

from app.db.engine import create_engine_and_sessionmaker
from tests.conftest import free_port


@pytest.fixture
def live(settings, db_url):
    """``async with live(**setting_overrides) as server:`` — ``server.url``, ``server.app``, ``server.bus``."""
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
                                ws="auto")  # what `promptstudio serve` uses (websockets-sansio)
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


@pytest_asyncio.fixture
async def driver(db_url):
    """Writes execution changes the way a worker does (for tests that run no workers)."""
    from .util import Driver

    engine, sessionmaker = create_engine_and_sessionmaker(db_url)
    try:
        yield Driver(sessionmaker)
    finally:
        await engine.dispose()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch):
    """These tests sign up many users; argon2id at its default cost is not what they test."""
    from argon2 import PasswordHasher

    from app.services import identity

    monkeypatch.setattr(identity, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
