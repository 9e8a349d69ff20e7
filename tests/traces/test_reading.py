"""Reading traces over GraphQL: Project.traces (newest first, keyset pages, filters), Project.trace, Trace.spans
in start order, rootSpan, parent/children, usage both ways, Execution.trace <-> Trace.execution, node(id)."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tests.helpers import create_api_key, create_project, signup

from .util import SPAN_FIELDS, T0, TRACE_FIELDS, agent_trace, gid, llm, raw_uuid, span, trace_id

LIST = f"""query($slug: String!, $first: Int, $after: String, $filter: TraceFilter) {{
  project(slug: $slug) {{ traces(first: $first, after: $after, filter: $filter) {{
    totalCount pageInfo {{ hasNextPage hasPreviousPage endCursor }} edges {{ cursor node {{ traceId }} }}
    nodes {{ {TRACE_FIELDS} }} }} }} }}"""

ONE = f"""query($slug: String!, $t: String!, $first: Int, $after: String) {{ project(slug: $slug) {{ trace(traceId: $t) {{
  {TRACE_FIELDS} project {{ slug }} execution {{ id }}
  rootSpan {{ {SPAN_FIELDS} parent {{ id }} children {{ spanId }} trace {{ traceId }} }}
  spans(first: $first, after: $after) {{ totalCount pageInfo {{ hasNextPage endCursor }} nodes {{
    {SPAN_FIELDS} parent {{ spanId }} children {{ spanId name }} trace {{ traceId }}
    usage {{ id provider model inputTokens outputTokens totalTokens totalCostUsd createdAt span {{ spanId }} }} }} }}
}} }} }}"""


async def _owner(gql, slug="obs"):
    await signup(gql, "root")
    token, _ = await signup(gql, "owner")
    project = await create_project(gql, token, slug)
    return token, project


async def test_a_trace_with_its_spans_in_order_and_its_relations(gql, write):
    token, project = await _owner(gql)
    spans = agent_trace(1, end_user_id="u-7", session_id="s-1", metadata={"env": "prod"}, tags=["beta"])
    # children before their parents, in two batches
    await write(project, list(reversed(spans[3:])))
    await write(project, list(reversed(spans[:3])))

    body = await gql(ONE, {"slug": "obs", "t": trace_id(1).upper()}, token=token)  # any case
    t = body["data"]["project"]["trace"]
    assert t["traceId"] == trace_id(1) and t["name"] == "agent run" and t["status"] == "OK"
    assert (t["spanCount"], t["errorCount"], t["durationMs"]) == (7, 0, 10_000)
    assert (t["endUserId"], t["sessionId"], t["metadata"], t["tags"]) == ("u-7", "s-1", {"env": "prod"}, ["beta"])
    assert t["startTime"] == T0.isoformat() and t["project"] == {"slug": "obs"} and t["execution"] is None
    # usage from the summary: 3 LLM calls of 100/10, 200/20, 300/30 tokens at gpt-4o's $2.50 / $10 per million
    assert t["usage"] == {"calls": 3, "inputTokens": 600, "outputTokens": 60, "totalTokens": 660,
                          "costUsd": "0.002100"}

    root = t["rootSpan"]
    assert root["spanId"] == f"{1000:016x}" and root["parent"] is None and root["kind"] == "AGENT"
    assert [c["spanId"] for c in root["children"]] == [f"{1001:016x}", f"{1003:016x}", f"{1005:016x}"]

    nodes = t["spans"]["nodes"]
    assert t["spans"]["totalCount"] == 7 and not t["spans"]["pageInfo"]["hasNextPage"]
    assert [n["name"] for n in nodes] == ["agent run", "llm 0", "tool 0", "llm 1", "tool 1", "llm 2", "tool 2"]
    assert [n["startTime"] for n in nodes] == sorted(n["startTime"] for n in nodes)
    llm0, tool0 = nodes[1], nodes[2]
    assert llm0["parent"] == {"spanId": root["spanId"]} and llm0["children"] == [{"spanId": tool0["spanId"],
                                                                                  "name": "tool 0"}]
    assert llm0["attributes"] == {"llm.model_name": "gpt-4o", "i": 0} and llm0["durationMs"] == 500
    assert tool0["events"] == [{"name": "called", "attributes": {"c": 0}}] and tool0["usage"] is None
    assert tool0["parentSpanId"] == llm0["spanId"] and tool0["kind"] == "TOOL"
    usage = llm0["usage"]
    assert (usage["provider"], usage["model"], usage["inputTokens"], usage["outputTokens"]) == ("openai", "gpt-4o",
                                                                                                100, 10)
    assert usage["totalCostUsd"] == "0.000350" and usage["span"] == {"spanId": llm0["spanId"]}
    assert all(n["trace"] == {"traceId": trace_id(1)} for n in nodes)

    # spans page by page, in the same order
    seen, after = [], None
    while True:
        page = (await gql(ONE, {"slug": "obs", "t": trace_id(1), "first": 3, "after": after},
                          token=token))["data"]["project"]["trace"]["spans"]
        seen += [n["name"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [n["name"] for n in nodes]

    # every object by its global ID
    body = await gql("""query($ids: [ID!]!) { nodes(ids: $ids) { id __typename
        ... on Trace { traceId } ... on Span { name } ... on LlmUsage { model } } }""",
                     {"ids": [t["id"], llm0["id"], usage["id"]]}, token=token)
    assert [n["__typename"] for n in body["data"]["nodes"]] == ["Trace", "Span", "LlmUsage"]


async def test_a_span_whose_parent_has_not_arrived(gql, write):
    token, project = await _owner(gql)
    await write(project, [span(2, 5, 4, start=1, end=2, status="ERROR", error="boom")])
    t = (await gql(ONE, {"slug": "obs", "t": trace_id(2)}, token=token))["data"]["project"]["trace"]
    assert t["name"] is None and t["rootSpan"] is None and t["status"] == "ERROR" and t["error"] == "boom"
    (only,) = t["spans"]["nodes"]
    assert only["parent"] is None and only["parentSpanId"] == f"{4:016x}"


async def test_listing_newest_first_with_keyset_pages_and_filters(gql, write):
    token, project = await _owner(gql)
    # 25 traces an hour apart; every 5th errors, user and session alternate, names cycle
    for i in range(25):
        await write(project, [span(100 + i, 1, None, start=3600 * i, end=3600 * i + 1, name=f"job {i % 3}",
                                   status="ERROR" if i % 5 == 0 else "OK", end_user_id=f"u{i % 2}",
                                   session_id=f"s{i % 4}")])
    expected = [trace_id(100 + i) for i in reversed(range(25))]

    got, after, pages = [], None, 0
    while True:
        page = (await gql(LIST, {"slug": "obs", "first": 10, "after": after}, token=token))["data"]["project"]["traces"]
        assert page["totalCount"] == 25 and page["pageInfo"]["hasPreviousPage"] == (after is not None)
        got += [e["node"]["traceId"] for e in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert got == expected and pages == 3

    async def ids(f: dict) -> list[str]:
        body = await gql(LIST, {"slug": "obs", "first": 100, "filter": f}, token=token)
        conn = body["data"]["project"]["traces"]
        assert conn["totalCount"] == len(conn["nodes"])
        return [n["traceId"] for n in conn["nodes"]]

    at = lambda h: (T0 + timedelta(hours=h)).isoformat()  # noqa: E731
    assert await ids({"from": at(20)}) == expected[:5]
    assert await ids({"from": at(3), "to": at(6)}) == [trace_id(105), trace_id(104), trace_id(103)]
    assert await ids({"status": "ERROR"}) == [trace_id(100 + i) for i in (20, 15, 10, 5, 0)]
    assert await ids({"endUserId": "u1", "sessionId": "s3"}) == [trace_id(100 + i) for i in (23, 19, 15, 11, 7, 3)]
    assert await ids({"name": "job 1", "status": "OK"}) == [trace_id(100 + i) for i in (22, 19, 16, 13, 7, 4, 1)]
    assert await ids({"name": "job"}) == []  # exact, not partial
    assert await ids({"endUserId": "nobody"}) == []

    # a bad cursor, a filter upside down and a malformed trace id are the caller's mistakes
    for variables, query in (({"slug": "obs", "after": "nonsense"}, LIST),
                             ({"slug": "obs", "filter": {"from": at(5), "to": at(1)}}, LIST),
                             ({"slug": "obs", "t": "xyz"}, ONE)):
        body = await gql(query, variables, token=token, check=False)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    # a well-formed id that is not there
    assert (await gql(ONE, {"slug": "obs", "t": trace_id(999)}, token=token))["data"]["project"]["trace"] is None


async def test_execution_trace_and_trace_execution_link_both_ways(gql, write, db_url):
    from tests.executions.util import create_prompt, execute_ok

    token, project = await _owner(gql)
    prompt, _ = await create_prompt(gql, token, project, "greeting")
    execution = await execute_ok(gql, token, promptId=prompt, variables={"name": "Ada"})  # stays PENDING: no workers
    await write(project, agent_trace(3, children=1), execution_id=raw_uuid(execution))

    body = await gql("""query($id: ID!) { node(id: $id) { ... on Execution { id trace { traceId execution { id } }
        } } }""", {"id": execution}, token=token)
    assert body["data"]["node"]["trace"] == {"traceId": trace_id(3), "execution": {"id": execution}}

    # a key that may read executions but not traces gets no trace; one that may read traces but not executions
    # gets the trace without its execution
    exec_key = await create_api_key(gql, token, project, ["EXECUTIONS_READ"], name="e")
    trace_key = await create_api_key(gql, token, project, ["TRACES_READ"], name="t")
    body = await gql("query($id: ID!) { node(id: $id) { ... on Execution { trace { id } } } }", {"id": execution},
                     token=exec_key)
    assert body["data"]["node"] == {"trace": None}
    body = await gql(ONE, {"slug": "obs", "t": trace_id(3)}, token=trace_key)
    assert body["data"]["project"]["trace"]["execution"] is None
    assert body["data"]["project"]["trace"]["traceId"] == trace_id(3)


async def test_an_llm_usage_priced_as_the_span_said(gql, write):
    token, project = await _owner(gql)
    await write(project, [span(4, 1, None, start=0, end=1, kind="LLM",
                               usage=llm(10, 5, provider="acme", model="house-model", cost_usd=Decimal("0.5"),
                                         latency_ms=1234))])
    t = (await gql(ONE, {"slug": "obs", "t": trace_id(4)}, token=token))["data"]["project"]["trace"]
    assert t["usage"]["costUsd"] == "0.500000"
    usage = t["spans"]["nodes"][0]["usage"]
    assert (usage["model"], usage["totalCostUsd"], usage["createdAt"]) == ("house-model", "0.500000",
                                                                           (T0 + timedelta(seconds=1)).isoformat())
    assert gid("LlmUsage", raw_uuid(usage["id"])) == usage["id"]
