"""Who may read and write prompts: roles, API key scopes, other tenants and anonymous callers."""
from __future__ import annotations

from tests.registry.util import (COMMIT, CREATE, DELETE, FORK, ROLLBACK, UPDATE, audit_events, create_prompt, make_world,
                                 payload)

READ = """query($p: ID!, $v: ID!, $project: ID!) {
  node(id: $p) { id } nodes(ids: [$p, $v]) { id }
  project(slug: "alpha") { tags prompt(name: "shared/p") { id } prompts { totalCount nodes { id } } }
  projectNode: node(id: $project) { ... on Project { prompt(name: "shared/p") { id } prompts { totalCount } tags } }
  searchPrompts(projectId: $project, query: "shared") { prompt { id } } }"""


def _visible(data: dict, pid: str) -> bool:
    """Whether every way of reading the prompt found it (and none did when it is not visible)."""
    views = [
        data["node"] is not None,
        data["nodes"][0] is not None and data["nodes"][1] is not None,
        bool(data["project"] and data["project"]["prompt"]),
        bool(data["project"] and data["project"]["prompts"]["totalCount"] == 1),
        bool(data["project"] and data["project"]["tags"] == ["team"]),
        bool(data["projectNode"] and data["projectNode"].get("prompt")),
        bool(data["projectNode"] and data["projectNode"].get("prompts", {}).get("totalCount") == 1),
        [h["prompt"]["id"] for h in data["searchPrompts"]] == [pid],
    ]
    assert all(views) or not any(views), views
    return all(views)


async def test_who_can_read(gql):
    w = await make_world(gql, members=True, keys=True)
    p = await create_prompt(gql, w.alice, w.a, "shared/p", "shared text", tags=["team"])
    pid, vid = p["prompt"]["id"], p["version"]["id"]
    readers = {"alice": w.alice, "ada": w.ada, "eve": w.eve, "vic": w.vic, "key_read": w.key_read,
               "key_write": w.key_write, "key_admin": w.key_admin}
    outsiders = {"bob": w.bob, "key_exec": w.key_exec, "anonymous": ""}
    for who, token in {**readers, **outsiders}.items():
        body = await gql(READ, {"p": pid, "v": vid, "project": w.a}, token=token)
        assert _visible(body["data"], pid) is (who in readers), who
    # The executions-only key sees the project, but not its prompts.
    body = await gql(READ, {"p": pid, "v": vid, "project": w.a}, token=w.key_exec)
    assert body["data"]["project"] == {"tags": [], "prompt": None, "prompts": {"totalCount": 0, "nodes": []}}

    # A key of A and a member of A see nothing of B's prompts.
    q = (await create_prompt(gql, w.bob, w.b, "shared/p", "shared text", tags=["team"]))["prompt"]
    for token in (w.alice, w.key_read, w.key_admin, ""):
        data = (await gql("""query($q: ID!, $b: ID!) { node(id: $q) { id } nodes(ids: [$q]) { id }
            b: node(id: $b) { id } searchPrompts(projectId: $b, query: "shared") { prompt { id } }
            project(slug: "beta") { id } }""", {"q": q["id"], "b": w.b}, token=token))["data"]
        assert data == {"node": None, "nodes": [None], "b": None, "searchPrompts": [], "project": None}


async def test_who_can_write_and_delete(gql):
    w = await make_world(gql, members=True, keys=True)
    base = await create_prompt(gql, w.alice, w.a, "base", "v1")
    pid, vid = base["prompt"]["id"], base["version"]["id"]
    counter = iter(range(1000))

    def write_calls():
        n = next(counter)
        return [
            ("createPrompt", CREATE, {"projectId": w.a, "name": f"n{n}", "content": {"template": "x"}}),
            ("updatePrompt", UPDATE, {"id": pid, "description": f"d{n}"}),
            ("createPromptVersion", COMMIT, {"promptId": pid, "content": {"template": f"v{n}"}}),
            ("rollbackPrompt", ROLLBACK, {"promptId": pid, "toVersion": 1}),
            ("forkPrompt", FORK, {"versionId": vid, "projectId": w.a, "name": f"f{n}"}),
        ]

    async def outcomes(token):
        out = {}
        for field, mutation, inp in write_calls():
            body = await gql(mutation, {"i": inp}, token=token)
            errors = payload(body, field)["userErrors"]
            # A rollback to the content that is already the latest is a CONFLICT, not a permission problem.
            out[field] = errors[0]["code"] if errors and errors[0]["code"] != "CONFLICT" else "OK"
        return out

    allowed = {f: "OK" for f in ("createPrompt", "updatePrompt", "createPromptVersion", "rollbackPrompt",
                                 "forkPrompt")}
    for who, token in (("alice", w.alice), ("ada", w.ada), ("eve", w.eve), ("key_write", w.key_write),
                       ("key_admin", w.key_admin)):
        assert await outcomes(token) == allowed, who
    forbidden = {**{f: "FORBIDDEN" for f in allowed}, "forkPrompt": "FORBIDDEN"}
    for who, token in (("vic", w.vic), ("key_read", w.key_read)):
        assert await outcomes(token) == forbidden, who
    # The executions-only key may see the project but not the prompt: NOT_FOUND where a prompt is named.
    assert await outcomes(w.key_exec) == {"createPrompt": "FORBIDDEN", "updatePrompt": "NOT_FOUND",
                                          "createPromptVersion": "NOT_FOUND", "rollbackPrompt": "NOT_FOUND",
                                          "forkPrompt": "NOT_FOUND"}
    # Another tenant learns nothing: NOT_FOUND, with the field at fault.
    body = await gql(UPDATE, {"i": {"id": pid, "description": "x"}}, token=w.bob)
    assert payload(body, "updatePrompt")["userErrors"] == [
        {"code": "NOT_FOUND", "message": "No prompt with this ID.", "field": ["input", "id"]}]
    assert await outcomes(w.bob) == {f: "NOT_FOUND" for f in allowed}

    # A's keys and members reach nothing of B through any mutation.
    theirs = await create_prompt(gql, w.bob, w.b, "theirs")
    tid, tvid = theirs["prompt"]["id"], theirs["version"]["id"]
    for token in (w.key_write, w.key_admin, w.alice):
        calls = [("createPrompt", CREATE, {"projectId": w.b, "name": "x", "content": {"template": "x"}}),
                 ("updatePrompt", UPDATE, {"id": tid, "description": "x"}),
                 ("createPromptVersion", COMMIT, {"promptId": tid, "content": {"template": "x"}}),
                 ("rollbackPrompt", ROLLBACK, {"promptId": tid, "toVersion": 1}),
                 ("forkPrompt", FORK, {"versionId": tvid, "projectId": w.a, "name": "stolen"}),
                 ("deletePrompt", DELETE, {"id": tid})]
        for field, mutation, inp in calls:
            [e] = payload(await gql(mutation, {"i": inp}, token=token), field)["userErrors"]
            assert e["code"] == "NOT_FOUND", (field, e)
    body = await gql("""query($id: ID!) { node(id: $id) { ... on Prompt { versionCount description } } }""",
                     {"id": tid}, token=w.bob)
    assert body["data"]["node"] == {"versionCount": 1, "description": None}

    # Anonymous callers: a top-level UNAUTHENTICATED error, nothing written.
    for field, mutation, inp in write_calls() + [("deletePrompt", DELETE, {"id": pid})]:
        body = await gql(mutation, {"i": inp}, token="", check=False)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", field

    # Deleting: OWNER and ADMIN (and PROJECT_ADMIN keys) only.
    victims = [(await create_prompt(gql, w.alice, w.a, f"victim{i}"))["prompt"]["id"] for i in range(3)]
    for token in (w.eve, w.vic, w.key_write, w.key_read, w.bob):
        body = await gql(DELETE, {"i": {"id": victims[0]}}, token=token)
        [e] = payload(body, "deletePrompt")["userErrors"]
        assert e["code"] == ("NOT_FOUND" if token == w.bob else "FORBIDDEN")
    for token, victim in zip((w.alice, w.ada, w.key_admin), victims):
        body = await gql(DELETE, {"i": {"id": victim}}, token=token)
        assert payload(body, "deletePrompt") == {"deletedId": victim, "userErrors": []}

    # Refused attempts are in the project's audit log: eve, vic and both keys DENIED, bob (who cannot see
    # the project) a FAILURE.
    results = [e["result"] for e in await audit_events(gql, w.alice, "alpha", "prompt.delete")]
    assert sorted(results) == ["DENIED"] * 4 + ["FAILURE"] + ["SUCCESS"] * 3
    denied = [e["result"] for e in await audit_events(gql, w.alice, "alpha", "prompt.create")]
    assert denied.count("DENIED") == 3  # vic, key_read, key_exec


async def test_ids_of_the_wrong_type_or_garbage_are_not_found(gql):
    w = await make_world(gql)
    p = await create_prompt(gql, w.alice, w.a, "p")
    for bad in (p["version"]["id"], w.a, "garbage", ""):
        body = await gql(COMMIT, {"i": {"promptId": bad, "content": {"template": "x"}}}, token=w.alice)
        assert payload(body, "createPromptVersion")["userErrors"] == [
            {"code": "NOT_FOUND", "message": "No prompt with this ID.", "field": ["input", "promptId"]}]
        body = await gql(CREATE, {"i": {"projectId": bad if bad != w.a else p["prompt"]["id"], "name": "n",
                                        "content": {"template": "x"}}}, token=w.alice)
        [e] = payload(body, "createPrompt")["userErrors"]
        assert (e["code"], e["field"]) == ("NOT_FOUND", ["input", "projectId"])
