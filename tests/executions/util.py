"""Helpers of the execution tests: tenants, prompts, executePrompt and waiting for an outcome."""
from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

import asyncpg

from tests.helpers import add_member, create_api_key, create_project, signup

__all__ = ["add_member", "create_api_key", "create_project", "signup", "ERR", "EXEC_FIELDS", "Tenant", "tenant",
           "create_prompt", "execute", "execute_ok", "get_execution", "wait_for", "raw_uuid", "db_fetch",
           "db_execute", "set_credential", "upsert_model", "TERMINAL"]

ERR = "userErrors { code message field }"
EXEC_FIELDS = """id status priority environment output error provider model attempts maxAttempts
  createdAt startedAt completedAt cancelRequestedAt latencyMs timeToFirstTokenMs costUsd renderedPrompt
  validationStatus validatedOutput validationResults { name passed message validation { id name } }
  usage { inputTokens outputTokens totalTokens } version { id number } prompt { id name }
  deployment { id environment }"""
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def raw_uuid(gid: str) -> uuid.UUID:
    raw = base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode()
    return uuid.UUID(raw.partition(":")[2])


async def db_fetch(db_url: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def db_execute(db_url: str, sql: str, *args) -> str:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.execute(sql, *args)
    finally:
        await conn.close()


def _ok(body: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in body, body.get("errors")
    payload = body["data"][field]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def create_prompt(gql, token: str, project_id: str, name: str, content: dict | None = None,
                        template: str = "Hello {{name}}!") -> tuple[str, str]:
    """Create a prompt (TEXT ``template`` unless ``content`` is given); returns (prompt id, version id)."""
    body = await gql(
        f"""mutation($input: CreatePromptInput!) {{ createPrompt(input: $input) {{
             prompt {{ id }} version {{ id number }} {ERR} }} }}""",
        {"input": {"projectId": project_id, "name": name, "content": content or {"template": template}}},
        token=token)
    p = _ok(body, "createPrompt")
    return p["prompt"]["id"], p["version"]["id"]


class Tenant:
    token: str
    user_id: str
    project_id: str
    prompt_id: str
    version_id: str


async def tenant(gql, name: str, template: str = "Hello {{name}}!") -> Tenant:
    t = Tenant()
    t.token, t.user_id = await signup(gql, name)
    t.project_id = await create_project(gql, t.token, f"{name}-proj")
    t.prompt_id, t.version_id = await create_prompt(gql, t.token, t.project_id, "greeting", template=template)
    return t


async def execute(gql, token: str, fields: str = "id status", **input_: Any) -> dict[str, Any]:
    """executePrompt with ``input_`` (camelCase keys); returns the payload."""
    input_.setdefault("variables", {})
    body = await gql(f"""mutation($input: ExecutePromptInput!) {{ executePrompt(input: $input) {{
        execution {{ {fields} }} {ERR} }} }}""", {"input": input_}, token=token)
    assert "errors" not in body, body["errors"]
    return body["data"]["executePrompt"]


async def execute_ok(gql, token: str, **input_: Any) -> str:
    p = await execute(gql, token, **input_)
    assert p["userErrors"] == [], p["userErrors"]
    return p["execution"]["id"]


async def get_execution(gql, token: str, execution_id: str, fields: str = EXEC_FIELDS) -> dict[str, Any] | None:
    body = await gql(f"query($id: ID!) {{ node(id: $id) {{ ... on Execution {{ {fields} }} }} }}",
                     {"id": execution_id}, token=token)
    return body["data"]["node"]


async def wait_for(gql, token: str, execution_id: str, statuses=TERMINAL, timeout: float = 10.0,
                   fields: str = EXEC_FIELDS, predicate=None) -> dict[str, Any]:
    """Poll until the execution's status is one of ``statuses`` (and ``predicate(execution)`` holds)."""
    deadline = time.monotonic() + timeout
    while True:
        e = await get_execution(gql, token, execution_id, fields)
        if e is not None and e["status"] in statuses and (predicate is None or predicate(e)):
            return e
        if time.monotonic() > deadline:
            raise AssertionError(f"execution did not reach {statuses} in {timeout} s: {e}")
        await asyncio.sleep(0.05)


async def set_credential(gql, token: str, project_id: str, provider: str, api_key: str, base_url: str) -> None:
    body = await gql(f"""mutation($input: SetProviderCredentialInput!) {{ setProviderCredential(input: $input) {{
        credential {{ id }} {ERR} }} }}""",
                     {"input": {"projectId": project_id, "provider": provider, "apiKey": api_key,
                                "baseUrl": base_url}}, token=token)
    _ok(body, "setProviderCredential")


async def upsert_model(gql, token: str, **input_: Any) -> dict[str, Any]:
    body = await gql(f"""mutation($input: UpsertModelConfigInput!) {{ upsertModelConfig(input: $input) {{
        modelConfig {{ id provider modelId displayName inputPricePerMillion outputPricePerMillion
                       cachedInputPricePerMillion effectiveFrom isActive contextLength supportsTools }}
        {ERR} }} }}""", {"input": input_}, token=token)
    assert "errors" not in body, body["errors"]
    return body["data"]["upsertModelConfig"]
