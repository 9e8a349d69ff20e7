"""resolvePrompt: buckets, traffic splits, stickiness, fallback, permissions, statement count, index use."""
from __future__ import annotations

import hashlib
import re
from collections import Counter

import asyncpg
import pytest
from sqlalchemy import event

from .util import add_version, create_api_key, deploy, raw_uuid, signup, split, tenant, undeploy

RESOLVE = """query($p: ID!, $name: String!, $env: String, $key: String, $fb: Boolean) {
  resolvePrompt(projectId: $p, name: $name, environment: $env, subjectKey: $key, fallbackToLatest: $fb) {
    environment bucket prompt { id name } version { id number } deployment { id trafficPercentage } } }"""

#: How many resolvePrompt calls go in one request (aliases); the limits are raised for this module.
CHUNK = 50


@pytest.fixture
def settings(settings):
    """Room for CHUNK aliased resolvePrompt calls per request (the defaults allow 30 aliases), and a pool
    as large as one request's concurrent resolvers (sibling fields run concurrently, one session each)."""
    return settings.replace(max_aliases=CHUNK + 10, max_tokens=20_000, db_pool_size=CHUNK, db_max_overflow=0)


def documented_bucket(prompt_gid: str, environment: str, subject_key: str) -> int:
    """The formula from resolvePrompt's description, computed by the client."""
    digest = hashlib.sha256(f"{raw_uuid(prompt_gid)}:{environment}:{subject_key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100


async def resolve(gql, token, project_id, name="greeting", **kw):
    body = await gql(RESOLVE, {"p": project_id, "name": name, "env": kw.get("env"), "key": kw.get("key"),
                               "fb": kw.get("fb", False)}, token=token)
    return body["data"]["resolvePrompt"]


async def unresolved(gql, token, project_id, name="greeting", **kw) -> str:
    """A reader's resolvePrompt without an answer: null, and one error saying why; returns its code."""
    body = await gql(RESOLVE, {"p": project_id, "name": name, "env": kw.get("env"), "key": kw.get("key"),
                               "fb": kw.get("fb", False)}, token=token, check=False)
    assert body["data"] == {"resolvePrompt": None}, body
    (error,) = body["errors"]
    assert error["path"] == ["resolvePrompt"], error
    return error["extensions"]["code"]


async def resolve_many(gql, token, project_id, keys: list[str], name="greeting") -> dict[str, tuple[int, int]]:
    """key -> (bucket, version number), CHUNK aliases per request, requests in parallel."""

    async def chunk(part: list[str]) -> dict[str, tuple[int, int]]:
        fields = "\n".join(f'k{i}: resolvePrompt(projectId: $p, name: "{name}", subjectKey: "{k}") '
                           "{ bucket version { number } }" for i, k in enumerate(part))
        body = await gql(f"query($p: ID!) {{ {fields} }}", {"p": project_id}, token=token)
        return {k: (body["data"][f"k{i}"]["bucket"], body["data"][f"k{i}"]["version"]["number"])
                for i, k in enumerate(part)}

    out: dict[str, tuple[int, int]] = {}
    parts = [keys[i:i + CHUNK] for i in range(0, len(keys), CHUNK)]
    for part in parts:
        out.update(await chunk(part))
    return out


async def test_split_distribution_stickiness_and_rebucketing(gql):
    t = await tenant(gql, "ivy", versions=2)
    v1, v2 = t.versions
    assert (await split(gql, t.token, t.prompt_id, [(v1, 70), (v2, 30)]))["userErrors"] == []
    keys = [f"user-{i}" for i in range(2000)]
    first = await resolve_many(gql, t.token, t.project_id, keys)

    # The server's bucket is the documented formula, and buckets 0..69 get v1, 70..99 get v2.
    for k, (bucket, number) in first.items():
        assert bucket == documented_bucket(t.prompt_id, "production", k)
        assert number == (1 if bucket < 70 else 2)
    share = Counter(n for _, n in first.values())
    assert abs(share[1] / len(keys) * 100 - 70) <= 5, share
    assert abs(share[2] / len(keys) * 100 - 30) <= 5, share

    # Sticky: the same subject gets the same version while the split is unchanged.
    again = await resolve_many(gql, t.token, t.project_id, keys[:200])
    assert all(again[k] == first[k] for k in again)

    # A changed split re-buckets consistently: the bucket stays, only moved ranges change version.
    assert (await split(gql, t.token, t.prompt_id, [(v1, 50), (v2, 50)]))["userErrors"] == []
    after = await resolve_many(gql, t.token, t.project_id, keys[:500])
    for k, (bucket, number) in after.items():
        assert bucket == first[k][0]
        assert number == (1 if bucket < 50 else 2)
        if bucket < 50 or bucket >= 70:
            assert number == first[k][1]
    moved = sum(1 for k in after if after[k][1] != first[k][1])
    assert 0 < moved < 0.35 * len(after)

    # The answer says which deployment chose the version.
    r = await resolve(gql, t.token, t.project_id, key="user-1")
    assert r["deployment"]["trafficPercentage"] == 50
    assert r["environment"] == "production" and r["prompt"] == {"id": t.prompt_id, "name": "greeting"}

    # Without a subject key the bucket is random: both versions show up.
    seen = {(await resolve(gql, t.token, t.project_id))["version"]["number"] for _ in range(40)}
    assert seen == {1, 2}


async def test_environments_fallback_and_undeploy(gql):
    t = await tenant(gql, "jay", versions=2)
    v1, v2 = t.versions
    # Nothing deployed: null with NOT_DEPLOYED, or the latest version with fallbackToLatest.
    assert await unresolved(gql, t.token, t.project_id, key="u") == "NOT_DEPLOYED"
    r = await resolve(gql, t.token, t.project_id, key="u", fb=True)
    assert r["version"]["number"] == 2 and r["deployment"] is None
    assert r["bucket"] == documented_bucket(t.prompt_id, "production", "u")

    assert (await deploy(gql, t.token, v1))["userErrors"] == []
    assert (await deploy(gql, t.token, v2, "staging"))["userErrors"] == []
    # The environment defaults to the project's default (production).
    r = await resolve(gql, t.token, t.project_id, key="u")
    assert r["environment"] == "production" and r["version"]["number"] == 1
    r = await resolve(gql, t.token, t.project_id, key="u", env="staging")
    assert r["version"]["number"] == 2 and r["deployment"]["trafficPercentage"] == 100
    assert r["bucket"] == documented_bucket(t.prompt_id, "staging", "u")
    assert await unresolved(gql, t.token, t.project_id, key="u", env="development") == "NOT_DEPLOYED"
    # A version created after the deployment does not change what is served.
    await add_version(gql, t.token, t.prompt_id, "Hello v3 {{name}}")
    assert (await resolve(gql, t.token, t.project_id, key="u"))["version"]["number"] == 1

    assert (await undeploy(gql, t.token, t.prompt_id))["userErrors"] == []
    assert await unresolved(gql, t.token, t.project_id, key="u") == "NOT_DEPLOYED"
    r = await resolve(gql, t.token, t.project_id, key="u", fb=True)
    assert r["version"]["number"] == 3 and r["deployment"] is None

    # Unknown prompt names: null with PROMPT_NOT_FOUND, fallback or not.
    assert await unresolved(gql, t.token, t.project_id, name="nope", fb=True) == "PROMPT_NOT_FOUND"
    assert await unresolved(gql, t.token, t.project_id, name="nope") == "PROMPT_NOT_FOUND"

    # An environment the project does not have is an error naming the allowed ones.
    body = await gql(RESOLVE, {"p": t.project_id, "name": "greeting", "env": "prod"}, token=t.token, check=False)
    assert body["data"]["resolvePrompt"] is None
    err = body["errors"][0]
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert "'prod'" in err["message"] and "development, staging, production" in err["message"]


async def test_visibility(gql):
    t = await tenant(gql, "kim", versions=1)
    assert (await deploy(gql, t.token, t.versions[0]))["userErrors"] == []
    o, _ = await signup(gql, "lee")
    # Someone else (even with a bad environment or name, which must not reveal anything): null, no error.
    assert await resolve(gql, o, t.project_id, key="u", fb=True) is None
    assert await resolve(gql, o, t.project_id, name="nope") is None
    assert await resolve(gql, o, t.project_id, env="staging") is None
    body = await gql(RESOLVE, {"p": t.project_id, "name": "greeting", "env": "prod"}, token=o, check=False)
    assert "errors" not in body and body["data"]["resolvePrompt"] is None
    # Anonymous: null. Garbage project ID: null.
    assert await resolve(gql, "", t.project_id, key="u") is None
    assert await resolve(gql, t.token, "garbage", key="u") is None
    # Keys: PROMPTS_READ may, EXECUTIONS_READ alone may not.
    reader = await create_api_key(gql, t.token, t.project_id, ["PROMPTS_READ"])
    assert (await resolve(gql, reader, t.project_id, key="u"))["version"]["number"] == 1
    exec_only = await create_api_key(gql, t.token, t.project_id, ["EXECUTIONS_READ"])
    assert await resolve(gql, exec_only, t.project_id, key="u") is None
    assert await resolve(gql, exec_only, t.project_id, name="nope") is None
    # A project that does not exist answers as one that is not visible.
    assert await resolve(gql, t.token, "UHJvamVjdDowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA",
                         name="nope") is None


async def test_statement_count_is_small_and_fixed(gql, sql_counter):
    """resolvePrompt costs at most ONE statement, and none once its answer and the token are cached.

    Cold: the API-key lookup + the resolve query (lastUsedAt is written behind, not by the request).
    Warm: 0 statements — also with nested deployment fields. After a change (a new split, an undeploy)
    the NOTIFY of its transaction drops the answer: the next request reads it again (1 statement: the
    token stays cached), the one after is free again. The same with a 3-way split and with fallback.
    """
    t = await tenant(gql, "max", versions=3)
    key = await create_api_key(gql, t.token, t.project_id, ["PROMPTS_READ"])
    query = """query($p: ID!) { resolvePrompt(projectId: $p, name: "greeting", subjectKey: "s") {
        bucket prompt { name } version { number } deployment { id } } }"""
    counts = []
    for plan in ([(t.versions[0], 100)], [(t.versions[0], 34), (t.versions[1], 33), (t.versions[2], 33)]):
        assert (await split(gql, t.token, t.prompt_id, plan))["userErrors"] == []
        for _ in range(3):
            with sql_counter() as c:
                body = await gql(query, {"p": t.project_id}, token=key)
            assert body["data"]["resolvePrompt"]["deployment"] is not None
            assert len(body["data"]["resolvePrompt"]["deployment"]["id"]) > 0
            counts.append(c.count)
            assert sum("deployments" in s for s in c.statements) == min(c.count, 1), c.statements
    assert counts == [2, 0, 0, 1, 0, 0], counts

    # Nested fields of the chosen deployment reuse the rows already fetched (cached: nothing at all).
    with sql_counter() as c:
        await gql("""query($p: ID!) { resolvePrompt(projectId: $p, name: "greeting", subjectKey: "s") {
            deployment { id version { number } prompt { name } } } }""", {"p": t.project_id}, token=key)
    assert c.count == 0, c.statements

    assert (await undeploy(gql, t.token, t.prompt_id))["userErrors"] == []
    counts = []
    for _ in range(2):
        with sql_counter() as c:
            body = await gql("""query($p: ID!) { resolvePrompt(projectId: $p, name: "greeting",
                fallbackToLatest: true) { version { number } deployment { id } } }""", {"p": t.project_id}, token=key)
        assert body["data"]["resolvePrompt"] == {"version": {"number": 3}, "deployment": None}
        counts.append(c.count)
    assert counts == [1, 0], counts


BULK = """
WITH p AS (
  INSERT INTO prompts (project_id, name, latest_version)
  SELECT $1, 'bulk-' || g, 1 FROM generate_series(1, 300) g RETURNING id),
v AS (
  INSERT INTO prompt_versions (prompt_id, number, kind, format, template, content_hash)
  SELECT id, 1, 'TEXT', 'MUSTACHE', 'x', repeat('0', 64) FROM p RETURNING id, prompt_id)
INSERT INTO deployments (prompt_id, version_id, environment, traffic_percentage, deployed_at, retired_at)
SELECT v.prompt_id, v.id, e, 100, now() - interval '1 day' * k,
       CASE WHEN k > 0 THEN now() - interval '1 day' * (k - 1) END
FROM v, unnest(ARRAY['development', 'staging', 'production']) e, generate_series(0, 5) k
"""


async def test_resolve_query_uses_the_active_deployments_index(gql, app, db_url):
    """EXPLAIN the statement resolvePrompt sends: the active deployments come from the partial index
    uq_deployments_active_version (prompt_id, environment, version_id) WHERE retired_at IS NULL."""
    t = await tenant(gql, "ned", versions=2)
    assert (await split(gql, t.token, t.prompt_id, [(t.versions[0], 70), (t.versions[1], 30)]))["userErrors"] == []
    captured: list[tuple[str, tuple]] = []
    engine = app.state.runtime.engine.sync_engine

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if "deployments" in statement and "retired_at IS NULL" in statement:
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        r = await resolve(gql, t.token, t.project_id, key="x")
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    assert r is not None and len(captured) == 1
    statement, params = captured[0]
    conn = await asyncpg.connect(db_url)
    try:
        # A registry of realistic size: 300 more prompts, each deployed in every environment, with history.
        await conn.execute(BULK, raw_uuid(t.project_id))
        await conn.execute("ANALYZE")
        plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + statement, *params))
    finally:
        await conn.close()
    # The active rows of (prompt, environment) come from the partial unique index on
    # (prompt_id, environment, version_id) WHERE retired_at IS NULL, by its leading columns.
    lines = plan.splitlines()
    scans = [i for i, line in enumerate(lines) if " on deployments" in line]
    assert len(scans) == 1, plan
    assert re.search(r"Index (Only )?Scan using uq_deployments_active_version on deployments", lines[scans[0]]), plan
    cond = lines[scans[0] + 1]
    assert "Index Cond" in cond and "prompt_id" in cond and "environment" in cond, plan
