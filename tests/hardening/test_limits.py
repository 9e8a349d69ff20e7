"""The limits on expensive GraphQL: document size before validation, query cost, the rate limit."""
from __future__ import annotations

import time

import pytest
from graphql import get_introspection_query

from app.settings import Settings
from tests.helpers import DEFAULT_PASSWORD, signup

VIEWERS = "{" + " ".join("viewer{id}" if i % 2 else "viewer{username}" for i in range(1200)) + "}"


@pytest.fixture
def settings(settings) -> Settings:
    # This module checks the limits at their defaults; only the rate limit of the shared client
    # (every request here comes from 127.0.0.1) is set per test where it matters.
    d = Settings()
    return settings.replace(max_selections=d.max_selections, max_repeated_selections=d.max_repeated_selections,
                            max_query_cost=d.max_query_cost, rate_limit_capacity=d.rate_limit_capacity,
                            rate_limit_refill_per_second=d.rate_limit_refill_per_second,
                            rate_limit_threshold=d.rate_limit_threshold)


def only_error(body: dict) -> dict:
    assert "data" not in body, body
    (error,) = body["errors"]
    return error


# ---------------------------------------------------------------- document size


async def test_too_many_selections_are_refused_before_validation(client):
    """Attack 5: 1,200 fields, under the token limit, used to spend seconds in validation."""
    started = time.perf_counter()
    r = await client.post("/graphql", json={"query": VIEWERS})
    elapsed = time.perf_counter() - started
    error = only_error(r.json())
    # Refused from its text, before it is parsed: counting stopped past the limit.
    assert error["extensions"] == {"code": "QUERY_TOO_LARGE", "maxSelections": 300}
    assert error["message"] == ("This document has more than 300 field selections; at most 300 are allowed "
                                "(fragments count where they are spread). Split it into smaller operations.")
    assert elapsed < 0.5, elapsed  # the whole request, through the ASGI stack; validation took 2.6 s
    # Refused again from the parser cache, and the same with graphql-response+json (a 400) and GET.
    r = await client.post("/graphql", json={"query": VIEWERS},
                          headers={"Accept": "application/graphql-response+json"})
    assert r.status_code == 400 and only_error(r.json())["extensions"]["code"] == "QUERY_TOO_LARGE"
    r = await client.get("/graphql", params={"query": VIEWERS})
    assert only_error(r.json())["extensions"]["code"] == "QUERY_TOO_LARGE"


async def test_fragments_count_where_they_are_spread(client):
    # 40 fragments each spreading the next twice: 2**40 selections in a few hundred bytes
    fragments = " ".join(f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    query = "{ viewer { ...F0 } } " + fragments + " fragment F40 on User { id }"
    error = only_error((await client.post("/graphql", json={"query": query})).json())
    assert error["extensions"]["code"] == "QUERY_TOO_LARGE"
    assert error["extensions"]["selections"] == 2**40 + 1
    # An unused fragment is validated too, so it counts as well.
    big = "fragment Big on User { " + " ".join(f"a{i}: id" for i in range(400)) + " }"
    error = only_error((await client.post("/graphql", json={"query": "{ __typename } " + big})).json())
    assert error["extensions"]["code"] == "QUERY_TOO_LARGE"
    # A fragment cycle is left to validation, which says so.
    cycle = "{ viewer { ...A } } fragment A on User { id ...B } fragment B on User { ...A }"
    body = (await client.post("/graphql", json={"query": cycle})).json()
    assert "Cannot spread fragment 'A' within itself" in body["errors"][0]["message"], body


async def test_many_copies_of_one_field_are_refused(client):
    query = "{" + " ".join("viewer { id }" for _ in range(31)) + "}"
    error = only_error((await client.post("/graphql", json={"query": query})).json())
    assert error["extensions"] == {"code": "QUERY_TOO_LARGE", "repeated": 31, "maxRepeated": 30, "path": "viewer"}
    assert error["message"].startswith("`viewer` is selected 31 times at the same place")
    # Through fragments, at a nested place, too.
    fragments = " ".join(f"fragment F{i} on User {{ id }}" for i in range(31))
    query = "{ viewer { " + " ".join(f"...F{i}" for i in range(31)) + " } } " + fragments
    error = only_error((await client.post("/graphql", json={"query": query})).json())
    assert error["extensions"]["path"] == "viewer.id"
    # 30 are fine.
    query = "{" + " ".join("viewer { id }" for _ in range(30)) + "}"
    assert (await client.post("/graphql", json={"query": query})).json() == {"data": {"viewer": None}}


async def test_graphiql_introspection_is_within_the_limits(client):
    query = get_introspection_query(descriptions=True, specified_by_url=True, directive_is_repeatable=True,
                                    schema_description=True, input_value_deprecation=True)
    body = (await client.post("/graphql", json={"query": query})).json()
    assert "errors" not in body and body["data"]["__schema"]["queryType"]["name"] == "Query"


# ---------------------------------------------------------------- cost


RENDERS = """query($ids: [ID!]!) { nodes(ids: $ids) { ... on PromptVersion {
  %s } } }"""


def renders(n: int) -> str:
    return RENDERS % " ".join(f"r{i}: render(variables: {{}}) {{ text }}" for i in range(n))


async def test_too_costly_is_refused_before_anything_runs(gql, sql_counter):
    """Attack 6: nodes(ids:) with aliases of render multiplied renders by the ids."""
    ids = ["UHJvbXB0VmVyc2lvbjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA"] * 100
    with sql_counter() as counter:
        body = await gql(renders(30), {"ids": ids}, check=False)
    error = only_error(body)
    # 1 (nodes) + 100 ids x 30 renders x (1,000 + 1 for text)
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 3_003_001, "maxCost": 50_000}
    assert error["message"].startswith("This operation would cost 3,003,001 points; at most 50,000 are allowed")
    assert counter.count == 0  # refused before any resolver ran


async def test_the_cost_of_a_document_follows_its_variables(gql):
    """Checked when the operation runs, with its variables: the cached parse and validation of the
    same text do not skip it. Pages count as asked for, at most 100."""
    query = "query($n: Int) { projects(first: $n) { nodes { prompts(first: $n) { nodes { id name description status category } } } } }"
    body = await gql(query, {"n": 100}, check=False)
    assert only_error(body)["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 50_202, "maxCost": 50_000}
    body = await gql(query, {"n": 5000}, check=False)
    assert only_error(body)["extensions"]["cost"] == 50_202
    assert await gql(query, {"n": 10}) == {"data": {"projects": {"nodes": []}}}
    body = await gql(query, {"n": 100}, check=False)
    assert only_error(body)["extensions"]["code"] == "QUERY_TOO_COSTLY"


# ---------------------------------------------------------------- rate limit


async def test_log_in_always_spends_and_429_says_when_to_retry(make_app, db_url):
    import httpx

    # signUp costs 2,534 here (2,500 + its payload's fields, a list counting 10), logIn 2,512: 10,000
    # points allow three of them, and at 10 points a second the fourth must wait about 7 seconds.
    async with make_app(rate_limit_capacity=10_000, rate_limit_refill_per_second=10) as app:
        transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            from tests.conftest import GQL

            gql = GQL(client)
            await signup(gql, "ada")
            login = ('mutation($p: String!) { logIn(input: {login: "ada", password: $p}) '
                     '{ token userErrors { code } } }')
            statuses = []
            for _ in range(3):
                r = await gql.post(login, {"p": "wrong password"})
                statuses.append(r.status_code)
            assert statuses == [200, 200, 429], statuses
            body = r.json()
            error = only_error(body)
            assert error["extensions"]["code"] == "RATE_LIMITED"
            assert error["extensions"]["cost"] == 2_512
            assert 6 <= error["extensions"]["retryAfter"] <= 8, error
            assert r.headers["retry-after"] == str(error["extensions"]["retryAfter"])
            # Ordinary reads below the threshold are not limited.
            r = await gql.post("{ viewer { id } }")
            assert r.status_code == 200 and r.json() == {"data": {"viewer": None}}
        # Another address has its own bucket.
        transport = httpx.ASGITransport(app=app, client=("10.0.0.8", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            from tests.conftest import GQL

            r = await GQL(client).post(login, {"p": DEFAULT_PASSWORD})
            assert r.status_code == 200 and r.json()["data"]["logIn"]["token"]


# ---------------------------------------------------------------- over WebSocket


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_the_limits_answer_operations_over_websocket(live, protocol):
    """A refused operation is an error of that operation; the connection goes on serving."""
    from tests.ws_client import GraphQLWebSocket

    too_costly = 'subscription { executionUpdated(id: "x") { type execution { id } } }'  # 4 points
    async with live(max_query_cost=2) as server, GraphQLWebSocket(server.url, protocol=protocol) as ws:
        if protocol == "graphql-transport-ws":  # it carries queries too
            (refused,) = await ws.collect(VIEWERS)
            assert [e["extensions"]["code"] for e in refused["errors"]] == ["QUERY_TOO_LARGE"], refused
        (refused,) = await ws.collect("subscription { " + " ".join(
            f'e{i}: executionUpdated(id: "x") {{ type }}' for i in range(301)) + " }")
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["QUERY_TOO_LARGE"], refused
        (refused,) = await ws.collect(too_costly)
        assert refused["errors"][0].get("extensions") == {"code": "QUERY_TOO_COSTLY", "cost": 4, "maxCost": 2}, refused
        (answer,) = await ws.collect('subscription { executionUpdated(id: "x") { type } }')
        assert [e["extensions"]["code"] for e in answer["errors"]] == ["UNAUTHENTICATED"], answer
