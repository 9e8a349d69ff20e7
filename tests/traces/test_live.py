"""projectTraces over real WebSockets: a trace is sent when it arrives and when it changes, at most about once a
second each, and its last state always comes; the filter applies; only callers who may read the project's traces
may subscribe, and they hear of nothing else."""
from __future__ import annotations

import asyncio
import math
import time

from tests.helpers import create_api_key, create_project, signup
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, GraphQLWebSocket

from .util import span, trace_id

FEED = """subscription($id: ID!, $filter: TraceFilter) { projectTraces(projectId: $id, filter: $filter) {
  traceId name status spanCount errorCount endTime project { slug } rootSpan { name }
  spans(first: 100) { totalCount } } }"""


class Feed:
    """A running projectTraces subscription; what it receives is collected with the time it came."""

    def __init__(self, ws: GraphQLWebSocket, variables: dict):
        self.got: list[tuple[float, dict]] = []
        self.errors: list = []
        self.task = asyncio.create_task(self._run(ws, variables))

    async def _run(self, ws, variables):
        async for payload in ws.subscribe(FEED, variables, timeout=60):
            if payload.get("errors"):
                self.errors.append(payload["errors"])
            else:
                self.got.append((time.monotonic(), payload["data"]["projectTraces"]))

    def of(self, n: int) -> list[tuple[float, dict]]:
        return [(at, t) for at, t in self.got if t["traceId"] == trace_id(n)]

    async def until(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, self.got
            await asyncio.sleep(0.02)


async def _subscribed(server, n: int) -> None:
    for _ in range(250):
        if server.bus.subscriber_count >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("subscriptions did not reach the bus")


async def _owner(gql, name: str = "owner", slug: str = "obs") -> tuple[str, str]:
    token, _ = await signup(gql, name)
    return token, await create_project(gql, token, slug)


async def test_arrival_changes_throttled_per_trace_and_the_last_state_always_sent(gql, live, write):
    await signup(gql, "root")
    token, project = await _owner(gql)
    async with live() as server, GraphQLWebSocket(server.url, token=token) as ws:
        interval = server.app.state.runtime.settings.trace_feed_interval_seconds
        assert interval == 1.0  # the default
        feed = Feed(ws, {"id": project})
        await _subscribed(server, 1)

        # first arrival: sent at once
        sent = time.monotonic()
        await write(project, [span(1, 1, None, start=0, name="agent run", status="OK")])
        await feed.until(lambda: feed.of(1))
        first_at, first = feed.of(1)[0]
        assert first_at - sent < interval
        assert (first["name"], first["spanCount"], first["endTime"], first["project"]) == ("agent run", 1, None,
                                                                                           {"slug": "obs"})
        assert first["rootSpan"] == {"name": "agent run"} and first["spans"] == {"totalCount": 1}

        # a burst: 15 batches of one span each, 0.1 s apart; another trace arrives in the middle of it
        burst_start = time.monotonic()
        for i in range(15):
            await write(project, [span(1, 100 + i, 1, start=1 + i, end=1.5 + i,
                                       status="ERROR" if i == 7 else "UNSET")])
            if i == 5:
                other_sent = time.monotonic()
                await write(project, [span(2, 1, None, start=0, end=1, name="other")])
            await asyncio.sleep(0.1)
        # the root ends: the last change
        await write(project, [span(1, 999, 1, start=20, end=30)])
        burst_end = time.monotonic()

        await feed.until(lambda: feed.of(1)[-1][1]["spanCount"] == 17, timeout=5 * interval)
        last_at, last = feed.of(1)[-1]
        # the last state came after the quiet period, not dropped
        assert last["status"] == "ERROR" and last["errorCount"] == 1 and last["spans"] == {"totalCount": 17}
        assert last_at - burst_end < 3 * interval, (last_at - burst_end)
        # 16 changes, but at most one message per interval (plus the first and the last)
        during = [t for at, t in feed.of(1)[1:]]
        assert 1 <= len(during) <= math.ceil((burst_end - burst_start) / interval) + 2, (len(during), burst_end
                                                                                        - burst_start)
        assert len(during) < 16
        counts = [t["spanCount"] for t in during]
        assert counts == sorted(set(counts))  # each message a newer state, never the same twice

        # the other trace was not held back by the first one's throttle
        ((other_at, other),) = feed.of(2)
        assert other["name"] == "other" and other_at - other_sent < interval + 0.5

        # nothing more comes when nothing changes
        n = len(feed.got)
        await asyncio.sleep(1.5 * interval)
        assert len(feed.got) == n
        feed.task.cancel()


async def test_the_filter_and_other_tenants(gql, live, write):
    await signup(gql, "root")
    token, project = await _owner(gql)
    bob, bob_project = await _owner(gql, "bob", "bobs")
    async with live() as server, GraphQLWebSocket(server.url, token=token, protocol=LEGACY_WS) as ws:
        errors = Feed(ws, {"id": project, "filter": {"status": "ERROR"}})
        mine = Feed(ws, {"id": project, "filter": {"endUserId": "u1", "name": "checkout"}})
        everything = Feed(ws, {"id": project})
        await _subscribed(server, 3)
        await write(bob_project, [span(9, 1, None, start=0, end=1, status="ERROR", end_user_id="u1", name="checkout")])
        await write(project, [span(1, 1, None, start=0, end=1, status="OK", end_user_id="u1", name="checkout"),
                              span(2, 1, None, start=0, end=1, status="ERROR", end_user_id="u2", name="checkout"),
                              span(3, 1, None, start=0, end=1, status="OK", end_user_id="u1", name="refund")])
        await everything.until(lambda: len(everything.got) == 3)
        await errors.until(lambda: len(errors.got) == 1)
        await mine.until(lambda: len(mine.got) == 1)
        await asyncio.sleep(0.5)
        assert sorted(t["traceId"] for _, t in everything.got) == [trace_id(1), trace_id(2), trace_id(3)]
        assert [t["traceId"] for _, t in errors.got] == [trace_id(2)]
        assert [t["traceId"] for _, t in mine.got] == [trace_id(1)]
        assert not any(t["traceId"] == trace_id(9) for f in (errors, mine, everything) for _, t in f.got)


async def test_who_may_subscribe(gql, live, write):
    await signup(gql, "root")
    token, project = await _owner(gql)
    bob, bob_project = await _owner(gql, "bob", "bobs")
    traces_key = await create_api_key(gql, token, project, ["TRACES_READ"], name="t")
    prompts_key = await create_api_key(gql, token, project, ["PROMPTS_READ"], name="p")

    async def first(tok: str | None, project_id: str, protocol: str = TRANSPORT_WS) -> dict:
        async with GraphQLWebSocket(server.url, token=tok, protocol=protocol) as ws:
            async for payload in ws.subscribe(FEED, {"id": project_id}, timeout=10):
                return payload
        raise AssertionError("the stream ended without a message")

    def code(payload: dict) -> str:
        return payload["errors"][0]["extensions"]["code"]

    async with live() as server:
        assert code(await first(token, bob_project)) == "NOT_FOUND"  # another tenant's project
        assert code(await first(token, "not-an-id")) == "NOT_FOUND"
        assert code(await first(prompts_key, project)) == "FORBIDDEN"
        assert code(await first(None, project)) == "UNAUTHENTICATED"
        # a key with TRACES_READ hears its project's traces
        task = asyncio.create_task(first(traces_key, project, LEGACY_WS))
        await _subscribed(server, 1)
        await write(project, [span(5, 1, None, start=0, end=1, name="seen by the key")])
        payload = await asyncio.wait_for(task, 10)
        assert payload["data"]["projectTraces"]["name"] == "seen by the key"
