"""ingestSpans over GraphQL: the same checks and storage as OTLP, one transaction, userErrors naming each
rejected span, permissions (TRACES_WRITE keys, EDITOR users), limits, one audit event per call.

Stored spans are read through SQL here (what was stored, column by column); reading them over GraphQL is
tested in test_reading.py and, for spans sent by the OpenTelemetry SDK, in test_otlp_ingest.py.
"""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.helpers import add_member, signup
from tests.traces.otlp_util import rows, spans_of, tenant

INGEST = """mutation($input: IngestSpansInput!) { ingestSpans(input: $input) {
  accepted rejected userErrors { code message field } } }"""
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def s(span_id: str, **kw):
    return {"traceId": TRACE, "spanId": span_id, "name": kw.pop("name", span_id),
            "startTime": kw.pop("startTime", "2026-11-30T12:00:00Z"), **kw}


@pytest.fixture
async def team(gql):
    return await tenant(gql, "gql")


async def test_valid_spans_are_stored_and_each_invalid_one_is_named(gql, team, db_url):
    spans = [
        s("00f067aa0ba902b7", name="root", endTime="2026-11-30T12:00:05Z", status="OK",
          attributes={"metadata": '{"tier": "gold"}', "tag.tags": ["a"]}, endUserId="u-1", sessionId="s-1"),
        s("ZZ", name="bad id"),
        s("00f067aa0ba902b8", parentSpanId="00f067aa0ba902b7", name="llm", kind="LLM",
          endTime="2026-11-30T12:00:02Z",
          usage={"provider": "openai", "model": "gpt-4o", "inputTokens": 1000, "outputTokens": 500}),
        s("00f067aa0ba902b9", parentSpanId="00f067aa0ba902b7", name="backwards", endTime="2026-11-30T11:00:00Z"),
        s("00F067AA0BA902BA", parentSpanId="00f067aa0ba902b7", name="from attributes",
          attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-4",
                      "gen_ai.provider.name": "anthropic", "gen_ai.usage.input_tokens": 10,
                      "gen_ai.usage.output_tokens": 5, "llm.cost.total": "0.5"},
          events=[{"name": "retry", "time": "2026-11-30T12:00:01Z", "attributes": {"attempt": 1}}]),
        s("00f067aa0ba902bb", name="not an object", attributes=[1, 2]),
        s("00f067aa0ba902bc", name="priced", kind="LLM",
          usage={"provider": "acme", "model": "m", "inputTokens": 1, "outputTokens": 1, "costUsd": "-1"}),
        s("00f067aa0ba902bd", name="huge tokens", attributes={"openinference.span.kind": "LLM",
                                                              "llm.token_count.completion": 3_000_000_000}),
    ]
    body = await gql(INGEST, {"input": {"projectId": team.project_gid, "spans": spans}}, token=team.key)
    p = body["data"]["ingestSpans"]
    assert (p["accepted"], p["rejected"]) == (3, 5)
    assert [(e["code"], e["field"]) for e in p["userErrors"]] == [
        ("INVALID", ["input", "spans", "1", "spanId"]),
        ("INVALID", ["input", "spans", "3", "endTime"]),
        ("INVALID", ["input", "spans", "5", "attributes"]),
        ("INVALID", ["input", "spans", "6", "usage", "costUsd"]),
        ("INVALID", ["input", "spans", "7", "attributes"]),
    ]
    messages = [e["message"] for e in p["userErrors"]]
    assert messages[0] == "Span 1 rejected: spanId must be 16 hexadecimal characters; got 'ZZ'."
    assert messages[1].startswith("Span 3 rejected: endTime (2026-11-30T11:00:00+00:00) is before startTime")
    assert "usage.costUsd is \"-1\"; a cost must be between 0 and" in messages[3]
    assert "llm.token_count.completion is 3000000000; a token count must be between 0 and 2147483647" in messages[4]

    stored = {r["name"]: r for r in (await spans_of(db_url, team.project_id)).values()}
    assert set(stored) == {"root", "llm", "from attributes"}
    assert stored["from attributes"]["span_id"] == "00f067aa0ba902ba"  # lowercased
    assert stored["from attributes"]["kind"] == "LLM"  # INTERNAL (the default) gives way to the attributes
    assert stored["from attributes"]["events"] == [{"name": "retry", "time": "2026-11-30T12:00:01Z",
                                                    "attributes": {"attempt": 1}}]
    usage = {u["model"]: u for u in await rows(db_url, "SELECT * FROM llm_usage")}
    assert usage["gpt-4o"]["total_cost_usd"] == Decimal("0.0075") and usage["gpt-4o"]["latency_ms"] == 2000
    assert usage["claude-sonnet-4"]["total_cost_usd"] == Decimal("0.5")
    (t,) = await rows(db_url, "SELECT * FROM traces")
    assert (t["name"], t["status"], t["span_count"], t["end_user_id"], t["session_id"], t["tags"]) == (
        "root", "OK", 3, "u-1", "s-1", ["a"])
    assert json.loads(t["metadata"]) == {"tier": "gold"}

    again = await gql(INGEST, {"input": {"projectId": team.project_gid, "spans": [spans[0], spans[2]]}},
                      token=team.key)
    assert again["data"]["ingestSpans"] == {"accepted": 2, "rejected": 0, "userErrors": []}
    (t,) = await rows(db_url, "SELECT span_count, llm_calls FROM traces")
    assert (t["span_count"], t["llm_calls"]) == (3, 2)

    events = await rows(db_url, "SELECT result, details FROM audit_events WHERE action = 'traces.ingest'")
    assert [e["result"] for e in events] == ["SUCCESS", "SUCCESS"]  # one per call, as for every mutation
    assert json.loads(events[0]["details"]) == {"via": "graphql", "spans": 3, "stored": 3, "duplicates": 0,
                                                "rejected": 5, "traces": 1}


async def test_a_nul_character_refuses_the_call(gql, team, db_url):
    """GraphQL refuses NUL in every string input, attributes included (BAD_USER_INPUT naming the path), so
    nothing of the call is stored; OTLP, which is not GraphQL, strips it instead (test_otlp_ingest.py)."""
    spans = [s("00f067aa0ba902b7", name="fine"), s("00f067aa0ba902b8", name="nul", attributes={"x": "a\u0000b"})]
    body = await gql(INGEST, {"input": {"projectId": team.project_gid, "spans": spans}}, token=team.key, check=False)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "input.spans[1].attributes.x" in error["message"]
    assert await spans_of(db_url, team.project_id) == {}


async def test_who_may_ingest_and_limits(gql, team, make_app, db_url):
    other = await tenant(gql, "other")
    viewer, _ = await signup(gql, "viewer")
    await add_member(gql, team.token, team.project_gid, "viewer", "VIEWER")
    editor, _ = await signup(gql, "editor")
    await add_member(gql, team.token, team.project_gid, "editor", "EDITOR")
    one = [s("00f067aa0ba902b7")]

    async def errors(token, project=team.project_gid, spans=one):
        body = await gql(INGEST, {"input": {"projectId": project, "spans": spans}}, token=token)
        p = body["data"]["ingestSpans"]
        return [(e["code"], e["message"]) for e in p["userErrors"]], p

    assert (await errors(team.reader))[0] == [
        ("FORBIDDEN", "This API key lacks the scope for this; one of: PROJECT_ADMIN, TRACES_WRITE.")]
    assert (await errors(viewer))[0] == [
        ("FORBIDDEN", "Your role in this project does not allow this; it needs EDITOR or higher.")]
    assert (await errors(other.key))[0] == [("NOT_FOUND", "No project with this ID.")]
    assert (await errors(editor, other.project_gid))[0] == [("NOT_FOUND", "No project with this ID.")]
    assert (await errors(editor, "not-an-id"))[0] == [("NOT_FOUND", "No project with this ID.")]
    anonymous = await gql(INGEST, {"input": {"projectId": team.project_gid, "spans": one}}, token="", check=False)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await errors(editor))[1]["accepted"] == 1
    assert len(await spans_of(db_url, other.project_id)) == 0

    async with make_app(ingest_max_spans=2) as limited:
        import httpx

        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            three = [s(f"00f067aa0ba902c{i}") for i in range(3)]
            r = await c.post("/graphql", json={"query": INGEST, "variables": {
                "input": {"projectId": team.project_gid, "spans": three}}},
                headers={"authorization": f"Bearer {team.key}"})
    p = r.json()["data"]["ingestSpans"]
    assert p["userErrors"] == [{"code": "LIMIT_EXCEEDED", "field": ["input", "spans"], "message": (
        "The request holds 3 spans; at most 2 are accepted at once (PROMPTSTUDIO_INGEST_MAX_SPANS). Send smaller "
        "batches (e.g. the BatchSpanProcessor's max_export_batch_size).")}]
    assert (p["accepted"], p["rejected"]) == (0, 0)
