"""Who may subscribe: authentication over WebSocket, and nothing of other tenants leaks."""
from __future__ import annotations

import asyncio

import pytest

from tests.helpers import add_member, create_api_key
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, ConnectionRejected, GraphQLWebSocket

from .util import EXECUTION_UPDATED, PROJECT_EXECUTIONS, execute, payloads_to_events, tenants

NOT_FOUND_EXECUTION = "No execution with this ID."


def _only_error(payloads: list[dict]) -> dict:
    """The stream held exactly one payload: an error, and no data."""
    assert len(payloads) == 1, payloads
    assert payloads[0].get("data") is None, payloads
    errors = payloads[0]["errors"]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_token_in_connection_init_or_in_the_upgrade_header(gql, live, protocol):
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})
    async with live() as server:
        async with GraphQLWebSocket(server.url, protocol=protocol, token=t.token) as ws:
            events = payloads_to_events(await ws.collect(EXECUTION_UPDATED, {"id": eid}, limit=1))
            assert events[0]["type"] == "SNAPSHOT" and events[0]["execution"]["id"] == eid
        async with GraphQLWebSocket(server.url, protocol=protocol, header_token=t.token) as ws:
            events = payloads_to_events(await ws.collect(EXECUTION_UPDATED, {"id": eid}, limit=1))
            assert events[0]["type"] == "SNAPSHOT" and events[0]["execution"]["id"] == eid
        await asyncio.sleep(0.1)
        assert server.bus.subscriber_count == 0  # the client went away: unsubscribed


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_anonymous_subscribers_get_unauthenticated(gql, live, protocol):
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})
    async with live() as server, GraphQLWebSocket(server.url, protocol=protocol) as ws:
        error = _only_error(await ws.collect(EXECUTION_UPDATED, {"id": eid}))
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        error = _only_error(await ws.collect(PROJECT_EXECUTIONS, {"id": t.project_id}))
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
        assert server.bus.subscriber_count == 0


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_invalid_token_makes_every_operation_unauthenticated(gql, live, db_url, protocol):
    """A token that is not valid (forged, revoked, logged out) is not "anonymous": the connection is
    accepted, and every operation on it — subscriptions and queries alike — fails with UNAUTHENTICATED
    saying why, whether the token came in connection_init or in the upgrade request's header."""
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})
    revoked = await create_api_key(gql, t.token, t.project_id, ["EXECUTIONS_READ"])
    key_id = (await gql("""query($s: String!) { project(slug: $s) { apiKeys { nodes { id } } } }""",
                        {"s": f"{t.name}-proj"}, token=t.token))["data"]["project"]["apiKeys"]["nodes"][0]["id"]
    await gql("""mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { id } } }""", {"id": key_id},
              token=t.token)
    cases = [("forged", {"token": "pss_not-a-real-token"}, "not valid"),
             ("forged header", {"header_token": "pss_not-a-real-token"}, "not valid"),
             ("revoked key", {"token": revoked}, "revoked")]
    async with live() as server:
        for name, how, says in cases:
            async with GraphQLWebSocket(server.url, protocol=protocol, **how) as ws:
                operations = [(EXECUTION_UPDATED, {"id": eid}), (PROJECT_EXECUTIONS, {"id": t.project_id})]
                if protocol == TRANSPORT_WS:  # the legacy protocol carries subscriptions only
                    operations.append(("query { viewer { id } }", None))
                for query, variables in operations:
                    error = _only_error(await ws.collect(query, variables))
                    assert error["extensions"]["code"] == "UNAUTHENTICATED", (name, error)
                    assert says in error["message"], (name, error)
        assert server.bus.subscriber_count == 0
        # A good token on the same server works (nothing above was remembered).
        async with GraphQLWebSocket(server.url, protocol=protocol, token=t.token) as ws:
            events = payloads_to_events(await ws.collect(EXECUTION_UPDATED, {"id": eid}, limit=1))
            assert events[0]["type"] == "SNAPSHOT"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_other_tenants_executions_and_projects_are_not_found(gql, live, protocol):
    a, b = await tenants(gql, "ann", "bob")
    b_exec = await execute(gql, b.token, b.prompt_id, {"name": "Bo"})
    async with live() as server, GraphQLWebSocket(server.url, protocol=protocol, token=a.token) as ws:
        foreign = _only_error(await ws.collect(EXECUTION_UPDATED, {"id": b_exec}))
        assert foreign == {**foreign, "message": NOT_FOUND_EXECUTION}
        assert foreign["extensions"]["code"] == "NOT_FOUND"
        # indistinguishable from an id that does not exist, or is not an execution id at all
        for bogus in ("RXhlY3V0aW9uOjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMA", b.prompt_id, "garbage"):
            other = _only_error(await ws.collect(EXECUTION_UPDATED, {"id": bogus}))
            assert (other["message"], other["extensions"]) == (foreign["message"], foreign["extensions"])
        project = _only_error(await ws.collect(PROJECT_EXECUTIONS, {"id": b.project_id}))
        assert project["message"] == "No project with this ID." and project["extensions"]["code"] == "NOT_FOUND"
        assert server.bus.subscriber_count == 0


async def test_api_keys_need_an_executions_scope_of_that_project(gql, live):
    a, b = await tenants(gql, "ann", "bob")
    a_exec = await execute(gql, a.token, a.prompt_id, {"name": "Ada"})
    reader = await create_api_key(gql, a.token, a.project_id, ["EXECUTIONS_READ"])
    prompts_only = await create_api_key(gql, a.token, a.project_id, ["PROMPTS_READ"])
    foreign = await create_api_key(gql, b.token, b.project_id, ["EXECUTIONS_READ"])
    async with live() as server:
        async with GraphQLWebSocket(server.url, token=reader) as ws:
            events = payloads_to_events(await ws.collect(EXECUTION_UPDATED, {"id": a_exec}, limit=1))
            assert events[0]["type"] == "SNAPSHOT"
        async with GraphQLWebSocket(server.url, token=prompts_only) as ws:
            assert _only_error(await ws.collect(EXECUTION_UPDATED, {"id": a_exec}))["message"] == NOT_FOUND_EXECUTION
            error = _only_error(await ws.collect(PROJECT_EXECUTIONS, {"id": a.project_id}))
            assert error["extensions"]["code"] == "FORBIDDEN" and "EXECUTIONS_READ" in error["message"]
        async with GraphQLWebSocket(server.url, token=foreign) as ws:
            assert _only_error(await ws.collect(EXECUTION_UPDATED, {"id": a_exec}))["message"] == NOT_FOUND_EXECUTION
            error = _only_error(await ws.collect(PROJECT_EXECUTIONS, {"id": a.project_id}))
            assert error["extensions"]["code"] == "NOT_FOUND"
        await asyncio.sleep(0.1)
        assert server.bus.subscriber_count == 0


async def test_a_member_removed_mid_stream_stops_receiving(gql, live, driver, monkeypatch):
    from app.api.core import live as subscriptions

    monkeypatch.setattr(subscriptions, "ACCESS_RECHECK_SECONDS", 0.0)  # re-check before every delivery
    a, b = await tenants(gql, "ann", "bob")
    await add_member(gql, a.token, a.project_id, "bob", "VIEWER")
    eid = await execute(gql, a.token, a.prompt_id, {"name": "Ada"})
    await driver.start(eid)
    async with live() as server, GraphQLWebSocket(server.url, token=b.token) as ws:
        got: asyncio.Queue = asyncio.Queue()

        async def pump():
            async for payload in ws.subscribe(EXECUTION_UPDATED, {"id": eid}):
                await got.put(payload)
            await got.put(None)

        task = asyncio.create_task(pump())
        assert (await asyncio.wait_for(got.get(), 5))["data"]["executionUpdated"]["type"] == "SNAPSHOT"
        await driver.delta(eid, "visible")
        assert (await asyncio.wait_for(got.get(), 5))["data"]["executionUpdated"]["delta"] == "visible"
        body = await gql("""mutation($input: RemoveProjectMemberInput!) { removeProjectMember(input: $input) {
            userErrors { code message } } }""", {"input": {"projectId": a.project_id, "userId": b.user_id}},
                         token=a.token)
        assert body["data"]["removeProjectMember"]["userErrors"] == []
        await driver.delta(eid, "secret")
        last = await asyncio.wait_for(got.get(), 5)
        assert last["data"] is None and [e["message"] for e in last["errors"]] == [NOT_FOUND_EXECUTION]
        assert await asyncio.wait_for(got.get(), 5) is None  # completed, nothing else
        await task
        assert server.bus.subscriber_count == 0


async def test_a_logged_out_session_stops_receiving(gql, live, driver, monkeypatch):
    from app.api.core import live as subscriptions

    monkeypatch.setattr(subscriptions, "ACCESS_RECHECK_SECONDS", 0.0)  # re-check before every delivery
    a, = await tenants(gql, "ann")
    eid = await execute(gql, a.token, a.prompt_id, {"name": "Ada"})
    await driver.start(eid)
    async with live() as server, GraphQLWebSocket(server.url, token=a.token) as ws:
        got: asyncio.Queue = asyncio.Queue()

        async def pump():
            async for payload in ws.subscribe(EXECUTION_UPDATED, {"id": eid}):
                await got.put(payload)
            await got.put(None)

        task = asyncio.create_task(pump())
        assert (await asyncio.wait_for(got.get(), 5))["data"]["executionUpdated"]["type"] == "SNAPSHOT"
        body = await gql("mutation { logOut { ok userErrors { code } } }", token=a.token)
        assert body["data"]["logOut"]["ok"] is True
        await driver.delta(eid, "secret")
        last = await asyncio.wait_for(got.get(), 5)
        assert last["data"] is None
        assert last["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert await asyncio.wait_for(got.get(), 5) is None
        await task
        assert server.bus.subscriber_count == 0


async def test_a_query_over_the_legacy_protocol_is_a_clear_client_error(gql, live):
    """graphql-ws carries subscriptions only: a query there is the client's mistake, said as such (not a
    masked internal error)."""
    t, = await tenants(gql, "ann")
    async with live() as server, GraphQLWebSocket(server.url, protocol=LEGACY_WS, token=t.token) as ws:
        error = _only_error(await ws.collect("query { viewer { id } }"))
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "subscriptions only" in error["message"]
