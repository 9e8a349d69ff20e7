"""signUp, logIn, logOut, sessions and passwords, through GraphQL against the real database."""
from __future__ import annotations

import hashlib

from tests.helpers import DEFAULT_PASSWORD, login, signup

from .util import ERR, codes, raw_uuid, sql

SIGN_UP = f"""mutation($input: SignUpInput!) {{ signUp(input: $input) {{
  token user {{ id username email displayName isSuperuser isActive createdAt }} {ERR} }} }}"""
LOG_IN = f"""mutation($input: LogInInput!) {{ logIn(input: $input) {{ token user {{ id username }} {ERR} }} }}"""
LOG_OUT = f"mutation {{ logOut {{ ok {ERR} }} }}"
VIEWER = "{ viewer { id username email isSuperuser } }"


def account(name: str, **kw) -> dict:
    return {"email": f"{name}@example.com", "username": name, "password": DEFAULT_PASSWORD, **kw}


async def test_sign_up_log_in_log_out(gql, db_url):
    body = await gql(SIGN_UP, {"input": account("Alice", displayName="  Alice A.  ")})
    p = body["data"]["signUp"]
    assert p["userErrors"] == []
    assert p["token"].startswith("pss_")
    assert p["user"]["username"] == "Alice" and p["user"]["displayName"] == "Alice A."
    assert p["user"]["email"] == "Alice@example.com"  # seen by the new user themself
    assert p["user"]["isActive"] is True

    viewer = (await gql(VIEWER, token=p["token"]))["data"]["viewer"]
    assert viewer["id"] == p["user"]["id"] and viewer["email"] == "Alice@example.com"

    # log in by username and by email, case-insensitively
    t1 = await login(gql, "ALICE")
    t2 = await login(gql, "alice@EXAMPLE.com")
    assert len({p["token"], t1, t2}) == 3
    for t in (t1, t2):
        assert (await gql(VIEWER, token=t))["data"]["viewer"]["username"] == "Alice"

    # tokens are stored hashed only
    async with sql(db_url) as conn:
        hashes = {r["token_hash"] for r in await conn.fetch("SELECT token_hash FROM user_sessions")}
    assert hashlib.sha256(t1.encode()).hexdigest() in hashes and t1 not in hashes

    out = (await gql(LOG_OUT, token=t1))["data"]["logOut"]
    assert out == {"ok": True, "userErrors": []}
    # the logged-out token stops working; the others keep working
    assert "logged out" in await gql.refused(VIEWER, token=t1)
    body = await gql("mutation { createProject(input: {name: \"x\", slug: \"xx\"}) { project { id } } }",
                     token=t1, check=False)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "logged out" in body["errors"][0]["message"]
    assert (await gql(VIEWER, token=t2))["data"]["viewer"]["username"] == "Alice"


async def test_first_user_is_superuser_and_email_visibility(gql):
    t1, u1 = await signup(gql, "first")
    t2, u2 = await signup(gql, "second")
    assert (await gql(VIEWER, token=t1))["data"]["viewer"]["isSuperuser"] is True
    assert (await gql(VIEWER, token=t2))["data"]["viewer"]["isSuperuser"] is False
    q = "query($id: ID!) { node(id: $id) { ... on User { username email } } }"
    # the superuser sees everyone, with email; a user without a shared project sees no one else
    assert (await gql(q, {"id": u2}, token=t1))["data"]["node"] == {"username": "second",
                                                                    "email": "second@example.com"}
    assert (await gql(q, {"id": u1}, token=t2))["data"]["node"] is None
    assert (await gql(q, {"id": u2}, token=t2))["data"]["node"]["email"] == "second@example.com"
    assert (await gql(q, {"id": u1}))["data"]["node"] is None
    users = "{ users { totalCount nodes { username } } }"
    assert (await gql(users, token=t1))["data"]["users"]["totalCount"] == 2
    assert (await gql(users, token=t2))["data"]["users"] == {"totalCount": 0, "nodes": []}
    assert (await gql(VIEWER))["data"]["viewer"] is None


async def test_sign_up_validation_and_conflicts(gql):
    bad = {"email": "not-an-email", "username": "a b", "password": "short"}
    p = (await gql(SIGN_UP, {"input": bad}))["data"]["signUp"]
    assert p["token"] is None and p["user"] is None
    assert sorted(codes(p)) == [("INVALID", ["input", "email"]), ("INVALID", ["input", "password"]),
                                ("INVALID", ["input", "username"])]
    assert "at least 8" in [e for e in p["userErrors"] if e["field"] == ["input", "password"]][0]["message"]
    p = (await gql(SIGN_UP, {"input": account("longpw", password="x" * 1025)}))["data"]["signUp"]
    assert codes(p) == [("INVALID", ["input", "password"])] and "at most 1024" in p["userErrors"][0]["message"]
    p = (await gql(SIGN_UP, {"input": account("ab")}))["data"]["signUp"]
    assert codes(p) == [("INVALID", ["input", "username"])]

    await signup(gql, "carol")
    p = (await gql(SIGN_UP, {"input": {**account("carol2"), "email": "CAROL@example.com"}}))["data"]["signUp"]
    assert codes(p) == [("CONFLICT", ["input", "email"])]
    p = (await gql(SIGN_UP, {"input": {**account("CAROL"), "email": "other@example.com"}}))["data"]["signUp"]
    assert codes(p) == [("CONFLICT", ["input", "username"])]


async def test_password_hash_is_argon2id(gql, db_url):
    _, uid = await signup(gql, "hashy")
    async with sql(db_url) as conn:
        h = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", raw_uuid(uid))
    assert h.startswith("$argon2id$v=19$") and DEFAULT_PASSWORD not in h


async def test_log_in_failures_are_generic_and_audited(gql, db_url):
    await signup(gql, "dave")
    wrong = (await gql(LOG_IN, {"input": {"login": "dave", "password": "not the password"}},
                       headers={"User-Agent": "pytest-login"}))["data"]["logIn"]
    unknown = (await gql(LOG_IN, {"input": {"login": "nobody", "password": "whatever123"}}))["data"]["logIn"]
    assert wrong["token"] is None and unknown["token"] is None
    assert wrong["userErrors"] == unknown["userErrors"]
    assert wrong["userErrors"][0]["code"] == "INVALID"
    async with sql(db_url) as conn:
        rows = await conn.fetch("SELECT action, result, details::text AS details, actor_id, ip_address, user_agent "
                                "FROM audit_events WHERE action = 'user.log_in' ORDER BY created_at")
    assert [r["result"] for r in rows] == ["FAILURE", "FAILURE"]
    assert '"login": "dave"' in rows[0]["details"] and "not the password" not in rows[0]["details"]
    assert rows[0]["ip_address"] == "127.0.0.1" and rows[0]["user_agent"] == "pytest-login"
    assert '"login": "nobody"' in rows[1]["details"]
    await login(gql, "dave")
    async with sql(db_url) as conn:
        ok = await conn.fetchrow("SELECT result, actor_id FROM audit_events WHERE action = 'user.log_in' "
                                 "AND result = 'SUCCESS'")
        signups = await conn.fetch("SELECT result, actor_id FROM audit_events WHERE action = 'user.sign_up'")
    assert ok["actor_id"] is not None
    assert [(r["result"], r["actor_id"] is not None) for r in signups] == [("SUCCESS", True)]


async def test_deactivated_user_cannot_log_in_and_session_stops(gql, db_url):
    token, uid = await signup(gql, "erin")
    async with sql(db_url) as conn:
        await conn.execute("UPDATE users SET is_active = false WHERE id = $1", raw_uuid(uid))
    p = (await gql(LOG_IN, {"input": {"login": "erin", "password": DEFAULT_PASSWORD}}))["data"]["logIn"]
    assert p["token"] is None and p["userErrors"][0]["message"] == "Wrong login or password."
    await gql.refused(VIEWER, token=token)


async def test_expired_session_is_refused(gql, db_url):
    token, _ = await signup(gql, "frank")
    assert (await gql(VIEWER, token=token))["data"]["viewer"] is not None
    async with sql(db_url) as conn:
        await conn.execute("UPDATE user_sessions SET expires_at = now() - interval '1 minute'")
    assert "expired" in await gql.refused(VIEWER, token=token)
    assert "expired" in await gql.refused(LOG_OUT, token=token)


async def test_session_expiry_follows_setting(gql, db_url, app):
    await signup(gql, "gina")
    async with sql(db_url) as conn:
        seconds = await conn.fetchval("SELECT extract(epoch FROM expires_at - created_at) FROM user_sessions")
    expected = app.state.settings.session_ttl_hours * 3600
    assert abs(float(seconds) - expected) < 60


async def test_bad_tokens_and_log_out_rules(gql):
    await gql.refused(VIEWER, token="pss_forged")
    body = await gql(LOG_OUT, check=False)  # no credential: anonymous, and logOut needs one
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Bearer" in await gql.refused(VIEWER, headers={"Authorization": "Basic abc"})


async def test_outdated_hash_is_upgraded_on_log_in(gql, db_url):
    from argon2 import PasswordHasher

    _, uid = await signup(gql, "henry")
    from app.services import identity

    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(DEFAULT_PASSWORD)
    async with sql(db_url) as conn:
        await conn.execute("UPDATE users SET password_hash = $1 WHERE id = $2", weak, raw_uuid(uid))
    await login(gql, "henry")
    async with sql(db_url) as conn:
        upgraded = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", raw_uuid(uid))
    assert upgraded != weak and upgraded.startswith("$argon2id$")
    assert identity._hasher.check_needs_rehash(weak)
    assert not identity._hasher.check_needs_rehash(upgraded)  # the configured cost now
    await login(gql, "henry")  # and the new hash verifies
