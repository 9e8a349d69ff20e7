"""createPrompt, updatePrompt, deletePrompt: rules, content, status, cascade, audit — through GraphQL."""
from __future__ import annotations

import pytest

from tests.registry.util import (CREATE, DELETE, UPDATE, audit_events, commit, create_prompt, errs, make_world, ok,
                                 payload)


async def test_create_prompt_makes_version_one(gql):
    w = await make_world(gql)
    p = await create_prompt(gql, w.alice, w.a, "  support/refund-reply.v2  ", "Dear {{customer}}, {{body}}",
                            description="  Replies to refund requests ", category="support",
                            tags=[" Support ", "refunds", "SUPPORT", "billing"], commitMessage="first")
    prompt, version = p["prompt"], p["version"]
    assert prompt["name"] == "support/refund-reply.v2"
    assert prompt["description"] == "Replies to refund requests"
    assert prompt["tags"] == ["support", "refunds", "billing"]
    assert prompt["status"] == "DRAFT" and prompt["publishedAt"] is None
    assert prompt["versionCount"] == 1 and prompt["latestVersion"]["number"] == 1
    assert prompt["createdBy"]["id"] == w.alice_id and prompt["project"]["id"] == w.a
    assert version["number"] == 1 and version["isLatest"] and version["previous"] is None
    assert version["kind"] == "TEXT" and version["format"] == "MUSTACHE"
    assert version["commitMessage"] == "first" and version["author"]["id"] == w.alice_id
    assert [v["name"] for v in version["variables"]] == ["customer", "body"]
    assert all(v["type"] == "STRING" and v["required"] for v in version["variables"])
    assert len(version["contentHash"]) == 64
    assert version["contentHash"] == prompt["latestVersion"]["contentHash"]

    events = await audit_events(gql, w.alice, "alpha", "prompt.create")
    assert len(events) == 1 and events[0]["result"] == "SUCCESS" and events[0]["resourceType"] == "Prompt"
    assert events[0]["details"]["name"] == "support/refund-reply.v2"
    assert events[0]["actor"]["id"] == w.alice_id


@pytest.mark.parametrize("name,fragment", [
    ("", "needs a name"),
    ("a" * 201, "at most 200"),
    ("has space", "contains ' '"),
    ("naïve", "contains 'ï'"),
    ("/lead", "cannot start or end with '/'"),
    ("trail/", "cannot start or end with '/'"),
    ("a//b", "'//'"),
    ("a/../b", "'.' or '..'"),
])
async def test_bad_names_are_refused_clearly(gql, name, fragment):
    w = await make_world(gql)
    body = await gql(CREATE, {"i": {"projectId": w.a, "name": name, "content": {"template": "x"}}}, token=w.alice)
    [e] = errs(body, "createPrompt")
    assert e["code"] == "INVALID" and e["field"] == ["input", "name"] and fragment in e["message"], e
    assert (await gql("query { project(slug: \"alpha\") { prompts { totalCount } } }",
                      token=w.alice))["data"]["project"]["prompts"]["totalCount"] == 0
    failures = await audit_events(gql, w.alice, "alpha", "prompt.create")
    assert [f["result"] for f in failures] == ["FAILURE"]


async def test_name_limits_and_uniqueness(gql):
    w = await make_world(gql)
    await create_prompt(gql, w.alice, w.a, "a" * 200)
    await create_prompt(gql, w.alice, w.a, "Folder_1/sub-2/x.y")
    body = await gql(CREATE, {"i": {"projectId": w.a, "name": "Folder_1/sub-2/x.y", "content": {"template": "y"}}},
                     token=w.alice)
    [e] = errs(body, "createPrompt")
    assert e["code"] == "CONFLICT" and e["field"] == ["input", "name"] and "already has a prompt" in e["message"]
    # The same name in another project is fine.
    await create_prompt(gql, w.bob, w.b, "Folder_1/sub-2/x.y")


async def test_tags_description_category_limits(gql):
    w = await make_world(gql)
    body = await gql(CREATE, {"i": {
        "projectId": w.a, "name": "t", "content": {"template": "x"}, "description": "d" * 5001,
        "category": "c" * 101, "tags": ["ok", "  ", "x" * 65] + [f"t{i}" for i in range(50)]}}, token=w.alice)
    errors = errs(body, "createPrompt")
    fields = {tuple(e["field"]): e["message"] for e in errors}
    assert "at most 5000" in fields[("input", "description")]
    assert "at most 100" in fields[("input", "category")]
    assert "cannot be empty" in fields[("input", "tags", "1")]
    assert "at most 64" in fields[("input", "tags", "2")]
    assert "at most 50" in fields[("input", "tags")]
    assert all(e["code"] == "INVALID" for e in errors)


async def test_content_kinds_formats_and_variables(gql):
    w = await make_world(gql)
    chat = await create_prompt(gql, w.alice, w.a, "chat", content={
        "kind": "CHAT", "format": "JINJA2", "systemPrompt": "You help {{ company }}.",
        "messages": [{"role": "user", "content": "{% for i in items %}{{ i.name }} {% endfor %}"},
                     {"role": "assistant", "content": "Noted."}],
        "modelSettings": {"provider": "echo", "model": "echo-1", "temperature": 0.2, "maxTokens": 50,
                          "stop": ["END"], "extra": {"seed": 1}},
        "outputSchema": {"type": "object"}})
    v = chat["version"]
    assert v["kind"] == "CHAT" and v["format"] == "JINJA2" and v["template"] is None
    assert v["messages"] == [{"role": "user", "content": "{% for i in items %}{{ i.name }} {% endfor %}"},
                             {"role": "assistant", "content": "Noted."}]
    assert [(x["name"], x["type"]) for x in v["variables"]] == [("company", "STRING"), ("items", "JSON")]
    assert v["modelSettings"] == {"provider": "echo", "model": "echo-1", "temperature": 0.2, "maxTokens": 50,
                                  "topP": None, "stop": ["END"], "extra": {"seed": 1}}
    assert v["outputSchema"] == {"type": "object"}

    declared = await create_prompt(gql, w.alice, w.a, "declared", content={
        "template": "{{#vip}}Dear{{/vip}}{{^vip}}Hi{{/vip}} {{name}} ({{count}})",
        "variables": [{"name": "vip", "type": "BOOLEAN", "required": False},
                      {"name": "name", "description": "who", "defaultValue": "friend"},
                      {"name": "count", "type": "INTEGER", "options": [1, 2, 3]}]})
    vars_ = {x["name"]: x for x in declared["version"]["variables"]}
    assert vars_["vip"]["type"] == "BOOLEAN" and vars_["vip"]["required"] is False
    assert vars_["name"]["defaultValue"] == "friend" and vars_["name"]["description"] == "who"
    assert vars_["count"]["options"] == [1, 2, 3]


async def test_content_errors_name_the_variable_and_path(gql):
    w = await make_world(gql)
    body = await gql(CREATE, {"i": {"projectId": w.a, "name": "bad", "content": {
        "template": "Hi {{name}} {{city}}",
        "variables": [{"name": "name"}, {"name": "unused"}, {"name": "n", "type": "INTEGER", "defaultValue": "x"}]}}},
        token=w.alice)
    errors = errs(body, "createPrompt")
    by_field = {tuple(e["field"]): e["message"] for e in errors}
    assert 'variable "city" is used in the template but not declared' in by_field[("input", "content", "variables")]
    assert '"unused" is declared but the template never uses it' in by_field[
        ("input", "content", "variables", "1", "name")]
    assert ("input", "content", "variables", "2", "defaultValue") in by_field

    for content, field in [({"template": "{{#open}} never closed"}, ["input", "content", "template"]),
                           ({"template": "{% for %}", "format": "JINJA2"}, ["input", "content", "template"]),
                           ({"kind": "CHAT", "messages": []}, ["input", "content", "messages"]),
                           ({"kind": "CHAT", "messages": [{"role": "wizard", "content": "x"}]},
                            ["input", "content", "messages", "0", "role"]),
                           ({"template": "   "}, ["input", "content", "template"]),
                           ({"template": "x", "modelSettings": {"temperature": 7}},
                            ["input", "content", "modelSettings", "temperature"]),
                           ({"template": "x", "outputSchema": {"type": "nonsense"}}, ["input", "content", "outputSchema"])]:
        body = await gql(CREATE, {"i": {"projectId": w.a, "name": "bad", "content": content}}, token=w.alice)
        errors = errs(body, "createPrompt")
        assert any(e["field"] == field and e["code"] == "INVALID" for e in errors), (content, errors)
    assert (await gql("query { project(slug: \"alpha\") { prompts { totalCount } } }",
                      token=w.alice))["data"]["project"]["prompts"]["totalCount"] == 0


async def test_no_html_escaping_when_rendering(gql):
    w = await make_world(gql)
    p = await create_prompt(gql, w.alice, w.a, "html", "<b>{{x}}</b>")
    body = await gql("""query($id: ID!) { node(id: $id) { ... on PromptVersion {
        render(variables: {x: "a < b & \\"c\\""}) { text errors missingVariables unknownVariables } } } }""",
                     {"id": p["version"]["id"]}, token=w.alice)
    assert body["data"]["node"]["render"] == {"text": '<b>a < b & "c"</b>', "errors": [], "missingVariables": [],
                                              "unknownVariables": []}


async def test_update_metadata_status_publish_archive_restore(gql):
    w = await make_world(gql)
    p = (await create_prompt(gql, w.alice, w.a, "p", description="old", category="c", tags=["a"]))["prompt"]
    body = await gql(UPDATE, {"i": {"id": p["id"], "tags": ["X", "y"], "description": None}}, token=w.alice)
    up = ok(body, "updatePrompt")["prompt"]
    assert up["tags"] == ["x", "y"] and up["description"] is None and up["category"] == "c"
    assert up["updatedAt"] >= p["updatedAt"] and up["versionCount"] == 1

    published = ok(await gql(UPDATE, {"i": {"id": p["id"], "status": "PUBLISHED"}}, token=w.alice),
                   "updatePrompt")["prompt"]
    assert published["status"] == "PUBLISHED" and published["publishedAt"] is not None
    archived = ok(await gql(UPDATE, {"i": {"id": p["id"], "status": "ARCHIVED"}}, token=w.alice),
                  "updatePrompt")["prompt"]
    assert archived["status"] == "ARCHIVED" and archived["publishedAt"] == published["publishedAt"]

    listing = """query { project(slug: "alpha") { d: prompts { nodes { name } }
        a: prompts(filter: {status: [ARCHIVED]}) { nodes { name status } } prompt(name: "p") { status } } }"""
    data = (await gql(listing, token=w.alice))["data"]["project"]
    assert data["d"]["nodes"] == [] and data["a"]["nodes"] == [{"name": "p", "status": "ARCHIVED"}]
    assert data["prompt"]["status"] == "ARCHIVED"

    # Archived prompts are read-only until restored.
    body = await gql("""mutation($i: CreatePromptVersionInput!) { createPromptVersion(input: $i) {
        version { number } userErrors { code message field } } }""",
                     {"i": {"promptId": p["id"], "content": {"template": "new"}}}, token=w.alice)
    [e] = errs(body, "createPromptVersion")
    assert e["code"] == "CONFLICT" and "archived" in e["message"]

    restored = ok(await gql(UPDATE, {"i": {"id": p["id"], "status": "PUBLISHED"}}, token=w.alice),
                  "updatePrompt")["prompt"]
    assert restored["status"] == "PUBLISHED" and restored["publishedAt"] == published["publishedAt"]
    assert (await gql(listing, token=w.alice))["data"]["project"]["d"]["nodes"] == [{"name": "p"}]
    assert (await commit(gql, w.alice, p["id"], "new"))["number"] == 2

    body = await gql(UPDATE, {"i": {"id": p["id"], "status": None}}, token=w.alice)
    [e] = errs(body, "updatePrompt")
    assert e["field"] == ["input", "status"] and e["code"] == "INVALID"
    events = await audit_events(gql, w.alice, "alpha", "prompt.update")
    assert [e["result"] for e in events].count("SUCCESS") == 4 and events[0]["result"] == "FAILURE"


async def test_delete_prompt_removes_everything_under_it(gql):
    w = await make_world(gql)
    p = await create_prompt(gql, w.alice, w.a, "gone")
    v2 = await commit(gql, w.alice, p["prompt"]["id"], "second {{name}}")
    fork = ok(await gql("""mutation($i: ForkPromptInput!) { forkPrompt(input: $i) {
        prompt { id } userErrors { code message field } } }""",
                        {"i": {"versionId": v2["id"], "projectId": w.a, "name": "kept"}}, token=w.alice), "forkPrompt")
    body = await gql(DELETE, {"i": {"id": p["prompt"]["id"]}}, token=w.alice)
    assert payload(body, "deletePrompt") == {"deletedId": p["prompt"]["id"], "userErrors": []}
    data = (await gql("""query($p: ID!, $v: ID!, $f: ID!) { p: node(id: $p) { id } v: node(id: $v) { id }
        f: node(id: $f) { ... on Prompt { name forkedFrom { id } } } }""",
                      {"p": p["prompt"]["id"], "v": v2["id"], "f": fork["prompt"]["id"]}, token=w.alice))["data"]
    assert data == {"p": None, "v": None, "f": {"name": "kept", "forkedFrom": None}}
    body = await gql(DELETE, {"i": {"id": p["prompt"]["id"]}}, token=w.alice)
    [e] = errs(body, "deletePrompt")
    assert e == {"code": "NOT_FOUND", "message": "No prompt with this ID.", "field": ["input", "id"]}
    # The second attempt's FAILURE names no project (the prompt no longer exists), so only the success is listed.
    events = await audit_events(gql, w.alice, "alpha", "prompt.delete")
    assert [(e["result"], e["resourceId"]) for e in events] == [("SUCCESS", p["prompt"]["id"])]
