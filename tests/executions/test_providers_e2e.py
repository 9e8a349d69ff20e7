"""Both real HTTP clients (openai, anthropic) through executePrompt against a local OpenAI/Anthropic-
compatible server: streaming, usage, cost, retries, timeouts, malformed bodies, cut streams, cancel."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.providers.fake_llm_server import AUTH_ERROR_MESSAGE, FakeLLMServer

from .util import (ERR, db_fetch, execute_ok, raw_uuid, set_credential, tenant, upsert_model, wait_for)

PROVIDER_SETTINGS = dict(workers=4, provider_retries=2, provider_backoff_max_seconds=0.1,
                         provider_timeout_seconds=0.5, lease_seconds=5, heartbeat_seconds=1.0)


@pytest.fixture
def fake_llm():
    server = FakeLLMServer(slow_seconds=3.0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def run_all(gql, token, prompt_id, provider, models, **extra):
    ids = {}
    for model in models:
        ids[model] = await execute_ok(gql, token, promptId=prompt_id, variables={"name": model},
                                      modelSettings={"provider": provider, "model": model, **extra})
    return {model: await wait_for(gql, token, eid, timeout=15) for model, eid in ids.items()}, ids


async def logs_of(db_url, eid):
    rows = await db_fetch(db_url, "SELECT level, message FROM execution_logs WHERE execution_id = $1 "
                                  "ORDER BY timestamp, id", raw_uuid(eid))
    return [(r["level"], r["message"]) for r in rows]


async def usage_of(db_url, eid):
    return await db_fetch(db_url, "SELECT input_tokens, output_tokens, tokens_reported, total_cost_usd, "
                                  "input_cost_usd, output_cost_usd, model_config_id, end_user_id "
                                  "FROM llm_usage WHERE execution_id = $1", raw_uuid(eid))


async def test_openai_compatible_provider_end_to_end(gql, make_app, db_url, fake_llm):
    t = await tenant(gql, "ann")  # the first user: superuser
    await set_credential(gql, t.token, t.project_id, "openai", "sk-test-123456", fake_llm.openai_base_url)
    p = await upsert_model(gql, t.token, provider="openai", modelId="ok", inputPricePerMillion="2.50",
                           outputPricePerMillion="10.00", effectiveFrom="2020-01-01T00:00:00Z")
    assert p["userErrors"] == []
    models = ["ok", "no-usage", "rate-limit-then-ok", "server-error", "malformed", "cut", "auth-error", "slow"]
    async with make_app(**PROVIDER_SETTINGS):
        got, ids = await run_all(gql, t.token, t.prompt_id, "openai", models)

    ok = got["ok"]
    assert ok["status"] == "COMPLETED" and ok["output"] == fake_llm.reply, ok
    assert ok["usage"] == {"inputTokens": 17, "outputTokens": 11, "totalTokens": 28}
    assert Decimal(ok["costUsd"]) == Decimal("0.000153")  # 17 * 2.50 / 1e6 + 11 * 10 / 1e6, rounded
    request = next(r for r in fake_llm.requests if r.model == "ok")
    assert request.headers["authorization"] == "Bearer sk-test-123456"
    assert request.body["stream"] is True and request.body["messages"] == [{"role": "user", "content": "Hello ok!"}]
    deltas = await db_fetch(db_url, "SELECT delta FROM execution_events WHERE execution_id = $1 AND "
                                    "type = 'OUTPUT_DELTA' ORDER BY seq", raw_uuid(ids["ok"]))
    assert "".join(d["delta"] for d in deltas) == fake_llm.reply
    [u] = await usage_of(db_url, ids["ok"])
    assert u["tokens_reported"] is True and u["total_cost_usd"] == u["input_cost_usd"] + u["output_cost_usd"]
    assert u["model_config_id"] is not None
    assert any(m.startswith("usage: 17 input + 11 output tokens, reported by openai") for _, m in
               await logs_of(db_url, ids["ok"]))

    nu = got["no-usage"]
    assert nu["status"] == "COMPLETED" and nu["costUsd"] is None  # "no-usage" has no price
    nu_logs = await logs_of(db_url, ids["no-usage"])
    assert any("counted by Prompt Studio (openai usage unavailable" in m for _, m in nu_logs)
    assert ("WARN", "no price for openai/no-usage: cost left empty (a superuser can add one with "
                    "upsertModelConfig)") in nu_logs
    [u] = await usage_of(db_url, ids["no-usage"])
    assert u["tokens_reported"] is False and u["model_config_id"] is None and u["total_cost_usd"] == 0

    rl = got["rate-limit-then-ok"]
    assert rl["status"] == "COMPLETED" and rl["output"] == fake_llm.reply
    assert any(level == "WARN" and "HTTP 429" in m and "retry 1 of 2" in m
               for level, m in await logs_of(db_url, ids["rate-limit-then-ok"]))
    assert len(await usage_of(db_url, ids["rate-limit-then-ok"])) == 1

    se = got["server-error"]
    assert se["status"] == "FAILED" and "HTTP 500" in se["error"] and "(gave up after 2 retries)" in se["error"]
    assert sum(r.model == "server-error" for r in fake_llm.requests) == 3
    se_logs = await logs_of(db_url, ids["server-error"])
    assert se_logs[-1] == ("ERROR", se["error"]) and await usage_of(db_url, ids["server-error"]) == []
    assert se["output"] is None and se["usage"] is None and se["validationStatus"] == "SKIPPED"

    mf = got["malformed"]
    assert mf["status"] == "FAILED" and "malformed" in mf["error"]
    assert sum(r.model == "malformed" for r in fake_llm.requests) == 1  # not retried

    cut = got["cut"]
    assert cut["status"] == "FAILED" and "before the response was complete" in cut["error"]
    assert cut["error"].endswith("(not retried: part of the output had already streamed)")
    assert cut["output"] and fake_llm.reply.startswith(cut["output"]) and cut["output"] != fake_llm.reply
    [u] = await usage_of(db_url, ids["cut"])  # what did stream is accounted for (counted)
    assert u["tokens_reported"] is False and u["output_tokens"] > 0

    auth = got["auth-error"]
    assert auth["status"] == "FAILED" and AUTH_ERROR_MESSAGE in auth["error"]
    assert sum(r.model == "auth-error" for r in fake_llm.requests) == 1

    slow = got["slow"]
    assert slow["status"] == "FAILED" and "read timeout" in slow["error"]
    assert "gave up after 2 retries" in slow["error"]


async def test_prices_change_without_touching_past_costs(gql, make_app, fake_llm):
    t = await tenant(gql, "bob")
    await set_credential(gql, t.token, t.project_id, "openai", "sk-test-123456", fake_llm.openai_base_url)
    await upsert_model(gql, t.token, provider="openai", modelId="ok", inputPricePerMillion="1",
                       outputPricePerMillion="1", effectiveFrom="2020-01-01T00:00:00Z")
    async with make_app(**PROVIDER_SETTINGS):
        first, _ = await run_all(gql, t.token, t.prompt_id, "openai", ["ok"])
        p = await upsert_model(gql, t.token, provider="openai", modelId="ok", inputPricePerMillion="1000",
                               outputPricePerMillion="0")
        assert p["userErrors"] == []
        second, ids = await run_all(gql, t.token, t.prompt_id, "openai", ["ok"])
    assert Decimal(first["ok"]["costUsd"]) == Decimal("0.000028")
    assert Decimal(second["ok"]["costUsd"]) == Decimal("0.017")
    again = await wait_for(gql, t.token, first["ok"]["id"])
    assert again["costUsd"] == first["ok"]["costUsd"]


async def test_anthropic_provider_end_to_end(gql, make_app, db_url, fake_llm):
    t = await tenant(gql, "cyd")
    await set_credential(gql, t.token, t.project_id, "anthropic", "ak-test-123456", fake_llm.anthropic_base_url)
    models = ["ok", "rate-limit-then-ok", "stream-error", "cut-early"]
    async with make_app(**PROVIDER_SETTINGS):
        got, ids = await run_all(gql, t.token, t.prompt_id, "anthropic", models)
    ok = got["ok"]
    assert ok["status"] == "COMPLETED" and ok["output"] == fake_llm.reply
    assert ok["usage"] == {"inputTokens": 17, "outputTokens": 11, "totalTokens": 28}
    request = next(r for r in fake_llm.requests if r.model == "ok")
    assert request.headers["x-api-key"] == "ak-test-123456" and request.path == "/v1/messages"
    assert got["rate-limit-then-ok"]["status"] == "COMPLETED"
    se = got["stream-error"]
    assert se["status"] == "FAILED" and "Overloaded" in se["error"] and se["output"]
    ce = got["cut-early"]  # dropped before any text: retried, then failed
    assert ce["status"] == "FAILED" and ce["output"] is None and "gave up after 2 retries" in ce["error"]
    assert sum(r.model == "cut-early" for r in fake_llm.requests) == 3


async def test_missing_credentials_fail_clearly(gql, make_app):
    t = await tenant(gql, "deb")
    async with make_app(**PROVIDER_SETTINGS):
        got, _ = await run_all(gql, t.token, t.prompt_id, "anthropic", ["claude-sonnet-4"])
        p = await gql(f"""mutation($i: ExecutePromptInput!) {{ executePrompt(input: $i) {{ {ERR} }} }}""",
                      {"i": {"promptId": t.prompt_id, "variables": {"name": "x"},
                             "modelSettings": {"provider": "openai"}}}, token=t.token)
    e = got["claude-sonnet-4"]
    assert e["status"] == "FAILED"
    assert e["error"] == ("no credential for provider anthropic: store one for this project with "
                          "setProviderCredential, or set ANTHROPIC_API_KEY on the server")
    errors = p["data"]["executePrompt"]["userErrors"]
    assert [(x["code"], x["field"]) for x in errors] == [("INVALID", ["input", "modelSettings", "model"])]


async def test_cancel_closes_the_provider_stream(gql, make_app, fake_llm):
    t = await tenant(gql, "eve")
    await set_credential(gql, t.token, t.project_id, "openai", "sk-test-123456", fake_llm.openai_base_url)
    async with make_app(**{**PROVIDER_SETTINGS, "provider_timeout_seconds": 10}):
        eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "x"},
                               modelSettings={"provider": "openai", "model": "slow-stream"})
        await wait_for(gql, t.token, eid, ("RUNNING",), predicate=lambda e: bool(e["output"]))
        body = await gql(f"""mutation($id: ID!) {{ cancelExecution(input: {{id: $id}}) {{
            execution {{ status output }} {ERR} }} }}""", {"id": eid}, token=t.token)
        p = body["data"]["cancelExecution"]
        assert p["userErrors"] == [] and p["execution"]["status"] == "CANCELLED"
        assert await asyncio.to_thread(fake_llm.wait_for_disconnect, -1, 2.0)


VALIDATION = f"""mutation($i: CreateValidationInput!) {{ createValidation(input: $i) {{ validation {{ id }} {ERR} }} }}"""


async def test_validations_run_on_the_output(gql, make_app):
    t = await tenant(gql, "fay")
    t2 = await tenant(gql, "gus", template='{"answer": {{n}}}')
    for v in ({"name": "is json", "type": "JSON_SCHEMA",
               "config": {"schema": {"type": "object", "required": ["answer"]}}},
              {"name": "small", "type": "JMESPATH", "config": {"expression": "answer < `10`"}},
              {"name": "off", "type": "REGEX", "config": {"pattern": "never"}, "isActive": False}):
        body = await gql(VALIDATION, {"i": {"promptId": t2.prompt_id, **v}}, token=t2.token)
        assert body["data"]["createValidation"]["userErrors"] == []
    async with make_app(workers=2):
        ok = await wait_for(gql, t2.token, await execute_ok(gql, t2.token, promptId=t2.prompt_id,
                                                            variables={"n": "3"}))
        bad = await wait_for(gql, t2.token, await execute_ok(gql, t2.token, promptId=t2.prompt_id,
                                                             variables={"n": "42"}))
    assert ok["status"] == "COMPLETED" and ok["validationStatus"] == "PASSED"
    assert ok["validatedOutput"] == {"answer": 3}
    assert [(r["name"], r["passed"]) for r in ok["validationResults"]] == [("is json", True), ("small", True)]
    assert ok["validationResults"][0]["validation"]["name"] == "is json"
    assert bad["status"] == "COMPLETED" and bad["validationStatus"] == "FAILED"
    assert [(r["name"], r["passed"]) for r in bad["validationResults"]] == [("is json", True), ("small", False)]
    assert bad["validationResults"][1]["message"]
    assert t.prompt_id  # the first tenant only makes sure "gus" is not the superuser
