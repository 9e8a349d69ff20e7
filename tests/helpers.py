"""Small async helpers for tests: sign up, log in, create projects, members and API keys.

All go through the GraphQL API (the ``gql`` fixture) and assert that ``userErrors`` is empty.
"""
from __future__ import annotations

from typing import Any

DEFAULT_PASSWORD = "correct horse battery"


def _ok(body: dict[str, Any], field: str) -> dict[str, Any]:
    assert "errors" not in body, body.get("errors")
    payload = body["data"][field]
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


async def signup(gql, name: str, *, password: str = DEFAULT_PASSWORD) -> tuple[str, str]:
    """Sign up ``name`` (email ``{name}@example.com``); returns (session token, user global id)."""
    body = await gql(
        """mutation($input: SignUpInput!) { signUp(input: $input) {
             token user { id } userErrors { code message field } } }""",
        {"input": {"email": f"{name}@example.com", "username": name, "password": password}},
        token="",
    )
    p = _ok(body, "signUp")
    assert p["token"], p
    return p["token"], p["user"]["id"]


async def login(gql, login: str, password: str = DEFAULT_PASSWORD) -> str:
    """Log in by email or username; returns the session token."""
    body = await gql(
        """mutation($input: LogInInput!) { logIn(input: $input) {
             token user { id } userErrors { code message field } } }""",
        {"input": {"login": login, "password": password}},
        token="",
    )
    p = _ok(body, "logIn")
    assert p["token"], p
    return p["token"]


async def create_project(gql, token: str, slug: str, name: str | None = None) -> str:
    """Create a project as ``token``'s user (who becomes OWNER); returns the project global id."""
    body = await gql(
        """mutation($input: CreateProjectInput!) { createProject(input: $input) {
             project { id } userErrors { code message field } } }""",
        {"input": {"name": name or slug, "slug": slug}},
        token=token,
    )
    return _ok(body, "createProject")["project"]["id"]


async def add_member(gql, token: str, project_id: str, login: str, role: str) -> None:
    """Add an existing user (email or username) to a project with ``role`` (OWNER/ADMIN/EDITOR/VIEWER)."""
    body = await gql(
        """mutation($input: AddProjectMemberInput!) { addProjectMember(input: $input) {
             member { role } userErrors { code message field } } }""",
        {"input": {"projectId": project_id, "login": login, "role": role}},
        token=token,
    )
    _ok(body, "addProjectMember")


async def create_api_key(gql, token: str, project_id: str, scopes: list[str], name: str = "key") -> str:
    """Create an API key of a project with ``scopes`` (ApiScope names); returns the secret."""
    body = await gql(
        """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
             secret apiKey { id } userErrors { code message field } } }""",
        {"input": {"projectId": project_id, "name": name, "scopes": scopes}},
        token=token,
    )
    p = _ok(body, "createApiKey")
    assert p["secret"], p
    return p["secret"]


async def kill_bus_connections(db_url: str) -> None:
    """Terminate the LISTEN connections of every event bus on the test database (``promptstudio-bus``,
    ``promptstudio-bus-http``): what a restarted PostgreSQL or a dropped network does to them."""
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name LIKE 'promptstudio-bus%' AND datname = current_database()")
    finally:
        await conn.close()
