"""The migration chain: up, down, up again on an empty database, and it agrees with the models."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.engine import async_url
from app.db.migrate import current_head, downgrade, upgrade
from app.db.models import Base


@pytest.fixture
async def empty_db(pg_server):
    name = "ps_mig_" + uuid.uuid4().hex[:10]
    admin = await asyncpg.connect(pg_server("postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield pg_server(name)
    admin = await asyncpg.connect(pg_server("postgres"))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def _diff(url: str) -> list:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            def compare(sync_conn):
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True,
                                                                  "compare_server_default": True})
                return compare_metadata(ctx, Base.metadata)

            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade_and_models_agree(empty_db):
    model_tables = set(Base.metadata.tables)
    await asyncio.to_thread(upgrade, empty_db)
    assert model_tables <= await _tables(empty_db)
    await asyncio.to_thread(downgrade, empty_db, "base")
    assert await _tables(empty_db) <= {"alembic_version"}
    await asyncio.to_thread(upgrade, empty_db)
    assert model_tables <= await _tables(empty_db)
    diff = await _diff(empty_db)
    assert diff == [], f"models and migrations disagree: {diff}"
    conn = await asyncpg.connect(empty_db)
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == current_head()
        extensions = {r["extname"] for r in await conn.fetch("SELECT extname FROM pg_extension")}
        assert {"vector", "pg_trgm"} <= extensions
    finally:
        await conn.close()


async def test_concurrent_upgrades_take_turns(empty_db):
    """serve and worker starting together both migrate: the advisory lock makes them take turns.

    Separate processes, as in real life (Alembic's context is global to a process)."""
    import sys

    code = "import sys; from app.db.migrate import upgrade; upgrade(sys.argv[1])"
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", code, empty_db,
                                                  stderr=asyncio.subprocess.PIPE) for _ in range(3)]
    results = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err.decode()[-2000:] for _, err in results]
    conn = await asyncpg.connect(empty_db)
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == current_head()
    finally:
        await conn.close()
