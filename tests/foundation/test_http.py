"""The HTTP surface: health endpoints, GraphiQL, GET/POST, media types, and the abuse limits."""
from __future__ import annotations

import pytest

from app.settings import Settings


async def test_healthz_and_readyz(client):
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok"}


async def test_graphiql_in_a_browser(client):
    r = await client.get("/graphql", headers={"accept": "text/html"})
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    assert "graphiql" in r.text.lower()


async def test_the_root_is_a_landing_page_and_sends_shared_links_to_graphiql(client):
    r = await client.get("/", headers={"accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'href="/graphql"' in r.text and 'href="/console"' in r.text  # tests/web/test_pages.py: the rest
    r = await client.get("/", params={"query": "{ __typename }"})  # GraphiQL opens with it (from ?q=)
    assert r.status_code == 307 and r.headers["location"] == "/graphql?q=%7B+__typename+%7D"
    r = await client.get(r.headers["location"], headers={"accept": "text/html"})
    assert r.status_code == 200 and "graphiql" in r.text.lower()


async def test_the_root_says_where_the_api_is_when_graphiql_and_the_console_are_off(make_app):
    import httpx

    async with make_app(graphiql=False, console=False) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.get("/", headers={"accept": "text/html"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "POST /graphql" in r.text and "WebSocket /graphql" in r.text


async def test_get_runs_queries_not_mutations(client):
    r = await client.get("/graphql", params={"query": "{ node(id: \"nope\") { id } }"})
    assert r.status_code == 200
    assert r.json() == {"data": {"node": None}}
    r = await client.get("/graphql", params={"query": "mutation { logOut { ok } }"})
    assert r.status_code in (400, 405)


async def test_post_json_and_graphql_response_json(client):
    q = {"query": "{ nodes(ids: [\"x\", \"y\"]) { id } }"}
    r = await client.post("/graphql", json=q)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"data": {"nodes": [None, None]}}
    r = await client.post("/graphql", json=q, headers={"accept": "application/graphql-response+json"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/graphql-response+json")


async def test_body_size_limit(client):
    big = "#" + "x" * 1_100_000 + "\n{ node(id: \"a\") { id } }"
    r = await client.post("/graphql", json={"query": big})
    assert r.status_code == 413
    assert "larger than the limit" in r.json()["errors"][0]["message"]


async def test_batching_is_off(client):
    r = await client.post("/graphql", json=[{"query": "{ node(id: \"a\") { id } }"}] * 2)
    assert r.status_code == 400


async def test_alias_limit(client):
    q = "{ " + " ".join(f"a{i}: node(id: \"x\") {{ id }}" for i in range(31)) + " }"
    body = (await client.post("/graphql", json={"query": q})).json()
    assert any("aliases" in e["message"].lower() for e in body["errors"]), body
    q = "{ " + " ".join(f"a{i}: node(id: \"x\") {{ id }}" for i in range(30)) + " }"
    body = (await client.post("/graphql", json={"query": q})).json()
    assert "errors" not in body


async def test_token_limit(client):
    q = "{ " + " ".join("__typename" for _ in range(5001)) + " }"
    body = (await client.post("/graphql", json={"query": q})).json()
    assert any("token" in e["message"].lower() for e in body["errors"]), body


@pytest.fixture
def settings() -> Settings:
    # test_depth_limit's query of depth 12 is allowed by depth, but it could cost 337,243 points
    # (nested pages of 20): the cost budget is raised here for it (tests/hardening/test_limits.py
    # checks the budget).
    return Settings(workers=0, introspection=True, max_query_cost=1_000_000)


async def test_invalid_bearer_is_refused(client):
    """A token that is not valid is not "anonymous": the request is refused (401), whatever it asks."""
    for accept in ("application/json", "application/graphql-response+json"):
        r = await client.post("/graphql", json={"query": "{ node(id: \"x\") { id } }"},
                              headers={"Authorization": "Bearer pss_not-a-real-token", "Accept": accept})
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        body = r.json()
        assert "data" not in body
        assert body == {"errors": [{"message": "The session token is not valid; log in again.",
                                    "extensions": {"code": "UNAUTHENTICATED"}}]}
    # Without any token the same read answers, as anonymous.
    r = await client.post("/graphql", json={"query": "{ node(id: \"x\") { id } }"})
    assert r.status_code == 200 and r.json() == {"data": {"node": None}}


async def test_depth_limit(client):
    def nested(levels: int) -> str:
        inner = "id"
        for _ in range(levels):
            inner = f"projects {{ nodes {{ members {{ nodes {{ user {{ {inner} }} }} }} }} }}"
        return "{ viewer { " + inner + " } }"

    body = (await client.post("/graphql", json={"query": nested(3)})).json()  # depth 17
    assert any("exceeds maximum operation depth of 12" in e["message"] for e in body["errors"]), body
    body = (await client.post("/graphql", json={"query": nested(2)})).json()  # depth 12
    assert "errors" not in body, body
    assert body["data"] == {"viewer": None}


async def test_unexpected_errors_are_masked_and_logged(caplog):
    """The masking extension on a schema with a failing resolver: the client sees no internals."""
    import strawberry

    from app.api.core.errors import BadRequest
    from app.api.core.extensions import MaskInternalErrors, Schema

    @strawberry.type
    class Query:
        @strawberry.field
        def boom(self) -> int:
            raise RuntimeError("secret detail: password=hunter2")

        @strawberry.field
        def expected(self) -> int:
            raise BadRequest("`first` must not be negative")

    class Ctx:
        request_id = "req-123"

    schema = Schema(Query, extensions=[MaskInternalErrors])
    result = await schema.execute("{ boom }", context_value=Ctx())
    err = result.errors[0]
    assert err.message == "Internal server error"
    assert err.extensions == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-123"}
    assert "hunter2" in caplog.text and "req-123" in caplog.text
    result = await schema.execute("{ expected }", context_value=Ctx())
    assert result.errors[0].message == "`first` must not be negative"


async def test_request_errors_with_graphql_response_json_are_400_without_data(client):
    accept = {"accept": "application/graphql-response+json"}
    for query in ("{ node(id: ", "{ noSuchField }"):
        r = await client.post("/graphql", json={"query": query}, headers=accept)
        assert r.status_code == 400, (query, r.status_code, r.text)
        assert "data" not in r.json() and r.json()["errors"]
        r = await client.post("/graphql", json={"query": query})  # plain JSON: 200, as the spec allows
        assert r.status_code == 200 and "data" not in r.json()
    r = await client.post("/graphql", json={"query": "mutation { logOut { ok } }"}, headers=accept)
    assert r.status_code == 200 and r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_subscription_over_plain_http_says_where_subscriptions_live(client):
    q = 'subscription S { executionUpdated(id: "x") { type } }'
    r = await client.post("/graphql", json={"query": q})
    assert r.status_code == 400
    assert "WebSocket" in r.text
    r = await client.post("/graphql", json={"query": '{ node(id: "subscription") { id } }'})
    assert r.status_code == 200 and r.json() == {"data": {"node": None}}


async def test_introspection_and_graphiql_can_be_switched_off(make_app):
    import httpx

    async with make_app(introspection=False, graphiql=False) as locked:
        transport = httpx.ASGITransport(app=locked)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.get("/graphql", headers={"accept": "text/html"})
            assert r.status_code == 404
            body = (await c.post("/graphql", json={"query": "{ __schema { types { name } } }"})).json()
            assert "introspection" in body["errors"][0]["message"].lower()
            body = (await c.post("/graphql", json={"query": '{ node(id: "x") { id } }'})).json()
            assert body == {"data": {"node": None}}


async def test_metrics_in_prometheus_text_format(client, db_url, gql):
    import asyncpg

    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert 'promptstudio_executions{status="PENDING"} 0' in r.text
    assert "# TYPE promptstudio_subscribers gauge" in r.text and "promptstudio_worker_tasks 0" in r.text
    assert 'promptstudio_db_pool_connections{state="checked_out"}' in r.text
    conn = await asyncpg.connect(db_url)  # one queued execution, straight in the table
    try:
        await conn.execute("""
            WITH u AS (INSERT INTO users (email, username, password_hash) VALUES ('m@x.io', 'm', 'x') RETURNING id),
                 p AS (INSERT INTO projects (slug, name, environments, default_environment)
                       VALUES ('m', 'm', '{production}', 'production') RETURNING id),
                 pr AS (INSERT INTO prompts (project_id, name) SELECT id, 'p' FROM p RETURNING id, project_id),
                 v AS (INSERT INTO prompt_versions (prompt_id, number, kind, format, template, content_hash)
                       SELECT id, 1, 'TEXT', 'MUSTACHE', 'hi', 'h' FROM pr RETURNING id, prompt_id)
            INSERT INTO executions (project_id, prompt_id, version_id)
            SELECT pr.project_id, pr.id, v.id FROM pr, v""")
    finally:
        await conn.close()
    r = await client.get("/metrics")
    assert 'promptstudio_executions{status="PENDING"} 1' in r.text
    # executePrompt queues a job (no worker runs in this app)
    from tests.executions.util import execute_ok, tenant

    t = await tenant(gql, "met")
    await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
    r = await client.get("/metrics")
    assert 'promptstudio_executions{status="PENDING"} 2' in r.text
    assert "# TYPE promptstudio_jobs gauge" in r.text and 'promptstudio_jobs{kind="execution",status="PENDING"} 1' in r.text


async def test_client_mistakes_are_logged_briefly_at_info_and_faults_with_a_traceback(client, caplog):
    """A bad cursor, an unknown field: the client's doing, one INFO line each, no traceback. A fault of the
    server: ERROR with its traceback (see test_unexpected_errors_are_masked_and_logged)."""
    import logging

    caplog.set_level(logging.INFO, logger="promptstudio.graphql")
    body = (await client.post("/graphql", json={"query": '{ projects(after: "nope") { totalCount } }'})).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = (await client.post("/graphql", json={"query": "{ nosuchfield }"})).json()
    assert "nosuchfield" in body["errors"][0]["message"]
    records = [r for r in caplog.records if r.name == "promptstudio.graphql"]
    assert [r.levelname for r in records] == ["INFO", "INFO"], [(r.levelname, r.getMessage()) for r in records]
    assert all(r.exc_info is None for r in records)
    assert "BAD_USER_INPUT" in records[0].getMessage() and "projects" in records[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
