"""The attacks on untrusted work, from the outside: each gets a clear error, the server stays responsive
(a second client's pings keep a p99 under 100 ms while the attack runs) and does not grow.

1. a REGEX validation whose counted repeats nest to ~10^9 (it grew the server to 24 GB);
2. a small Jinja2 template that builds a huge value (it froze every request for 34 s);
3. a JMESPath validation that doubles its work with every `[@,@]` (it froze the server per execution);
4. a JSON Schema `uniqueItems` check on a long mixed array (17 s of worker CPU, and cancelExecution
   during the check had no effect).
"""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import psutil

from app import sandbox
from tests.executions.util import ERR, create_prompt, execute_ok, get_execution, signup, wait_for
from tests.helpers import create_project

from .util import assert_responsive, pinging

FIELDS = "id status validationStatus validationResults { passed message } output"

REGEX_BOMB = "(?:(?:a{999}){999}){999}"
REGEX_HOLDER = "(?:(?:a{99}){99}){99}"
JINJA_BOMB = ("{% set a = range(100000)|list %}{% set b = [a,a,a,a,a,a,a,a,a,a] %}"
              "{% set c = [b,b,b,b,b,b,b,b,b,b] %}{% set d = [c,c,c,c,c,c,c,c,c,c] %}{{ d|tojson|length }}")
JMESPATH_BOMB = "[@,@]" + "|[@,@]" * 23 + "|length(to_string(@))"


def unique_items_output() -> str:
    items: list = []
    i = 0
    while len(json.dumps(items)) < 45_000:
        items += [i, str(i), {"k": i}, [i]]
        i += 1
    return json.dumps(items)


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def _owner(gql, slug: str) -> tuple[str, str]:
    token, _ = await signup(gql, slug)
    return token, await create_project(gql, token, slug)


async def _validation(client: httpx.AsyncClient, token: str, prompt: str, type_: str, config: dict) -> dict:
    r = await client.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
        "query": f"""mutation($input: CreateValidationInput!) {{ createValidation(input: $input) {{
            validation {{ id }} {ERR} }} }}""",
        "variables": {"input": {"promptId": prompt, "name": f"{type_} rule", "type": type_, "config": config}}})
    assert r.status_code == 200, r.text
    return r.json()["data"]["createValidation"]


async def test_a_regex_bomb_is_refused_before_it_is_compiled(gql, live):
    token, project = await _owner(gql, "rex")
    prompt, _ = await create_prompt(gql, token, project, "p")
    before = rss_mb()
    async with live() as server, httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        async with pinging(server.url) as pings:
            results = []
            for _ in range(5):
                for pattern in (REGEX_BOMB, REGEX_HOLDER):
                    results.append(await _validation(client, token, prompt, "REGEX", {"pattern": pattern}))
            await asyncio.sleep(0.5)
    for p in results:
        (error,) = p["userErrors"]
        assert error["code"] == "INVALID" and error["field"] == ["input", "config", "pattern"], error
        assert "counted repeats" in error["message"] and "at most 100,000" in error["message"], error
    assert_responsive(pings)
    assert rss_mb() - before < 100, (before, rss_mb())


async def test_a_template_that_builds_a_huge_value_is_stopped_and_nobody_waits(gql, live):
    token, project = await _owner(gql, "jin")
    prompt, version = await create_prompt(gql, token, project, "bomb",
                                          content={"format": "JINJA2", "template": JINJA_BOMB})
    before = rss_mb()
    replaced = sandbox.pool().replaced
    async with live() as server, httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        async with pinging(server.url) as pings:
            started = time.monotonic()
            r = await client.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
                "query": "query($v: ID!) { node(id: $v) { ... on PromptVersion { render(variables: {}) { text errors } } } }",
                "variables": {"v": version}})
            took = time.monotonic() - started
    result = r.json()["data"]["node"]["render"]
    assert result["text"] is None
    (error,) = result["errors"]
    assert "took longer than 2 s" in error or "memory" in error or "more than" in error, error
    assert took < 5, took
    assert_responsive(pings)
    assert rss_mb() - before < 100, (before, rss_mb())  # the value was built elsewhere
    assert sandbox.pool().replaced >= replaced  # a worker that had to be killed was replaced


async def test_a_jmespath_bomb_fails_its_validation_and_the_server_keeps_answering(gql, live):
    token, project = await _owner(gql, "jmes")
    prompt, _ = await create_prompt(gql, token, project, "p", template='{"a": 1}')
    async with live(workers=1) as server, httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        p = await _validation(client, token, prompt, "JMESPATH", {"expression": JMESPATH_BOMB})
        assert p["userErrors"] == [], p  # it compiles: only running it is expensive
        async with pinging(server.url) as pings:
            eid = await execute_ok(gql, token, promptId=prompt, variables={},
                                   modelSettings={"extra": {"chunkDelayMs": 0}})
            e = await wait_for(gql, token, eid, timeout=20, fields=FIELDS)
    assert e["status"] == "COMPLETED" and e["validationStatus"] == "FAILED", e
    (result,) = e["validationResults"]
    assert result["passed"] is False
    assert result["message"] == "could not be applied: the validation took longer than 2 s", result
    assert_responsive(pings)


async def test_a_slow_json_schema_check_fails_or_is_cancelled_at_once(gql, live):
    token, project = await _owner(gql, "uniq")
    output = unique_items_output()
    prompt, _ = await create_prompt(gql, token, project, "p", template=output)
    schema = {"schema": {"type": "array", "uniqueItems": True}}
    fast = {"modelSettings": {"extra": {"chunkSize": 4096, "chunkDelayMs": 0}}}
    # With the default limit, the check is stopped after 2 s and the validation fails, saying why.
    async with live(workers=1) as server, httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        assert (await _validation(client, token, prompt, "JSON_SCHEMA", schema))["userErrors"] == []
        async with pinging(server.url) as pings:
            eid = await execute_ok(gql, token, promptId=prompt, variables={}, **fast)
            e = await wait_for(gql, token, eid, timeout=20, fields=FIELDS)
    assert e["status"] == "COMPLETED" and e["output"] == output and e["validationStatus"] == "FAILED", \
        {k: v for k, v in e.items() if k != "output"}
    assert e["validationResults"][0]["message"] == "could not be applied: the validation took longer than 2 s"
    assert_responsive(pings)

    # With a long limit, cancelExecution during the check stops it at once (its worker is killed).
    async with live(workers=1, sandbox_timeout_seconds=60) as server:
        replaced = sandbox.pool().replaced
        eid = await execute_ok(gql, token, promptId=prompt, variables={}, **fast)
        # The stream is over and a sandbox worker is checking the output (this process runs the server).
        await wait_for(gql, token, eid, ("RUNNING",), timeout=20, fields="id status",
                       predicate=lambda x: sandbox.pool().busy > 0)
        await asyncio.sleep(0.5)
        started = time.monotonic()
        body = await gql(f"""mutation($id: ID!) {{ cancelExecution(input: {{id: $id}}) {{
            execution {{ status validationStatus }} {ERR} }} }}""", {"id": eid}, token=token)
        took = time.monotonic() - started
        p = body["data"]["cancelExecution"]
        assert p["userErrors"] == [] and p["execution"]["status"] == "CANCELLED", (p, took)
        assert p["execution"]["validationStatus"] == "SKIPPED" and took < 3, (p, took)
        assert sandbox.pool().replaced > replaced  # the check was interrupted, not waited for
    assert (await get_execution(gql, token, eid, fields="status"))["status"] == "CANCELLED"
