"""Notices missed while the bus's LISTEN connection was down are caught up from the table."""
from __future__ import annotations

import asyncio

from tests.helpers import kill_bus_connections
from tests.ws_client import GraphQLWebSocket

from .util import EXECUTION_UPDATED, PROJECT_EXECUTIONS, execute, payloads_to_events, sequences, tenants


async def _outage(server, db_url):
    """Cut the live server's LISTEN connection and keep it down until the returned event is set."""
    bus = server.bus
    real_connect = bus._connect
    gate = asyncio.Event()

    async def connect_when_allowed():
        await gate.wait()
        return await real_connect()

    bus._connect = connect_when_allowed
    await kill_bus_connections(db_url)
    for _ in range(200):
        if not bus.connected:
            break
        await asyncio.sleep(0.02)
    assert not bus.connected
    return gate


async def _next(queue: asyncio.Queue, field: str, timeout: float = 5.0) -> dict:
    payload = await asyncio.wait_for(queue.get(), timeout)
    assert not payload.get("errors"), payload
    return payload["data"][field]


async def _pump(ws, query, variables, out: asyncio.Queue):
    async for payload in ws.subscribe(query, variables, timeout=30):
        await out.put(payload)
    await out.put(None)


async def test_execution_updated_catches_up_after_a_bus_outage(gql, live, driver, db_url):
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})
    await driver.start(eid)
    async with live() as server, GraphQLWebSocket(server.url, token=t.token) as ws:
        got: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(_pump(ws, EXECUTION_UPDATED, {"id": eid}, got))
        snap = await _next(got, "executionUpdated")
        await driver.delta(eid, "one ")
        assert (await _next(got, "executionUpdated"))["delta"] == "one "
        gate = await _outage(server, db_url)
        await driver.delta(eid, "two ")  # nobody LISTENs in this process now
        await driver.log(eid, "while the bus was down")
        await asyncio.sleep(0.3)
        assert got.empty()
        gate.set()  # reconnect: RESYNC, and the subscriber reads what it missed
        missed = [await _next(got, "executionUpdated") for _ in range(2)]
        assert [e["type"] for e in missed] == ["OUTPUT_DELTA", "LOG"] and missed[0]["delta"] == "two "
        assert server.bus.reconnects == 1
        await driver.delta(eid, "three")
        await driver.finish(eid)
        rest = []
        while (p := await asyncio.wait_for(got.get(), 5)) is not None:
            rest.append(payloads_to_events([p])[0])
        await task
    events = [snap, {"sequence": snap["sequence"] + 1}, *missed, *rest]
    assert sequences(events) == list(range(snap["sequence"], snap["sequence"] + len(events)))
    assert rest[-1]["type"] == "COMPLETED" and rest[-1]["execution"]["output"] == "one two three"


async def test_project_executions_catch_up_after_a_bus_outage_without_repeats(gql, live, driver, db_url):
    t, = await tenants(gql, "ann")
    async with live() as server, GraphQLWebSocket(server.url, token=t.token) as ws:
        got: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(_pump(ws, PROJECT_EXECUTIONS, {"id": t.project_id}, got))
        for _ in range(100):
            if server.bus.subscriber_count:
                break
            await asyncio.sleep(0.02)
        first = await execute(gql, t.token, t.prompt_id, {"name": "1"})
        e = await _next(got, "projectExecutions")
        assert (e["type"], e["execution"]["id"]) == ("QUEUED", first)
        gate = await _outage(server, db_url)
        await driver.start(first)
        second = await execute(gql, t.token, t.prompt_id, {"name": "2"})
        await asyncio.sleep(0.3)
        assert got.empty()
        gate.set()
        missed = [await _next(got, "projectExecutions") for _ in range(2)]
        assert sorted((m["type"], m["execution"]["id"]) for m in missed) == sorted(
            [("STARTED", first), ("QUEUED", second)])
        await driver.finish(first)
        e = await _next(got, "projectExecutions")
        assert (e["type"], e["execution"]["id"]) == ("COMPLETED", first)
        await asyncio.sleep(0.2)
        assert got.empty()  # the first QUEUED was not sent again
        task.cancel()
