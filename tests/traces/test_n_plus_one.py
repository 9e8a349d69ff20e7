"""No N+1: listing 50 traces with their spans (and the spans' parents, children, usage and trace) costs as
many SQL statements as listing 5."""
from __future__ import annotations

import pytest

from tests.executions.util import create_prompt, execute_ok
from tests.helpers import create_project, signup

from .util import agent_trace, raw_uuid

LISTING = """query { project(slug: "obs") { traces(first: 50) { totalCount pageInfo { hasNextPage }
  nodes { traceId name status spanCount usage { calls costUsd } execution { id status }
    rootSpan { spanId name }
    spans(first: 100) { totalCount nodes { spanId name kind
      parent { spanId name }
      children { spanId }
      trace { traceId }
      usage { model totalCostUsd span { spanId } } } } } } } }"""

#: Authentication: none (the token is cached, lastUsedAt written behind: app.services.hot); the project by slug,
#: the viewer's role, then one statement per relation whatever the number of rows: the traces page and its totalCount, the root spans, the spans pages
#: (LATERAL, one statement for all traces) and their totalCount, executions by id (Trace.execution: one of the
#: traces has one), the spans' parents, the spans' children, the spans' traces by id (Span.trace, through the read
#: rule), the usage rows by span, and the spans by id (LlmUsage.span). (Each relation has a loader of its own, so
#: the count does not depend on which loads happen to share a tick.)
EXPECTED_STATEMENTS = 13


@pytest.fixture
def settings(settings):
    # 50 traces x 100 spans, each with its relations, would cost some 120,000 points: over the per-request
    # budget (tests/hardening/test_limits.py checks the budget), raised here to ask for it all at once.
    return settings.replace(max_query_cost=1_000_000)


async def test_listing_statement_count_does_not_grow_with_traces(gql, write, sql_counter):
    await signup(gql, "root")
    token, _ = await signup(gql, "owner")
    project = await create_project(gql, token, "obs")
    prompt, _ = await create_prompt(gql, token, project, "greeting")
    execution = await execute_ok(gql, token, promptId=prompt, variables={"name": "Ada"})

    # 5 traces of 7 spans (a root, 3 LLM calls with usage, 3 tools); one records an execution
    await write(project, [s for n in range(1, 5) for s in agent_trace(n)])
    await write(project, agent_trace(5), execution_id=raw_uuid(execution))
    with sql_counter() as small:
        body = await gql(LISTING, token=token)
    traces = body["data"]["project"]["traces"]
    assert traces["totalCount"] == 5 and len(traces["nodes"]) == 5
    assert sum(len(t["spans"]["nodes"]) for t in traces["nodes"]) == 35
    assert sum(1 for t in traces["nodes"] if t["execution"]) == 1
    assert all(s["usage"]["span"]["spanId"] == s["spanId"] for t in traces["nodes"] for s in t["spans"]["nodes"]
               if s["kind"] == "LLM")

    # 45 more
    for start in range(6, 51, 15):
        await write(project, [s for n in range(start, start + 15) for s in agent_trace(n)])
    with sql_counter() as large:
        body = await gql(LISTING, token=token)
    traces = body["data"]["project"]["traces"]
    assert traces["totalCount"] == 50 and len(traces["nodes"]) == 50
    assert sum(len(t["spans"]["nodes"]) for t in traces["nodes"]) == 350
    assert all(t["rootSpan"]["name"] == "agent run" for t in traces["nodes"])
    parents = [s["parent"] for t in traces["nodes"] for s in t["spans"]["nodes"]]
    assert sum(1 for p in parents if p is None) == 50 and sum(1 for p in parents if p) == 300

    assert large.count == small.count, (small.count, large.count, large.statements)
    # The number itself (authentication included), so that a new per-request query is noticed too.
    assert large.count == EXPECTED_STATEMENTS, large.statements
