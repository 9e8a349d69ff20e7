"""Hundreds of live monitors of one project: everyone gets everything, in order, and the API stays up.

300 real WebSocket subscribers (graphql-transport-ws) of ``projectExecutions`` on one real server while
its workers run echo executions and executePrompt is called over HTTP meanwhile. What is asserted is
completeness and correctness (every status change each subscriber's filter matches, once, in order; no
stream ended; every executePrompt answered), never latency.
"""
from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx
from sqlalchemy import text

from app.events import topics
from tests.ws_client import GraphQLWebSocket

from .util import raw_uuid, tenants

SUBSCRIBERS = 300
EXECUTIONS = 12
MONITOR = """subscription($id: ID!, $filter: ExecutionFilter) { projectExecutions(projectId: $id, filter: $filter) {
  type sequence at execution { id status } } }"""
EXECUTE = """mutation($input: ExecutePromptInput!) { executePrompt(input: $input) {
  execution { id } userErrors { code message } } }"""
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
STATUS_TYPES = ("QUEUED", "STARTED", "COMPLETED", "FAILED", "CANCELLED")


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_300_subscribers_of_one_project_each_get_every_event_in_order(gql, live, driver):
    t, = await tenants(gql, "ann", template="Echo {{n}}")
    async with live(workers=2) as server, AsyncExitStack() as stack:
        # Every 10th monitor watches only completions (its filter is applied to the shared rows).
        clients = [await stack.enter_async_context(GraphQLWebSocket(server.url, token=t.token, timeout=60))
                   for _ in range(SUBSCRIBERS)]
        only_completed = {i for i in range(SUBSCRIBERS) if i % 10 == 0}
        ops = [await ws.start(MONITOR, {"id": t.project_id,
                                        "filter": {"status": ["COMPLETED"]} if i in only_completed else None})
               for i, ws in enumerate(clients)]
        await _until(lambda: server.bus.subscriber_count == SUBSCRIBERS, 60, "every subscriber to register")

        received: list[list[dict]] = [[] for _ in clients]
        problems: list[str] = []

        async def pump(i: int) -> None:
            try:
                async for payload in clients[i].stream(ops[i], timeout=90):
                    if payload.get("errors"):
                        problems.append(f"subscriber {i}: {payload['errors']}")
                        return
                    received[i].append(payload["data"]["projectExecutions"])
                problems.append(f"subscriber {i}: its stream completed")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a closed socket or a silent stream is a failure to report
                problems.append(f"subscriber {i}: {type(exc).__name__}: {exc}")

        pumps = [asyncio.create_task(pump(i)) for i in range(SUBSCRIBERS)]

        # executePrompt over HTTP on the same server, while it fans out to 300 subscribers
        async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                     headers={"Authorization": f"Bearer {t.token}"}) as http:
            async def one(n: int) -> str:
                resp = await http.post("/graphql", json={"query": EXECUTE, "variables": {
                    "input": {"promptId": t.prompt_id, "variables": {"n": str(n)}}}})
                assert resp.status_code == 200, resp.text
                body = resp.json()
                assert "errors" not in body and body["data"]["executePrompt"]["userErrors"] == [], body
                return body["data"]["executePrompt"]["execution"]["id"]

            executions: list[str] = []
            for wave in range(3):
                executions += await asyncio.gather(*(one(wave * 4 + k) for k in range(EXECUTIONS // 3)))
                await asyncio.sleep(0.2)

        ids = {raw_uuid(e): e for e in executions}
        expected: dict[str, list[tuple[int, str]]] = {e: [] for e in executions}

        def everything_arrived() -> bool:
            return all(len(r) >= (EXECUTIONS if i in only_completed else total) for i, r in enumerate(received))

        async with driver.sessionmaker() as session:
            async def finished() -> bool:
                n = (await session.execute(text("SELECT count(*) FROM executions WHERE id = ANY(:ids) AND status "
                                                "= ANY(:t)"), {"ids": list(ids), "t": sorted(TERMINAL)})).scalar_one()
                await session.rollback()
                return n == EXECUTIONS

            for _ in range(1200):
                if await finished():
                    break
                await asyncio.sleep(0.05)
            assert await finished(), "the executions did not end"
            rows = (await session.execute(text(
                "SELECT execution_id, seq, type FROM execution_events WHERE execution_id = ANY(:ids) AND type = "
                "ANY(:t) ORDER BY execution_id, seq"), {"ids": list(ids), "t": list(STATUS_TYPES)})).all()
        for execution_id, seq, type_ in rows:
            expected[ids[execution_id]].append((seq, type_))
        total = len(rows)
        assert total >= 3 * EXECUTIONS  # QUEUED, STARTED and an end each

        feed = server.bus.feed(topics.project_executions(raw_uuid(t.project_id)))
        await _until(lambda: everything_arrived() or bool(problems), 60, "every subscriber to get every event")
        assert problems == []
        # one shared read per batch of notices, not one per subscriber
        assert feed is not None and 1 <= feed.reads <= total and feed.failures == 0

        for i, events in enumerate(received):
            by_execution: dict[str, list[tuple[int, str]]] = {}
            for e in events:
                assert e["execution"]["id"] in expected, (i, e)
                by_execution.setdefault(e["execution"]["id"], []).append((e["sequence"], e["type"]))
            if i in only_completed:
                assert len(events) == EXECUTIONS
                assert by_execution == {e: [s for s in evs if s[1] == "COMPLETED"] for e, evs in expected.items()}
            else:
                assert len(events) == total  # nothing more, nothing less
                assert by_execution == expected, f"subscriber {i} got {by_execution}"  # each in order

        for p in pumps:
            p.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
