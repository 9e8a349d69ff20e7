"""With allow_signup off, only superusers create accounts (signUp as a superuser, or the CLI)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import Settings
from tests.helpers import DEFAULT_PASSWORD, login

from .util import ERR, codes, sql

ROOT = Path(__file__).resolve().parents[2]
SIGN_UP = f"""mutation($input: SignUpInput!) {{ signUp(input: $input) {{ token user {{ username isSuperuser email }}
  {ERR} }} }}"""


@pytest.fixture
def settings() -> Settings:
    return Settings(workers=0, data_dir=ROOT / ".test-pgdata", last_used_resolution_seconds=0, allow_signup=False)


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db_url, "PROMPTSTUDIO_PASSWORD": DEFAULT_PASSWORD}
    return subprocess.run([sys.executable, "-m", "app", "create-user", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def account(name: str) -> dict:
    return {"email": f"{name}@example.com", "username": name, "password": DEFAULT_PASSWORD}


async def test_sign_up_closed_only_superusers_create_accounts(gql, db_url):
    # nobody may sign up, not even the first user
    p = (await gql(SIGN_UP, {"input": account("walker")}))["data"]["signUp"]
    assert codes(p) == [("FORBIDDEN", None)] and "closed" in p["userErrors"][0]["message"]
    assert p["token"] is None

    # the CLI creates the superuser (app/cli.py calls app.services.identity.create_user)
    result = await asyncio.to_thread(cli, db_url, "--email", "root@example.com", "--username", "root", "--superuser")
    assert result.returncode == 0, result.stderr
    assert "created superuser root" in result.stdout
    again = await asyncio.to_thread(cli, db_url, "--email", "ROOT@example.com", "--username", "root2")
    assert again.returncode == 1 and "email" in again.stderr and "already exists" in again.stderr

    root = await login(gql, "root")
    p = (await gql(SIGN_UP, {"input": account("newbie")}, token=root))["data"]["signUp"]
    assert p["userErrors"] == []
    # created for someone else: no session is opened
    assert p["token"] is None
    assert p["user"] == {"username": "newbie", "isSuperuser": False, "email": "newbie@example.com"}
    newbie = await login(gql, "newbie")
    # an ordinary user cannot create accounts either
    p = (await gql(SIGN_UP, {"input": account("third")}, token=newbie))["data"]["signUp"]
    assert codes(p) == [("FORBIDDEN", None)]

    async with sql(db_url) as conn:
        rows = await conn.fetch("SELECT result FROM audit_events WHERE action = 'user.sign_up' ORDER BY created_at")
        hash_ = await conn.fetchval("SELECT password_hash FROM users WHERE username = 'root'")
    assert [r["result"] for r in rows] == ["DENIED", "SUCCESS", "DENIED"]
    assert hash_.startswith("$argon2id$")
