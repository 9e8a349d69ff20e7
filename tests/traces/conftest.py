"""Fixtures of the trace tests."""
from __future__ import annotations

import pytest_asyncio

from app.db.engine import create_engine_and_sessionmaker


@pytest_asyncio.fixture
async def write(db_url):
    """``await write(project_id, [SpanRecord, ...])``: spans stored by ``write_spans`` in their own transaction."""
    from .util import Writer

    engine, sessionmaker = create_engine_and_sessionmaker(db_url)
    try:
        yield Writer(sessionmaker)
    finally:
        await engine.dispose()
