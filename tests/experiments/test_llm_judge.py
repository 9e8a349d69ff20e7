"""LLM_JUDGE: a model reached through our providers (a real HTTP server speaking OpenAI's protocol) grades each
output; its answer is a score with an explanation, its call a span with usage and cost in llm_usage; a judge that
fails leaves a scoring error that says why."""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from tests.executions.util import set_credential, upsert_model
from tests.helpers import create_project
from tests.providers.fake_llm_server import FakeLLMServer

from .util import (
    add_items,
    create_dataset,
    create_evaluator,
    create_experiment,
    create_prompt,
    db_fetch,
    get_experiment,
    signup,
    start,
)


@pytest.fixture
def judge_server():
    server = FakeLLMServer(reply='{"score": 0.8, "explanation": "Polite and correct."}')
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_llm_judge_scores_through_the_provider_and_records_its_usage(gql, make_app, db_url, judge_server):
    token, _ = await signup(gql, "judy")  # the first user: a superuser (may price models)
    project = await create_project(gql, token, "judy-proj")
    await set_credential(gql, token, project, "openai", "sk-judge-123456", judge_server.openai_base_url)
    assert (await upsert_model(gql, token, provider="openai", modelId="ok", inputPricePerMillion="2.50",
                               outputPricePerMillion="10.00", effectiveFrom="2020-01-01T00:00:00Z"))["userErrors"] == []
    _, version = await create_prompt(gql, token, project, "p", template="Answer {{q}}")
    dataset = await create_dataset(gql, token, project)
    await add_items(gql, token, dataset, [{"variables": {"q": "one"}, "expectedOutput": "1"},
                                          {"variables": {"q": "two"}, "expectedOutput": "2"}])
    judge = await create_evaluator(gql, token, project, "polite", "LLM_JUDGE",
                                   {"provider": "openai", "model": "ok", "rubric": "Is the answer polite?",
                                    "passThreshold": 0.7})
    broken = await create_evaluator(gql, token, project, "broken", "LLM_JUDGE",
                                    {"provider": "openai", "model": "auth-error", "rubric": "Anything."})
    e = (await create_experiment(gql, token, project, name="judged", type="EVALUATION", datasetId=dataset,
                                 evaluatorIds=[judge["evaluator"]["id"], broken["evaluator"]["id"]],
                                 variants=[{"name": "only", "versionId": version,
                                            "modelSettings": {"extra": {"chunkDelayMs": 0}}}]))["experiment"]
    assert (await start(gql, token, e["id"]))["userErrors"] == []
    async with make_app(workers=2, provider_retries=0):
        deadline = time.monotonic() + 60
        while (got := await get_experiment(gql, token, e["id"]))["status"] != "COMPLETED":
            assert time.monotonic() < deadline, got["progress"]
            await asyncio.sleep(0.2)
    body = await gql("""query($id: ID!) { node(id: $id) { ... on Experiment { runs { nodes { output
        scores { name value passed explanation source } scoringErrors execution { id } } } } } }""",
                     {"id": e["id"]}, token=token)
    runs = body["data"]["node"]["runs"]["nodes"]
    assert len(runs) == 2
    for run in runs:
        assert run["scores"] == [{"name": "polite", "value": 0.8, "passed": True, "explanation": "Polite and correct.",
                                  "source": "EVALUATOR"}]
        assert len(run["scoringErrors"]) == 1 and run["scoringErrors"][0].startswith("broken: the judge's call to "
                                                                                     "openai failed")
    stats = next(s for s in got["variants"][0]["stats"]["scores"] if s["name"] == "polite")
    assert stats["n"] == 2 and stats["mean"] == pytest.approx(0.8) and stats["passRate"] == 1.0

    # what the judge was sent: the rubric, the input, the expected and the actual output, JSON asked for
    sent = [r for r in judge_server.requests if r.model == "ok"]
    assert len(sent) == 2 and all(r.headers["authorization"] == "Bearer sk-judge-123456" for r in sent)
    prompt = "\n".join(m["content"] for m in sent[0].body["messages"] if isinstance(m.get("content"), str))
    assert "Is the answer polite?" in prompt and "EXPECTED OUTPUT:" in prompt
    assert "OUTPUT:\nAnswer one" in prompt or "OUTPUT:\nAnswer two" in prompt
    assert sent[0].body["response_format"] == {"type": "json_object"}
    # its usage and cost are recorded like any model call's, on a span of the run's execution's trace
    usage = await db_fetch(db_url, "SELECT u.model, u.input_tokens, u.output_tokens, u.total_cost_usd, s.name "
                                   "FROM llm_usage u JOIN spans s ON s.id = u.span_pk WHERE u.model = 'ok'")
    assert len(usage) == 2
    assert {(u["input_tokens"], u["output_tokens"], u["name"]) for u in usage} == {(17, 11, "judge polite")}
    assert all(u["total_cost_usd"] == Decimal("0.000153") for u in usage)
    scores = await db_fetch(db_url, "SELECT cost_usd FROM experiment_scores WHERE name = 'polite'")
    assert [s["cost_usd"] for s in scores] == [Decimal("0.000153")] * 2
    assert got["progress"]["completed"] == 2


JMESPATH_BOMB = "[@,@]" + "|[@,@]" * 23 + "|length(to_string(@))"


async def test_a_runaway_evaluator_loses_only_its_own_score(gql, make_app):
    token, _ = await signup(gql, "rex")
    project = await create_project(gql, token, "rex-proj")
    _, version = await create_prompt(gql, token, project, "p", template='{"a": {{n}}}')
    dataset = await create_dataset(gql, token, project)
    await add_items(gql, token, dataset, [{"variables": {"n": "1"}}])
    json_valid = (await create_evaluator(gql, token, project, "json", "JSON_VALID", {}))["evaluator"]["id"]
    bomb = await create_evaluator(gql, token, project, "bomb", "JMESPATH", {"expression": JMESPATH_BOMB})
    assert bomb["userErrors"] == []  # it compiles: only running it is expensive
    e = (await create_experiment(gql, token, project, name="bombed", type="EVALUATION", datasetId=dataset,
                                 evaluatorIds=[json_valid, bomb["evaluator"]["id"]],
                                 variants=[{"name": "v", "versionId": version}]))["experiment"]
    assert (await start(gql, token, e["id"]))["userErrors"] == []
    async with make_app(workers=1):
        deadline = time.monotonic() + 60
        while (got := await get_experiment(gql, token, e["id"]))["status"] != "COMPLETED":
            assert time.monotonic() < deadline, got["progress"]
            await asyncio.sleep(0.2)
    body = await gql("""query($id: ID!) { node(id: $id) { ... on Experiment { runs { nodes { status output
        scores { name value passed } scoringErrors } } } } }""", {"id": e["id"]}, token=token)
    (run,) = body["data"]["node"]["runs"]["nodes"]
    assert run["status"] == "COMPLETED" and run["output"] == '{"a": 1}'
    assert run["scores"] == [{"name": "json", "value": 1.0, "passed": True}]
    assert run["scoringErrors"] == ["bomb: could not be applied: the evaluators took longer than 2 s"]
