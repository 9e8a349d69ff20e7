"""Fixtures of the subscription tests (the live server is ``live`` in tests/conftest.py)."""
from __future__ import annotations

import pytest_asyncio

from app.db.engine import create_engine_and_sessionmaker


@pytest_asyncio.fixture
async def driver(db_url):
    """Writes execution changes the way a worker does (for tests that run no workers)."""
    from .util import Driver

    engine, sessionmaker = create_engine_and_sessionmaker(db_url)
    try:
        yield Driver(sessionmaker)
    finally:
        await engine.dispose()
