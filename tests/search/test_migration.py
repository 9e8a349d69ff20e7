"""Migration 0006 on a database with prompts already: every existing version gets a PENDING embedding
row and a job, so the workers embed them after the upgrade; down and up again."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from app.db.migrate import downgrade, upgrade


@pytest.fixture
async def empty_db(pg_server):
    name = "ps_mig6_" + uuid.uuid4().hex[:10]
    admin = await asyncpg.connect(pg_server("postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield pg_server(name)
    admin = await asyncpg.connect(pg_server("postgres"))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_existing_versions_are_queued_for_embedding(empty_db):
    await asyncio.to_thread(upgrade, empty_db, "0004")
    conn = await asyncpg.connect(empty_db)
    try:
        project = await conn.fetchval("INSERT INTO projects (slug, name, environments, default_environment) "
                                      "VALUES ('p', 'P', '{production}', 'production') RETURNING id")
        prompt = await conn.fetchval("INSERT INTO prompts (project_id, name, latest_version) VALUES ($1, 'a', 2) "
                                     "RETURNING id", project)
        for n in (1, 2):
            await conn.execute("INSERT INTO prompt_versions (prompt_id, number, kind, format, template, content_hash) "
                               "VALUES ($1, $2, 'TEXT', 'MUSTACHE', 'hello', 'h')", prompt, n)
        await asyncio.to_thread(upgrade, empty_db)
        rows = await conn.fetch("SELECT e.status, e.project_id, j.kind, j.priority FROM version_embeddings e "
                                "JOIN jobs j ON j.subject_id = e.version_id")
        assert [(r["status"], r["project_id"], r["kind"], r["priority"]) for r in rows] == [
            ("PENDING", project, "embedding", 0)] * 2
        await asyncio.to_thread(downgrade, empty_db, "0004")
        assert await conn.fetchval("SELECT count(*) FROM jobs") == 0
        assert await conn.fetchval("SELECT to_regclass('version_embeddings')") is None
    finally:
        await conn.close()
