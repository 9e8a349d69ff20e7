"""Fuzzing: schemathesis, in GraphQL mode, against a real server, must find nothing.

The server is a real uvicorn (the ``live`` fixture) on a fresh database, with a signed-up user who
owns a project with a prompt, so that mutations and nested reads run for real rather than stopping
at UNAUTHENTICATED. Schemathesis's CLI runs every phase it has for GraphQL — examples, coverage,
fuzzing and the stateful phase (mutations that create objects chained to the operations that take
their ids) — with strategies for our scalars and our checks (``fuzz_hooks.py``): no 5xx, no
INTERNAL_SERVER_ERROR, every error with ``extensions.code``, responses that follow the schema.

Bounded: ``PROMPTSTUDIO_FUZZ_MAX_EXAMPLES`` examples per operation (default 25) and
``PROMPTSTUDIO_FUZZ_MAX_SECONDS`` for the whole run (default 100). Marked ``fuzz``: it runs with the
rest (``make test``); ``-m "not fuzz"`` leaves it out while iterating.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = int(os.environ.get("PROMPTSTUDIO_FUZZ_MAX_EXAMPLES", "25"))
MAX_SECONDS = int(os.environ.get("PROMPTSTUDIO_FUZZ_MAX_SECONDS", "100"))

pytestmark = pytest.mark.fuzz


async def _seed(url: str) -> tuple[str, dict[str, list[str]]]:
    """A user owning a project (with a member) and, in it, a prompt with a deployed version, a
    validation, an API key and an execution. Returns the owner's session token and the values of
    each kind (ids, slugs, names) for the fuzzer's dictionaries."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async def gql(query: str, variables: dict, token: str | None = None) -> dict:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            body = (await client.post("/graphql", json={"query": query, "variables": variables},
                                      headers=headers)).json()
            assert "errors" not in body, body
            payload = next(iter(body["data"].values()))
            assert payload["userErrors"] == [], payload
            return payload

        async def sign_up(name: str) -> dict:
            return await gql("mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } userErrors { message } } }",
                             {"i": {"email": f"{name}@example.com", "username": name, "password": "correct horse battery"}})

        owner = await sign_up("fuzz")
        member = await sign_up("fuzzmate")
        token = owner["token"]
        project = (await gql("mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } "
                             "userErrors { message } } }", {"i": {"name": "Fuzz", "slug": "fuzz"}}, token))["project"]
        await gql("mutation($i: AddProjectMemberInput!) { addProjectMember(input: $i) { member { role } "
                  "userErrors { message } } }",
                  {"i": {"projectId": project["id"], "login": "fuzzmate", "role": "EDITOR"}}, token)
        created = await gql("mutation($i: CreatePromptInput!) { createPrompt(input: $i) { prompt { id } version { id } "
                            "userErrors { message } } }",
                            {"i": {"projectId": project["id"], "name": "greeting", "description": "fuzz seed",
                                   "content": {"template": "Hello {{name}}!"}}}, token)
        prompt_id, version_id = created["prompt"]["id"], created["version"]["id"]
        await gql("mutation($i: DeployPromptVersionInput!) { deployPromptVersion(input: $i) { userErrors { message } } }",
                  {"i": {"versionId": version_id, "environment": "production"}}, token)
        validation = await gql("mutation($i: CreateValidationInput!) { createValidation(input: $i) { validation { id } "
                               "userErrors { message } } }",
                               {"i": {"promptId": prompt_id, "name": "greets", "type": "REGEX",
                                      "config": {"pattern": "^Hello"}}}, token)
        key = await gql("mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { apiKey { id } "
                        "userErrors { message } } }",
                        {"i": {"projectId": project["id"], "name": "fuzz", "scopes": ["PROMPTS_READ"]}}, token)
        execution = await gql("mutation($i: ExecutePromptInput!) { executePrompt(input: $i) { execution { id } "
                               "userErrors { message } } }",
                               {"i": {"promptId": prompt_id, "variables": {"name": "fuzz"}}}, token)
        ids = {
            "projects": [project["id"]], "prompts": [prompt_id], "versions": [version_id],
            "executions": [execution["execution"]["id"]], "users": [owner["user"]["id"], member["user"]["id"]],
            "objects": [validation["validation"]["id"], key["apiKey"]["id"], execution["execution"]["id"]],
            "slugs": ["fuzz"], "prompt_names": ["greeting"], "environments": ["production", "staging"],
            "logins": ["fuzzmate", "fuzz@example.com"],
        }
        ids["any_id"] = [i for kind in ("projects", "prompts", "versions", "executions", "users", "objects")
                         for i in ids[kind]]
        return token, ids


#: Which arguments (``Type.field.argument[.input field]``, ``*`` for any) draw from which seeded values.
BINDINGS = {
    "projects": ["*.*.projectId", "*.*.input.projectId"],
    "prompts": ["*.*.promptId", "*.*.input.promptId"],
    "versions": ["*.*.input.versionId", "*.*.against"],
    "executions": ["*.*.input.executionId", "Query.node.id"],
    "users": ["*.*.input.userId"],
    "objects": ["*.*.input.id"],
    "any_id": ["Query.nodes.ids[*]"],
    "slugs": ["Query.project.slug"],
    "prompt_names": ["Query.resolvePrompt.name", "*.*.input.name"],
    "environments": ["*.*.environment", "*.*.input.environment"],
    "logins": ["*.*.input.login"],
}


def _config(ids: dict[str, list[str]]) -> str:
    """A schemathesis.toml: the seeded values as dictionaries, bound to the arguments that take them
    (most of the time: the rest stays random)."""
    lines = []
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for name, keys in BINDINGS.items():
        for key in keys:
            lines.append(f'"{key}" = {{ dictionary = "{name}", probability = 0.8 }}')
    return "\n".join(lines) + "\n"


async def test_schemathesis_finds_nothing(live, caplog, tmp_path, db_url):
    async with live() as server:
        token, ids = await _seed(server.url)
        config = tmp_path / "schemathesis.toml"
        config.write_text(_config(ids))
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.hardening.fuzz_hooks",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        command = [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{server.url}/graphql",
            "--header", f"Authorization: Bearer {token}",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--checks", "no_server_error,every_error_has_a_code,response_schema_conformance",
            "--max-examples", str(MAX_EXAMPLES),
            "--max-time", str(MAX_SECONDS),
            "--workers", "1",
            "--seed", os.environ.get("PROMPTSTUDIO_FUZZ_SEED", "20260101"),
            "--exclude-name", "Mutation.logOut",  # it would end the session the run is signed in with
            "--report", "junit", "--report-dir", str(tmp_path),
            "--no-color",
        ]
        with caplog.at_level(logging.ERROR, logger="promptstudio"):
            process = await asyncio.create_subprocess_exec(*command, cwd=tmp_path, env=env,
                                                           stdout=asyncio.subprocess.PIPE,
                                                           stderr=asyncio.subprocess.STDOUT)
            output, _ = await asyncio.wait_for(process.communicate(), MAX_SECONDS + 120)
        text = output.decode(errors="replace")
        print(text)
        assert process.returncode == 0, text[-20000:]
        internal = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert internal == [], internal
    # What the run did, from the audit log (every mutation writes an event; schemathesis's requests
    # are told apart from the seeding by their User-Agent): it must have got past the arguments'
    # checks and changed things, not only been refused.
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT action, result, count(*) AS n FROM audit_events "
                                "WHERE user_agent ILIKE 'schemathesis%' GROUP BY 1, 2 ORDER BY 1, 2")
    finally:
        await conn.close()
    print("audit events of the run:", ", ".join(f"{r['action']} {r['result']} x{r['n']}" for r in rows))
    succeeded = {r["action"] for r in rows if r["result"] == "SUCCESS"}
    assert len(succeeded) >= 5, rows
