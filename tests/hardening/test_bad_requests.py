"""Requests that are not GraphQL requests get a 4xx with a GraphQL-shaped JSON body
({"errors": [{"message", "extensions": {"code"}}]}), never a 500 and never plain text."""
from __future__ import annotations

import httpx
import pytest

JSON = {"content-type": "application/json"}


def assert_json_error(response: httpx.Response, status: int, code: str, *fragments: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"errors"}, body
    [error] = body["errors"]
    assert error["extensions"] == {"code": code}, body
    for fragment in fragments:
        assert fragment in error["message"], (fragment, error["message"])
    return error


async def test_a_body_that_is_not_utf8(client):
    r = await client.post("/graphql", content=b'{"query": "{ viewer { id } }", "x": "\xff\xfe"}', headers=JSON)
    assert_json_error(r, 400, "BAD_REQUEST", "not UTF-8")
    r = await client.post("/graphql", content='{"query": "{ viewer { id } }"}'.encode("utf-16"), headers=JSON)
    assert_json_error(r, 400, "BAD_REQUEST")


@pytest.mark.parametrize("body", [b"{query", b"", b"   ", b'{"query": "{ viewer { id } }"', b"\xef\xbb\xbf{}"],
                         ids=["garbage", "empty", "blank", "truncated", "bom"])
async def test_a_body_that_is_not_json(client, body):
    assert_json_error(await client.post("/graphql", content=body, headers=JSON), 400, "BAD_REQUEST")


@pytest.mark.parametrize("body", [b"1", b'"{ viewer { id } }"', b"null", b"true"])
async def test_a_body_that_is_json_but_not_an_object(client, body):
    r = await client.post("/graphql", content=body, headers=JSON)
    assert_json_error(r, 400, "BAD_REQUEST", "must be a JSON object")


async def test_json_nested_50000_deep(client):
    deep = b"[" * 50_000 + b"]" * 50_000
    r = await client.post("/graphql", headers=JSON,
                          content=b'{"query": "{ __typename }", "variables": {"v": ' + deep + b"}}")
    assert_json_error(r, 400, "BAD_REQUEST", "nested deeper than 64 levels")
    r = await client.post("/graphql", headers=JSON, content=deep)
    assert_json_error(r, 400, "BAD_REQUEST", "nested deeper than 64 levels")
    deep_objects = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    r = await client.post("/graphql", headers=JSON, content=deep_objects)
    assert_json_error(r, 400, "BAD_REQUEST", "nested deeper than 64 levels")
    # GET: the variables parameter is JSON too
    r = await client.get("/graphql", params={"query": "{ __typename }", "variables": "[" * 5000 + "]" * 5000})
    assert_json_error(r, 400, "BAD_REQUEST", "nested deeper than 64 levels")


async def test_json_just_under_the_depth_limit_is_fine(client):
    value: object = 1
    for _ in range(60):
        value = {"a": value}
    r = await client.post("/graphql", json={"query": "{ __typename }", "variables": {"v": value}})
    assert r.status_code == 200 and r.json() == {"data": {"__typename": "Query"}}, r.text


async def test_the_depth_limit_is_a_setting(make_app):
    async with make_app(max_json_depth=8) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            value: object = 1
            for _ in range(8):
                value = [value]
            r = await c.post("/graphql", json={"query": "{ __typename }", "variables": {"v": value}})
    assert_json_error(r, 400, "BAD_REQUEST", "nested deeper than 8 levels")


async def test_bodies_over_the_size_limit(client):
    big = b'{"query": "#' + b"x" * 1_100_000 + b'\\n{ __typename }"}'
    r = await client.post("/graphql", content=big, headers=JSON)
    assert_json_error(r, 413, "PAYLOAD_TOO_LARGE", "larger than the limit")

    async def chunks():  # no Content-Length: the limit is counted as the body arrives
        yield b'{"query": "#'
        for _ in range(12):
            yield b"x" * 100_000
        yield b'\\n{ __typename }"}'

    r = await client.post("/graphql", content=chunks(), headers=JSON)
    assert_json_error(r, 413, "PAYLOAD_TOO_LARGE", "larger than the limit")


async def test_other_requests_that_are_not_graphql_requests(client):
    r = await client.post("/graphql", content=b"{ viewer { id } }", headers={"content-type": "text/plain"})
    assert_json_error(r, 400, "BAD_REQUEST", "content type")
    r = await client.post("/graphql", json={"variables": {}})
    assert_json_error(r, 400, "BAD_REQUEST", "No GraphQL query")
    r = await client.post("/graphql", json={"query": 42})
    assert_json_error(r, 400, "BAD_REQUEST", "`query` must be a string")
    r = await client.post("/graphql", json={"query": "{ __typename }", "variables": [1]})
    assert_json_error(r, 400, "BAD_REQUEST", "`variables` must be an object")
    r = await client.post("/graphql", json=[{"query": "{ __typename }"}])
    assert_json_error(r, 400, "BAD_REQUEST", "Batching")
    r = await client.get("/graphql", params={"query": "{ __typename }", "variables": "{oops"})
    assert_json_error(r, 400, "BAD_REQUEST", "JSON")
    r = await client.get("/graphql", params={"query": "mutation { logOut { ok } }"})
    assert_json_error(r, 400, "BAD_REQUEST", "mutations are not allowed when using GET")
    r = await client.post("/graphql", json={"query": "subscription { executionUpdated(id: \"x\") { __typename } }"})
    assert_json_error(r, 400, "BAD_REQUEST", "WebSocket")
    r = await client.post("/graphql", json={"query": "query A { __typename } query B { __typename }",
                                            "operationName": "C"})
    assert r.status_code in (200, 400)
    assert all(e["extensions"]["code"] for e in r.json()["errors"]), r.text


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_methods_other_than_get_and_post(client, method):
    r = await client.request(method, "/graphql", json={"query": "{ __typename }"})
    assert_json_error(r, 405, "METHOD_NOT_ALLOWED", "GET and POST")
    assert r.headers["allow"] == "GET, POST"


async def test_errors_follow_the_accepted_media_type(client):
    r = await client.post("/graphql", content=b"{query", headers={**JSON, "accept": "application/graphql-response+json"})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/graphql-response+json")
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_a_real_server_too(live):
    """The same through uvicorn: nothing is answered in plain text or with a 5xx."""
    async with live() as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            for body in (b"\xff", b"[" * 50_000, b'{"query": "{ __typename }", "variables": ' + b"[" * 50_000):
                r = await c.post("/graphql", content=body, headers=JSON)
                assert r.status_code == 400, r.text
                assert r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
