"""API keys: created once-shown and stored hashed, scopes enforced, expiry, revocation, lastUsedAt."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from tests.helpers import add_member, create_api_key, create_project, signup

from .util import ERR, codes, raw_uuid, sql

CREATE = f"""mutation($input: CreateApiKeyInput!) {{ createApiKey(input: $input) {{ secret
  apiKey {{ id name prefix scopes createdAt expiresAt lastUsedAt revokedAt createdBy {{ username }}
            project {{ slug }} }} {ERR} }} }}"""
REVOKE = f"""mutation($id: ID!) {{ revokeApiKey(input: {{id: $id}}) {{ apiKey {{ id revokedAt }} {ERR} }} }}"""
KEYS = """query($slug: String!, $rev: Boolean) { project(slug: $slug) {
  apiKeys(includeRevoked: $rev) { totalCount nodes { id name prefix lastUsedAt revokedAt } } } }"""
PROJECT_READS = """query($slug: String!) { viewer { id } projects { totalCount nodes { slug } }
  project(slug: $slug) { slug viewerRole members { totalCount } apiKeys { totalCount }
    auditEvents { totalCount } providerCredentials { provider } } }"""


async def test_create_api_key_shows_secret_once_and_stores_hash(gql, db_url):
    owner, _ = await signup(gql, "owner")
    pid = await create_project(gql, owner, "keys")
    expires = (datetime.now(timezone.utc) + timedelta(days=30)).isoformat()
    body = await gql(CREATE, {"input": {"projectId": pid, "name": " ci ", "expiresAt": expires,
                                        "scopes": ["PROMPTS_READ", "EXECUTIONS_WRITE", "PROMPTS_READ"]}},
                     token=owner)
    p = body["data"]["createApiKey"]
    assert p["userErrors"] == []
    secret, key = p["secret"], p["apiKey"]
    assert secret.startswith("psk_") and secret.startswith(key["prefix"]) and len(key["prefix"]) < len(secret)
    assert key["name"] == "ci" and key["scopes"] == ["PROMPTS_READ", "EXECUTIONS_WRITE"]
    assert key["createdBy"] == {"username": "owner"} and key["project"] == {"slug": "keys"}
    assert key["expiresAt"] is not None and key["lastUsedAt"] is None and key["revokedAt"] is None
    async with sql(db_url) as conn:
        row = await conn.fetchrow("SELECT secret_hash, prefix FROM api_keys WHERE id = $1", raw_uuid(key["id"]))
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    # the secret is never shown again
    listed = (await gql(KEYS, {"slug": "keys"}, token=owner))["data"]["project"]["apiKeys"]
    assert listed["totalCount"] == 1 and secret not in str(listed)
    node = await gql("query($id: ID!) { node(id: $id) { ... on ApiKey { name prefix } } }", {"id": key["id"]},
                     token=owner)
    assert node["data"]["node"] == {"name": "ci", "prefix": key["prefix"]}


async def test_create_api_key_validation_and_permissions(gql):
    owner, _ = await signup(gql, "owner")
    editor, _ = await signup(gql, "editor")
    admin, _ = await signup(gql, "admin")
    pid = await create_project(gql, owner, "keys")
    await add_member(gql, owner, pid, "editor", "EDITOR")
    await add_member(gql, owner, pid, "admin", "ADMIN")
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    p = (await gql(CREATE, {"input": {"projectId": pid, "name": "", "scopes": [], "expiresAt": past}},
                   token=owner))["data"]["createApiKey"]
    assert sorted(codes(p)) == [("INVALID", ["input", "expiresAt"]), ("INVALID", ["input", "name"]),
                                ("INVALID", ["input", "scopes"])]
    assert p["secret"] is None and p["apiKey"] is None
    p = (await gql(CREATE, {"input": {"projectId": pid, "name": "e", "scopes": ["PROMPTS_READ"]}},
                   token=editor))["data"]["createApiKey"]
    assert codes(p) == [("FORBIDDEN", ["input", "projectId"])] and p["secret"] is None
    # an admin may; a key (even PROJECT_ADMIN) may not mint keys
    admin_key = await create_api_key(gql, admin, pid, ["PROJECT_ADMIN"])
    p = (await gql(CREATE, {"input": {"projectId": pid, "name": "k", "scopes": ["PROMPTS_READ"]}},
                   token=admin_key))["data"]["createApiKey"]
    assert codes(p) == [("FORBIDDEN", ["input", "projectId"])] and "API keys cannot" in p["userErrors"][0]["message"]
    # keys cannot create projects; anonymous callers are not signed in at all
    body = await gql(f'mutation {{ createProject(input: {{name: "k", slug: "kk"}}) {{ {ERR} }} }}', token=admin_key)
    assert codes(body["data"]["createProject"]) == [("FORBIDDEN", None)]
    body = await gql(CREATE, {"input": {"projectId": pid, "name": "k", "scopes": ["PROMPTS_READ"]}}, check=False)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # a bad scope name is a GraphQL validation error
    body = await gql(CREATE, {"input": {"projectId": pid, "name": "k", "scopes": ["EVERYTHING"]}}, token=owner,
                     check=False)
    assert "errors" in body


async def test_scopes_are_enforced(gql):
    owner, _ = await signup(gql, "owner")
    pid = await create_project(gql, owner, "scoped")
    await create_project(gql, owner, "other")
    reader = await create_api_key(gql, owner, pid, ["PROMPTS_READ"], name="reader")
    admin = await create_api_key(gql, owner, pid, ["PROJECT_ADMIN"], name="admin")
    body = (await gql(PROJECT_READS, {"slug": "scoped"}, token=reader))["data"]
    # any key reads its own project (and only it); viewer is null for keys
    assert body["viewer"] is None
    assert body["projects"] == {"totalCount": 1, "nodes": [{"slug": "scoped"}]}
    project = body["project"]
    assert project["slug"] == "scoped" and project["viewerRole"] is None
    # ...but without PROJECT_ADMIN no members, keys, audit log or credentials
    assert project["members"]["totalCount"] == 0 and project["apiKeys"]["totalCount"] == 0
    assert project["auditEvents"]["totalCount"] == 0 and project["providerCredentials"] == []
    project = (await gql(PROJECT_READS, {"slug": "scoped"}, token=admin))["data"]["project"]
    assert project["members"]["totalCount"] == 1 and project["apiKeys"]["totalCount"] == 2
    assert project["auditEvents"]["totalCount"] >= 3
    # the other project of the same owner is invisible to the key
    assert (await gql(PROJECT_READS, {"slug": "other"}, token=admin))["data"]["project"] is None
    # a PROMPTS_READ key cannot change settings; a PROJECT_ADMIN key can
    upd = f"""mutation($id: ID!) {{ updateProject(input: {{id: $id, name: "Renamed"}}) {{ project {{ name }} {ERR} }} }}"""
    p = (await gql(upd, {"id": pid}, token=reader))["data"]["updateProject"]
    assert codes(p) == [("FORBIDDEN", ["input", "id"])] and "PROJECT_ADMIN" in p["userErrors"][0]["message"]
    p = (await gql(upd, {"id": pid}, token=admin))["data"]["updateProject"]
    assert p["userErrors"] == [] and p["project"]["name"] == "Renamed"


async def test_last_used_revocation_and_expiry(gql, db_url, app):
    owner, _ = await signup(gql, "owner")
    pid = await create_project(gql, owner, "life")
    secret = await create_api_key(gql, owner, pid, ["PROMPTS_READ"], name="one")
    other = await create_api_key(gql, owner, pid, ["PROMPTS_READ"], name="two")
    keys = (await gql(KEYS, {"slug": "life"}, token=owner))["data"]["project"]["apiKeys"]["nodes"]
    assert all(k["lastUsedAt"] is None for k in keys)
    assert (await gql(PROJECT_READS, {"slug": "life"}, token=secret))["data"]["project"]["slug"] == "life"
    # lastUsedAt is written behind, in batches (app.services.hot.LastUsed): write the batch now
    assert await app.state.runtime.last_used.flush() == 2  # the key and the owner's session
    keys = {k["name"]: k for k in (await gql(KEYS, {"slug": "life"}, token=owner))["data"]["project"]["apiKeys"]["nodes"]}
    assert keys["one"]["lastUsedAt"] is not None and keys["two"]["lastUsedAt"] is None

    p = (await gql(REVOKE, {"id": keys["one"]["id"]}, token=owner))["data"]["revokeApiKey"]
    assert p["userErrors"] == [] and p["apiKey"]["revokedAt"] is not None
    # revoked: refused at once, reads and mutations alike (UNAUTHENTICATED, not "anonymous")
    assert "revoked" in await gql.refused(PROJECT_READS, {"slug": "life"}, token=secret)
    assert "revoked" in await gql.refused(CREATE, {"input": {"projectId": pid, "name": "x",
                                                             "scopes": ["PROMPTS_READ"]}}, token=secret)
    # listings hide revoked keys unless asked
    listed = (await gql(KEYS, {"slug": "life"}, token=owner))["data"]["project"]["apiKeys"]
    assert [k["name"] for k in listed["nodes"]] == ["two"]
    listed = (await gql(KEYS, {"slug": "life", "rev": True}, token=owner))["data"]["project"]["apiKeys"]
    assert sorted(k["name"] for k in listed["nodes"]) == ["one", "two"]
    # revoking again changes nothing
    p2 = (await gql(REVOKE, {"id": keys["one"]["id"]}, token=owner))["data"]["revokeApiKey"]
    assert p2["apiKey"]["revokedAt"] == p["apiKey"]["revokedAt"]

    # expired: refused
    async with sql(db_url) as conn:
        await conn.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE name = 'two'")
    assert "expired" in await gql.refused(CREATE, {"input": {"projectId": pid, "name": "x",
                                                             "scopes": ["PROMPTS_READ"]}}, token=other)
    assert "expired" in await gql.refused(PROJECT_READS, {"slug": "life"}, token=other)


async def test_revoke_permissions(gql):
    owner, _ = await signup(gql, "owner")
    editor, _ = await signup(gql, "editor")
    pid = await create_project(gql, owner, "rev")
    await add_member(gql, owner, pid, "editor", "EDITOR")
    await create_api_key(gql, owner, pid, ["PROMPTS_READ"])
    key_id = (await gql(KEYS, {"slug": "rev"}, token=owner))["data"]["project"]["apiKeys"]["nodes"][0]["id"]
    p = (await gql(REVOKE, {"id": key_id}, token=editor))["data"]["revokeApiKey"]
    assert codes(p) == [("FORBIDDEN", ["input", "id"])]
    p = (await gql(REVOKE, {"id": "bm9wZQ"}, token=owner))["data"]["revokeApiKey"]
    assert codes(p) == [("NOT_FOUND", ["input", "id"])]
    listed = (await gql(KEYS, {"slug": "rev"}, token=owner))["data"]["project"]["apiKeys"]["nodes"]
    assert listed[0]["revokedAt"] is None
