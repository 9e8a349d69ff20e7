"""Provider credentials: encrypted at rest (Fernet), only a hint shown, upserted per provider; the secret key."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app.db.engine import create_engine_and_sessionmaker
from app.services import crypto
from app.services.credentials import decrypt_credential
from app.settings import Settings
from tests.helpers import add_member, create_api_key, create_project, signup

from .util import ERR, codes, raw_uuid, sql

SET = f"""mutation($input: SetProviderCredentialInput!) {{ setProviderCredential(input: $input) {{
  credential {{ id provider baseUrl keyHint createdAt }} {ERR} }} }}"""
LIST = '{ project(slug: "creds") { providerCredentials { id provider baseUrl keyHint } } }'
SECRET = "sk-test-0123456789abcdefWXYZ"


async def test_set_provider_credential(gql, db_url, app):
    owner, _ = await signup(gql, "owner")
    editor, _ = await signup(gql, "editor")
    pid = await create_project(gql, owner, "creds")
    await add_member(gql, owner, pid, "editor", "EDITOR")
    p = (await gql(SET, {"input": {"projectId": pid, "provider": "openai", "apiKey": SECRET,
                                   "baseUrl": "http://127.0.0.1:9999/v1/"}}, token=owner))["data"]["setProviderCredential"]
    assert p["userErrors"] == []
    cred = p["credential"]
    assert cred["provider"] == "openai" and cred["keyHint"] == "WXYZ" and cred["baseUrl"] == "http://127.0.0.1:9999/v1"
    assert SECRET not in str(p)

    # the column holds ciphertext only
    async with sql(db_url) as conn:
        row = await conn.fetchrow("SELECT encrypted_key, key_hint FROM provider_credentials")
    assert SECRET.encode() not in bytes(row["encrypted_key"]) and row["key_hint"] == "WXYZ"
    # the worker's view: the key in clear
    settings = app.state.settings
    engine, sessionmaker = create_engine_and_sessionmaker(db_url)
    try:
        async with sessionmaker() as session:
            assert await decrypt_credential(session, raw_uuid(pid), "openai", settings) == (
                SECRET, "http://127.0.0.1:9999/v1")
            assert await decrypt_credential(session, raw_uuid(pid), "anthropic", settings) is None
    finally:
        await engine.dispose()

    # upsert: same provider replaces; another adds
    p = (await gql(SET, {"input": {"projectId": pid, "provider": "openai", "apiKey": "sk-another-key-1234"}},
                   token=owner))["data"]["setProviderCredential"]
    assert p["credential"]["id"] == cred["id"] and p["credential"]["keyHint"] == "1234"
    assert p["credential"]["baseUrl"] is None
    await gql(SET, {"input": {"projectId": pid, "provider": "anthropic", "apiKey": "sk-ant-xxxxxxxx9876"}},
              token=owner)
    listed = (await gql(LIST, token=owner))["data"]["project"]["providerCredentials"]
    assert [(c["provider"], c["keyHint"]) for c in listed] == [("anthropic", "9876"), ("openai", "1234")]
    node = await gql("query($id: ID!) { node(id: $id) { ... on ProviderCredential { provider keyHint } } }",
                     {"id": cred["id"]}, token=owner)
    assert node["data"]["node"] == {"provider": "openai", "keyHint": "1234"}

    # editors neither see nor set credentials
    assert (await gql(LIST, token=editor))["data"]["project"]["providerCredentials"] == []
    node = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": cred["id"]}, token=editor)
    assert node["data"]["node"] is None
    p = (await gql(SET, {"input": {"projectId": pid, "provider": "openai", "apiKey": SECRET}}, token=editor)
         )["data"]["setProviderCredential"]
    assert codes(p) == [("FORBIDDEN", ["input", "projectId"])]
    # a PROJECT_ADMIN key may
    key = await create_api_key(gql, owner, pid, ["PROJECT_ADMIN"])
    p = (await gql(SET, {"input": {"projectId": pid, "provider": "anthropic", "apiKey": "sk-ant-by-key-5555"}},
                   token=key))["data"]["setProviderCredential"]
    assert p["userErrors"] == [] and p["credential"]["keyHint"] == "5555"


async def test_set_provider_credential_validation(gql):
    owner, _ = await signup(gql, "owner")
    pid = await create_project(gql, owner, "creds")
    cases = [
        ({"provider": "echo"}, ["input", "provider"], "anthropic, openai"),
        ({"provider": "gemini"}, ["input", "provider"], "anthropic, openai"),
        ({"apiKey": "short"}, ["input", "apiKey"], "at least 8"),
        ({"baseUrl": "ftp://example.com"}, ["input", "baseUrl"], "http"),
        ({"baseUrl": "not a url"}, ["input", "baseUrl"], "http"),
        ({"baseUrl": "http://"}, ["input", "baseUrl"], "host"),
        ({"baseUrl": "http://host:99999/v1"}, ["input", "baseUrl"], "http"),
    ]
    for change, field, text in cases:
        input_ = {"projectId": pid, "provider": "openai", "apiKey": SECRET, **change}
        p = (await gql(SET, {"input": input_}, token=owner))["data"]["setProviderCredential"]
        assert codes(p) == [("INVALID", field)], (change, p)
        assert text in p["userErrors"][0]["message"], (change, p)
    assert (await gql(LIST, token=owner))["data"]["project"]["providerCredentials"] == []


def test_key_file_is_created_private_and_reused(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data")
    assert crypto.fernet(settings, create=False) is None  # nothing yet, nothing created
    token = crypto.encrypt(settings, "hello")
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    crypto._cache.clear()  # a new process reads the same file
    assert crypto.decrypt(Settings(data_dir=tmp_path / "data"), token) == "hello"
    other = Settings(data_dir=tmp_path / "data", secret_key=Fernet.generate_key().decode())
    with pytest.raises(crypto.DecryptionError, match="set the credential again"):
        crypto.decrypt(other, token)


def test_garbled_key_file_is_refused(tmp_path: Path):
    (tmp_path / "secret.key").write_text("garbage\n")
    with pytest.raises(crypto.SecretKeyError, match="secret key file"):
        crypto.check_secret_key(Settings(data_dir=tmp_path))


async def test_garbled_secret_key_fails_at_start(make_app):
    with pytest.raises(crypto.SecretKeyError, match="PROMPTSTUDIO_SECRET_KEY is not a valid Fernet key"):
        async with make_app(secret_key="not-a-fernet-key"):
            pass
