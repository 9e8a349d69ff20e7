"""Every error in ``errors`` has an ``extensions.code``: GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED,
BAD_USER_INPUT for the inputs of the request, INTERNAL_SERVER_ERROR for faults of ours, or the code
of the error raised."""
from __future__ import annotations

import logging

import pytest

from app.settings import Settings
from tests.helpers import signup
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, GraphQLWebSocket


async def _codes(client, query: str, variables: dict | None = None, **kw) -> list[str]:
    r = await client.post("/graphql", json={"query": query, "variables": variables or {}, **kw})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "data" not in body, body  # request errors: nothing ran
    assert body["errors"], body
    return [e["extensions"]["code"] for e in body["errors"]]


@pytest.fixture
def settings() -> Settings:
    return Settings(workers=0, introspection=False, max_tokens=50)


@pytest.mark.parametrize("query", ["{", "{ viewer { id }", "query { viewer { id } } }", "{ a(x: \"\\ud800\") }",
                                   "{ " + "viewer " * 60 + "}"],
                         ids=["eof", "unclosed", "extra", "surrogate-escape", "token-limit"])
async def test_parse_errors(client, query):
    assert set(await _codes(client, query)) == {"GRAPHQL_PARSE_FAILED"}


@pytest.mark.parametrize("query", [
    "{ nope }",
    "{ viewer { nope } }",
    '{ projects(first: "ten") { totalCount } }',
    "{ projects(nope: 1) { totalCount } }",
    "{ project }",
    "{ viewer }",
    '{ project(slug: "a") { auditEvents(filter: {from: "not a date"}) { totalCount } } }',
    '{ models(provider: 12) { id } }',
    "{ __schema { types { name } } }",  # introspection is off in this module's settings
    "query($v: Int) { viewer { id } }",  # unused variable
    "fragment F on Query { viewer { id } } { viewer { id } }",  # unused fragment
], ids=lambda q: q[:40])
async def test_validation_errors(client, query):
    assert set(await _codes(client, query)) == {"GRAPHQL_VALIDATION_FAILED"}


async def test_validation_errors_are_coded_from_the_cache_too(client):
    for _ in range(3):
        assert await _codes(client, "{ nope }") == ["GRAPHQL_VALIDATION_FAILED"]


async def test_depth_and_alias_limits(make_app):
    import httpx

    async with make_app(max_query_depth=2, max_aliases=1) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert await _codes(c, "{ viewer { projects { nodes { id } } } }") == ["GRAPHQL_VALIDATION_FAILED"]
            assert await _codes(c, "{ a: viewer { id } b: viewer { id } }") == ["GRAPHQL_VALIDATION_FAILED"]


@pytest.mark.parametrize(("query", "variables"), [
    ("query($n: Int!) { projects(first: $n) { totalCount } }", {"n": "ten"}),
    ("query($n: Int!) { projects(first: $n) { totalCount } }", {}),
    ("query($n: Int!) { projects(first: $n) { totalCount } }", {"n": 2**40}),
    ("query($f: AuditFilter) { project(slug: \"a\") { auditEvents(filter: $f) { totalCount } } }",
     {"f": {"from": "yesterday"}}),
    ("query($f: AuditFilter) { project(slug: \"a\") { auditEvents(filter: $f) { totalCount } } }",
     {"f": {"result": "MAYBE"}}),
    ("query($f: AuditFilter) { project(slug: \"a\") { auditEvents(filter: $f) { totalCount } } }",
     {"f": {"unknown": 1}}),
    ("mutation($i: UpsertModelConfigInput!) { upsertModelConfig(input: $i) { userErrors { code } } }",
     {"i": {"provider": "x", "modelId": "y", "inputPricePerMillion": "cheap", "outputPricePerMillion": "1"}}),
], ids=["wrong-type", "missing", "int-overflow", "datetime", "enum", "unknown-field", "decimal"])
async def test_variables_that_do_not_fit_their_types(client, query, variables, caplog):
    with caplog.at_level(logging.INFO, logger="promptstudio"):
        assert set(await _codes(client, query, variables)) == {"BAD_USER_INPUT"}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_literals_of_custom_scalars_that_do_not_parse(client, caplog):
    """A scalar's parser raising on a literal is the client's mistake, not an internal error."""
    with caplog.at_level(logging.INFO, logger="promptstudio"):
        codes = await _codes(client, 'mutation { upsertModelConfig(input: {provider: "x", modelId: "y", '
                                     'inputPricePerMillion: "cheap", outputPricePerMillion: "1"}) { userErrors { code } } }')
    assert set(codes) == {"GRAPHQL_VALIDATION_FAILED"}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_unknown_operation_name(client):
    r = await client.post("/graphql", json={"query": "query A { viewer { id } }", "operationName": "B"})
    assert r.status_code == 400
    assert r.json() == {"errors": [{"message": 'Unknown operation named "B".', "extensions": {"code": "BAD_REQUEST"}}]}


async def test_field_errors_keep_their_codes(client, gql):
    token, _ = await signup(gql, "alice")
    body = (await client.post("/graphql", json={"query": '{ projects(first: -1) { totalCount } }'},
                              headers={"Authorization": f"Bearer {token}"})).json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], body


async def test_faults_of_the_machinery_are_internal_server_errors(caplog):
    """A resolver breaking the schema (null for a non-null field) is our fault: INTERNAL_SERVER_ERROR,
    masked, logged at ERROR."""
    import strawberry

    from app.api.core.extensions import MaskInternalErrors, Schema

    @strawberry.type
    class Query:
        @strawberry.field
        def broken(self) -> int:
            return None  # type: ignore[return-value]

    class Ctx:
        request_id = "req-9"

    schema = Schema(Query, extensions=[MaskInternalErrors])
    result = await schema.execute("{ broken }", context_value=Ctx())
    [error] = result.errors
    assert error.message == "Internal server error"
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-9"}
    assert "Cannot return null for non-nullable field" in caplog.text
    assert any(r.levelno == logging.ERROR for r in caplog.records)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_over_websocket_too(live, protocol):
    cases = [
        ("subscription { nope }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("subscription($id: ID!) { executionUpdated(id: $id) { __typename } }", {}, "BAD_USER_INPUT"),
        ("subscription($id: ID!) { executionUpdated(id: $id) { __typename } }", {"id": "a\x00"}, "BAD_USER_INPUT"),
    ]
    if protocol == LEGACY_WS:  # graphql-transport-ws closes the socket (4400) on a syntax error instead
        cases.append(("subscription {", None, "GRAPHQL_PARSE_FAILED"))
    async with live() as server:
        for query, variables, code in cases:
            async with GraphQLWebSocket(server.url, protocol=protocol) as ws:
                payloads = await ws.collect(query, variables, timeout=10)
            codes = [e["extensions"]["code"] for p in payloads for e in p.get("errors") or ()]
            assert codes and set(codes) == {code}, (query, payloads)
