"""executionUpdated: SNAPSHOT, then every event in order with gapless sequences, until the end."""
from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event

from app.api.executions import subscriptions
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, GraphQLWebSocket

from .util import EXECUTION_UPDATED, execute, payloads_to_events, sequences, tenants


async def _wait_subscribed(server, count: int = 1, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while server.bus.subscriber_count < count:
        assert asyncio.get_running_loop().time() < deadline, "the subscription never reached the bus"
        await asyncio.sleep(0.01)


async def _snapshot_taken(ws_events: asyncio.Queue, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(ws_events.get(), timeout)


async def _pump(ws: GraphQLWebSocket, query: str, variables: dict, out: asyncio.Queue) -> list[dict]:
    got = []
    async for payload in ws.subscribe(query, variables):
        got.append(payload)
        await out.put(payload)
    return got


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_snapshot_then_every_event_in_order_until_the_end(gql, live, driver, protocol):
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})  # no workers: stays PENDING
    async with live() as server, GraphQLWebSocket(server.url, protocol=protocol, token=t.token) as ws:
        seen: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(_pump(ws, EXECUTION_UPDATED, {"id": eid}, seen))
        snap = (await _snapshot_taken(seen))["data"]["executionUpdated"]
        assert snap["type"] == "SNAPSHOT" and snap["execution"]["status"] == "PENDING"
        assert snap["sequence"] == 2  # QUEUED and its log, written by executePrompt
        assert snap["delta"] is None and snap["log"] is None
        await driver.start(eid)
        for piece in ("Hello", " Ada", "!"):
            await driver.delta(eid, piece)
        await driver.log(eid, "almost there")
        await driver.finish(eid)
        payloads = await asyncio.wait_for(task, 10)
        assert server.bus.subscriber_count == 0  # let go once it completed
    events = payloads_to_events(payloads)
    assert sequences(events) == list(range(2, 2 + len(events)))  # snapshot's, then gapless
    types = [e["type"] for e in events]
    assert types == ["SNAPSHOT", "STARTED", "LOG", "OUTPUT_DELTA", "OUTPUT_DELTA", "OUTPUT_DELTA", "LOG", "LOG",
                     "COMPLETED"]
    assert "".join(e["delta"] for e in events if e["type"] == "OUTPUT_DELTA") == "Hello Ada!"
    logs = [e["log"]["message"] for e in events if e["type"] == "LOG"]
    assert logs == ["claimed by the test driver", "almost there", "done"]
    assert all(e["log"] is None for e in events if e["type"] != "LOG")
    assert events[-1]["execution"]["status"] == "COMPLETED" and events[-1]["execution"]["output"] == "Hello Ada!"


async def test_a_finished_execution_gives_its_snapshot_and_completes(gql, live, driver):
    t, = await tenants(gql, "bob")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Bo"})
    await driver.start(eid)
    await driver.delta(eid, "Hello Bo!")
    await driver.finish(eid, "FAILED")
    async with live() as server, GraphQLWebSocket(server.url, token=t.token) as ws:
        events = payloads_to_events(await ws.collect(EXECUTION_UPDATED, {"id": eid}))
        assert server.bus.subscriber_count == 0
    assert len(events) == 1
    snap = events[0]
    assert snap["type"] == "SNAPSHOT" and snap["execution"]["status"] == "FAILED"
    assert snap["execution"]["output"] == "Hello Bo!" and snap["sequence"] == 7


async def test_no_race_between_the_snapshot_and_the_stream(gql, live, driver, monkeypatch):
    """A change committed just before the snapshot is read is in the snapshot (and not sent again); one
    committed just after it — before the stream starts waiting — is sent. That holds because the
    subscriber is registered with the bus before the snapshot is read."""
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})
    await driver.start(eid)
    real_read = subscriptions.read_snapshot
    order: list[str] = []

    async def racing_read(ctx, execution_id):
        assert server.bus.subscriber_count == 1, "the subscriber must be registered before the snapshot is read"
        await driver.delta(eid, "before|")  # lands between subscribing and reading
        row = await real_read(ctx, execution_id)
        order.append("read")
        await driver.delta(eid, "after|")  # lands after the read, before the stream waits for anything
        await asyncio.sleep(0.2)  # ... and its notice has surely reached the bus by now
        return row

    monkeypatch.setattr(subscriptions, "read_snapshot", racing_read)
    async with live() as server, GraphQLWebSocket(server.url, token=t.token) as ws:
        seen: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(_pump(ws, EXECUTION_UPDATED, {"id": eid}, seen))
        await _snapshot_taken(seen)
        await driver.delta(eid, "later")
        await driver.finish(eid)
        events = payloads_to_events(await asyncio.wait_for(task, 10))
    assert order == ["read"]
    snap, rest = events[0], events[1:]
    assert snap["execution"]["output"] == "before|"
    assert sequences(rest) == list(range(snap["sequence"] + 1, snap["sequence"] + 1 + len(rest)))
    deltas = [e["delta"] for e in rest if e["type"] == "OUTPUT_DELTA"]
    assert deltas == ["after|", "later"]
    assert snap["execution"]["output"] + "".join(deltas) == rest[-1]["execution"]["output"] == "before|after|later"


async def test_one_read_per_wake_up_whatever_the_number_of_events(gql, live, driver):
    """20 events committed at once reach the subscriber as one batch: the execution row and the events
    (their log rows joined) are read in two statements, not one per event."""
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})
    await driver.start(eid)
    async with live() as server, GraphQLWebSocket(server.url, token=t.token) as ws:
        statements: list[str] = []
        engine = server.app.state.runtime.engine.sync_engine
        seen: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(_pump(ws, EXECUTION_UPDATED, {"id": eid}, seen))
        await _snapshot_taken(seen)
        await asyncio.sleep(0.1)

        def on_statement(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", on_statement)
        try:
            text = await driver.burst(eid, 10)
            got = [(await asyncio.wait_for(seen.get(), 5))["data"]["executionUpdated"] for _ in range(20)]
        finally:
            event.remove(engine, "before_cursor_execute", on_statement)
        assert [e["type"] for e in got] == ["LOG", "OUTPUT_DELTA"] * 10
        assert [e["log"]["message"] for e in got[::2]] == [f"burst {i}" for i in range(10)]
        assert "".join(e["delta"] for e in got[1::2]) == text
        assert all(e["execution"]["output"] == text for e in got)  # the row as it is now, loaded once
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 2, statements
        await driver.finish(eid)
        await asyncio.wait_for(task, 10)


async def test_a_long_catch_up_is_read_in_pieces(gql, live, driver, monkeypatch):
    monkeypatch.setattr(subscriptions, "READ_LIMIT", 3)
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "Ada"})
    await driver.start(eid)
    async with live() as server, GraphQLWebSocket(server.url, token=t.token) as ws:
        seen: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(_pump(ws, EXECUTION_UPDATED, {"id": eid}, seen))
        snap = (await _snapshot_taken(seen))["data"]["executionUpdated"]
        text = await driver.burst(eid, 10)
        await driver.finish(eid)
        events = payloads_to_events(await asyncio.wait_for(task, 10))
    assert sequences(events) == list(range(snap["sequence"], snap["sequence"] + len(events)))
    assert [e["type"] for e in events[1:21]] == ["LOG", "OUTPUT_DELTA"] * 10
    assert "".join(e["delta"] for e in events if e["type"] == "OUTPUT_DELTA") == text
    assert events[-1]["type"] == "COMPLETED"
