"""The event bus: NOTIFY in the changing transaction, per-process fan-out by topic, bounded inboxes,
reconnects."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.db.models.enums import ExecutionEventType
from app.events import topics
from app.events.bus import RESYNC, EventBus, Notice, Subscriber
from app.events.publish import publish
from app.services.execution_events import emit_event

from .util import execute, raw_uuid, tenants


def _notice(seq: int, type: str = "LOG", topic: str = "t") -> Notice:
    return Notice(topic=topic, data={"s": seq, "t": type})


async def test_an_inbox_coalesces_bursts_and_overflows_past_its_size():
    sub = Subscriber(topic="t", maxsize=3)
    for seq in (1, 2, 3):
        sub.offer(_notice(seq))
    assert [n.data["s"] for n in await sub.next_batch()] == [1, 2, 3]  # one wake-up for the whole burst
    assert await sub.next_batch(timeout=0.05) == []  # nothing new: the timeout passes
    sub.offer(RESYNC)  # takes no room
    for seq in (4, 5, 6):
        sub.offer(_notice(seq))
    assert not sub.overflowed
    sub.offer(_notice(7))  # the 4th notice not taken: more than 3 behind
    assert sub.overflowed and sub.backlog == 0
    sub.offer(_notice(8))  # ignored from now on
    assert await asyncio.wait_for(sub.next_batch(), 1) == [] and sub.overflowed


async def test_an_inbox_keeps_only_the_notices_it_accepts():
    sub = Subscriber(topic="t", maxsize=2, accept=lambda data: data["t"] in {"STARTED", "COMPLETED"})
    for seq, type in enumerate(["QUEUED", "STARTED", "OUTPUT_DELTA", "LOG", "OUTPUT_DELTA", "COMPLETED"], 1):
        sub.offer(_notice(seq, type))
    assert not sub.overflowed  # deltas and logs took no room
    sub.offer(RESYNC)
    batch = await sub.next_batch()
    assert [n.data.get("t", "RESYNC") for n in batch] == ["STARTED", "COMPLETED", "RESYNC"]


async def test_subscribers_whose_client_is_gone_are_swept_away(db_url, template_db):
    bus = EventBus(db_url, sweep_seconds=0.05)
    await bus.start()
    try:
        client_open = True
        kept = bus.subscribe("kept")  # no liveness check: only unsubscribe removes it
        watched = bus.subscribe("watched", alive=lambda: client_open)
        waiting = asyncio.create_task(watched.next_batch())
        await asyncio.sleep(0.2)
        assert bus.subscriber_count == 2 and not waiting.done()
        client_open = False
        assert await asyncio.wait_for(waiting, 2) == [] and watched.closed  # woken, told it is closed
        assert bus.subscriber_count == 1 and not kept.closed
        watched.offer(_notice(1))
        assert watched.backlog == 0
    finally:
        await bus.stop()


async def test_notices_follow_the_commit_and_are_routed_by_topic(gql, db_url, driver):
    a, b = await tenants(gql, "ann", "bob")
    a_exec, b_exec = (await execute(gql, a.token, a.prompt_id, {"name": "A"}),
                      await execute(gql, b.token, b.prompt_id, {"name": "B"}))
    bus = EventBus(db_url, buffer=100)
    await bus.start()
    try:
        by_exec = bus.subscribe(topics.execution(raw_uuid(a_exec)))
        by_project = bus.subscribe(topics.project_executions(raw_uuid(a.project_id)),
                                   accept=lambda data: data["t"] == "STARTED")
        other = bus.subscribe(topics.project_executions(raw_uuid(b.project_id)))
        assert bus.subscriber_count == 3 and bus.connected
        async with driver.sessionmaker() as session:
            async with session.begin():
                seq = await emit_event(session, raw_uuid(a_exec), ExecutionEventType.STARTED.value)
                await asyncio.sleep(0.2)
                assert by_exec.backlog == 0  # not committed yet: nobody hears of it
            batch = await asyncio.wait_for(by_exec.next_batch(), 5)
            assert [(n.data["s"], n.data["t"], n.data["e"]) for n in batch] == [(seq, "STARTED", str(raw_uuid(a_exec)))]
            assert batch[0].data["p"] == str(raw_uuid(a.project_id))
            assert [n.data["s"] for n in await asyncio.wait_for(by_project.next_batch(), 5)] == [seq]
            async with session.begin():  # rolled back: never announced, and its number is not used
                await emit_event(session, raw_uuid(a_exec), ExecutionEventType.LOG.value)
                await session.rollback()
        await driver.delta(a_exec, "x")
        assert [n.data["s"] for n in await asyncio.wait_for(by_exec.next_batch(), 5)] == [seq + 1]  # gapless
        await asyncio.sleep(0.1)
        assert by_project.backlog == 0 and other.backlog == 0  # a delta; and another project
        await driver.start(b_exec)
        assert {n.data["e"] for n in await asyncio.wait_for(other.next_batch(), 5)} == {str(raw_uuid(b_exec))}
        assert by_exec.backlog == 0 and by_project.backlog == 0
        for sub in (by_exec, by_project, other):
            bus.unsubscribe(sub)
            bus.unsubscribe(sub)  # idempotent
        assert bus.subscriber_count == 0
    finally:
        await bus.stop()


async def test_the_bus_reconnects_and_tells_subscribers_to_catch_up(gql, db_url, driver):
    t, = await tenants(gql, "ann")
    eid = await execute(gql, t.token, t.prompt_id, {"name": "A"})
    bus = EventBus(db_url, buffer=100, reconnect_delay=0.1)
    await bus.start()
    try:
        sub = bus.subscribe(topics.execution(raw_uuid(eid)))
        conn = await asyncpg.connect(db_url)
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'promptstudio-bus' AND datname = current_database()")
        finally:
            await conn.close()
        assert killed >= 1  # ours, and the bus of the `gql` fixture's app
        batch = await asyncio.wait_for(sub.next_batch(), 10)
        assert batch == [RESYNC] and bus.reconnects == 1
        assert bus.connected
        await driver.delta(eid, "after the reconnect")  # LISTEN is back in place
        assert [n.data["t"] for n in await asyncio.wait_for(sub.next_batch(), 5)] == ["OUTPUT_DELTA"]
    finally:
        await bus.stop()


async def test_any_topic_is_routed_without_changing_the_bus(db_url, driver):
    """A new kind of feed is a new topic: publish to it, subscribe to it. One notice may go to several
    topics; each subscriber gets it once; subscribers of other topics never see it."""
    bus = EventBus(db_url, buffer=10)
    await bus.start()
    try:
        traces = bus.subscribe("project:p1:traces")
        experiment = bus.subscribe("experiment:e1")
        unrelated = bus.subscribe("project:p2:traces")
        async with driver.sessionmaker() as session, session.begin():
            await publish(session, ["project:p1:traces", "experiment:e1"], {"trace": "abc", "n": 1})
        assert [n.data for n in await asyncio.wait_for(traces.next_batch(), 5)] == [{"trace": "abc", "n": 1}]
        assert [n.topic for n in await asyncio.wait_for(experiment.next_batch(), 5)] == ["experiment:e1"]
        await asyncio.sleep(0.1)
        assert unrelated.backlog == 0
    finally:
        await bus.stop()


def test_a_notice_too_big_for_notify_is_refused_before_it_is_sent():
    from app.events.publish import encode

    with pytest.raises(ValueError, match="too big"):
        encode(["t"], {"blob": "x" * 8000})


async def test_notices_sent_on_the_bus_connection_at_once_all_arrive(db_url, template_db):
    """``notify`` (cache acknowledgements) may be called by many tasks at once, and meanwhile the
    health check may run: they take turns on the one connection instead of failing with asyncpg's
    "another operation is in progress"."""
    from app.events.publish import encode

    bus = EventBus(db_url, health_check_seconds=0.01)
    await bus.start()
    try:
        sub = bus.subscribe("many")
        await asyncio.gather(*(bus.notify(encode(["many"], {"s": i})) for i in range(200)))
        got: list[int] = []
        for _ in range(100):
            got += [n.data["s"] for n in await sub.next_batch(timeout=1)]
            if len(got) >= 200:
                break
        assert sorted(got) == list(range(200))
        assert bus.reconnects == 0 and bus.connected
    finally:
        await bus.stop()
