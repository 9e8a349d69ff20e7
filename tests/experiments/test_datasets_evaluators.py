"""Datasets (10,000 items in one call, keyset pages, all-or-nothing checks) and evaluators (configs checked when
created, in the sandbox; scores as documented)."""
from __future__ import annotations

import json

import pytest
from rapidfuzz.distance import Levenshtein

from app.rules import evaluators as ev
from tests.helpers import create_project

from .util import ERR, add_items, create_dataset, create_evaluator, db_fetch, raw_uuid, signup

ITEMS = """query($id: ID!, $first: Int, $after: String) { node(id: $id) { ... on Dataset { name itemCount
  items(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor }
    nodes { id position variables expectedOutput metadata dataset { id } } } } } }"""


async def _owner(gql, name: str) -> tuple[str, str]:
    token, _ = await signup(gql, name)
    return token, await create_project(gql, token, f"{name}-proj")


async def test_ten_thousand_items_in_one_call_then_keyset_pages(gql, db_url):
    token, project = await _owner(gql, "dora")
    dataset = await create_dataset(gql, token, project)
    items = [{"variables": {"n": i}, "expectedOutput": str(i * 2), **({"metadata": {"k": i}} if i % 2 else {})}
             for i in range(10_000)]
    body = json.dumps({"query": "x" * 200, "variables": {"i": {"datasetId": dataset, "items": items}}})
    assert len(body) < 1_000_000  # within the default body limit
    p = await add_items(gql, token, dataset, items)
    assert p["userErrors"] == [] and len(p["items"]) == 10_000

    page = (await gql(ITEMS, {"id": dataset, "first": 100}, token=token))["data"]["node"]
    assert page["itemCount"] == 10_000 and page["items"]["totalCount"] == 10_000
    nodes = page["items"]["nodes"]
    assert [n["position"] for n in nodes] == list(range(1, 101))
    assert nodes[3] == {"id": nodes[3]["id"], "position": 4, "variables": {"n": 3}, "expectedOutput": "6",
                        "metadata": {"k": 3}, "dataset": {"id": dataset}}
    assert nodes[0]["metadata"] is None
    seen, after = [], None
    for _ in range(3):  # walk on with cursors: no gaps, no repeats
        page = (await gql(ITEMS, {"id": dataset, "first": 100, "after": after}, token=token))["data"]["node"]
        seen += [n["position"] for n in page["items"]["nodes"]]
        after = page["items"]["pageInfo"]["endCursor"]
    assert seen == list(range(1, 301)) and page["items"]["pageInfo"]["hasNextPage"] is True

    # appended in order after the first 10,000
    p = await add_items(gql, token, dataset, [{"variables": {"n": "last"}}])
    rows = await db_fetch(db_url, "SELECT position, variables FROM dataset_items WHERE id = $1",
                          raw_uuid(p["items"][0]["id"]))
    assert rows[0]["position"] == 10_001 and json.loads(rows[0]["variables"]) == {"n": "last"}


async def test_bad_items_are_all_reported_and_nothing_is_added(gql):
    token, project = await _owner(gql, "eve")
    dataset = await create_dataset(gql, token, project)
    p = await add_items(gql, token, dataset, [{"variables": {"a": 1}}, {"variables": [1, 2]},
                                              {"variables": {"b": 2}, "metadata": "x"}])
    assert [(e["code"], e["field"]) for e in p["userErrors"]] == [
        ("INVALID", ["input", "items", "1", "variables"]), ("INVALID", ["input", "items", "2", "metadata"])]
    assert "JSON object" in p["userErrors"][0]["message"]
    page = (await gql(ITEMS, {"id": dataset}, token=token))["data"]["node"]
    assert page["itemCount"] == 0 and page["items"]["nodes"] == []

    p = await add_items(gql, token, dataset, [{"variables": {}}] * 10_001)
    assert [e["code"] for e in p["userErrors"]] == ["LIMIT_EXCEEDED"] and "dataset import" in p["userErrors"][0][
        "message"]
    p = await add_items(gql, token, dataset, [])
    assert [e["code"] for e in p["userErrors"]] == ["INVALID"]

    body = await gql(f"""mutation($i: CreateDatasetInput!) {{ createDataset(input: $i) {{ dataset {{ id }} {ERR} }} }}""",
                     {"i": {"projectId": project, "name": "qa"}}, token=token)
    assert [e["code"] for e in body["data"]["createDataset"]["userErrors"]] == ["CONFLICT"]
    listed = await gql("query($s: String!) { project(slug: $s) { datasets { totalCount nodes { name itemCount } } } }",
                       {"s": "eve-proj"}, token=token)
    assert listed["data"]["project"]["datasets"] == {"totalCount": 1, "nodes": [{"name": "qa", "itemCount": 0}]}


@pytest.mark.parametrize(("type_", "config", "field", "words"), [
    ("REGEX", {"pattern": "(a+)+$"}, ["input", "config", "pattern"], "backtracking"),
    ("REGEX", {"pattern": "("}, ["input", "config", "pattern"], ""),
    ("JSON_SCHEMA", {"schema": {"type": "nope"}}, ["input", "config", "schema"], ""),
    ("JMESPATH", {"expression": "a[?"}, ["input", "config", "expression"], ""),
    ("LEVENSHTEIN", {"threshold": 2}, ["input", "config", "threshold"], "0 to 1"),
    ("CONTAINS", {"values": [], "mode": "some"}, ["input", "config", "mode"], '"any" or "all"'),
    ("EXACT_MATCH", {"ignorecase": True}, ["input", "config", "ignorecase"], "unknown key"),
    ("LATENCY", {}, ["input", "config", "maxMs"], "required"),
    ("COST", {"maxUsd": -1}, ["input", "config", "maxUsd"], "at or above 0"),
    ("LLM_JUDGE", {"model": "m"}, ["input", "config", "rubric"], "rubric is required"),
    ("LLM_JUDGE", {"model": "m", "rubric": "r", "provider": "nobody"}, ["input", "config", "provider"],
     "Unknown provider"),
    ("JSON_VALID", [], ["input", "config"], "JSON object"),
])
async def test_evaluator_configs_are_checked_with_errors_that_say_what_is_wrong(gql, type_, config, field, words):
    token, project = await _owner(gql, "fay")
    p = await create_evaluator(gql, token, project, "e", type_, config)
    assert p["evaluator"] is None and p["userErrors"], p
    fields = [e["field"] for e in p["userErrors"]]
    assert field in fields, p["userErrors"]
    assert all(e["code"] == "INVALID" for e in p["userErrors"])
    assert any(words in e["message"] for e in p["userErrors"]), p["userErrors"]


async def test_valid_evaluators_are_stored_and_listed(gql):
    token, project = await _owner(gql, "gus")
    configs = {"EXACT_MATCH": {"ignoreCase": True}, "CONTAINS": {"values": ["a"], "mode": "all"},
               "REGEX": {"pattern": "^\\d+$"}, "JSON_VALID": {}, "JSON_SCHEMA": {"schema": {"type": "object"}},
               "JMESPATH": {"expression": "a != null"}, "LEVENSHTEIN": {"threshold": 0.5},
               "LATENCY": {"maxMs": 100}, "COST": {"maxUsd": 0.01},
               "LLM_JUDGE": {"model": "echo-1", "provider": "echo", "rubric": "Is it right?"}}
    for type_, config in configs.items():
        e = await create_evaluator(gql, token, project, type_.lower(), type_, config)
        assert e["userErrors"] == [], e
        assert e["evaluator"]["type"] == type_ and e["evaluator"]["config"] == config
    p = await create_evaluator(gql, token, project, "feedback", "JSON_VALID", {})
    assert [e["code"] for e in p["userErrors"]] == ["INVALID"]
    p = await create_evaluator(gql, token, project, "regex", "JSON_VALID", {})
    assert [e["code"] for e in p["userErrors"]] == ["CONFLICT"]
    listed = await gql("query($s: String!) { project(slug: $s) { evaluators(first: 3) { totalCount nodes { name } } } }",
                       {"s": "gus-proj"}, token=token)
    assert listed["data"]["project"]["evaluators"]["totalCount"] == 10
    assert [n["name"] for n in listed["data"]["project"]["evaluators"]["nodes"]] == ["llm_judge", "cost", "latency"]


def _score(type_: str, config: dict, output: str | None, **kw) -> ev.ScoreData:
    return ev.evaluate([ev.EvaluatorSpec("s", type_, config)], ev.EvalInput(output=output, **kw))[0]


def test_scores_of_each_rule():
    assert _score("EXACT_MATCH", {}, "Paris", expected="Paris").value == 1.0
    s = _score("EXACT_MATCH", {}, "paris ", expected="Paris")
    assert (s.value, s.passed) == (0.0, False) and "character 1" in s.explanation
    assert _score("EXACT_MATCH", {"ignoreCase": True, "normalizeWhitespace": True}, " paris\n", expected="Paris"
                  ).passed is True
    assert _score("CONTAINS", {"values": ["a", "z"], "mode": "any"}, "abc").value == 1.0
    s = _score("CONTAINS", {"values": ["a", "z"], "mode": "all"}, "abc")
    assert (s.value, s.passed) == (0.0, False) and '"z"' in s.explanation
    assert _score("CONTAINS", {"ignoreCase": True}, "The answer is PARIS.", expected="paris").passed is True
    assert _score("REGEX", {"pattern": "^\\d+$"}, "123").value == 1.0
    assert _score("REGEX", {"pattern": "^\\d+$"}, "12a").value == 0.0
    assert _score("JSON_VALID", {}, '{"a": 1}').value == 1.0
    assert _score("JSON_VALID", {}, "{a: 1}").value == 0.0
    assert _score("JSON_SCHEMA", {"schema": {"type": "object", "required": ["a"]}}, '{"b": 1}').value == 0.0
    assert _score("JMESPATH", {"expression": "a > `1`"}, '{"a": 2}').value == 1.0
    for a, b in [("kitten", "sitting"), ("flaw", "lawn"), ("", "abc"), ("same", "same")]:
        s = _score("LEVENSHTEIN", {"threshold": 0.6}, a, expected=b)
        assert s.value == pytest.approx(Levenshtein.normalized_similarity(a, b))
        assert s.value == pytest.approx(1 - Levenshtein.distance(a, b) / max(len(a), len(b), 1))
        assert s.passed is (s.value >= 0.6)
    s = _score("LATENCY", {"maxMs": 100}, "x", latency_ms=150)
    assert (s.value, s.passed) == (150.0, False)
    assert _score("COST", {"maxUsd": 0.01}, "x", cost_usd=0.001).passed is True
    assert _score("COST", {"maxUsd": 0.01}, "x").error is not None  # no price: no score, and why
    assert _score("EXACT_MATCH", {}, "x").error.startswith("no expected output")


def test_judge_reply_parsing():
    config = {"model": "m", "rubric": "r", "scale": {"min": 1, "max": 5}, "passThreshold": 4}
    assert ev.parse_judge_reply('```json\n{"score": 4.5, "explanation": "good"}\n```', config) == (4.5, "good")
    assert ev.judge_passed(4.5, config) is True
    for reply, words in [("great!", "did not answer with JSON"), ('{"score": 9}', "outside the scale"),
                         ('{"explanation": "x"}', 'expected an object with "score"')]:
        with pytest.raises(ev.JudgeReplyError, match=words):
            ev.parse_judge_reply(reply, config)
