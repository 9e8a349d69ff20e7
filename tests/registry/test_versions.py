"""Versions: numbering (also under concurrent commits), conflicts, rollback, fork, diff, render."""
from __future__ import annotations

import asyncio

from tests.registry.util import (
    COMMIT,
    FORK,
    ROLLBACK,
    VERSION_FIELDS,
    audit_events,
    commit,
    create_prompt,
    errs,
    make_world,
    ok,
)

VERSIONS = """query($id: ID!, $after: String) { node(id: $id) { ... on Prompt { versionCount
  latestVersion { number }
  versions(first: 3, after: $after) { totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { number isLatest } } } } } }"""


async def test_versions_are_numbered_without_gaps_and_never_change(gql):
    w = await make_world(gql)
    p = await create_prompt(gql, w.alice, w.a, "p", "one {{a}}")
    pid, v1 = p["prompt"]["id"], p["version"]
    v2 = await commit(gql, w.alice, pid, "two {{a}} {{b}}", commitMessage="add b")
    v3 = await commit(gql, w.alice, pid, "three {{a}}", baseVersion=2)
    assert [v2["number"], v3["number"]] == [2, 3]
    assert v2["previous"] == {"number": 1} and v2["commitMessage"] == "add b" and v3["isLatest"]

    picked = (await gql("""query($id: ID!) { node(id: $id) { ... on Prompt { v2: version(number: 2) { number
        template } v0: version(number: 0) { number } v9: version(number: 9) { number } } } }""", {"id": pid},
                        token=w.alice))["data"]["node"]
    assert picked == {"v2": {"number": 2, "template": "two {{a}} {{b}}"}, "v0": None, "v9": None}
    data = (await gql(VERSIONS, {"id": pid}, token=w.alice))["data"]["node"]
    assert data["versionCount"] == 3 and data["latestVersion"]["number"] == 3
    conn = data["versions"]
    assert [e["node"]["number"] for e in conn["edges"]] == [3, 2, 1]
    assert [e["node"]["isLatest"] for e in conn["edges"]] == [True, False, False]
    assert conn["totalCount"] == 3 and conn["pageInfo"]["hasNextPage"] is False

    # Version 1 is exactly as it was written.
    again = (await gql("""query($id: ID!) { node(id: $id) { ... on PromptVersion { number template contentHash
        isLatest } } }""", {"id": v1["id"]}, token=w.alice))["data"]["node"]
    assert again == {"number": 1, "template": "one {{a}}", "contentHash": v1["contentHash"], "isLatest": False}
    # Same content, same hash: the hash is of the canonical content, not of the row.
    q = await create_prompt(gql, w.alice, w.a, "same", "one {{a}}")
    assert q["version"]["contentHash"] == v1["contentHash"]
    events = await audit_events(gql, w.alice, "alpha", "prompt_version.create")
    assert [(e["result"], e["resourceType"], e["details"]["number"]) for e in events] == [
        ("SUCCESS", "PromptVersion", 3), ("SUCCESS", "PromptVersion", 2)]
    assert events[0]["resourceId"] == v3["id"]


async def test_versions_pagination(gql):
    w = await make_world(gql)
    pid = (await create_prompt(gql, w.alice, w.a, "p", "v1"))["prompt"]["id"]
    for i in range(2, 8):
        await commit(gql, w.alice, pid, f"v{i}")
    seen, after = [], None
    while True:
        conn = (await gql(VERSIONS, {"id": pid, "after": after}, token=w.alice))["data"]["node"]["versions"]
        seen += [e["node"]["number"] for e in conn["edges"]]
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    body = await gql(VERSIONS, {"id": pid, "after": "garbage"}, token=w.alice, check=False)
    assert "not a cursor" in body["errors"][0]["message"]


async def test_concurrent_commits_get_consecutive_numbers(gql):
    w = await make_world(gql)
    pid = (await create_prompt(gql, w.alice, w.a, "hot", "base {{x}}"))["prompt"]["id"]

    async def one(i: int):
        return await gql(COMMIT, {"i": {"promptId": pid, "content": {"template": f"change {i} {{{{x}}}}"}}},
                         token=w.alice)

    bodies = await asyncio.gather(*(one(i) for i in range(10)))
    numbers = sorted(ok(b, "createPromptVersion")["version"]["number"] for b in bodies)
    assert numbers == list(range(2, 12))
    data = (await gql("""query($id: ID!) { node(id: $id) { ... on Prompt { versionCount
        versions(first: 100) { totalCount nodes { number } } } } }""", {"id": pid}, token=w.alice))["data"]["node"]
    assert data["versionCount"] == 11 and data["versions"]["totalCount"] == 11
    assert [n["number"] for n in data["versions"]["nodes"]] == list(range(11, 0, -1))


async def test_no_changes_and_base_version_conflicts(gql):
    w = await make_world(gql)
    pid = (await create_prompt(gql, w.alice, w.a, "p", "Hello {{name}}"))["prompt"]["id"]
    # Identical content (variables inferred or declared the same way) is "no changes".
    for content in ({"template": "Hello {{name}}"},
                    {"template": "Hello {{name}}", "variables": [{"name": "name", "type": "STRING"}]}):
        [e] = errs(await gql(COMMIT, {"i": {"promptId": pid, "content": content}}, token=w.alice),
                   "createPromptVersion")
        assert e["code"] == "CONFLICT" and e["message"].startswith("No changes") and e["field"] == ["input", "content"]
    await commit(gql, w.alice, pid, "Hi {{name}}", baseVersion=1)
    [e] = errs(await gql(COMMIT, {"i": {"promptId": pid, "content": {"template": "Hey {{name}}"}, "baseVersion": 1}},
                         token=w.alice), "createPromptVersion")
    assert e["code"] == "CONFLICT" and e["field"] == ["input", "baseVersion"]
    assert "someone else committed version 2 first" in e["message"]
    [e] = errs(await gql(COMMIT, {"i": {"promptId": pid, "content": {"template": "Hey"}, "baseVersion": 9}},
                         token=w.alice), "createPromptVersion")
    assert e["code"] == "INVALID" and "does not exist" in e["message"]
    # A changed variable declaration alone is a change.
    v = await commit(gql, w.alice, pid, "", content={"template": "Hi {{name}}", "variables": [
        {"name": "name", "required": False, "defaultValue": "you"}]})
    assert v["number"] == 3
    events = await audit_events(gql, w.alice, "alpha", "prompt_version.create")
    assert [e["result"] for e in events] == ["SUCCESS", "FAILURE", "FAILURE", "SUCCESS", "FAILURE", "FAILURE"]


async def test_rollback_creates_a_new_version_with_restored_from(gql):
    w = await make_world(gql)
    p = await create_prompt(gql, w.alice, w.a, "p", "one {{a}}")
    pid = p["prompt"]["id"]
    await commit(gql, w.alice, pid, "two {{a}}")
    v3 = ok(await gql(ROLLBACK, {"i": {"promptId": pid, "toVersion": 1}}, token=w.alice), "rollbackPrompt")["version"]
    assert v3["number"] == 3 and v3["template"] == "one {{a}}" and v3["isLatest"]
    assert v3["restoredFrom"] == {"id": p["version"]["id"], "number": 1}
    assert v3["contentHash"] == p["version"]["contentHash"] and v3["commitMessage"] == "Roll back to version 1"
    # Version 3 already has version 1's content: rolling back to 1 (or 3) again changes nothing.
    for to in (1, 3):
        [e] = errs(await gql(ROLLBACK, {"i": {"promptId": pid, "toVersion": to}}, token=w.alice), "rollbackPrompt")
        assert e["code"] == "CONFLICT" and e["field"] == ["input", "toVersion"] and "Nothing to roll back" in e["message"]
    v4 = ok(await gql(ROLLBACK, {"i": {"promptId": pid, "toVersion": 2, "commitMessage": "back"}}, token=w.alice),
            "rollbackPrompt")["version"]
    assert v4["number"] == 4 and v4["template"] == "two {{a}}" and v4["commitMessage"] == "back"
    [e] = errs(await gql(ROLLBACK, {"i": {"promptId": pid, "toVersion": 9}}, token=w.alice), "rollbackPrompt")
    assert e["code"] == "NOT_FOUND" and e["field"] == ["input", "toVersion"]
    events = await audit_events(gql, w.alice, "alpha", "prompt.rollback")
    assert [e["result"] for e in events] == ["FAILURE", "SUCCESS", "FAILURE", "FAILURE", "SUCCESS"]


async def test_fork_into_same_and_other_project(gql):
    w = await make_world(gql)
    src = await create_prompt(gql, w.alice, w.a, "src", "Hi {{x}}", description="d", category="c", tags=["t"])
    v2 = await commit(gql, w.alice, src["prompt"]["id"], "Hello {{x}}")
    f = ok(await gql(FORK, {"i": {"versionId": src["version"]["id"], "projectId": w.a, "name": "copy"}},
                     token=w.alice), "forkPrompt")
    assert f["prompt"]["forkedFrom"] == {"id": src["version"]["id"], "number": 1}
    assert (f["prompt"]["description"], f["prompt"]["category"], f["prompt"]["tags"]) == ("d", "c", ["t"])
    assert f["version"]["number"] == 1 and f["version"]["template"] == "Hi {{x}}"
    assert f["version"]["contentHash"] == src["version"]["contentHash"]
    assert f["prompt"]["status"] == "DRAFT"

    # Into another project: bob cannot write in A nor read it; alice cannot write in B.
    [e] = errs(await gql(FORK, {"i": {"versionId": v2["id"], "projectId": w.b, "name": "x"}}, token=w.bob),
               "forkPrompt")
    assert e == {"code": "NOT_FOUND", "message": "No prompt with this ID.", "field": ["input", "versionId"]}
    [e] = errs(await gql(FORK, {"i": {"versionId": v2["id"], "projectId": w.b, "name": "x"}}, token=w.alice),
               "forkPrompt")
    assert e["code"] == "NOT_FOUND" and e["field"] == ["input", "projectId"]
    # Once alice is an editor of B she can fork there; bob then sees the fork but not its source.
    from tests.helpers import add_member
    await add_member(gql, w.bob, w.b, "alice", "EDITOR")
    f2 = ok(await gql(FORK, {"i": {"versionId": v2["id"], "projectId": w.b, "name": "imported/src"}},
                      token=w.alice), "forkPrompt")
    assert f2["prompt"]["project"]["id"] == w.b and f2["version"]["template"] == "Hello {{x}}"
    seen_by_bob = (await gql("""query($id: ID!) { node(id: $id) { ... on Prompt { name forkedFrom { id } } } }""",
                             {"id": f2["prompt"]["id"]}, token=w.bob))["data"]["node"]
    assert seen_by_bob == {"name": "imported/src", "forkedFrom": None}
    [e] = errs(await gql(FORK, {"i": {"versionId": v2["id"], "projectId": w.b, "name": "imported/src"}},
                         token=w.alice), "forkPrompt")
    assert e["code"] == "CONFLICT" and e["field"] == ["input", "name"]
    events = await audit_events(gql, w.bob, "beta", "prompt.fork")
    assert [e["result"] for e in events] == ["FAILURE", "SUCCESS"]


DIFF = """query($id: ID!, $against: ID) { node(id: $id) { ... on PromptVersion {
  diff(against: $against) { from { number } to { number } unified addedLines removedLines changedFields
    variablesAdded variablesRemoved hunks { header lines { kind text oldNumber newNumber } } } } } }"""


async def test_diff(gql):
    w = await make_world(gql)
    p = await create_prompt(gql, w.alice, w.a, "p", content={
        "template": "line one\nHello {{name}}\nline three", "modelSettings": {"temperature": 0.5}})
    v2 = await commit(gql, w.alice, p["prompt"]["id"], "", content={
        "template": "line one\nHello {{name}} from {{city}}\nline three", "modelSettings": {"temperature": 0.7}})
    d = (await gql(DIFF, {"id": v2["id"]}, token=w.alice))["data"]["node"]["diff"]
    assert d["from"] == {"number": 1} and d["to"] == {"number": 2}
    assert d["changedFields"] == ["template", "variables", "modelSettings"]
    assert d["variablesAdded"] == ["city"] and d["variablesRemoved"] == []
    assert "-Hello {{name}}\n+Hello {{name}} from {{city}}\n" in d["unified"]
    assert d["unified"].startswith("--- version 1\n+++ version 2\n")
    lines = [x for h in d["hunks"] for x in h["lines"]]
    removed = [x for x in lines if x["kind"] == "REMOVED"]
    added = [x for x in lines if x["kind"] == "ADDED"]
    assert d["addedLines"] == len(added) and d["removedLines"] == len(removed)
    assert {"kind": "REMOVED", "text": "Hello {{name}}", "oldNumber": 5, "newNumber": None} in removed
    assert {"kind": "ADDED", "text": "Hello {{name}} from {{city}}", "oldNumber": None, "newNumber": 5} in added
    assert all(x["oldNumber"] and x["newNumber"] for x in lines if x["kind"] == "CONTEXT")
    assert d["hunks"][0]["header"].startswith("@@ -")

    # Against an explicit version (either direction); version 1 alone has nothing to diff against.
    back = (await gql(DIFF, {"id": p["version"]["id"], "against": v2["id"]}, token=w.alice))["data"]["node"]["diff"]
    assert back["from"] == {"number": 2} and back["variablesRemoved"] == ["city"]
    assert (await gql(DIFF, {"id": p["version"]["id"]}, token=w.alice))["data"]["node"]["diff"] is None
    same = (await gql(DIFF, {"id": v2["id"], "against": v2["id"]}, token=w.alice))["data"]["node"]["diff"]
    assert same["unified"] == "" and same["hunks"] == [] and same["changedFields"] == []

    # Another prompt's version: an error; an invisible or unknown one: null.
    other = await create_prompt(gql, w.alice, w.a, "other", "x")
    body = await gql(DIFF, {"id": v2["id"], "against": other["version"]["id"]}, token=w.alice, check=False)
    assert body["errors"][0]["message"].startswith("Versions of different prompts cannot be diffed")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    foreign = await create_prompt(gql, w.bob, w.b, "foreign", "y")
    for against in (foreign["version"]["id"], "bm9wZQ"):
        body = await gql(DIFF, {"id": v2["id"], "against": against}, token=w.alice)
        assert body["data"]["node"]["diff"] is None


async def test_render(gql):
    w = await make_world(gql)
    p = await create_prompt(gql, w.alice, w.a, "r", content={
        "kind": "CHAT", "format": "JINJA2", "systemPrompt": "Be {{ tone }}.",
        "messages": [{"role": "user", "content": "{{ n * 2 }} for {{ who }}"}],
        "variables": [{"name": "tone", "options": ["kind", "terse"], "defaultValue": "kind"},
                      {"name": "n", "type": "INTEGER"}, {"name": "who"}]})
    q = """query($id: ID!, $v: JSON!) { node(id: $id) { ... on PromptVersion { render(variables: $v) {
        text messages { role content } systemPrompt missingVariables unknownVariables errors } } } }"""

    async def render(v):
        return (await gql(q, {"id": p["version"]["id"], "v": v}, token=w.alice))["data"]["node"]["render"]

    r = await render({"n": 21, "who": "Ann", "extra": 1})
    assert r == {"text": None, "messages": [{"role": "user", "content": "42 for Ann"}], "systemPrompt": "Be kind.",
                 "missingVariables": [], "unknownVariables": ["extra"], "errors": []}
    r = await render({"n": "21"})
    assert r["messages"] is None and r["missingVariables"] == ["who"]
    assert any('"n" must be an INTEGER' in e for e in r["errors"])
    r = await render({"n": 1, "who": "x", "tone": "loud"})
    assert r["messages"] is None and any("must be one of" in e for e in r["errors"])
    r = await render([1, 2])
    assert r["messages"] is None and r["errors"]


async def test_a_versions_page_answers_as_each_version_by_id(gql):
    """Version pages read plain rows (JSON decoded only when selected); every field of each version
    (JSON ones, relations, diff against the previous version) is what the version by id says."""
    w = await make_world(gql)
    chat = await create_prompt(gql, w.alice, w.a, "chat-page", content={
        "kind": "CHAT", "format": "JINJA2", "systemPrompt": "You help {{ company }}.",
        "messages": [{"role": "user", "content": "Hello ünïcode {{ company }}"}],
        "modelSettings": {"provider": "echo", "model": "echo-1", "temperature": 0.2, "extra": {"big": 2 ** 70}},
        "outputSchema": {"type": "object", "properties": {"a": {"type": "string"}}}})
    pid = chat["prompt"]["id"]
    await commit(gql, w.alice, pid, "", content={"kind": "CHAT", "format": "JINJA2", "systemPrompt": "v2 {{ company }}",
                                             "messages": [{"role": "user", "content": "Bye {{ company }}"}],
                                             "outputSchema": True})
    fields = VERSION_FIELDS + " diff { changedFields addedLines removedLines }"
    page = (await gql(f"""query($id: ID!) {{ node(id: $id) {{ ... on Prompt {{
        versions(first: 5) {{ nodes {{ {fields} }} }} }} }} }}""", {"id": pid}, token=w.alice))["data"]["node"]
    nodes = page["versions"]["nodes"]
    assert [n["number"] for n in nodes] == [2, 1]
    for n in nodes:
        by_id = (await gql(f"""query($id: ID!) {{ node(id: $id) {{ ... on PromptVersion {{ {fields} }} }} }}""",
                           {"id": n["id"]}, token=w.alice))["data"]["node"]
        assert n == by_id
    assert nodes[0]["outputSchema"] is True  # JSON, not an object
    assert nodes[1]["modelSettings"]["extra"] == {"big": 2 ** 70}  # beyond 64 bits: encoded all the same
    assert nodes[1]["messages"] == [{"role": "user", "content": "Hello ünïcode {{ company }}"}]
    assert "messages" in nodes[0]["diff"]["changedFields"]
