"""The default flow with no provider account: echo streams back the rendered prompt."""
from __future__ import annotations

from .util import EXEC_FIELDS, create_prompt, db_fetch, execute, execute_ok, raw_uuid, signup, tenant, wait_for

LOGS = """query($id: ID!, $min: LogLevel, $first: Int, $after: String) { node(id: $id) { ... on Execution {
  logs(first: $first, after: $after, minLevel: $min) { totalCount pageInfo { hasNextPage endCursor }
    nodes { id level message metadata timestamp } } } } }"""


async def test_text_prompt_streams_its_rendered_text(gql, make_app, db_url):
    t = await tenant(gql, "ann", template="Hello {{name}}, welcome to {{place}}. " * 3)
    async with make_app(workers=2):
        eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "Ada", "place": "Paris"},
                               modelSettings={"extra": {"chunkSize": 7, "chunkDelayMs": 30}})
        e = await wait_for(gql, t.token, eid)
    expected = "Hello Ada, welcome to Paris. " * 3
    assert e["status"] == "COMPLETED", e
    assert e["output"] == expected
    assert e["renderedPrompt"] == {"kind": "TEXT", "text": expected}
    assert (e["provider"], e["model"]) == ("echo", "echo-1")
    assert e["attempts"] == 1 and e["error"] is None
    assert e["latencyMs"] >= e["timeToFirstTokenMs"] >= 0
    assert e["usage"]["outputTokens"] > 0 and e["usage"]["totalTokens"] == (
        e["usage"]["inputTokens"] + e["usage"]["outputTokens"])
    assert e["costUsd"] == "0" or float(e["costUsd"]) == 0  # echo is priced at 0 in the shipped table
    assert e["validationStatus"] == "SKIPPED" and e["validationResults"] == []
    assert e["startedAt"] <= e["completedAt"]

    events = await db_fetch(db_url, "SELECT seq, type, delta FROM execution_events WHERE execution_id = $1 "
                                    "ORDER BY seq", raw_uuid(eid))
    assert [r["seq"] for r in events] == list(range(1, len(events) + 1))  # gapless
    types = [r["type"] for r in events]
    assert types[0] == "QUEUED" and types[-1] == "COMPLETED" and "STARTED" in types
    assert types.index("STARTED") < types.index("OUTPUT_DELTA")
    deltas = [r["delta"] for r in events if r["type"] == "OUTPUT_DELTA"]
    assert "".join(deltas) == expected and len(deltas) >= 2  # 13 chunks over ~400 ms: batched, not one row each
    # every log has its LOG event
    logs = await db_fetch(db_url, "SELECT id FROM execution_logs WHERE execution_id = $1", raw_uuid(eid))
    assert {r["id"] for r in logs} == {r["log_id"] for r in await db_fetch(
        db_url, "SELECT log_id FROM execution_events WHERE execution_id = $1 AND type = 'LOG'", raw_uuid(eid))}
    usage = await db_fetch(db_url, "SELECT provider, model, input_tokens, output_tokens, tokens_reported, "
                                   "total_cost_usd, model_config_id FROM llm_usage WHERE execution_id = $1",
                           raw_uuid(eid))
    assert len(usage) == 1 and usage[0]["tokens_reported"] is False and usage[0]["model_config_id"] is not None
    assert usage[0]["output_tokens"] == e["usage"]["outputTokens"]


async def test_chat_prompt_echoes_role_lines_and_logs_every_step(gql, make_app):
    t = await tenant(gql, "bob")
    content = {"kind": "CHAT", "systemPrompt": "You help {{who}}.",
               "messages": [{"role": "user", "content": "Hi, I am {{who}}."},
                            {"role": "assistant", "content": "Hello {{who}}!"},
                            {"role": "user", "content": "Bye."}]}
    pid, _ = await create_prompt(gql, t.token, t.project_id, "chat", content=content)
    async with make_app(workers=1):
        eid = await execute_ok(gql, t.token, promptId=pid, variables={"who": "Bo"})
        e = await wait_for(gql, t.token, eid)
    assert e["status"] == "COMPLETED"
    assert e["output"] == "system: You help Bo.\nuser: Hi, I am Bo.\nassistant: Hello Bo!\nuser: Bye."
    assert e["renderedPrompt"]["messages"][1] == {"role": "assistant", "content": "Hello Bo!"}

    body = await gql(LOGS, {"id": eid, "first": 100}, token=t.token)
    logs = body["data"]["node"]["logs"]["nodes"]
    messages = [log["message"] for log in logs]
    levels = {log["level"] for log in logs}
    assert {"DEBUG", "INFO"} <= levels
    assert any(m.startswith("claimed by worker") for m in messages)
    assert any(m == "calling echo model echo-1 (streaming)" for m in messages)
    assert any(m.startswith("first token after") for m in messages)
    assert any("counted by Prompt Studio" in m for m in messages)
    assert messages[-1].startswith("completed in")
    assert [log["timestamp"] for log in logs] == sorted(log["timestamp"] for log in logs)

    node = "query($id: ID!) { node(id: $id) { ... on ExecutionLog { message } } }"
    assert (await gql(node, {"id": logs[0]["id"]}, token=t.token))["data"]["node"] == {"message": messages[0]}
    stranger, _ = await signup(gql, "str")
    assert (await gql(node, {"id": logs[0]["id"]}, token=stranger))["data"]["node"] is None
    assert (await gql(LOGS, {"id": eid}, token=stranger))["data"]["node"] is None

    info = (await gql(LOGS, {"id": eid, "min": "INFO", "first": 100}, token=t.token))["data"]["node"]["logs"]
    assert info["nodes"] and all(log["level"] != "DEBUG" for log in info["nodes"])
    assert info["totalCount"] == len(info["nodes"]) < len(logs)
    # keyset pages join up
    first = (await gql(LOGS, {"id": eid, "first": 2}, token=t.token))["data"]["node"]["logs"]
    rest = (await gql(LOGS, {"id": eid, "first": 100, "after": first["pageInfo"]["endCursor"]},
                      token=t.token))["data"]["node"]["logs"]
    assert [n["id"] for n in first["nodes"] + rest["nodes"]] == [n["id"] for n in logs]


async def test_variables_are_checked_and_nothing_is_queued(gql, db_url):
    t = await tenant(gql, "cyd", template="{{greeting}} {{name}}")
    p = await execute(gql, t.token, promptId=t.prompt_id, variables={"name": 3, "extra": "x"})
    errors = {(e["code"], tuple(e["field"])): e["message"] for e in p["userErrors"]}
    assert p["execution"] is None
    assert ("INVALID", ("input", "variables", "greeting")) in errors
    assert ("INVALID", ("input", "variables", "extra")) in errors
    assert ("INVALID", ("input", "variables", "name")) in errors
    assert "must be a STRING" in errors[("INVALID", ("input", "variables", "name"))]
    assert "greeting, name" in errors[("INVALID", ("input", "variables", "extra"))]
    p = await execute(gql, t.token, promptId=t.prompt_id, variables=[1, 2])
    assert [(e["code"], e["field"]) for e in p["userErrors"]] == [("INVALID", ["input", "variables"])]
    assert (await db_fetch(db_url, "SELECT count(*) AS n FROM executions"))[0]["n"] == 0


async def test_choose_the_version_in_exactly_one_way(gql):
    t = await tenant(gql, "deb")
    cases = [({}, ["input", "promptId"]),
             ({"versionId": t.version_id, "promptId": t.prompt_id}, ["input", "promptId"]),
             ({"versionId": t.version_id, "environment": "production"}, ["input", "environment"])]
    for given, field in cases:
        p = await execute(gql, t.token, variables={"name": "x"}, **given)
        assert [(e["code"], e["field"]) for e in p["userErrors"]] == [("INVALID", field)], given
        assert "exactly one way" in p["userErrors"][0]["message"]
    p = await execute(gql, t.token, fields=EXEC_FIELDS, versionId=t.version_id, variables={"name": "x"})
    assert p["userErrors"] == [] and p["execution"]["status"] == "PENDING"
    assert p["execution"]["version"]["id"] == t.version_id and p["execution"]["environment"] is None
    assert p["execution"]["startedAt"] is None and p["execution"]["output"] is None
