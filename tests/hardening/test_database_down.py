"""While the database cannot be reached, /graphql answers a JSON 503 with Retry-After (not a 200 with an
INTERNAL_SERVER_ERROR per field, not a 500); a query whose connection died under it is run once more.

"Unreachable" is the app's engine pointed, after start-up, at a loopback port where nothing listens
(the test PostgreSQL is shared by the whole session: it is not stopped). "Lost mid-flight" is a
statement replaced, once, by ``pg_terminate_backend(pg_backend_pid())``: the connection dies under
that very statement, as when the server restarts or an administrator ends the backend.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import event

from app.db.engine import create_engine_and_sessionmaker
from tests.conftest import free_port
from tests.helpers import create_project, signup

UNAVAILABLE = {"errors": [{"message": "The database is unavailable at the moment; try again in a few seconds.",
                           "extensions": {"code": "SERVICE_UNAVAILABLE"}}]}


@contextmanager
def database_unreachable(app):
    """Point the running app at a port where nothing listens; put it back afterwards."""
    runtime = app.state.runtime
    saved = runtime.engine, runtime.sessionmaker
    dead_engine, dead_sessionmaker = create_engine_and_sessionmaker(
        f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", runtime.settings)
    runtime.engine, runtime.sessionmaker = dead_engine, dead_sessionmaker
    try:
        yield
    finally:
        runtime.engine, runtime.sessionmaker = saved


@contextmanager
def connection_killed_under(app, fragment: str, times: int = 1):
    """The next ``times`` statements containing ``fragment`` kill their own connection instead of
    running. Yields the list of statements seen containing ``fragment``."""
    engine = app.state.runtime.engine.sync_engine
    seen: list[str] = []
    left = [times]

    def swap(conn, cursor, statement, parameters, context, executemany):
        if fragment in statement:
            seen.append(statement)
            if left[0] > 0:
                left[0] -= 1
                return "SELECT pg_terminate_backend(pg_backend_pid())", ()
        return statement, parameters

    event.listen(engine, "before_cursor_execute", swap, retval=True)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", swap)


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == UNAVAILABLE


async def test_unreachable_database_is_a_503_with_retry_after(app, client, gql, caplog):
    token, _ = await signup(gql, "alice")
    await create_project(gql, token, "acme")
    with database_unreachable(app), caplog.at_level(logging.WARNING):
        # anonymous: the resolvers fail to connect
        assert_unavailable(await client.post("/graphql", json={"query": '{ project(slug: "acme") { id } }'}))
        # signed in: authenticating the token fails to connect, before any resolver
        assert_unavailable(await client.post("/graphql", json={"query": "{ viewer { id } }"},
                                             headers={"Authorization": f"Bearer {token}"}))
        # a mutation
        assert_unavailable(await client.post("/graphql", json={
            "query": 'mutation { logIn(input: {login: "alice", password: "x"}) { token } }'}))
        # GET, and with application/graphql-response+json
        r = await client.get("/graphql", params={"query": '{ project(slug: "acme") { id } }'},
                             headers={"accept": "application/graphql-response+json"})
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json() == UNAVAILABLE
        assert (await client.get("/readyz")).status_code == 503
    # logged as unavailability, in one line each, never as an internal error with a traceback
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR], caplog.text
    assert "database unavailable" in caplog.text
    # and back to normal once it is reachable again
    body = await gql('{ project(slug: "acme") { slug } }', token=token)
    assert body == {"data": {"project": {"slug": "acme"}}}


async def test_a_real_server_answers_503_while_the_database_is_unreachable(live):
    async with live() as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            with database_unreachable(server.app):
                r = await c.post("/graphql", json={"query": "{ projects { totalCount } }"})
                assert_unavailable(r)
                r = await c.post("/graphql", json={"query": "{ viewer { id } }"},
                                 headers={"Authorization": "Bearer pss_whatever"})
                assert_unavailable(r)
            r = await c.post("/graphql", json={"query": "{ projects { totalCount } }"})
            assert r.status_code == 200 and r.json() == {"data": {"projects": {"totalCount": 0}}}


async def test_a_query_that_lost_its_connection_is_run_once_more(app, client, gql, caplog):
    token, _ = await signup(gql, "alice")
    await create_project(gql, token, "acme")
    with connection_killed_under(app, "FROM projects") as seen, caplog.at_level(logging.WARNING):
        r = await client.post("/graphql", json={"query": '{ project(slug: "acme") { slug name } }'},
                              headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json() == {"data": {"project": {"slug": "acme", "name": "acme"}}}
    assert len(seen) == 2  # the statement that lost its connection, and the one of the second run
    assert "running it once more" in caplog.text
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR], caplog.text


async def test_authenticating_a_token_that_lost_its_connection_is_tried_once_more(app, client, gql):
    """The first statement of a signed-in request (a stale pooled connection after a database restart
    fails there) is a read: tried once more even for a mutation."""
    token, _ = await signup(gql, "alice")
    with connection_killed_under(app, "FROM user_sessions") as seen:
        r = await client.post("/graphql", json={
            "query": 'mutation { createProject(input: {name: "Acme", slug: "acme"}) { project { slug } } }'},
            headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json() == {"data": {"createProject": {"project": {"slug": "acme"}}}}
    assert len(seen) == 2


async def test_a_query_that_loses_its_connection_twice_gives_up_with_a_503(app, client, gql):
    token, _ = await signup(gql, "alice")
    await create_project(gql, token, "acme")
    with connection_killed_under(app, "FROM projects", times=2) as seen:
        r = await client.post("/graphql", json={"query": '{ project(slug: "acme") { slug } }'},
                              headers={"Authorization": f"Bearer {token}"})
    assert_unavailable(r)
    assert len(seen) == 2  # once, and once more: no third time


async def test_a_mutation_that_lost_its_connection_is_not_run_again(app, client, gql, db_url):
    token, _ = await signup(gql, "alice")
    with connection_killed_under(app, "INSERT INTO projects") as seen:
        r = await client.post("/graphql", json={
            "query": 'mutation { createProject(input: {name: "Acme", slug: "acme"}) { project { id } } }'},
            headers={"Authorization": f"Bearer {token}"})
    assert_unavailable(r)
    assert len(seen) == 1
    # nothing was written; the next try works
    body = await gql('{ project(slug: "acme") { id } }', token=token)
    assert body == {"data": {"project": None}}
    await create_project(gql, token, "acme")


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_errors_escaping_the_routes_are_json_500s(app, client, accept, monkeypatch, caplog):
    """Anything else that escapes the view: a JSON 500 with a request id, logged with its traceback."""
    from app.api.view import GraphQLView

    async def broken(self, request, response):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(GraphQLView, "get_context", broken)
    r = await client.post("/graphql", json={"query": "{ viewer { id } }"}, headers={"accept": accept})
    assert r.status_code == 500
    assert r.headers["content-type"].startswith(accept)
    body = r.json()
    assert body["errors"][0]["message"] == "Internal server error"
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert body["errors"][0]["extensions"]["requestId"]
    assert "secret" not in r.text
    assert "secret detail" in caplog.text
