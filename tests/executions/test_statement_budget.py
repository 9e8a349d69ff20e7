"""What one echo execution costs the database: statements and transactions of executePrompt and of its run,
and the notices its events send (byte for byte what ``app.events.publish.encode`` makes)."""
from __future__ import annotations

import asyncio
import json
from collections import Counter

import asyncpg
from sqlalchemy import event

from app.events import publish, topics

from .util import db_fetch, execute_ok, raw_uuid, tenant, wait_for


class Count:
    """Statements (by first word) and transactions an engine sends while open."""

    def __init__(self, engine):
        self.engine = engine
        self.kinds: Counter[str] = Counter()
        self.statements: list[str] = []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._on)
        event.listen(self.engine, "begin", self._begin)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._on)
        event.remove(self.engine, "begin", self._begin)

    def _on(self, conn, cursor, statement, parameters, context, executemany):
        self.kinds[statement.split(None, 1)[0].upper()] += 1
        self.statements.append(" ".join(statement.split())[:140])

    def _begin(self, conn):
        self.kinds["BEGIN"] += 1

    @property
    def total(self) -> int:
        return sum(n for k, n in self.kinds.items() if k != "BEGIN")


async def test_an_echo_execution_costs_a_handful_of_statements(gql, app, make_app, db_url):
    t = await tenant(gql, "ann")
    fast = {"extra": {"chunkSize": 100000, "chunkDelayMs": 0}}
    notices: list[str] = []
    listener = await asyncpg.connect(db_url)
    await listener.add_listener(publish.CHANNEL, lambda *a: notices.append(a[3]))
    try:
        # no polls and no reaper sweeps (every min(lease / 4, poll) s) in the count
        async with make_app(workers=1, poll_seconds=30, lease_seconds=120) as worker:
            eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "warm"},
                                   modelSettings=fast)
            await wait_for(gql, t.token, eid)
            await asyncio.sleep(0.3)  # the idle workers' look at the queue after the run
            notices.clear()
            with Count(app.state.runtime.engine.sync_engine) as enqueue, \
                    Count(worker.state.runtime.engine.sync_engine) as run:
                eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "Ada"},
                                       modelSettings=fast)
                enqueued = Counter(enqueue.kinds)
                e = await wait_for(gql, t.token, eid)
                await asyncio.sleep(0.3)
    finally:
        await listener.close()
    assert e["status"] == "COMPLETED" and e["output"] == "Hello Ada!"
    # executePrompt: the token, the prompt, project, membership and version, the row, its events and log (one
    # statement), the job and its NOTIFY, the cap (lock, count) and the audit row; one transaction (and the
    # token's).
    assert sum(n for k, n in enqueued.items() if k != "BEGIN") <= 14, enqueue.statements
    assert enqueued["BEGIN"] <= 2
    # The run: claim (job + execution + events), credential, validations, the end (lock, price, row, job, events,
    # trace), and the idle workers' look at the queue afterwards.
    assert run.total <= 14, run.statements
    assert run.kinds["BEGIN"] <= 5, (run.kinds, "\n".join(run.statements))

    rows = await db_fetch(db_url, "SELECT seq, type, e.project_id FROM execution_events JOIN executions e "
                                  "ON e.id = execution_id WHERE execution_id = $1 ORDER BY seq", raw_uuid(eid))
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))  # gapless
    statuses = {"QUEUED": "PENDING", "STARTED": "RUNNING"}
    mine = [n for n in notices if str(raw_uuid(eid)) in n and '"k":' in n]
    assert len(mine) == len(rows)
    for notice, r in zip(mine, rows, strict=True):
        data = json.loads(notice)["d"]
        expected = publish.encode([topics.execution(raw_uuid(eid)), topics.project_executions(r["project_id"])],
                                  {"e": str(raw_uuid(eid)), "p": str(r["project_id"]), "s": r["seq"],
                                   "t": r["type"], "st": data["st"]})
        assert notice == expected  # byte for byte
        assert data["st"] == statuses.get(r["type"], data["st"])
    assert [json.loads(n)["d"]["st"] for n in mine][-1] == "COMPLETED"
