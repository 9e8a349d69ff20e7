"""Helpers for the deployment and validation tests: prompts, versions and deployments via GraphQL."""
from __future__ import annotations

import base64
import uuid
from typing import Any

from tests.helpers import add_member, create_api_key, create_project, signup

__all__ = ["add_member", "create_api_key", "create_project", "signup", "create_prompt", "add_version", "deploy",
           "split", "undeploy", "ERR", "raw_uuid", "Tenant", "tenant"]

ERR = "userErrors { code message field }"
DEPLOYMENTS = "deployments { id environment trafficPercentage isActive version { id number } }"


def raw_uuid(gid: str) -> uuid.UUID:
    """The UUID inside a global ID (base64url of "Type:uuid")."""
    raw = base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode()
    return uuid.UUID(raw.partition(":")[2])


def _ok(body: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in body, body.get("errors")
    payload = body["data"][field]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def create_prompt(gql, token: str, project_id: str, name: str, template: str = "Hello {{name}}!") -> tuple[str, str]:
    """Create a TEXT prompt; returns (prompt id, version 1 id)."""
    body = await gql(
        """mutation($input: CreatePromptInput!) { createPrompt(input: $input) {
             prompt { id } version { id number } userErrors { code message field } } }""",
        {"input": {"projectId": project_id, "name": name, "content": {"template": template}}}, token=token)
    p = _ok(body, "createPrompt")
    return p["prompt"]["id"], p["version"]["id"]


async def add_version(gql, token: str, prompt_id: str, template: str) -> str:
    body = await gql(
        """mutation($input: CreatePromptVersionInput!) { createPromptVersion(input: $input) {
             version { id number } userErrors { code message field } } }""",
        {"input": {"promptId": prompt_id, "content": {"template": template}}}, token=token)
    return _ok(body, "createPromptVersion")["version"]["id"]


async def deploy(gql, token: str, version_id: str, environment: str = "production") -> dict[str, Any]:
    body = await gql(
        f"""mutation($input: DeployPromptVersionInput!) {{ deployPromptVersion(input: $input) {{
             {DEPLOYMENTS} {ERR} }} }}""",
        {"input": {"versionId": version_id, "environment": environment}}, token=token)
    return body["data"]["deployPromptVersion"]


async def split(gql, token: str, prompt_id: str, parts: list[tuple[str, int]],
                environment: str = "production") -> dict[str, Any]:
    body = await gql(
        f"""mutation($input: SetTrafficSplitInput!) {{ setTrafficSplit(input: $input) {{
             {DEPLOYMENTS} {ERR} }} }}""",
        {"input": {"promptId": prompt_id, "environment": environment,
                   "splits": [{"versionId": v, "percentage": p} for v, p in parts]}}, token=token)
    return body["data"]["setTrafficSplit"]


async def undeploy(gql, token: str, prompt_id: str, environment: str = "production") -> dict[str, Any]:
    body = await gql(
        f"""mutation($input: UndeployPromptInput!) {{ undeployPrompt(input: $input) {{
             {DEPLOYMENTS} {ERR} }} }}""",
        {"input": {"promptId": prompt_id, "environment": environment}}, token=token)
    return body["data"]["undeployPrompt"]


class Tenant:
    """An owner with a project, a prompt "greeting" with versions 1..n."""

    token: str
    user_id: str
    project_id: str
    prompt_id: str
    versions: list[str]


async def tenant(gql, name: str, versions: int = 2) -> Tenant:
    t = Tenant()
    t.token, t.user_id = await signup(gql, name)
    t.project_id = await create_project(gql, t.token, f"{name}-proj")
    t.prompt_id, v1 = await create_prompt(gql, t.token, t.project_id, "greeting", "Hello v1 {{name}}")
    t.versions = [v1]
    for n in range(2, versions + 1):
        t.versions.append(await add_version(gql, t.token, t.prompt_id, f"Hello v{n} {{{{name}}}}"))
    return t
