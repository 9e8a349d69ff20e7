"""Offline experiments end to end: runs through the queue, scoring jobs, statistics against scipy, winners only
when significant, cancel, scoreRun, and the experimentProgress subscription.

The echo provider's output is the rendered prompt, so what each variant scores is known in advance: a
template that shows the expected answer for 90 % of the items against one that shows it for 50 %."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein
from scipy import stats as sps

from tests.helpers import create_project
from tests.ws_client import GraphQLWebSocket

from .util import (
    ERR,
    FAST,
    add_items,
    create_dataset,
    create_evaluator,
    create_experiment,
    create_prompt,
    db_fetch,
    get_experiment,
    raw_uuid,
    signup,
    start,
    wait_status,
)

N = 40


def _answers(i: int) -> dict:
    """Item i: its expected answer; x shows it for 90 % of the items, y for 50 %."""
    answer = f"answer-{i}"
    return {"x": answer if i % 10 < 9 else "wrong", "y": answer if i % 2 == 0 else "wrong"}


async def _setup(gql, name: str, templates: tuple[str, str], n: int = N) -> dict:
    token, _ = await signup(gql, name)
    project = await create_project(gql, token, f"{name}-proj")
    _, control_version = await create_prompt(gql, token, project, "control", template=templates[0])
    _, challenger_version = await create_prompt(gql, token, project, "challenger", template=templates[1])
    dataset = await create_dataset(gql, token, project)
    p = await add_items(gql, token, dataset, [{"variables": _answers(i), "expectedOutput": f"answer-{i}"}
                                              for i in range(n)])
    assert p["userErrors"] == []
    contains = (await create_evaluator(gql, token, project, "correct", "CONTAINS", {}))["evaluator"]["id"]
    similar = (await create_evaluator(gql, token, project, "similar", "LEVENSHTEIN", {"threshold": 0.5}
                                      ))["evaluator"]["id"]
    p = await create_experiment(
        gql, token, project, name="x vs y", type="AB_TEST", datasetId=dataset, evaluatorIds=[contains, similar],
        variants=[{"name": "control", "versionId": control_version, "isControl": True, "modelSettings": FAST},
                  {"name": "challenger", "versionId": challenger_version, "modelSettings": FAST}])
    assert p["userErrors"] == [], p["userErrors"]
    return {"token": token, "project": project, "experiment": p["experiment"]}


def _stats(e: dict, variant: str, score: str) -> dict:
    v = next(v for v in e["variants"] if v["name"] == variant)
    return next(s for s in v["stats"]["scores"] if s["name"] == score)


async def test_a_better_template_wins_and_p_values_equal_scipys(gql, make_app, db_url):
    s = await _setup(gql, "ada", ("Answer: {{y}}", "Answer: {{x}}"))
    token, e = s["token"], s["experiment"]
    assert e["status"] == "DRAFT" and e["primaryScore"] == "correct" and e["control"]["name"] == "control"
    started = await start(gql, token, e["id"])
    assert started["userErrors"] == [] and started["experiment"]["status"] == "RUNNING"
    assert started["experiment"]["progress"]["total"] == 2 * N
    # queued at the experiments' priority (LOW), as executions of their runs
    rows = await db_fetch(db_url, "SELECT DISTINCT priority FROM jobs WHERE kind = 'execution'")
    assert [r["priority"] for r in rows] == [0]
    async with make_app(workers=4):
        done = await wait_status(gql, token, e["id"])
    assert done["progress"] == {"total": 2 * N, "pending": 0, "running": 0, "completed": 2 * N, "failed": 0,
                                "cancelled": 0, "percent": 100.0}
    assert done["endedAt"] is not None

    x = np.array([1.0 if i % 10 < 9 else 0.0 for i in range(N)])  # the challenger's passes, by item
    y = np.array([1.0 if i % 2 == 0 else 0.0 for i in range(N)])  # the control's
    control, challenger = _stats(done, "control", "correct"), _stats(done, "challenger", "correct")
    assert control["n"] == challenger["n"] == N
    assert control["mean"] == pytest.approx(0.5) and challenger["mean"] == pytest.approx(0.9)
    assert challenger["passRate"] == pytest.approx(0.9) and challenger["ciMethod"] == "Wilson score interval"
    only_x, only_y = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
    mcnemar = sps.binomtest(only_x, only_x + only_y, 0.5).pvalue
    assert challenger["pValueVsControl"] == pytest.approx(mcnemar, rel=1e-12)
    assert challenger["method"].startswith("McNemar's exact test") and challenger["pairs"] == N
    assert challenger["deltaVsControl"] == pytest.approx(0.4)
    assert challenger["significant"] is True and control["pValueVsControl"] is None
    # Wilson interval of 36/40, by the textbook formula
    z, p_hat = 1.959963984540054, 0.9
    centre = (p_hat + z * z / (2 * N)) / (1 + z * z / N)
    half = z * np.sqrt(p_hat * (1 - p_hat) / N + z * z / (4 * N * N)) / (1 + z * z / N)
    assert (challenger["ci95Low"], challenger["ci95High"]) == (pytest.approx(centre - half),
                                                               pytest.approx(centre + half))

    # the continuous score: a paired t-test (40 pairs) on the similarities, as scipy computes it
    sim = {name: np.array([Levenshtein.normalized_similarity(f"Answer: {_answers(i)[var]}", f"answer-{i}")
                           for i in range(N)]) for name, var in (("control", "y"), ("challenger", "x"))}
    st = _stats(done, "challenger", "similar")
    assert st["mean"] == pytest.approx(sim["challenger"].mean())
    assert st["stddev"] == pytest.approx(sim["challenger"].std(ddof=1))
    assert st["pValueVsControl"] == pytest.approx(sps.ttest_rel(sim["challenger"], sim["control"]).pvalue, rel=1e-9)
    assert st["method"].startswith("paired t-test")
    assert st["ciMethod"].startswith("percentile bootstrap")  # bounded score, n <= 1000
    assert st["ci95Low"] <= st["mean"] <= st["ci95High"]

    assert done["winner"] == {"id": next(v["id"] for v in done["variants"] if v["name"] == "challenger"),
                              "name": "challenger"}
    stats = next(v for v in done["variants"] if v["name"] == "challenger")["stats"]
    assert (stats["runs"], stats["completed"], stats["failed"], stats["successRate"]) == (N, N, 0, 1.0)
    assert stats["avgLatencyMs"] is not None and stats["p95LatencyMs"] >= 0

    # runs: outputs, scores, their executions; a person's score
    body = await gql("""query($id: ID!) { node(id: $id) { ... on Experiment { runs(first: 2) { totalCount nodes {
        id status output repetition variables datasetItem { expectedOutput } variant { name }
        scores { name value passed explanation source } execution { id status output } } } } } }""",
                     {"id": e["id"]}, token=token)
    runs = body["data"]["node"]["runs"]
    assert runs["totalCount"] == 2 * N
    run = runs["nodes"][0]
    assert run["status"] == "COMPLETED" and run["execution"]["output"] == run["output"] == "Answer: answer-0"
    assert {sc["name"]: sc["value"] for sc in run["scores"]} == {"correct": 1.0, "similar": pytest.approx(
        Levenshtein.normalized_similarity("Answer: answer-0", "answer-0"))}
    scored = await gql(f"""mutation($i: ScoreRunInput!) {{ scoreRun(input: $i) {{
        run {{ scores {{ name value explanation source }} }} {ERR} }} }}""",
                       {"i": {"runId": run["id"], "name": "tone", "value": 4, "explanation": "polite"}}, token=token)
    assert {"name": "tone", "value": 4.0, "explanation": "polite", "source": "HUMAN"} in \
        scored["data"]["scoreRun"]["run"]["scores"]
    refused = await gql(f"""mutation($i: ScoreRunInput!) {{ scoreRun(input: $i) {{ run {{ id }} {ERR} }} }}""",
                        {"i": {"runId": run["id"], "name": "correct", "value": 0}}, token=token)
    assert [x["code"] for x in refused["data"]["scoreRun"]["userErrors"]] == ["INVALID"]
    audit = await db_fetch(db_url, "SELECT action FROM audit_events WHERE action LIKE 'experiment.%' OR action LIKE "
                                   "'dataset.%' OR action LIKE 'evaluator.%' ORDER BY created_at")
    assert {r["action"] for r in audit} >= {"dataset.create", "dataset.add_items", "evaluator.create",
                                            "experiment.create", "experiment.start", "experiment.score_run"}


async def test_identical_variants_have_no_winner(gql, make_app):
    s = await _setup(gql, "bea", ("Answer: {{y}}", "Answer: {{y}}"), n=30)
    token, e = s["token"], s["experiment"]
    assert (await start(gql, token, e["id"]))["userErrors"] == []
    async with make_app(workers=4):
        done = await wait_status(gql, token, e["id"])
    st = _stats(done, "challenger", "correct")
    assert st["pValueVsControl"] == 1.0 and st["significant"] is False and st["deltaVsControl"] == 0
    assert done["winner"] is None


async def test_start_refuses_items_missing_a_variable_and_cancel_stops_pending_runs(gql, db_url):
    token, _ = await signup(gql, "cyd")
    project = await create_project(gql, token, "cyd-proj")
    _, v1 = await create_prompt(gql, token, project, "p1", template="Q: {{q}}")
    dataset = await create_dataset(gql, token, project)
    await add_items(gql, token, dataset, [{"variables": {"q": "a"}}, {"variables": {"other": "b"}}])
    e = (await create_experiment(gql, token, project, name="e", type="EVALUATION", datasetId=dataset,
                                 evaluatorIds=[], variants=[{"name": "only", "versionId": v1}]))["experiment"]
    p = await start(gql, token, e["id"])
    assert [x["code"] for x in p["userErrors"]] == ["INVALID"]
    assert "dataset item 2" in p["userErrors"][0]["message"] and '"q"' in p["userErrors"][0]["message"]
    assert (await get_experiment(gql, token, e["id"]))["status"] == "DRAFT"  # nothing half-done

    good = await create_dataset(gql, token, project, "good")
    await add_items(gql, token, good, [{"variables": {"q": str(i)}} for i in range(5)])
    e2 = (await create_experiment(gql, token, project, name="e3", type="EVALUATION", datasetId=good,
                                  evaluatorIds=[], repetitions=3,
                                  variants=[{"name": "only", "versionId": v1}]))["experiment"]
    started = await start(gql, token, e2["id"])
    assert started["experiment"]["progress"]["total"] == 15 and started["experiment"]["progress"]["pending"] == 15
    cancelled = await start(gql, token, e2["id"], "cancelExperiment")  # no workers: everything is still pending
    assert cancelled["userErrors"] == []
    c = cancelled["experiment"]
    assert c["status"] == "CANCELLED" and c["progress"]["cancelled"] == 15 and c["progress"]["percent"] == 100.0
    rows = await db_fetch(db_url, "SELECT e.status, count(*) AS n FROM executions e JOIN experiment_runs r ON "
                                  "r.id = e.experiment_run_id WHERE r.experiment_id = $1 GROUP BY e.status",
                          raw_uuid(e2["id"]))
    assert [(r["status"], r["n"]) for r in rows] == [("CANCELLED", 15)]
    assert await db_fetch(db_url, "SELECT 1 FROM jobs WHERE kind <> 'embedding'") == []  # executions, scoring
    again = await start(gql, token, e2["id"], "cancelExperiment")
    assert [x["code"] for x in again["userErrors"]] == ["CONFLICT"]


async def test_progress_subscription_sends_events_then_a_last_one_and_completes(gql, live, make_app):
    s = await _setup(gql, "dee", ("Answer: {{y}}", "Answer: {{x}}"), n=20)
    token, e = s["token"], s["experiment"]
    query = """subscription($id: ID!) { experimentProgress(id: $id) {
        experiment { status } progress { total completed percent } run { status } finishedRuns } }"""
    async with live() as server, GraphQLWebSocket(server.url, token=token) as ws:
        op = await ws.start(query, {"id": e["id"]})
        stream = ws.stream(op, timeout=60)
        first = (await stream.__anext__())["data"]["experimentProgress"]
        assert first["run"] is None and first["experiment"]["status"] == "DRAFT" and first["finishedRuns"] == 0
        assert (await start(gql, token, e["id"]))["userErrors"] == []
        events = []
        async with make_app(workers=4):
            async for payload in stream:  # ends when the server completes the stream
                assert "errors" not in payload, payload
                events.append(payload["data"]["experimentProgress"])
    assert events[-1]["experiment"]["status"] == "COMPLETED"
    assert events[-1]["progress"] == {"total": 40, "completed": 40, "percent": 100.0}
    assert sum(ev["finishedRuns"] for ev in events) == 40  # every finished run is accounted for
    assert all(ev["run"]["status"] == "COMPLETED" for ev in events if ev["finishedRuns"])
    completed = [ev["progress"]["completed"] for ev in events]
    assert completed == sorted(completed)


async def test_progress_subscription_needs_read_access(gql, live):
    s = await _setup(gql, "eli", ("{{y}}", "{{x}}"), n=2)
    other, _ = await signup(gql, "mallory")
    async with live() as server, GraphQLWebSocket(server.url, token=other) as ws:
        payloads = await ws.collect("subscription($id: ID!) { experimentProgress(id: $id) { finishedRuns } }",
                                    {"id": s["experiment"]["id"]})
    assert len(payloads) == 1 and [x["extensions"]["code"] for x in payloads[0]["errors"]] == ["NOT_FOUND"]


async def test_cancel_stops_running_executions_too(gql, make_app, db_url):
    token, _ = await signup(gql, "fin")
    project = await create_project(gql, token, "fin-proj")
    _, version = await create_prompt(gql, token, project, "slow", template="slow answer {{q}}")
    dataset = await create_dataset(gql, token, project)
    await add_items(gql, token, dataset, [{"variables": {"q": str(i)}} for i in range(6)])
    evaluator = (await create_evaluator(gql, token, project, "json", "JSON_VALID", {}))["evaluator"]["id"]
    e = (await create_experiment(gql, token, project, name="slow", type="EVALUATION", datasetId=dataset,
                                 evaluatorIds=[evaluator], variants=[{"name": "v", "versionId": version,
                                 "modelSettings": {"extra": {"chunkSize": 1, "chunkDelayMs": 300}}}]))["experiment"]
    assert (await start(gql, token, e["id"]))["userErrors"] == []
    async with make_app(workers=2):
        for _ in range(200):
            if (await get_experiment(gql, token, e["id"]))["progress"]["running"] == 2:
                break
            await asyncio.sleep(0.05)
        cancelled = await start(gql, token, e["id"], "cancelExperiment")
        assert cancelled["userErrors"] == [] and cancelled["experiment"]["status"] == "CANCELLED"
        assert cancelled["experiment"]["progress"]["running"] == 2  # told to stop; their workers end them
        for _ in range(200):
            got = await get_experiment(gql, token, e["id"])
            if got["progress"]["running"] == 0:
                break
            await asyncio.sleep(0.05)
    assert got["status"] == "CANCELLED"
    assert got["progress"] == {"total": 6, "pending": 0, "running": 0, "completed": 0, "failed": 0, "cancelled": 6,
                               "percent": 100.0}
    rows = await db_fetch(db_url, "SELECT e.status, count(*) AS n FROM executions e JOIN experiment_runs r ON "
                                  "r.id = e.experiment_run_id GROUP BY e.status")
    assert [(r["status"], r["n"]) for r in rows] == [("CANCELLED", 6)]
    assert await db_fetch(db_url, "SELECT 1 FROM jobs WHERE kind <> 'embedding'") == []  # executions, scoring


async def test_several_variants_are_adjusted_for_multiple_comparisons(gql, make_app):
    token, _ = await signup(gql, "gil")
    project = await create_project(gql, token, "gil-proj")
    versions = [(await create_prompt(gql, token, project, name, template=template))[1]
                for name, template in (("control", "A: {{y}}"), ("better", "A: {{x}}"), ("same", "B: {{y}}"))]
    dataset = await create_dataset(gql, token, project)
    await add_items(gql, token, dataset, [{"variables": _answers(i), "expectedOutput": f"answer-{i}"}
                                          for i in range(N)])
    correct = (await create_evaluator(gql, token, project, "correct", "CONTAINS", {}))["evaluator"]["id"]
    p = await create_experiment(gql, token, project, name="three", type="MULTI_VARIANT", datasetId=dataset,
                                evaluatorIds=[correct], variants=[
                                    {"name": n, "versionId": v, "isControl": n == "control", "modelSettings": FAST}
                                    for n, v in zip(("control", "better", "same"), versions, strict=True)])
    assert p["userErrors"] == []
    assert (await start(gql, token, p["experiment"]["id"]))["userErrors"] == []
    async with make_app(workers=4):
        done = await wait_status(gql, token, p["experiment"]["id"])
    better, same = _stats(done, "better", "correct"), _stats(done, "same", "correct")
    x = np.array([1.0 if i % 10 < 9 else 0.0 for i in range(N)])
    y = np.array([1.0 if i % 2 == 0 else 0.0 for i in range(N)])
    raw = [sps.binomtest(int(((x == 1) & (y == 0)).sum()), int((x != y).sum()), 0.5).pvalue, 1.0]
    assert [better["pValueVsControl"], same["pValueVsControl"]] == [pytest.approx(raw[0]), 1.0]
    holm = sorted(raw)
    expected = [min(1.0, 2 * holm[0]), min(1.0, max(2 * holm[0], holm[1]))]  # Holm: 2 comparisons
    assert [better["adjustedPValue"], same["adjustedPValue"]] == [pytest.approx(expected[0]), expected[1]]
    assert "Holm-adjusted for 2 comparisons" in better["method"]
    assert better["significant"] is True and same["significant"] is False
    assert done["winner"]["name"] == "better"
