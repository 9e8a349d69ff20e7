"""Every execution is a trace: root, render, queued, the provider call (usage linked, retries as events)
and the validations, written in the transaction that ends the execution — whoever ends it."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.executions.util import ERR, db_fetch, execute_ok, raw_uuid, set_credential, tenant, upsert_model, wait_for
from tests.providers.fake_llm_server import FakeLLMServer

VALIDATION = f"""mutation($i: CreateValidationInput!) {{ createValidation(input: $i) {{ validation {{ id }} {ERR} }} }}"""


@pytest.fixture
def fake_llm():
    server = FakeLLMServer(slow_seconds=3.0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def trace_of(db_url, eid):
    execution_id = raw_uuid(eid)
    [t] = await db_fetch(db_url, "SELECT * FROM traces WHERE execution_id = $1", execution_id)
    spans = await db_fetch(db_url, "SELECT * FROM spans WHERE trace_pk = $1 ORDER BY start_time, name", t["id"])
    return t, {s["name"].split(" ")[0]: s for s in spans}


async def test_a_completed_execution_with_a_retry_and_a_failed_validation(gql, make_app, db_url, fake_llm):
    t = await tenant(gql, "ann")
    await set_credential(gql, t.token, t.project_id, "openai", "sk-test-123456", fake_llm.openai_base_url)
    assert (await upsert_model(gql, t.token, provider="openai", modelId="rate-limit-then-ok",
                               inputPricePerMillion="2.50", outputPricePerMillion="10.00",
                               effectiveFrom="2020-01-01T00:00:00Z"))["userErrors"] == []
    body = await gql(VALIDATION, {"i": {"promptId": t.prompt_id, "name": "mentions Ada", "type": "REGEX",
                                        "config": {"pattern": "Ada"}}}, token=t.token)
    assert body["data"]["createValidation"]["userErrors"] == []
    async with make_app(workers=1, provider_retries=2, provider_backoff_max_seconds=0.1):
        eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "Bob"}, subjectKey="user-7",
                               modelSettings={"provider": "openai", "model": "rate-limit-then-ok"})
        e = await wait_for(gql, t.token, eid, timeout=15)
    assert e["status"] == "COMPLETED"

    trace, spans = await trace_of(db_url, eid)
    assert set(spans) == {"execute", "render", "queued", "chat", "validate"}
    root, call, check = spans["execute"], spans["chat"], spans["validate"]
    assert trace["trace_id"] == raw_uuid(eid).hex and trace["span_count"] == 5
    assert trace["name"] == root["name"] and root["name"].startswith("execute ") and root["name"].endswith(" v1")
    assert (root["parent_span_id"], root["kind"], root["status"]) == (None, "CHAIN", "OK")
    assert all(s["parent_span_id"] == root["span_id"] for n, s in spans.items() if n != "execute")
    # the failed validation makes the trace an ERROR trace, while the execution COMPLETED
    assert (check["kind"], check["status"]) == ("GUARDRAIL", "ERROR") and "mentions Ada" in check["error"]
    assert trace["status"] == "ERROR" and trace["end_user_id"] == "user-7"

    attributes = json.loads(call["attributes"])
    assert (call["kind"], call["status"]) == ("LLM", "OK")
    assert attributes["llm.model_name"] == "rate-limit-then-ok" and attributes["llm.provider"] == "openai"
    assert attributes["llm.token_count.prompt"] == 17 and attributes["llm.token_count.completion"] == 11
    events = json.loads(call["events"])
    assert [ev["name"] for ev in events if ev["name"] == "retry"] == ["retry"]  # the 429, then it worked
    root_attributes = json.loads(root["attributes"])
    assert json.loads(root_attributes["input.value"]) == {"name": "Bob"}
    assert root_attributes["output.value"] == fake_llm.reply
    assert root_attributes["promptstudio.execution.id"] == str(raw_uuid(eid))

    [usage] = await db_fetch(db_url, "SELECT * FROM llm_usage WHERE execution_id = $1", raw_uuid(eid))
    assert usage["span_pk"] == call["id"] and usage["total_cost_usd"] == Decimal("0.000153")
    assert usage["model_config_id"] is not None and usage["end_user_id"] == "user-7"
    assert (trace["llm_calls"], trace["input_tokens"], trace["output_tokens"], trace["cost_usd"]) == \
        (1, 17, 11, Decimal("0.000153"))
    assert root["start_time"] <= spans["render"]["start_time"] <= spans["render"]["end_time"]
    assert spans["queued"]["end_time"] <= call["start_time"] <= check["start_time"] <= root["end_time"]

    # and over GraphQL: Execution.trace, its spans, the call's usage linked to its execution and back
    body = await gql("""query($id: ID!) { node(id: $id) { ... on Execution { id costUsd trace {
        traceId status spanCount execution { id } usage { calls costUsd }
        rootSpan { name children { name } }
        spans { nodes { name kind usage { totalCostUsd execution { id } span { name } } } } } } } }""",
                     {"id": eid}, token=t.token)
    read = body["data"]["node"]["trace"]
    assert (read["traceId"], read["status"], read["spanCount"]) == (raw_uuid(eid).hex, "ERROR", 5)
    assert read["execution"] == {"id": eid} and read["usage"] == {"calls": 1, "costUsd": "0.000153"}
    assert read["rootSpan"]["name"] == root["name"] and len(read["rootSpan"]["children"]) == 4
    [chat] = [n for n in read["spans"]["nodes"] if n["kind"] == "LLM"]
    assert chat["usage"] == {"totalCostUsd": "0.000153", "execution": {"id": eid}, "span": {"name": chat["name"]}}
    assert body["data"]["node"]["costUsd"] == "0.000153"


async def test_failed_and_cancelled_executions_are_traces_too(gql, make_app, db_url):
    t = await tenant(gql, "bea")
    # FAILED before any call (an unknown provider): root (ERROR) and render, queued
    async with make_app(workers=1):
        failed = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "x"},
                                  modelSettings={"provider": "openai", "model": "gpt-4o"})  # no credential
        f = await wait_for(gql, t.token, failed, timeout=15)
    assert f["status"] == "FAILED"
    trace, spans = await trace_of(db_url, failed)
    assert set(spans) == {"execute", "render", "queued"}
    assert trace["status"] == "ERROR" and trace["error"] == f["error"] and trace["llm_calls"] == 0

    # cancelled while waiting (no workers): the root alone and its render, status UNSET
    pending = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "y"})
    body = await gql(f"""mutation($id: ID!) {{ cancelExecution(input: {{id: $id}}) {{ execution {{ status }} {ERR}
                     }} }}""", {"id": pending}, token=t.token)
    assert body["data"]["cancelExecution"]["execution"]["status"] == "CANCELLED"
    trace, spans = await trace_of(db_url, pending)
    assert set(spans) == {"execute", "render"} and trace["status"] == "UNSET"
    assert json.loads(spans["execute"]["attributes"])["promptstudio.execution.status"] == "CANCELLED"
