"""Live executions with the echo provider and real workers: late joiners miss nothing, clients come and go."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from app.events import topics
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, ConnectionRejected, GraphQLWebSocket

from .util import (EXECUTION_UPDATED, PROJECT_EXECUTIONS, echo_settings, execute, payloads_to_events, raw_uuid,
                   sequences, tenants)

TEXT = "".join(f"[{i:03d}]" for i in range(300))  # 1500 characters, streamed in 300 pieces of 5


async def _join_at(server, token: str, eid: str, delay: float, protocol: str) -> list[dict]:
    await asyncio.sleep(delay)
    async with GraphQLWebSocket(server.url, protocol=protocol, token=token) as ws:
        return payloads_to_events(await ws.collect(EXECUTION_UPDATED, {"id": eid}, timeout=30))


async def test_subscribers_joining_at_any_moment_miss_nothing_after_their_snapshot(gql, live):
    """Eight subscribers join while the execution streams (both protocols): each one's snapshot output
    plus the deltas it receives is exactly the final output, with gapless sequences."""
    t, = await tenants(gql, "ann", template="{{text}}")
    async with live(workers=2) as server:
        eid = await execute(gql, t.token, t.prompt_id, {"text": TEXT}, modelSettings=echo_settings(5, 4))
        joins = [_join_at(server, t.token, eid, 0.15 * i, (TRANSPORT_WS, LEGACY_WS)[i % 2]) for i in range(8)]
        results = await asyncio.gather(*joins)
        await asyncio.sleep(0.1)
        assert server.bus.subscriber_count == 0
    statuses_at_join = set()
    for events in results:
        snap, rest = events[0], events[1:]
        assert snap["type"] == "SNAPSHOT"
        statuses_at_join.add(snap["execution"]["status"])
        assert sequences(events) == list(range(snap["sequence"], snap["sequence"] + len(events)))
        if rest:
            assert rest[-1]["type"] == "COMPLETED" and [e["type"] for e in rest[:-1]].count("COMPLETED") == 0
        else:
            assert snap["execution"]["status"] == "COMPLETED"
        deltas = "".join(e["delta"] for e in rest if e["type"] == "OUTPUT_DELTA")
        assert (snap["execution"]["output"] or "") + deltas == TEXT
    assert "RUNNING" in statuses_at_join  # some joined mid-stream


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_stopping_or_disconnecting_unsubscribes(gql, live, protocol):
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})  # no workers: it waits forever
    async with live() as server:
        async with GraphQLWebSocket(server.url, protocol=protocol, token=t.token) as ws:
            ops = [await ws.start(EXECUTION_UPDATED, {"id": eid}) for _ in range(3)]
            ops.append(await ws.start(PROJECT_EXECUTIONS, {"id": t.project_id}))
            await _count_becomes(server, 4)
            await ws.stop(ops[0])  # `complete` / `stop` from the client
            await _count_becomes(server, 3)
        await _count_becomes(server, 0)  # the socket closed: everything on it let go


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_the_bus_can_tell_when_a_subscribers_client_is_gone(gql, live, protocol):
    """Each subscriber carries a liveness check of its WebSocket: the bus sweeps away subscribers whose
    client left even if their stream was abandoned without being closed (a send that failed half way
    in the legacy protocol's handler can leave it so until the garbage collector runs)."""
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})
    async with live() as server:
        async with GraphQLWebSocket(server.url, protocol=protocol, token=t.token) as ws:
            await ws.start(EXECUTION_UPDATED, {"id": eid})
            await _count_becomes(server, 1)
            sub, = server.bus._by_topic[topics.execution(raw_uuid(eid))]
            assert sub.alive is not None and sub.alive()
            assert server.bus.sweep() == 0
        await _count_becomes(server, 0)
        assert not sub.alive()


async def _count_becomes(server, n: int) -> None:
    for _ in range(250):
        if server.bus.subscriber_count == n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"subscriber_count is {server.bus.subscriber_count}, expected {n}")


async def test_at_most_100_operations_per_connection(gql, live):
    t, = await tenants(gql, "ann")
    async with live() as server, GraphQLWebSocket(server.url, token=t.token) as ws:
        for _ in range(100):
            await ws.start(PROJECT_EXECUTIONS, {"id": t.project_id})
        await _count_becomes(server, 100)
        refused = await ws.collect(PROJECT_EXECUTIONS, {"id": t.project_id})
        assert [e["message"] for e in refused[0]["errors"]] == ["Subscription limit reached"]
        assert server.bus.subscriber_count == 100


async def test_graphiql_subscribes_over_graphql_transport_ws_on_its_own_url(gql, live):
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})
    async with live() as server:
        async with httpx.AsyncClient() as http:
            page = await http.get(server.url + "/graphql", headers={"Accept": "text/html"})
            assert page.status_code == 200
            # a plain HTTP request cannot subscribe: a 400 that says where subscriptions live, no subscriber
            resp = await http.post(server.url + "/graphql", json={"query": EXECUTION_UPDATED, "variables": {
                "id": eid}}, headers={"Authorization": f"Bearer {t.token}"})
        assert resp.status_code == 400 and "WebSocket" in resp.text
        assert server.bus.subscriber_count == 0
        html = page.text
        # GraphiQL's fetcher opens its graphql-ws client (protocol graphql-transport-ws) on the page's own URL,
        # and sends the headers pane (e.g. {"Authorization": "Bearer ..."}) as the connection_init payload
        assert "subscriptionUrl" in html and "httpUrlToWebSockeUrl(fetchURL)" in html
        assert 'window.location.href.split("?")[0]' in html
        # ... which a browser on that page may open (same origin); pages of other sites may not
        async with GraphQLWebSocket(server.url, token=t.token, origin=server.url) as ws:
            events = payloads_to_events(await ws.collect(EXECUTION_UPDATED, {"id": eid}, limit=1))
            assert events[0]["type"] == "SNAPSHOT"
        with pytest.raises(ConnectionRejected) as refused:
            async with GraphQLWebSocket(server.url, token=t.token, origin="https://evil.example"):
                pass
        assert refused.value.code == 403
