"""projectExecutions: the status changes of a project's executions (no deltas, no logs), filtered."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from tests.ws_client import LEGACY_WS, TRANSPORT_WS, GraphQLWebSocket

from .util import PROJECT_EXECUTIONS, create_prompt, execute, tenants


class Feed:
    """A running subscription whose events are collected in the background."""

    def __init__(self, ws: GraphQLWebSocket, variables: dict):
        self.events: list[dict] = []
        self.errors: list = []
        self.done = False
        self.task = asyncio.create_task(self._run(ws, variables))

    async def _run(self, ws, variables):
        async for payload in ws.subscribe(PROJECT_EXECUTIONS, variables, timeout=60):
            if payload.get("errors"):
                self.errors.append(payload["errors"])
            else:
                self.events.append(payload["data"]["projectExecutions"])
        self.done = True

    def pairs(self, names: dict[str, str]) -> list[tuple[str, str]]:
        return [(e["type"], names[e["execution"]["id"]]) for e in self.events]

    async def wait_for(self, n: int, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.events) < n:
            assert not self.errors, self.errors
            assert asyncio.get_running_loop().time() < deadline, self.events
            await asyncio.sleep(0.02)


async def _subscribed(server, n: int) -> None:
    for _ in range(250):
        if server.bus.subscriber_count >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("subscriptions did not reach the bus")


async def test_status_changes_only_and_the_filter_applies(gql, live, driver):
    t, = await tenants(gql, "ann")
    p2, v2 = await create_prompt(gql, t.token, t.project_id, "second", "Bye {{name}}")
    async with live() as server, GraphQLWebSocket(server.url, token=t.token) as ws:
        everything = Feed(ws, {"id": t.project_id})
        finished_p2 = Feed(ws, {"id": t.project_id, "filter": {"status": ["COMPLETED", "FAILED"], "promptId": p2}})
        by_version = Feed(ws, {"id": t.project_id, "filter": {"versionId": v2, "status": ["PENDING"]}})
        future = Feed(ws, {"id": t.project_id, "filter": {
            "createdAfter": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()}})
        past = Feed(ws, {"id": t.project_id, "filter": {
            "createdBefore": (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()}})
        await _subscribed(server, 5)
        e1 = await execute(gql, t.token, t.prompt_id, {"name": "1"})
        e2 = await execute(gql, t.token, p2, {"name": "2"})
        names = {e1: "e1", e2: "e2"}
        for e in (e1, e2):
            await driver.start(e)
            await driver.delta(e, "some output")
            await driver.log(e, "a log")
        await driver.finish(e1, "FAILED")
        await driver.finish(e2, "COMPLETED")
        await everything.wait_for(6)
        await finished_p2.wait_for(1)
        await by_version.wait_for(1)
        await asyncio.sleep(0.3)  # anything else would have arrived by now
        assert everything.pairs(names) == [("QUEUED", "e1"), ("QUEUED", "e2"), ("STARTED", "e1"), ("STARTED", "e2"),
                                           ("FAILED", "e1"), ("COMPLETED", "e2")]
        assert all(e["delta"] is None and e["log"] is None for e in everything.events)
        assert [e["execution"]["status"] for e in everything.events[-2:]] == ["FAILED", "COMPLETED"]
        assert finished_p2.pairs(names) == [("COMPLETED", "e2")]
        assert by_version.pairs(names) == [("QUEUED", "e2")]
        assert future.events == [] and past.events == []
        seqs = {(e["execution"]["id"], e["type"]): e["sequence"] for e in everything.events}
        assert seqs[(e1, "QUEUED")] == 1 and seqs[(e1, "STARTED")] == 3  # the events' own numbers
        for feed in (everything, finished_p2, by_version, future, past):
            assert not feed.errors and not feed.done
            feed.task.cancel()


async def test_other_tenants_executions_never_appear(gql, live):
    a, b = await tenants(gql, "ann", "bob")
    async with live(workers=2) as server:
        async with GraphQLWebSocket(server.url, protocol=TRANSPORT_WS, token=a.token) as wa, \
                GraphQLWebSocket(server.url, protocol=LEGACY_WS, token=b.token) as wb:
            feed_a, feed_b = Feed(wa, {"id": a.project_id}), Feed(wb, {"id": b.project_id})
            await _subscribed(server, 2)
            mine = [await execute(gql, a.token, a.prompt_id, {"name": f"a{i}"}) for i in range(2)]
            theirs = [await execute(gql, b.token, b.prompt_id, {"name": f"b{i}"}) for i in range(3)]
            await feed_a.wait_for(3 * len(mine))
            await feed_b.wait_for(3 * len(theirs))
            await asyncio.sleep(0.3)
            assert {e["execution"]["id"] for e in feed_a.events} == set(mine)
            assert {e["execution"]["id"] for e in feed_b.events} == set(theirs)
            for feed, ids in ((feed_a, mine), (feed_b, theirs)):
                for gid in ids:
                    assert [e["type"] for e in feed.events if e["execution"]["id"] == gid] == [
                        "QUEUED", "STARTED", "COMPLETED"]
                feed.task.cancel()
