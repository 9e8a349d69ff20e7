"""Trace retention: traces (and their spans, by cascade) older than the project's traceRetentionDays are deleted in
batches; usage records stay for cost reports, unlinked from their spans; other projects keep theirs."""
from __future__ import annotations

from datetime import timedelta

from app.engine.retention import sweep_traces
from tests.executions.util import db_fetch
from tests.helpers import create_project, signup

from .test_cost_report import _rollup_matches_raw
from .util import T0, agent_trace, raw_uuid, span

SETTINGS = """mutation($i: UpdateProjectInput!) { updateProject(input: $i) { userErrors { code message } } }"""


async def test_old_traces_go_with_their_spans_in_batches_and_usage_stays(gql, write, app, db_url):
    await signup(gql, "root")
    token, _ = await signup(gql, "owner")
    kept_forever = await create_project(gql, token, "forever")
    project = await create_project(gql, token, "thirty")
    body = await gql(SETTINGS, {"i": {"id": project, "settings": {"traceRetentionDays": 30}}}, token=token)
    assert body["data"]["updateProject"]["userErrors"] == []

    now = T0 + timedelta(days=100)
    # 12 old traces of 7 spans (3 with usage), 40 and more days before `now`
    for n in range(1, 13):
        await write(project, agent_trace(n, start=(100 - 40 - n) * 86400.0))
    # a trace that started long ago but had a span end recently: kept (it is not over)
    await write(project, [span(50, 1, None, start=0, end=None), span(50, 2, 1, start=99 * 86400, end=99 * 86400 + 1)])
    # recent ones, and old ones in a project that keeps everything
    await write(project, agent_trace(60, start=95 * 86400.0))
    await write(kept_forever, agent_trace(70, start=0))

    usage_before = await db_fetch(db_url, "SELECT count(*) AS n, sum(total_cost_usd) AS c FROM llm_usage")
    # at most 15 spans a transaction: two traces of 7 each
    swept = await sweep_traces(app.state.runtime.sessionmaker, now=now, batch_size=5, spans_per_batch=15)
    assert tuple(swept) == (12, 84, 6)

    left = {r["trace_id"][-2:]: r["project_id"] for r in await db_fetch(db_url, "SELECT trace_id, project_id FROM traces")}
    assert sorted(left) == ["32", "3c", "46"]  # traces 50, 60 and 70
    assert (await db_fetch(db_url, "SELECT count(*) AS n FROM spans WHERE trace_pk NOT IN (SELECT id FROM traces)"
                           ))[0]["n"] == 0
    assert (await db_fetch(db_url, "SELECT count(*) AS n FROM spans"))[0]["n"] == 2 + 7 + 7
    usage_after = await db_fetch(db_url, "SELECT count(*) AS n, sum(total_cost_usd) AS c FROM llm_usage")
    assert tuple(usage_after[0]) == tuple(usage_before[0])  # usage stays for cost reports...
    unlinked = await db_fetch(db_url, "SELECT count(*) AS n FROM llm_usage WHERE span_pk IS NULL")
    assert unlinked[0]["n"] == 12 * 3  # ...unlinked from the spans that went
    assert await _rollup_matches_raw(db_url) == 14 * 3  # and the rollup did not move

    # nothing more to do; a project without retention keeps everything
    assert tuple(await sweep_traces(app.state.runtime.sessionmaker, now=now)) == (0, 0, 0)
    # one trace bigger than a batch still goes (alone)
    await write(project, agent_trace(80, start=0))
    assert tuple(await sweep_traces(app.state.runtime.sessionmaker, now=now, spans_per_batch=3)) == (1, 7, 1)
    assert raw_uuid(kept_forever) in left.values()
