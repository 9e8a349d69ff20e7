"""Helpers of the semantic search tests."""
from __future__ import annotations

import asyncio
import time

import asyncpg

SEARCH = """query($p: ID!, $q: String!, $mode: SearchMode, $f: PromptFilter, $first: Int) {
  searchPrompts(projectId: $p, query: $q, mode: $mode, filter: $f, first: $first) {
    score snippet prompt { name } version { number } } }"""


async def search(gql, token, project, q, check=True, **kw):
    body = await gql(SEARCH, {"p": project, "q": q, **kw}, token=token, check=check)
    return body["data"]["searchPrompts"] if check else body


def names(hits):
    return [h["prompt"]["name"] for h in hits]


async def statuses(db_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM version_embeddings GROUP BY status")
    finally:
        await conn.close()
    return {r["status"]: r["n"] for r in rows}


async def wait_embedded(db_url: str, timeout: float = 30.0) -> dict[str, int]:
    """Wait until no embedding is PENDING; returns the counts by status."""
    deadline = time.monotonic() + timeout
    while True:
        counts = await statuses(db_url)
        if not counts.get("PENDING"):
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(f"embeddings still pending after {timeout} s: {counts}")
        await asyncio.sleep(0.1)
