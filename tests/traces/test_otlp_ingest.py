"""OTLP/HTTP ingest at POST /v1/traces against a real server (uvicorn on loopback) and real PostgreSQL:
the OpenTelemetry SDK's own exporter, OTLP/JSON, gzip, ordering and idempotency, partial rejection,
semantic conventions, limits, garbage, and what ingest writes to the audit log.

The SDK test reads its trace back over GraphQL (Project.traces, Trace.spans, Span.usage) from the server it
sent to; the others check what was stored column by column through SQL (tests/traces/test_reading.py covers
the GraphQL read side in full).
"""
from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from tests.traces.otlp_util import (
    JSON,
    MS,
    T0,
    as_json,
    post,
    request,
    response,
    rows,
    span,
    spans_of,
    status,
    tenant,
)


@pytest.fixture
async def team(gql):
    return await tenant(gql, "otel")


def _export_with_the_sdk(endpoint: str, key: str, compression: str | None) -> bool:
    """Spans made with the OpenTelemetry SDK and sent by its OTLP/HTTP protobuf exporter (blocking: run it in a
    thread, the server shares this event loop)."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    exporter = OTLPSpanExporter(endpoint=endpoint, headers={"Authorization": f"Bearer {key}"}, timeout=10,
                                compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout-bot", "deployment.environment": "test"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.sdk", "0.1")
    with tracer.start_as_current_span("agent run", attributes={
            "openinference.span.kind": "AGENT", "input.value": "Where is my order?", "user.id": "customer-7",
            "session.id": "chat-42", "metadata": json.dumps({"plan": "pro"}), "tag.tags": ["support", "orders"]}):
        with tracer.start_as_current_span("ChatCompletion", attributes={
                "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
                "llm.token_count.prompt": 1200, "llm.token_count.completion": 300,
                "llm.token_count.prompt_details.cache_read": 200, "output.value": "It ships tomorrow."}):
            pass
        with tracer.start_as_current_span("chat claude-sonnet-4", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4", "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 50, "gen_ai.usage.cost": 0.25}):
            pass
        with tracer.start_as_current_span("lookup_order") as tool:
            tool.set_attribute("openinference.span.kind", "TOOL")
            tool.record_exception(ValueError("order 17 not found"))
            tool.set_status(Status(StatusCode.ERROR, "order lookup failed"))
        with tracer.start_as_current_span("GET /orders", attributes={"http.request.method": "GET",
                                                                     "url.full": "http://shop/orders"}):
            pass
    ok = provider.force_flush(10_000)
    provider.shutdown()
    return ok


READ_BACK = """query($id: ID!) { node(id: $id) { ... on Project { traces(first: 5) { totalCount nodes {
  traceId name status error spanCount errorCount endUserId sessionId metadata tags startTime endTime durationMs
  usage { calls inputTokens outputTokens totalTokens costUsd }
  rootSpan { spanId name kind parent { id } children { name } }
  spans(first: 100) { totalCount nodes {
    id spanId parentSpanId name kind status error startTime endTime durationMs attributes events
    parent { spanId } trace { traceId }
    usage { provider model inputTokens outputTokens cachedInputTokens totalCostUsd span { spanId } } } } } } } } }"""


@pytest.mark.parametrize("compression", [None, "gzip"])
async def test_the_opentelemetry_sdk_exports_to_the_server_and_the_spans_are_read_back(live, team, db_url,
                                                                                       compression):
    """The real SDK and its OTLP/HTTP exporter send to a live server; the same key (TRACES_WRITE may read what
    it sends) reads the trace back over GraphQL from that server."""
    async with live() as server:
        ok = await asyncio.to_thread(_export_with_the_sdk, server.url + "/v1/traces", team.key, compression)
        assert ok, "the exporter reported a failure"
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            resp = await client.post("/graphql", json={"query": READ_BACK, "variables": {"id": team.project_gid}},
                                     headers={"authorization": f"Bearer {team.key}"})
    assert resp.status_code == 200 and "errors" not in resp.json(), resp.text
    traces = resp.json()["data"]["node"]["traces"]
    assert traces["totalCount"] == 1
    (trace,) = traces["nodes"]
    assert len(trace["traceId"]) == 32 and trace["spans"]["totalCount"] == 5
    spans = trace["spans"]["nodes"]
    assert all(s["trace"] == {"traceId": trace["traceId"]} for s in spans)
    assert [s["startTime"] for s in spans] == sorted(s["startTime"] for s in spans)  # start order
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"agent run", "ChatCompletion", "chat claude-sonnet-4", "lookup_order", "GET /orders"}
    root = by_name["agent run"]
    assert root["parentSpanId"] is None and root["parent"] is None and root["kind"] == "AGENT"
    assert trace["rootSpan"]["spanId"] == root["spanId"] and trace["rootSpan"]["parent"] is None
    assert {c["name"] for c in trace["rootSpan"]["children"]} == set(by_name) - {"agent run"}
    assert all(s["parent"] == {"spanId": root["spanId"]} for n, s in by_name.items() if n != "agent run")
    assert by_name["ChatCompletion"]["kind"] == "LLM" and by_name["chat claude-sonnet-4"]["kind"] == "LLM"
    assert by_name["GET /orders"]["kind"] == "HTTP" and by_name["lookup_order"]["kind"] == "TOOL"
    tool = by_name["lookup_order"]
    assert (tool["status"], tool["error"]) == ("ERROR", "order lookup failed")
    assert [e["name"] for e in tool["events"]] == ["exception"]
    assert tool["events"][0]["attributes"]["exception.message"] == "order 17 not found"
    assert tool["events"][0]["time"].startswith("20")
    assert all(s["durationMs"] is not None and s["durationMs"] >= 0 for s in spans)
    # attributes as they came, resource and scope beside them
    llm = by_name["ChatCompletion"]
    assert llm["attributes"]["output.value"] == "It ships tomorrow."
    assert llm["attributes"]["llm.token_count.prompt"] == 1200
    assert llm["attributes"]["otel.resource"]["service.name"] == "checkout-bot"
    assert (llm["attributes"]["otel.scope.name"], llm["attributes"]["otel.scope.version"]) == ("tests.sdk", "0.1")
    assert root["attributes"]["tag.tags"] == ["support", "orders"]

    # usage: OpenInference's counts priced at gpt-4o's prices; GenAI's with the cost the span carried
    gpt = llm["usage"]
    assert (gpt["provider"], gpt["model"], gpt["inputTokens"], gpt["outputTokens"], gpt["cachedInputTokens"]) == (
        "openai", "gpt-4o", 1200, 300, 200)
    assert gpt["span"] == {"spanId": llm["spanId"]} and Decimal(gpt["totalCostUsd"]) > 0
    claude = by_name["chat claude-sonnet-4"]["usage"]
    assert (claude["provider"], claude["model"], Decimal(claude["totalCostUsd"])) == (
        "anthropic", "claude-sonnet-4", Decimal("0.25"))
    assert all(s["usage"] is None for n, s in by_name.items() if n not in ("ChatCompletion", "chat claude-sonnet-4"))
    # the price row is not in the API: the GenAI span's own cost has none, gpt-4o's has the shipped one
    priced = {r["model"]: r["model_config_id"] for r in await rows(
        db_url, "SELECT model, model_config_id FROM llm_usage WHERE project_id = $1", team.project_id)}
    assert priced["gpt-4o"] is not None and priced["claude-sonnet-4"] is None

    # the trace's summary
    assert (trace["name"], trace["status"], trace["spanCount"], trace["errorCount"]) == ("agent run", "ERROR", 5, 1)
    assert trace["error"] == "order lookup failed"
    assert (trace["endUserId"], trace["sessionId"], trace["tags"]) == ("customer-7", "chat-42", ["support", "orders"])
    assert trace["metadata"] == {"plan": "pro"}
    assert (trace["startTime"], trace["endTime"]) == (root["startTime"], root["endTime"])
    usage = trace["usage"]
    assert (usage["calls"], usage["inputTokens"], usage["outputTokens"], usage["totalTokens"]) == (2, 1300, 350, 1650)
    assert Decimal(usage["costUsd"]) == Decimal(gpt["totalCostUsd"]) + Decimal("0.25")


async def test_otlp_json_with_hex_ids_enum_names_and_string_integers(live, team, db_url):
    req = request([span(0xABC, 1, name="root", attrs={"big": 2**62, "ratio": 0.5, "ok": True,
                                                      "list": ["a", "b"], "kv": {"x": 1}, "raw": b"\x00\x01"}),
                   span(0xABC, 2, 1, name="child", kind=3, status=2, message="boom",
                        events=[("retry", 3, {"attempt": 2})])])
    doc = as_json(req)
    sp = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    sp[0]["traceId"] = sp[0]["traceId"].upper()  # hex is case-insensitive
    sp[1]["kind"] = "SPAN_KIND_CLIENT"
    sp[1]["status"]["code"] = "STATUS_CODE_ERROR"
    assert isinstance(sp[1]["startTimeUnixNano"], str)  # 64-bit integers are strings in protobuf's JSON mapping
    sp[0]["startTimeUnixNano"] = int(sp[0]["startTimeUnixNano"])  # numbers are accepted too
    async with live() as server, httpx.AsyncClient(base_url=server.url) as c:
        resp = await post(c, json.dumps(doc).encode(), team.key, media=JSON)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith(JSON)
        assert resp.json() == {}  # full success: partial_success left unset
        assert not response(resp.content, JSON).HasField("partial_success")
    stored = await spans_of(db_url, team.project_id)
    root, child = stored[f"{1:016x}"], stored[f"{2:016x}"]
    assert root["trace_id"] == f"{0xABC:032x}"
    assert root["attributes"]["big"] == 2**62 and root["attributes"]["list"] == ["a", "b"]
    assert root["attributes"]["kv"] == {"x": 1} and root["attributes"]["raw"] == "AAE="
    assert (child["status"], child["error"], child["attributes"]["otel.span.kind"]) == ("ERROR", "boom", "CLIENT")
    assert child["events"][0]["name"] == "retry" and child["events"][0]["attributes"] == {"attempt": 2}


async def test_gzip_bodies_and_a_gzip_bomb(live, team, db_url):
    req = request([span(7, 1, name="zipped")]).SerializeToString()
    async with live(ingest_max_body_bytes=64 * 1024) as server, httpx.AsyncClient(base_url=server.url) as c:
        ok = await post(c, gzip.compress(req), team.key, headers={"content-encoding": "gzip"})
        assert ok.status_code == 200, ok.content
        # 30 KB of gzip that inflates to 50 MB: refused once past the limit, without inflating it all
        bomb = gzip.compress(b"\x00" * 50_000_000, compresslevel=9)
        assert len(bomb) < 64 * 1024
        refused = await post(c, bomb, team.key, headers={"content-encoding": "gzip"})
        assert refused.status_code == 413
        assert "decompresses to more than 65536 bytes" in status(refused.content).message
        cut = await post(c, gzip.compress(req)[:-8], team.key, headers={"content-encoding": "gzip"})
        assert cut.status_code == 400 and "cut short" in status(cut.content).message
        garbage = await post(c, b"not gzip at all", team.key, headers={"content-encoding": "gzip"})
        assert garbage.status_code == 400 and "not valid gzip" in status(garbage.content).message
        br = await post(c, req, team.key, headers={"content-encoding": "br"})
        assert br.status_code == 415 and "gzip" in status(br.content).message
    assert [r["name"] for r in (await spans_of(db_url, team.project_id)).values()] == ["zipped"]


async def test_children_first_across_requests_then_the_root_and_the_same_batch_twice(live, team, db_url):
    trace = 0x5EED
    llm = {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.provider": "openai",
           "llm.token_count.prompt": 1000, "llm.token_count.completion": 500}
    grandchild = span(trace, 3, 2, name="tool", start_ms=20, end_ms=30, status=2, message="tool failed")
    child = span(trace, 2, 1, name="llm", start_ms=10, end_ms=40, attrs=llm)
    root = span(trace, 1, None, name="agent", start_ms=0, end_ms=50, status=1, attrs={"session.id": "s-1"})
    async with live() as server, httpx.AsyncClient(base_url=server.url) as c:
        for batch in ([grandchild], [child], [root]):
            r = await post(c, request(batch), team.key)
            assert r.status_code == 200 and not response(r.content).HasField("partial_success")
        (t,) = await rows(db_url, "SELECT * FROM traces WHERE project_id = $1", team.project_id)
        assert (t["name"], t["root_span_id"], t["span_count"], t["status"], t["error"]) == (
            "agent", f"{1:016x}", 3, "ERROR", "tool failed")
        assert (t["session_id"], t["llm_calls"], t["cost_usd"]) == ("s-1", 1, Decimal("0.0075"))
        assert t["end_time"] - t["start_time"] == timedelta(milliseconds=50)
        # the whole trace again, twice, concurrently: stored once, answered as a full success
        again = await asyncio.gather(*[post(c, request([root, child, grandchild]), team.key) for _ in range(2)])
        assert [a.status_code for a in again] == [200, 200]
        assert not any(response(a.content).HasField("partial_success") for a in again)
    (t2,) = await rows(db_url, "SELECT * FROM traces WHERE project_id = $1", team.project_id)
    assert (t2["span_count"], t2["llm_calls"], t2["cost_usd"]) == (3, 1, Decimal("0.0075"))
    assert len(await spans_of(db_url, team.project_id)) == 3
    assert len(await rows(db_url, "SELECT 1 FROM llm_usage WHERE project_id = $1", team.project_id)) == 1


async def test_bad_spans_are_rejected_alone_with_their_reasons(live, team, db_url):
    good = [span(1, 1, name="good one"), span(1, 2, 1, name="good two")]
    bad = [
        span(b"\x01" * 15, 3, name="short trace id"),
        span(0, 4, name="zero trace id"),
        span(1, 5, name="ends first", start_ms=10, end_ms=5),
        span(1, b"\x00" * 8, name="zero span id"),
        span(1, 6, name="tokens", attrs={"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o",
                                         "llm.token_count.prompt": 2**40}),
        span(1, 7, name="no start", start_ms=-T0 // MS, end_ms=None),
        span(1, 8, b"\x01\x02", name="bad parent"),
    ]
    req = request([good[0], *bad[:4], good[1], *bad[4:]])
    async with live() as server, httpx.AsyncClient(base_url=server.url) as c:
        r = await post(c, req, team.key)
        assert r.status_code == 200
        partial = response(r.content).partial_success
        # the same request as OTLP/JSON gets the same verdicts, in JSON
        rj = await post(c, json.dumps(as_json(req)).encode(), team.key, media=JSON)
        assert rj.status_code == 200 and rj.json()["partialSuccess"]["rejectedSpans"] == "7"
    assert partial.rejected_spans == 7
    message = partial.error_message
    assert message.startswith("7 of 9 spans rejected: span 1 (0000000000000003): trace_id must be 16 bytes, not "
                              "all zero (got 15 bytes: 010101"), message
    for reason in ("span 2 (0000000000000004): trace_id must be 16 bytes, not all zero",
                   "span 3 (0000000000000005): the span ends before it starts",
                   "span 4 (0000000000000000): span_id must be 8 bytes",
                   "span 6 (0000000000000006): llm.token_count.prompt is 1099511627776; a token count must be "
                   "between 0 and 2147483647", "span 7 (0000000000000007): start_time_unix_nano is missing",
                   "span 8 (0000000000000008): parent_span_id must be empty or 8 bytes"):
        assert reason in message, (reason, message)
    assert rj.json()["partialSuccess"]["errorMessage"].startswith("7 of 9 spans rejected")
    assert sorted(r["name"] for r in (await spans_of(db_url, team.project_id)).values()) == ["good one", "good two"]


async def test_semantic_conventions_of_both_families(live, team, db_url):
    trace = 0xC0DE
    spans = [
        span(trace, 1, name="emb", attrs={"openinference.span.kind": "EMBEDDING", "llm.model_name": "gemini-2.5-flash",
                                          "llm.token_count.prompt": 10}),
        span(trace, 2, 1, name="retrieve", attrs={"openinference.span.kind": "retriever"}),
        span(trace, 3, 1, name="embeddings", attrs={"gen_ai.operation.name": "embeddings",
                                                    "gen_ai.system": "openai",
                                                    "gen_ai.request.model": "text-embedding-3-small",
                                                    "gen_ai.usage.input_tokens": "42"}),
        span(trace, 4, 1, name="invoke_agent", attrs={"gen_ai.operation.name": "invoke_agent",
                                                      "gen_ai.usage.input_tokens": 5000}),
        span(trace, 5, 1, name="execute_tool", attrs={"gen_ai.operation.name": "execute_tool"}),
        span(trace, 6, 1, name="SELECT", attrs={"db.system.name": "postgresql", "db.query.text": "SELECT 1"}),
        span(trace, 7, 1, name="chat", attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                                              "gen_ai.response.model": "gpt-4o-2024-08-06",
                                              "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 1000,
                                              "gen_ai.usage.output_tokens": 10,
                                              "gen_ai.usage.cache_read.input_tokens": 400,
                                              "gen_ai.conversation.id": "conv-1", "enduser.id": "u-9"}),
        span(trace, 8, 1, name="priced", attrs={"openinference.span.kind": "LLM", "llm.model_name": "m",
                                                "llm.cost.prompt": 0.5, "llm.cost.completion": 0.25}),
        span(trace, 9, 1, name="plain"),
        span(trace, 10, 1, name="guard", attrs={"openinference.span.kind": "GUARDRAIL"}),
    ]
    async with live() as server, httpx.AsyncClient(base_url=server.url) as c:
        r = await post(c, request(spans), team.key)
        assert r.status_code == 200 and not response(r.content).HasField("partial_success"), r.content
    stored = {s["name"]: s for s in (await spans_of(db_url, team.project_id)).values()}
    assert {n: s["kind"] for n, s in stored.items()} == {
        "emb": "EMBEDDING", "retrieve": "RETRIEVER", "embeddings": "EMBEDDING", "invoke_agent": "AGENT",
        "execute_tool": "TOOL", "SELECT": "DATABASE", "chat": "LLM", "priced": "LLM", "plain": "INTERNAL",
        "guard": "GUARDRAIL"}
    usage = {u["span_pk"]: u for u in await rows(db_url, "SELECT * FROM llm_usage WHERE project_id = $1",
                                                  team.project_id)}
    by_span = {n: usage.get(s["id"]) for n, s in stored.items()}
    # usage from LLM and EMBEDDING spans only: the agent's token total repeats its children's
    assert {n for n, u in by_span.items() if u is not None} == {"emb", "embeddings", "chat", "priced"}
    chat = by_span["chat"]
    assert (chat["provider"], chat["model"], chat["input_tokens"], chat["output_tokens"],
            chat["cached_input_tokens"]) == ("openai", "gpt-4o-2024-08-06", 1000, 10, 400)
    assert chat["model_config_id"] is not None  # a dated snapshot is priced as its model
    assert by_span["embeddings"]["input_tokens"] == 42
    assert by_span["emb"]["provider"] == "google"  # named by no attribute: inferred from the pricing table
    assert by_span["embeddings"]["provider"] == "openai"  # gen_ai.system, the older name of gen_ai.provider.name
    assert by_span["priced"]["total_cost_usd"] == Decimal("0.75")
    (t,) = await rows(db_url, "SELECT * FROM traces WHERE project_id = $1", team.project_id)
    assert (t["session_id"], t["end_user_id"]) == ("conv-1", "u-9")


async def test_limits_truncation_nul_bytes_and_too_many_spans(live, team, db_url):
    long = "x" * 5000
    s = span(0xF00, 1, name="n\x00ul" + long, attrs={"input.value": long, "k\x00ey": "v\x00al", "short": "ok",
                                                     "nested": [long, {"deep": long}]},
             status=2, message="e" * 6000)
    async with live(ingest_max_attribute_chars=1000, ingest_max_spans=3,
                    ingest_max_body_bytes=100_000) as server, httpx.AsyncClient(base_url=server.url) as c:
        r = await post(c, request([s]), team.key)
        assert r.status_code == 200, r.content
        many = await post(c, request([span(0xF00, i + 2) for i in range(4)]), team.key)
        assert many.status_code == 413
        assert status(many.content).message.startswith("The request holds 4 spans; at most 3 are accepted at once")
        big = await post(c, request([span(0xF00, 9, attrs={"a": "y" * 120_000})]), team.key)
        assert big.status_code == 413 and "larger than 100000 bytes" in status(big.content).message
        big_json = await post(c, b"{" + b" " * 100_001 + b"}", team.key, media=JSON)
        assert big_json.status_code == 413 and "larger than" in status(big_json.content, JSON).message
    (stored,) = (await spans_of(db_url, team.project_id)).values()
    assert stored["name"] == "nul" + "x" * 997 and len(stored["error"]) == 1000
    a = stored["attributes"]
    assert a["key"] == "val" and a["short"] == "ok" and len(a["input.value"]) == 1000
    assert len(a["nested"][0]) == 1000 and len(a["nested"][1]["deep"]) == 1000
    assert sorted(a["promptstudio.truncated"]) == sorted(["name", "input.value", "nested", "nested.deep",
                                                          "status.message"])


GARBAGE = [
    b"", b"\x00", b"\xff" * 64, b"garbage that is not protobuf", bytes(range(256)), b"\x0a\xff\xff\xff\xff\x0f",
    b"\x0a\x05\x12\x03\x0a\x01", json.dumps({"resourceSpans": []}).encode(),
]
JSON_GARBAGE = [
    b"", b"{", b"[]", b"null", b'"x"', b'{"resourceSpans": 5}', b'{"resourceSpans": [5]}',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [5, null, {}, {"traceId": 7}]}]}]}',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00", "attributes": 3}]}]}]}',
    b'{"resourceSpans": [{"resource": {"attributes": [{"key": 1}]}, "scopeSpans": [{"spans": [{}]}]}]}',
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "000000000000000000000000000000a1", '
    b'"spanId": "00000000000000a1", "startTimeUnixNano": "1", "attributes": [{"key": "k", "value": '
    + b'{"arrayValue": {"values": [' * 40 + b"]}}" * 40 + b"}]}]}]}]}",
    ("[" * 100_000).encode(),
    b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "000000000000000000000000000000a1", '
    b'"spanId": "00000000000000a2", "startTimeUnixNano": "1", "name": "\\ud800 \\u0000", "attributes": '
    b'[{"key": "\\udfff", "value": {"doubleValue": "NaN"}}, {"key": "n", "value": {"doubleValue": 1e999}}]}]}]}]}',
]


async def test_garbage_gets_400_or_a_partial_success_never_a_500(live, team, db_url):
    rng = random.Random(7)
    valid = request([span(1, 1, attrs={"a": "b", "n": 1}, events=[("e", 1, {"x": [1, 2]})])]).SerializeToString()
    fuzzed = [bytes(b if rng.random() > 0.05 else rng.randrange(256) for b in valid) for _ in range(60)]
    fuzzed += [valid[:n] for n in range(0, len(valid), 7)]
    async with live() as server, httpx.AsyncClient(base_url=server.url) as c:
        for body in GARBAGE + fuzzed + [os.urandom(n) for n in (1, 10, 100, 1000)]:
            r = await post(c, body, team.key)
            assert r.status_code in (200, 400), (r.status_code, body, r.content)
            if r.status_code == 400:
                assert status(r.content).message
        for body in JSON_GARBAGE:
            r = await post(c, body, team.key, media=JSON)
            assert r.status_code in (200, 400), (r.status_code, body[:200], r.content)
            if r.status_code == 400:
                assert status(r.content, JSON).message, r.content
        last = await post(c, JSON_GARBAGE[-1], team.key, media=JSON)
        assert last.status_code == 200 and "partialSuccess" not in last.json()
        bad = await post(c, JSON_GARBAGE[8], team.key, media=JSON)
        assert bad.json()["partialSuccess"]["errorMessage"] == (
            "1 of 1 spans rejected: span 0 (00): traceId must be 32 hex characters; got 'zz'.")
        for media in ("text/plain", "application/xml", ""):
            r = await c.post("/v1/traces", content=valid, headers={"content-type": media,
                                                                    "authorization": f"Bearer {team.key}"})
            assert r.status_code == 415 and "application/x-protobuf" in r.json()["message"]
        assert (await c.get("/v1/traces")).status_code == 405
    stored = await spans_of(db_url, team.project_id)
    s = stored["00000000000000a2"]
    assert s["name"] == "\ufffd " and s["attributes"] == {"\ufffd": "NaN", "n": "Infinity"}
