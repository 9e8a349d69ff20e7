"""createValidation / updateValidation / deleteValidation, Prompt.validations, and batching of prompt fields."""
from __future__ import annotations

import asyncio
import json
from collections import Counter

import asyncpg

from .util import ERR, add_member, create_api_key, create_project, create_prompt, deploy, signup, split, tenant

CREATE = f"""mutation($input: CreateValidationInput!) {{ createValidation(input: $input) {{
  validation {{ id name type config isActive createdAt updatedAt prompt {{ id }} createdBy {{ id }} }} {ERR} }} }}"""
UPDATE = f"""mutation($input: UpdateValidationInput!) {{ updateValidation(input: $input) {{
  validation {{ id name type config isActive updatedAt }} {ERR} }} }}"""
DELETE = f"""mutation($input: DeleteValidationInput!) {{ deleteValidation(input: $input) {{ deletedId {ERR} }} }}"""
LIST = """query($id: ID!, $all: Boolean) { node(id: $id) { ... on Prompt {
  validations(includeInactive: $all) { id name type isActive } } } }"""


async def create(gql, token, prompt_id, name, type_, config, **extra):
    body = await gql(CREATE, {"input": {"promptId": prompt_id, "name": name, "type": type_, "config": config,
                                        **extra}}, token=token)
    return body["data"]["createValidation"]


async def update(gql, token, vid, **fields):
    body = await gql(UPDATE, {"input": {"id": vid, **fields}}, token=token)
    return body["data"]["updateValidation"]


def errs(payload):
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


async def names(gql, token, prompt_id, include_inactive=False):
    body = await gql(LIST, {"id": prompt_id, "all": include_inactive}, token=token)
    return [v["name"] for v in body["data"]["node"]["validations"]]


async def test_create_update_delete(gql, db_url):
    t = await tenant(gql, "ola", versions=1)
    p = await create(gql, t.token, t.prompt_id, "is-json", "JSON_SCHEMA",
                     {"schema": {"type": "object", "required": ["answer"]}})
    assert p["userErrors"] == []
    v = p["validation"]
    assert v["name"] == "is-json" and v["type"] == "JSON_SCHEMA" and v["isActive"] is True
    assert v["config"] == {"schema": {"type": "object", "required": ["answer"]}}
    assert v["prompt"]["id"] == t.prompt_id and v["createdBy"]["id"] == t.user_id

    p2 = await create(gql, t.token, t.prompt_id, "short", "REGEX", {"pattern": "^.{1,200}$", "flags": "s"},
                      isActive=False)
    assert p2["userErrors"] == [] and p2["validation"]["isActive"] is False
    p3 = await create(gql, t.token, t.prompt_id, "has-answer", "JMESPATH", {"expression": "answer"})
    assert p3["userErrors"] == []

    assert await names(gql, t.token, t.prompt_id) == ["is-json", "has-answer"]
    assert await names(gql, t.token, t.prompt_id, True) == ["is-json", "short", "has-answer"]

    # Names are unique per prompt (another prompt may reuse one).
    dup = await create(gql, t.token, t.prompt_id, "is-json", "REGEX", {"pattern": "x"})
    assert errs(dup) == [("CONFLICT", ["input", "name"])] and "is-json" in dup["userErrors"][0]["message"]
    other_prompt, _ = await create_prompt(gql, t.token, t.project_id, "other")
    assert (await create(gql, t.token, other_prompt, "is-json", "REGEX", {"pattern": "x"}))["userErrors"] == []

    # Update: name, config (checked against the validation's type), active flag.
    u = await update(gql, t.token, v["id"], name="json-answer", config={"schema": {"type": "object"}})
    assert u["userErrors"] == []
    assert u["validation"]["name"] == "json-answer" and u["validation"]["config"] == {"schema": {"type": "object"}}
    assert u["validation"]["updatedAt"] >= v["updatedAt"]
    u = await update(gql, t.token, p2["validation"]["id"], isActive=True)
    assert u["validation"]["isActive"] is True
    assert await names(gql, t.token, t.prompt_id) == ["json-answer", "short", "has-answer"]
    bad = await update(gql, t.token, p3["validation"]["id"], config={"expression": "answer[?"})
    assert errs(bad) == [("INVALID", ["input", "config", "expression"])]
    clash = await update(gql, t.token, p3["validation"]["id"], name="short")
    assert errs(clash) == [("CONFLICT", ["input", "name"])]
    nulls = await update(gql, t.token, p3["validation"]["id"], config=None, isActive=None)
    assert sorted(f for _, f in errs(nulls)) == [["input", "config"], ["input", "isActive"]]
    # The type cannot be changed: it is not part of the input.
    body = await gql(UPDATE, {"input": {"id": v["id"], "type": "REGEX"}}, token=t.token, check=False)
    assert body["errors"] and "type" in body["errors"][0]["message"]

    # Delete.
    body = await gql(DELETE, {"input": {"id": p3["validation"]["id"]}}, token=t.token)
    assert body["data"]["deleteValidation"] == {"deletedId": p3["validation"]["id"], "userErrors": []}
    body = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": p3["validation"]["id"]}, token=t.token)
    assert body["data"]["node"] is None
    body = await gql(DELETE, {"input": {"id": p3["validation"]["id"]}}, token=t.token)
    assert errs(body["data"]["deleteValidation"]) == [("NOT_FOUND", ["input", "id"])]

    # A validation is a node.
    body = await gql("query($id: ID!) { node(id: $id) { ... on Validation { name type } } }", {"id": v["id"]},
                     token=t.token)
    assert body["data"]["node"] == {"name": "json-answer", "type": "JSON_SCHEMA"}

    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT action, result, details FROM audit_events WHERE action LIKE 'validation.%' "
                                "ORDER BY created_at")
    finally:
        await conn.close()
    actions = Counter((r["action"], r["result"]) for r in rows)
    assert actions[("validation.create", "SUCCESS")] == 4
    assert actions[("validation.create", "FAILURE")] == 1
    assert actions[("validation.update", "SUCCESS")] == 2
    assert actions[("validation.delete", "SUCCESS")] == 1
    first = json.loads(rows[0]["details"])
    assert first["name"] == "is-json" and first["type"] == "JSON_SCHEMA"


async def test_bad_configs_are_refused_with_reasons(gql):
    t = await tenant(gql, "pam", versions=1)
    cases = [
        ("REGEX", {"pattern": "(a+)+$"}, ["input", "config", "pattern"], "catastrophic"),
        ("REGEX", {"pattern": "([a-z"}, ["input", "config", "pattern"], "does not compile"),
        ("REGEX", {"pattern": "x", "flags": "q"}, ["input", "config", "flags"], "unknown flag"),
        ("JSON_SCHEMA", {"schema": {"type": "nope"}}, ["input", "config", "schema"], None),
        ("JMESPATH", {"expression": "foo[?"}, ["input", "config", "expression"], None),
        ("JMESPATH", {"expression": "a", "extra": 1}, ["input", "config", "extra"], "unknown key"),
        ("REGEX", {}, ["input", "config", "pattern"], "required"),
    ]
    for type_, config, field, words in cases:
        p = await create(gql, t.token, t.prompt_id, "v", type_, config)
        assert p["validation"] is None, (type_, config)
        assert [e["field"][:len(field)] for e in p["userErrors"]] == [field], (config, p["userErrors"])
        assert all(e["code"] == "INVALID" for e in p["userErrors"])
        if words:
            assert words in p["userErrors"][0]["message"], p["userErrors"][0]["message"]
    p = await create(gql, t.token, t.prompt_id, "  ", "REGEX", {"pattern": "x"})
    assert errs(p) == [("INVALID", ["input", "name"])]
    body = await gql(CREATE, {"input": {"promptId": t.prompt_id, "name": "v", "type": "REGEX", "config": [1]}},
                     token=t.token)
    assert errs(body["data"]["createValidation"]) == [("INVALID", ["input", "config"])]
    assert await names(gql, t.token, t.prompt_id, True) == []


async def test_validation_permissions(gql):
    t = await tenant(gql, "quinn", versions=1)
    o = await tenant(gql, "ray", versions=1)
    made = await create(gql, t.token, t.prompt_id, "r", "REGEX", {"pattern": "ok"})
    vid = made["validation"]["id"]

    assert errs(await create(gql, o.token, t.prompt_id, "x", "REGEX", {"pattern": "x"})) == [
        ("NOT_FOUND", ["input", "promptId"])]
    assert errs(await update(gql, o.token, vid, name="y")) == [("NOT_FOUND", ["input", "id"])]
    body = await gql(DELETE, {"input": {"id": vid}}, token=o.token)
    assert errs(body["data"]["deleteValidation"]) == [("NOT_FOUND", ["input", "id"])]
    body = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": vid}, token=o.token)
    assert body["data"]["node"] is None

    viewer, _ = await signup(gql, "sue")
    await add_member(gql, t.token, t.project_id, "sue", "VIEWER")
    assert errs(await create(gql, viewer, t.prompt_id, "x", "REGEX", {"pattern": "x"})) == [
        ("FORBIDDEN", ["input", "promptId"])]
    assert errs(await update(gql, viewer, vid, isActive=False)) == [("FORBIDDEN", ["input", "id"])]
    assert await names(gql, viewer, t.prompt_id) == ["r"]

    reader = await create_api_key(gql, t.token, t.project_id, ["PROMPTS_READ"])
    assert errs(await create(gql, reader, t.prompt_id, "x", "REGEX", {"pattern": "x"})) == [
        ("FORBIDDEN", ["input", "promptId"])]
    writer = await create_api_key(gql, t.token, t.project_id, ["PROMPTS_WRITE"])
    made = await create(gql, writer, t.prompt_id, "by-key", "REGEX", {"pattern": "x"})
    assert made["userErrors"] == [] and made["validation"]["createdBy"] is None

    body = await gql(CREATE, {"input": {"promptId": t.prompt_id, "name": "x", "type": "REGEX",
                                        "config": {"pattern": "x"}}}, token="", check=False)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_prompt_fields_are_batched(gql, sql_counter):
    """Prompt.deployments, deploymentHistory, validations and PromptVersion.deployments: the statement
    count depends on the query's shape, not on how many prompts are asked for (5 or 50): 9 statements
    (none to authenticate: the token is cached and lastUsedAt written behind; the prompts, the viewer's
    role, active deployments, their versions, the versions' deployments, deployers, validations, a history page, history counts)."""
    token, _ = await signup(gql, "tom")
    project = await create_project(gql, token, "tom-proj")

    async def make(i: int) -> tuple[str, str]:
        pid, vid = await create_prompt(gql, token, project, f"p{i:02d}")
        if i % 2 == 0:
            assert (await deploy(gql, token, vid))["userErrors"] == []
        if i % 3 == 0:
            assert (await create(gql, token, pid, "r", "REGEX", {"pattern": "x"}))["userErrors"] == []
        return pid, vid

    prompts: list[tuple[str, str]] = []
    for start in range(0, 50, 10):
        prompts.extend(await asyncio.gather(*(make(i) for i in range(start, start + 10))))
    assert (await split(gql, token, prompts[0][0], [(prompts[0][1], 100)], environment="staging"))["userErrors"] == []

    query = """query($ids: [ID!]!) { nodes(ids: $ids) { ... on Prompt {
        deployments { id environment version { number deployments { id } } deployedBy { id } }
        validations(includeInactive: true) { id name }
        deploymentHistory(first: 3) { totalCount nodes { id } } } } }"""

    async def count(n: int) -> int:
        ids = [p for p, _ in prompts[:n]]
        with sql_counter() as c:
            body = await gql(query, {"ids": ids}, token=token)
        got = body["data"]["nodes"]
        assert len(got) == n
        assert sum(len(x["deployments"]) for x in got) == sum(1 for i in range(n) if i % 2 == 0) + 1
        assert sum(len(x["validations"]) for x in got) == sum(1 for i in range(n) if i % 3 == 0)
        return c.count

    small, large = await count(5), await count(50)
    assert small == large, (small, large)
    assert large <= 12, large

