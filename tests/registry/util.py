"""Helpers for the prompt registry tests: people, projects and prompts made through GraphQL."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.helpers import add_member, create_api_key, create_project, signup

ERRORS = "userErrors { code message field }"

VERSION_FIELDS = """id number kind format template messages { role content } systemPrompt
  variables { name type required defaultValue description options }
  modelSettings { provider model temperature maxTokens topP stop extra }
  outputSchema commitMessage contentHash isLatest createdAt author { id }
  restoredFrom { id number } previous { number }"""

PROMPT_FIELDS = """id name description category tags status createdAt updatedAt publishedAt versionCount
  createdBy { id } project { id } forkedFrom { id number }
  latestVersion { number contentHash }"""

CREATE = f"""mutation($i: CreatePromptInput!) {{ createPrompt(input: $i) {{
  prompt {{ {PROMPT_FIELDS} }} version {{ {VERSION_FIELDS} }} {ERRORS} }} }}"""

UPDATE = f"""mutation($i: UpdatePromptInput!) {{ updatePrompt(input: $i) {{
  prompt {{ {PROMPT_FIELDS} }} {ERRORS} }} }}"""

DELETE = f"""mutation($i: DeletePromptInput!) {{ deletePrompt(input: $i) {{ deletedId {ERRORS} }} }}"""

COMMIT = f"""mutation($i: CreatePromptVersionInput!) {{ createPromptVersion(input: $i) {{
  version {{ {VERSION_FIELDS} }} {ERRORS} }} }}"""

ROLLBACK = f"""mutation($i: RollbackPromptInput!) {{ rollbackPrompt(input: $i) {{
  version {{ {VERSION_FIELDS} }} {ERRORS} }} }}"""

FORK = f"""mutation($i: ForkPromptInput!) {{ forkPrompt(input: $i) {{
  prompt {{ {PROMPT_FIELDS} }} version {{ {VERSION_FIELDS} }} {ERRORS} }} }}"""


def payload(body: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in body, body.get("errors")
    return body["data"][field]


def ok(body: dict[str, Any], field: str) -> dict[str, Any]:
    p = payload(body, field)
    assert p["userErrors"] == [], p["userErrors"]
    return p


def errs(body: dict[str, Any], field: str) -> list[dict[str, Any]]:
    p = payload(body, field)
    assert p["userErrors"], p
    return p["userErrors"]


async def create_prompt(gql, token: str, project_id: str, name: str, template: str = "Hello {{name}}",
                        **extra: Any) -> dict[str, Any]:
    """createPrompt with a TEXT template (or ``content=`` given in full); returns the payload."""
    content = extra.pop("content", None) or {"template": template}
    body = await gql(CREATE, {"i": {"projectId": project_id, "name": name, "content": content, **extra}},
                     token=token)
    return ok(body, "createPrompt")


async def commit(gql, token: str, prompt_id: str, template: str, **extra: Any) -> dict[str, Any]:
    content = extra.pop("content", None) or {"template": template}
    body = await gql(COMMIT, {"i": {"promptId": prompt_id, "content": content, **extra}}, token=token)
    return ok(body, "createPromptVersion")["version"]


async def audit_events(gql, token: str, slug: str, action: str) -> list[dict[str, Any]]:
    body = await gql("""query($s: String!, $a: String) { project(slug: $s) {
        auditEvents(first: 100, filter: {action: $a}) { nodes { action result resourceType resourceId details
          actor { id } } } } }""", {"s": slug, "a": action}, token=token)
    return body["data"]["project"]["auditEvents"]["nodes"]


@dataclass
class World:
    """Two tenants: project A (slug ``alpha``) of alice, project B (``beta``) of bob.

    In A: eve is EDITOR, vic is VIEWER, ada is ADMIN. Keys of A: ``key_read`` (PROMPTS_READ),
    ``key_write`` (PROMPTS_WRITE), ``key_exec`` (EXECUTIONS_READ only), ``key_admin`` (PROJECT_ADMIN).
    """

    alice: str
    alice_id: str
    bob: str
    a: str
    b: str
    eve: str = ""
    vic: str = ""
    ada: str = ""
    key_read: str = ""
    key_write: str = ""
    key_exec: str = ""
    key_admin: str = ""


async def make_world(gql, *, members: bool = False, keys: bool = False) -> World:
    # The first account of an installation becomes superuser: take it, so nobody below is one.
    await signup(gql, "root")
    alice, alice_id = await signup(gql, "alice")
    bob, _ = await signup(gql, "bob")
    w = World(alice=alice, alice_id=alice_id, bob=bob, a=await create_project(gql, alice, "alpha"),
              b=await create_project(gql, bob, "beta"))
    if members:
        for name, role in (("eve", "EDITOR"), ("vic", "VIEWER"), ("ada", "ADMIN")):
            token, _ = await signup(gql, name)
            await add_member(gql, alice, w.a, name, role)
            setattr(w, name, token)
    if keys:
        w.key_read = await create_api_key(gql, alice, w.a, ["PROMPTS_READ"], "read")
        w.key_write = await create_api_key(gql, alice, w.a, ["PROMPTS_WRITE"], "write")
        w.key_exec = await create_api_key(gql, alice, w.a, ["EXECUTIONS_READ"], "exec")
        w.key_admin = await create_api_key(gql, alice, w.a, ["PROJECT_ADMIN"], "admin")
    return w
