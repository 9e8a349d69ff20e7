"""The limits on expensive GraphQL: document size before validation."""
from __future__ import annotations

import time

import pytest
from graphql import get_introspection_query

from app.settings import Settings

VIEWERS = "{" + " ".join("viewer{id}" if i % 2 else "viewer{username}" for i in range(1200)) + "}"


@pytest.fixture
def settings(settings) -> Settings:
    # This module checks the limits at their defaults.
    d = Settings()
    return settings.replace(max_selections=d.max_selections, max_repeated_selections=d.max_repeated_selections)


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
