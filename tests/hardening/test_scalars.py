"""Custom scalars refuse what the database cannot take, as input errors (found by the fuzzer)."""
from __future__ import annotations

import logging

import pytest

from tests.helpers import create_project, signup

EXECUTIONS = """query($after: DateTime) { project(slug: "acme") {
                  executions(filter: {createdAfter: $after}) { totalCount } } }"""


@pytest.fixture
async def token(gql):
    token, _ = await signup(gql, "alice")
    await create_project(gql, token, "acme")
    return token


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00.000002", "0001-01-01T03:00:00+05:00",
                                   "9999-12-31T23:00:00-08:00"])
async def test_datetimes_that_leave_the_years_python_has_in_utc(gql, token, value, caplog):
    with caplog.at_level(logging.INFO, logger="promptstudio"):
        body = await gql(EXECUTIONS, {"after": value}, token=token, check=False)
        assert "data" not in body, body
        [error] = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", body
        assert "out of range" in error["message"] and "'$after'" in error["message"], error
        # the same as a literal: a validation error
        literal = EXECUTIONS.replace("query($after: DateTime)", "query").replace("$after", f'"{value}"')
        body = await gql(literal, token=token, check=False)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["GRAPHQL_VALIDATION_FAILED"], body
        assert "out of range" in body["errors"][0]["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize("value", ["0001-01-02T00:00:00", "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59Z",
                                   "2026-01-01T12:00:00+05:30"])
async def test_datetimes_at_the_ends_that_fit_are_fine(gql, token, value):
    body = await gql(EXECUTIONS, {"after": value}, token=token)
    assert body == {"data": {"project": {"executions": {"totalCount": 0}}}}


@pytest.mark.parametrize("price", ["NaN", "Infinity", "-Infinity", "1E+30", "sNaN", 1e300])
async def test_decimal_prices_that_the_database_cannot_hold_are_user_errors(gql, price):
    token, _ = await signup(gql, "root")  # the first user is a superuser
    body = await gql("""mutation($i: UpsertModelConfigInput!) { upsertModelConfig(input: $i) {
                          userErrors { code field } } }""",
                     {"i": {"provider": "acme", "modelId": "m", "inputPricePerMillion": price,
                            "outputPricePerMillion": "1"}}, token=token, check=False)
    assert "errors" not in body, body
    assert body["data"]["upsertModelConfig"]["userErrors"] == [
        {"code": "INVALID", "field": ["input", "inputPricePerMillion"]}], body
