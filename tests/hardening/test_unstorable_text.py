"""A NUL (U+0000) or a lone surrogate in any string input is BAD_USER_INPUT naming where it was, never
an internal error: PostgreSQL cannot store either, so they are refused before anything runs."""
from __future__ import annotations

import json
import logging

import pytest

from tests.helpers import create_project, signup

NUL = "\x00"
SURROGATE = "\ud800"


async def _post(client, query: str, variables: dict | None = None, *, token: str | None = None,
                accept: str = "application/json"):
    # json.dumps writes a lone surrogate as the escape "\ud800", as a client's JSON would
    headers = {"content-type": "application/json", "accept": accept}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/graphql", content=json.dumps({"query": query, "variables": variables or {}}),
                             headers=headers)


def _refused(response, *fragments: str) -> str:
    assert response.status_code in (200, 400), (response.status_code, response.text)
    body = response.json()
    assert "data" not in body, body
    assert len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", body
    for fragment in fragments:
        assert fragment in error["message"], (fragment, error["message"])
    return error["message"]


@pytest.fixture
async def owner(gql):
    token, _ = await signup(gql, "alice")
    project_id = await create_project(gql, token, "acme")
    body = await gql("""mutation($i: CreatePromptInput!) { createPrompt(input: $i) {
                          prompt { id } userErrors { message } } }""",
                     {"i": {"projectId": project_id, "name": "greet", "content": {"template": "Hi {{name}}"}}},
                     token=token)
    return token, project_id, body["data"]["createPrompt"]["prompt"]["id"]


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_variables_of_mutation_inputs(client, owner, bad, caplog):
    token, project_id, prompt_id = owner
    with caplog.at_level(logging.INFO, logger="promptstudio"):
        r = await _post(client, "mutation($i: LogInInput!) { logIn(input: $i) { token } }",
                        {"i": {"login": f"alice{bad}", "password": "x"}})
        _refused(r, "'$i'", "'i.login'")
        r = await _post(client, "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } } }",
                        {"i": {"name": f"n{bad}", "slug": "ok-slug"}}, token=token)
        _refused(r, "'i.name'")
        r = await _post(client, "mutation($i: CreatePromptVersionInput!) { createPromptVersion(input: $i) { version { id } } }",
                        {"i": {"promptId": prompt_id, "content": {"template": f"Hello{bad}"}}}, token=token)
        _refused(r, "'i.content.template'")
        r = await _post(client, "mutation($i: ExecutePromptInput!) { executePrompt(input: $i) { execution { id } } }",
                        {"i": {"promptId": prompt_id, "variables": {"name": "x"}, "idempotencyKey": f"k{bad}"}},
                        token=token)
        _refused(r, "'i.idempotencyKey'")
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_anywhere_inside_json_values_keys_too(client, owner, bad):
    token, _, prompt_id = owner
    q = "mutation($i: ExecutePromptInput!) { executePrompt(input: $i) { execution { id } } }"
    r = await _post(client, q, {"i": {"promptId": prompt_id, "variables": {"name": ["a", {"deep": f"x{bad}"}]}}},
                    token=token)
    _refused(r, "'i.variables.name[1].deep'")
    r = await _post(client, q, {"i": {"promptId": prompt_id, "variables": {"name": "x"}, "context": {f"k{bad}": 1}}},
                    token=token)
    _refused(r, "i.context.k", "a key")
    r = await _post(client, "mutation($v: JSON!, $p: ID!) { executePrompt(input: {promptId: $p, variables: $v}) { "
                            "execution { id } } }", {"v": {"name": bad}, "p": prompt_id}, token=token)
    _refused(r, "'$v'", "'v.name'")


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_variables_of_query_arguments(client, owner, bad):
    token, project_id, _ = owner
    r = await _post(client, "query($s: String!) { project(slug: $s) { id } }", {"s": f"acme{bad}"}, token=token)
    _refused(r, "Variable '$s' has invalid value")
    r = await _post(client, "query($p: ID!, $q: String!) { searchPrompts(projectId: $p, query: $q) { score } }",
                    {"p": project_id, "q": f"hello{bad}"}, token=token)
    _refused(r, "'$q'")
    r = await _post(client, "query($p: ID!, $k: String) { resolvePrompt(projectId: $p, name: \"greet\", "
                            "subjectKey: $k, fallbackToLatest: true) { version { id } } }",
                    {"p": project_id, "k": f"user{bad}"}, token=token)
    _refused(r, "'$k'")
    r = await _post(client, "query($f: AuditFilter) { project(slug: \"acme\") { auditEvents(filter: $f) { "
                            "totalCount } } }", {"f": {"action": f"prompt.create{bad}"}}, token=token)
    _refused(r, "'f.action'")


async def test_literals_in_the_document(client, owner):
    """A NUL can be written in a GraphQL string literal ("\\u0000"); a lone surrogate cannot (the
    parser refuses it: GRAPHQL_PARSE_FAILED)."""
    token, project_id, prompt_id = owner
    r = await _post(client, '{ project(slug: "acme\\u0000") { id } }', token=token)
    _refused(r, "Argument 'slug' of field 'project'")
    r = await _post(client, 'mutation { createProject(input: {name: "x\\u0000", slug: "fine"}) { project { id } } }',
                    token=token)
    _refused(r, "Argument 'input' of field 'createProject'", "'input.name'")
    r = await _post(client, f'mutation {{ executePrompt(input: {{promptId: "{prompt_id}", '
                            'variables: {name: ["ok", {inner: "a\\u0000"}]}}) { execution { id } } }', token=token)
    _refused(r, "'input.variables.name[1].inner'")
    r = await _post(client, 'query($s: String = "a\\u0000") { project(slug: $s) { id } }', token=token)
    _refused(r, "default value", "'$s'")
    r = await _post(client, '{ project(slug: "\\ud800") { id } }', token=token)
    body = r.json()
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED", body


async def test_graphql_response_json_makes_it_a_400(client, owner):
    token, _, _ = owner
    r = await _post(client, "query($s: String!) { project(slug: $s) { id } }", {"s": NUL}, token=token,
                    accept="application/graphql-response+json")
    assert r.status_code == 400
    _refused(r, "'$s'")


async def test_valid_unicode_still_passes(client, owner):
    """Characters beyond the BMP (a surrogate pair in JSON) and other control characters are fine."""
    token, _, _ = owner
    r = await _post(client, "mutation($i: CreateProjectInput!) { createProject(input: $i) { "
                            "project { name } userErrors { code } } }",
                    {"i": {"name": "rocket \U0001F680 tab\t bell\x07", "slug": "unicode"}}, token=token)
    body = r.json()
    assert body == {"data": {"createProject": {"project": {"name": "rocket \U0001F680 tab\t bell\x07"},
                                               "userErrors": []}}}, body
