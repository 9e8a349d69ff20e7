"""A/B tests on live traffic: the experiment owns the environment's split while it runs, every execution served
there is a run of its variant (scored by the evaluators and by feedback), statistics are unpaired (Fisher),
and ending it restores the split — or promotes the winner."""
from __future__ import annotations

import asyncio
import time

import pytest
from scipy import stats as sps

from tests.deployments.util import DEPLOYMENTS, add_version, deploy, split
from tests.executions.util import execute, execute_ok, wait_for
from tests.helpers import create_project

from .util import ERR, EXPERIMENT, create_evaluator, create_experiment, create_prompt, get_experiment, signup, start

FEEDBACK = f"""mutation($i: SubmitFeedbackInput!) {{ submitFeedback(input: $i) {{ feedback {{ id }} {ERR} }} }}"""
ACTIVE = f"""query($id: ID!) {{ node(id: $id) {{ ... on Prompt {{ {DEPLOYMENTS} }} }} }}"""


async def _active(gql, token: str, prompt_id: str) -> list[tuple[int, int]]:
    body = await gql(ACTIVE, {"id": prompt_id}, token=token)
    return sorted((d["version"]["number"], d["trafficPercentage"]) for d in body["data"]["node"]["deployments"]
                  if d["isActive"] and d["environment"] == "production")


async def _complete(gql, token: str, experiment_id: str, promote: bool) -> dict:
    body = await gql(f"""mutation($i: CompleteExperimentInput!) {{ completeExperiment(input: $i) {{
        experiment {{ {EXPERIMENT} }} {ERR} }} }}""", {"i": {"id": experiment_id, "promoteWinner": promote}},
                     token=token)
    return body["data"]["completeExperiment"]


async def test_live_ab_test_owns_the_split_scores_runs_and_promotes_its_winner(gql, make_app, db_url):
    token, _ = await signup(gql, "lia")
    project = await create_project(gql, token, "lia-proj")
    prompt, v1 = await create_prompt(gql, token, project, "greet", template="Hello {{name}}.")
    v2 = await add_version(gql, token, prompt, "Hi {{name}}, welcome!")
    assert (await deploy(gql, token, v1))["userErrors"] == []
    welcome = (await create_evaluator(gql, token, project, "welcome", "CONTAINS", {"values": ["welcome"]}
                                      ))["evaluator"]["id"]
    p = await create_experiment(gql, token, project, name="greeting", type="AB_TEST", environment="production",
                                evaluatorIds=[welcome],
                                variants=[{"name": "old", "versionId": v1, "isControl": True, "trafficWeight": 50},
                                          {"name": "new", "versionId": v2, "trafficWeight": 50}])
    assert p["userErrors"] == [], p["userErrors"]
    e = p["experiment"]
    assert e["environment"] == "production" and e["status"] == "DRAFT"
    assert (await start(gql, token, e["id"]))["userErrors"] == []
    assert await _active(gql, token, prompt) == [(1, 50), (2, 50)]
    refused = await split(gql, token, prompt, [(v1, 100)])
    assert [x["code"] for x in refused["userErrors"]] == ["CONFLICT"] and "greeting" in refused["userErrors"][0][
        "message"]
    assert [x["code"] for x in (await deploy(gql, token, v2))["userErrors"]] == ["CONFLICT"]

    n = 60
    async with make_app(workers=4):
        ids = [await execute_ok(gql, token, promptId=prompt, environment="production", subjectKey=f"user-{i}",
                                variables={"name": f"U{i}"}) for i in range(n)]
        # sticky: the same subject gets the same version again
        again = await execute(gql, token, "id version { number }", promptId=prompt, environment="production",
                              subjectKey="user-0", variables={"name": "U0"})
        first = await wait_for(gql, token, ids[0], timeout=30)
        assert again["execution"]["version"]["number"] == first["version"]["number"]
        deadline = time.monotonic() + 60
        while (live := await get_experiment(gql, token, e["id"]))["progress"]["completed"] < n + 1:
            assert time.monotonic() < deadline, live["progress"]
            await asyncio.sleep(0.3)
    assert live["status"] == "RUNNING" and live["progress"]["total"] == n + 1
    by_name = {v["name"]: v for v in live["variants"]}
    runs_new, runs_old = by_name["new"]["stats"]["runs"], by_name["old"]["stats"]["runs"]
    assert runs_new + runs_old == n + 1 and runs_new > 5 and runs_old > 5  # a 50/50 split of 61 subjects
    new = next(s for s in by_name["new"]["stats"]["scores"] if s["name"] == "welcome")
    old = next(s for s in by_name["old"]["stats"]["scores"] if s["name"] == "welcome")
    assert (new["mean"], old["mean"]) == (1.0, 0.0)
    fisher = sps.fisher_exact([[runs_new, 0], [0, runs_old]]).pvalue
    assert new["pValueVsControl"] == pytest.approx(fisher, rel=1e-12) and new["method"].startswith("Fisher's exact")
    assert new["significant"] is True and live["winner"]["name"] == "new"

    # feedback ratings are a score of the run
    rated = await gql(FEEDBACK, {"i": {"executionId": ids[0], "rating": 5}}, token=token)
    assert rated["data"]["submitFeedback"]["userErrors"] == []
    body = await gql("""query($id: ID!) { node(id: $id) { ... on Experiment { runs(first: 1) { nodes {
        execution { id } scores { name value source } } } } } }""", {"id": e["id"]}, token=token)
    run = body["data"]["node"]["runs"]["nodes"][0]
    assert run["execution"]["id"] == ids[0]
    assert {"name": "feedback", "value": 5.0, "source": "FEEDBACK"} in run["scores"]

    done = await _complete(gql, token, e["id"], promote=True)
    assert done["userErrors"] == [] and done["experiment"]["status"] == "COMPLETED"
    assert await _active(gql, token, prompt) == [(2, 100)]  # the winner serves everything
    after = await execute(gql, token, "id", promptId=prompt, environment="production", subjectKey="later",
                          variables={"name": "L"})
    assert after["userErrors"] == []
    assert (await get_experiment(gql, token, e["id"]))["progress"]["total"] == n + 1  # no longer a run

    # a second test, cancelled: the split it replaced (v2 100 %) comes back; now the split may change by hand
    p = await create_experiment(gql, token, project, name="again", type="AB_TEST", environment="production",
                                evaluatorIds=[],
                                variants=[{"name": "a", "versionId": v2, "isControl": True, "trafficWeight": 90},
                                          {"name": "b", "versionId": v1, "trafficWeight": 10}])
    assert p["userErrors"] == [] and p["experiment"]["primaryScore"] == "feedback"
    assert (await start(gql, token, p["experiment"]["id"]))["userErrors"] == []
    assert await _active(gql, token, prompt) == [(1, 10), (2, 90)]
    promote = await _complete(gql, token, p["experiment"]["id"], promote=True)
    assert [x["code"] for x in promote["userErrors"]] == ["CONFLICT"]  # no significant winner: nothing to promote
    assert (await start(gql, token, p["experiment"]["id"], "cancelExperiment"))["userErrors"] == []
    assert await _active(gql, token, prompt) == [(2, 100)]
    assert (await split(gql, token, prompt, [(v1, 30), (v2, 70)]))["userErrors"] == []


async def test_live_ab_test_input_is_checked(gql):
    token, _ = await signup(gql, "max")
    project = await create_project(gql, token, "max-proj")
    prompt, v1 = await create_prompt(gql, token, project, "greet", template="Hello {{name}}.")
    _, other = await create_prompt(gql, token, project, "other", template="Yo {{name}}.")
    p = await create_experiment(gql, token, project, name="bad", type="AB_TEST", environment="nowhere",
                                evaluatorIds=[], repetitions=2,
                                variants=[{"name": "a", "versionId": v1, "isControl": True, "trafficWeight": 60},
                                          {"name": "b", "versionId": other, "trafficWeight": 30,
                                           "modelSettings": {"temperature": 1}}])
    messages = " | ".join(x["message"] for x in p["userErrors"])
    fields = [x["field"] for x in p["userErrors"]]
    assert ["input", "environment"] in fields and ["input", "repetitions"] in fields
    assert ["input", "variants", "1", "modelSettings"] in fields
    assert "add up to 60" not in messages and "add up to 90" in messages and "one prompt" in messages
