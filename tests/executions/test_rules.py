"""executePrompt's rules: deployments, archived prompts, idempotency, backpressure, permissions, audit,
claim order and the status rules the database enforces."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.engine.pool import handlers
from app.services import jobs
from tests.deployments.util import add_version, deploy, split

from .util import (ERR, EXEC_FIELDS, add_member, create_api_key, db_execute, db_fetch, execute, execute_ok,
                   raw_uuid, signup, tenant)


def codes(payload):
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


async def test_by_environment_uses_the_deployments_and_the_subjects_bucket(gql):
    t = await tenant(gql, "ann")
    v2 = await add_version(gql, t.token, t.prompt_id, "Hi v2 {{name}}")
    p = await execute(gql, t.token, promptId=t.prompt_id, environment="production", variables={"name": "x"})
    assert codes(p) == [("INVALID", ["input", "environment"])] and "deployed" in p["userErrors"][0]["message"]
    p = await execute(gql, t.token, promptId=t.prompt_id, environment="moon", variables={"name": "x"})
    assert codes(p) == [("INVALID", ["input", "environment"])] and "development" in p["userErrors"][0]["message"]

    dep = (await deploy(gql, t.token, t.version_id))["deployments"][0]
    p = await execute(gql, t.token, fields=EXEC_FIELDS, promptId=t.prompt_id, environment="production",
                      variables={"name": "x"})
    e = p["execution"]
    assert e["version"]["id"] == t.version_id and e["deployment"]["id"] == dep["id"]
    assert e["environment"] == "production"
    # promptId alone: the latest version, no deployment
    e = (await execute(gql, t.token, fields=EXEC_FIELDS, promptId=t.prompt_id, variables={"name": "x"}))["execution"]
    assert e["version"]["id"] == v2 and e["deployment"] is None and e["environment"] is None

    # a 50/50 split: a subject key always gets the same version, and both versions get subjects
    await split(gql, t.token, t.prompt_id, [(t.version_id, 50), (v2, 50)])
    seen = {}
    for n in range(12):
        key = f"user-{n}"
        got = set()
        for _ in range(2):
            e = (await execute(gql, t.token, fields=EXEC_FIELDS, promptId=t.prompt_id, environment="production",
                               subjectKey=key, variables={"name": "x"}))["execution"]
            got.add(e["version"]["number"])
        assert len(got) == 1
        seen[key] = got.pop()
    assert set(seen.values()) == {1, 2}


async def test_archived_prompts_are_refused(gql):
    t = await tenant(gql, "bob")
    body = await gql(f"""mutation($i: UpdatePromptInput!) {{ updatePrompt(input: $i) {{ {ERR} }} }}""",
                     {"i": {"id": t.prompt_id, "status": "ARCHIVED"}}, token=t.token)
    assert body["data"]["updatePrompt"]["userErrors"] == []
    p = await execute(gql, t.token, versionId=t.version_id, variables={"name": "x"})
    assert codes(p) == [("CONFLICT", ["input", "versionId"])] and "archived" in p["userErrors"][0]["message"]


async def test_idempotency_key_returns_the_first_execution(gql, db_url):
    t = await tenant(gql, "cyd")
    first = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"}, idempotencyKey="k-1")
    again = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "b"}, idempotencyKey="k-1")
    assert again == first
    other = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"}, idempotencyKey="k-2")
    assert other != first
    # concurrent repeats: one execution
    ids = await asyncio.gather(*[execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"},
                                            idempotencyKey="k-race") for _ in range(8)])
    assert len(set(ids)) == 1
    rows = await db_fetch(db_url, "SELECT idempotency_key, count(*) AS n FROM executions GROUP BY 1 ORDER BY 1")
    assert [(r["idempotency_key"], r["n"]) for r in rows] == [("k-1", 1), ("k-2", 1), ("k-race", 1)]
    p = await execute(gql, t.token, promptId=t.prompt_id, variables={"name": "a"}, idempotencyKey="x" * 257)
    assert codes(p) == [("INVALID", ["input", "idempotencyKey"])]


async def test_backpressure_limit(gql, make_app, db_url):
    # This app (and its settings) is the one that receives the requests.
    t = await tenant(gql, "deb")
    await db_execute(db_url, "SELECT 1")
    async with make_app(max_queued_per_project=3) as capped:
        import httpx

        from tests.conftest import GQL

        transport = httpx.ASGITransport(app=capped, client=("127.0.0.1", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as c:
            capped_gql = GQL(c)
            for _ in range(3):
                await execute_ok(capped_gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
            p = await execute(capped_gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
            assert [e["code"] for e in p["userErrors"]] == ["LIMIT_EXCEEDED"] and p["execution"] is None
            assert "3 executions queued or running" in p["userErrors"][0]["message"]
            # a finished one frees a place
            await db_execute(db_url, "UPDATE executions SET status = 'CANCELLED', started_at = now(), "
                                     "completed_at = now() WHERE id = (SELECT id FROM executions LIMIT 1)")
            await execute_ok(capped_gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
            # racing requests cannot overshoot the cap (the check is serialised per project)
            await db_execute(db_url, "UPDATE executions SET status = 'CANCELLED', started_at = now(), "
                                     "completed_at = now() WHERE status = 'PENDING'")
            results = await asyncio.gather(*[
                execute(capped_gql, t.token, promptId=t.prompt_id, variables={"name": "a"}) for _ in range(8)])
            assert sorted(bool(r["execution"]) for r in results) == [False] * 5 + [True] * 3


async def test_permissions_and_audit(gql, db_url):
    t = await tenant(gql, "eve")
    viewer_token, _ = await signup(gql, "vic")
    await add_member(gql, t.token, t.project_id, "vic", "VIEWER")
    p = await execute(gql, viewer_token, promptId=t.prompt_id, variables={"name": "a"})
    assert codes(p) == [("FORBIDDEN", ["input", "promptId"])]
    stranger, _ = await signup(gql, "sam")
    p = await execute(gql, stranger, versionId=t.version_id, variables={"name": "a"})
    assert codes(p) == [("NOT_FOUND", ["input", "versionId"])]
    assert p["userErrors"][0]["message"] == "No prompt version with this ID."
    p = await execute(gql, t.token, promptId="not-an-id", variables={"name": "a"})
    assert codes(p) == [("NOT_FOUND", ["input", "promptId"])]
    body = await gql("mutation { executePrompt(input: {variables: {}, promptId: \"x\"}) { execution { id } } }",
                     check=False)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # API keys: EXECUTIONS_WRITE may execute, PROMPTS_READ may not
    writer = await create_api_key(gql, t.token, t.project_id, ["EXECUTIONS_WRITE"])
    reader = await create_api_key(gql, t.token, t.project_id, ["PROMPTS_READ"])
    eid = await execute_ok(gql, writer, promptId=t.prompt_id, variables={"name": "a"})
    p = await execute(gql, reader, promptId=t.prompt_id, variables={"name": "a"})
    assert codes(p) == [("FORBIDDEN", ["input", "promptId"])]

    rows = await db_fetch(db_url, "SELECT result, resource_id, api_key_id, details FROM audit_events "
                                  "WHERE action = 'execution.create' ORDER BY created_at")
    assert [r["result"] for r in rows] == ["DENIED", "FAILURE", "FAILURE", "SUCCESS", "DENIED"]
    assert rows[3]["resource_id"] == raw_uuid(eid) and rows[3]["api_key_id"] is not None

    # the viewer can read the executions, the stranger cannot
    q = """query($id: ID!) { node(id: $id) { id ... on Project { executions { totalCount nodes { id } } } } }"""
    body = await gql(q, {"id": t.project_id}, token=viewer_token)
    assert body["data"]["node"]["executions"]["nodes"] == [{"id": eid}]
    assert (await gql(q, {"id": t.project_id}, token=stranger))["data"]["node"] is None
    node = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": eid}, token=stranger)
    assert node["data"]["node"] is None


async def test_filters_and_pagination_of_executions(gql):
    t = await tenant(gql, "fay")
    v2 = await add_version(gql, t.token, t.prompt_id, "v2 {{name}}")
    ids = [await execute_ok(gql, t.token, versionId=t.version_id, variables={"name": "a"}) for _ in range(3)]
    ids += [await execute_ok(gql, t.token, versionId=v2, variables={"name": "a"}) for _ in range(2)]
    q = """query($id: ID!, $f: ExecutionFilter, $first: Int, $after: String) { node(id: $id) {
      ... on Project { executions(filter: $f, first: $first, after: $after) { totalCount
          pageInfo { hasNextPage endCursor } nodes { id } } }
      ... on Prompt { executions(filter: $f, first: $first, after: $after) { totalCount
          pageInfo { hasNextPage endCursor } nodes { id } } } } }"""

    async def page(node_id, f=None, first=None, after=None):
        body = await gql(q, {"id": node_id, "f": f, "first": first, "after": after}, token=t.token)
        return body["data"]["node"]["executions"]

    everything = await page(t.project_id)
    assert [n["id"] for n in everything["nodes"]] == ids[::-1] and everything["totalCount"] == 5
    first = await page(t.prompt_id, first=2)
    rest = await page(t.prompt_id, first=10, after=first["pageInfo"]["endCursor"])
    assert first["pageInfo"]["hasNextPage"] and [n["id"] for n in first["nodes"] + rest["nodes"]] == ids[::-1]
    assert [n["id"] for n in (await page(t.project_id, {"versionId": v2}))["nodes"]] == ids[:2:-1]
    assert (await page(t.project_id, {"status": ["COMPLETED"]}))["nodes"] == []
    assert (await page(t.project_id, {"status": ["PENDING"], "promptId": t.prompt_id}))["totalCount"] == 5
    assert (await page(t.project_id, {"promptId": "junk"}))["nodes"] == []
    assert (await page(t.project_id, {"environment": "production"}))["nodes"] == []
    assert (await page(t.project_id, {"createdAfter": "2999-01-01T00:00:00Z"}))["nodes"] == []


async def test_claims_follow_priority_then_age(gql, app):
    t = await tenant(gql, "gus")
    order = [("LOW", "l1"), ("NORMAL", "n1"), ("CRITICAL", "c1"), ("HIGH", "h1"), ("NORMAL", "n2"),
             ("CRITICAL", "c2")]
    ids = {}
    for priority, name in order:
        ids[await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": name}, priority=priority)] = name
    runtime = app.state.runtime
    hooks = {"execution": handlers(runtime.settings, runtime.sessionmaker)["execution"]}  # not the embedding jobs
    claimed = []
    while (job := await jobs.claim(runtime.sessionmaker, "test-worker", hooks, 30)) is not None:
        row = await hooks["execution"].load(job)
        claimed.append(row.variables["name"])
        assert row.status == "RUNNING" and row.attempts == 1 and row.started_at is not None
        assert job.kind == "execution" and job.subject_id == row.id and job.worker_id == "test-worker"
    assert claimed == ["c1", "c2", "h1", "n1", "n2", "l1"]


async def test_claims_are_exclusive_under_concurrency(gql, app):
    t = await tenant(gql, "hal")
    for n in range(10):
        await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": str(n)})
    runtime = app.state.runtime
    hooks = {"execution": handlers(runtime.settings, runtime.sessionmaker)["execution"]}  # not the embedding jobs

    async def drain(worker):
        got = []
        while (job := await jobs.claim(runtime.sessionmaker, worker, hooks, 30)) is not None:
            got.append(job.subject_id)
        return got

    results = await asyncio.gather(*[drain(f"w{i}") for i in range(4)])
    flat = [i for r in results for i in r]
    assert len(flat) == 10 and len(set(flat)) == 10


VIOLATIONS = [
    "UPDATE executions SET started_at = now()",  # PENDING with startedAt
    "UPDATE executions SET status = 'RUNNING'",  # RUNNING without startedAt
    "UPDATE executions SET status = 'COMPLETED', started_at = now()",  # finished without completedAt
    "UPDATE executions SET status = 'FAILED', started_at = now(), completed_at = now() - interval '1 hour'",
    "UPDATE executions SET status = 'RUNNING', started_at = now(), completed_at = now()",
    "UPDATE executions SET cost_usd = -1",
    "UPDATE executions SET status = 'DONE'",
]


async def test_the_database_enforces_the_status_rules(gql, db_url):
    t = await tenant(gql, "ida")
    await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
    conn = await asyncpg.connect(db_url)
    try:
        for sql in VIOLATIONS:
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(sql)
        # and the legal transitions pass
        await conn.execute("UPDATE executions SET status = 'RUNNING', started_at = now()")
        await conn.execute("UPDATE executions SET status = 'COMPLETED', completed_at = now(), cost_usd = 0")
    finally:
        await conn.close()


async def test_execution_lists_are_free_of_n_plus_1(gql, sql_counter):
    t = await tenant(gql, "jon")
    q = """query($id: ID!) { node(id: $id) { ... on Project { executions(first: 50) { totalCount nodes {
      id status prompt { name } version { number } project { slug } requestedBy { id } deployment { id }
      feedback { rating } validationResults { name } usage { totalTokens }
      logs(first: 5, minLevel: DEBUG) { totalCount nodes { level message } } } } } } }"""

    async def count():
        with sql_counter() as c:
            body = await gql(q, {"id": t.project_id}, token=t.token)
        return c.count, body["data"]["node"]["executions"]["nodes"]

    for _ in range(2):
        await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
    few, nodes = await count()
    assert len(nodes) == 2 and all(n["logs"]["totalCount"] == 1 for n in nodes)
    for _ in range(5):
        await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
    more, nodes = await count()
    assert len(nodes) == 7 and few == more
