"""The OpenAI-compatible embedding provider against a real HTTP server on loopback speaking the protocol:
the project's credential or the settings' endpoint, vectors of another length (their HNSW index made
on the fly), errors (refused texts FAILED, server errors retried), and search when the endpoint is down."""
from __future__ import annotations

import asyncio
import logging

import pytest

from app.embeddings import EmbeddingError, OpenAIEmbedder

from tests.executions.util import db_fetch, set_credential
from tests.registry.util import create_prompt, make_world

from .fake_embeddings_server import DIMENSIONS, FakeEmbeddingsServer
from .util import names, search, wait_embedded


@pytest.fixture
def fake():
    server = FakeEmbeddingsServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(settings, fake):
    # This app (the one `gql` calls) embeds queries only; each test starts the workers it wants.
    return settings.replace(workers=0, embedding_provider="openai", embedding_model="embed-ok")


async def test_project_credential_endpoint_end_to_end(gql, db_url, fake, caplog, make_app):
    w = await make_world(gql)
    await set_credential(gql, w.alice, w.a, "openai", "sk-test-123456", fake.openai_base_url)
    await create_prompt(gql, w.alice, w.a, "support/refund-reply", "refund the money")
    await create_prompt(gql, w.alice, w.a, "poetry/sea", "a haiku about the sea")
    async with make_app(workers=1, embedding_provider="openai", embedding_model="embed-ok"):
        assert await wait_embedded(db_url) == {"READY": 2}
    rows = await db_fetch(db_url, "SELECT model, dimensions FROM version_embeddings")
    assert {(r["model"], r["dimensions"]) for r in rows} == {("openai:embed-ok", DIMENSIONS)}
    # Vectors of a new length get their own HNSW index, made when the first one is stored.
    [index] = await db_fetch(db_url, "SELECT indexdef FROM pg_indexes WHERE indexname = $1",
                             f"ix_version_embeddings_hnsw_{DIMENSIONS}")
    assert "hnsw" in index["indexdef"] and f"vector({DIMENSIONS})" in index["indexdef"]

    documents = [r for r in fake.requests if r.path == "/v1/embeddings"]
    assert len(documents) == 2
    assert documents[0].headers["authorization"] == "Bearer sk-test-123456"
    assert documents[0].body["model"] == "embed-ok" and documents[0].body["encoding_format"] == "float"
    assert {r.body["input"][0] for r in documents} == {"support refund reply\nrefund the money",
                                                       "poetry sea\na haiku about the sea"}

    hits = await search(gql, w.alice, w.a, "refund the money please", mode="SEMANTIC")
    assert names(hits)[0] == "support/refund-reply" and 0 < hits[0]["score"] <= 1
    assert fake.requests[-1].body["input"] == ["refund the money please"]  # the query, embedded by the endpoint

    # The endpoint is down: SEMANTIC says so, HYBRID falls back to FULLTEXT and logs why.
    fake.stop()
    caplog.set_level(logging.INFO, logger="promptstudio.search")
    body = await search(gql, w.alice, w.a, "haiku sea", mode="SEMANTIC", check=False)
    assert body["errors"][0]["extensions"]["code"] == "EMBEDDING_PROVIDER_UNAVAILABLE"
    assert "could not connect" in body["errors"][0]["message"]
    assert names(await search(gql, w.alice, w.a, "haiku sea")) == ["poetry/sea"]
    assert any("fell back to FULLTEXT" in r.getMessage() for r in caplog.records)


async def test_settings_endpoint_and_errors(gql, db_url, fake, make_app):
    w = await make_world(gql)
    await set_credential(gql, w.alice, w.a, "openai", "sk-project-key", "http://127.0.0.1:9/v1")  # not used
    async with make_app(workers=1, embedding_provider="openai", embedding_model="bad-request",
                        embedding_base_url=fake.openai_base_url, embedding_api_key="sk-settings-key"):
        await create_prompt(gql, w.alice, w.a, "too-long", "a very long text")
        assert await wait_embedded(db_url) == {"FAILED": 1}
    [row] = await db_fetch(db_url, "SELECT status, error FROM version_embeddings")
    assert "HTTP 400" in row["error"] and "maximum context length" in row["error"]
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-settings-key"
    assert await db_fetch(db_url, "SELECT 1 FROM jobs") == []

    # A server error is retried later: the row stays PENDING and says why, its job waits.
    async with make_app(workers=1, embedding_provider="openai", embedding_model="server-error",
                        embedding_base_url=fake.openai_base_url):
        await create_prompt(gql, w.alice, w.a, "retried", "some text")
        for _ in range(100):
            rows = await db_fetch(db_url, "SELECT e.status, e.error, j.attempts, j.run_after > now() AS later "
                                          "FROM version_embeddings e JOIN jobs j ON j.subject_id = e.version_id")
            if rows and rows[0]["error"]:
                break
            await asyncio.sleep(0.1)
    [row] = rows
    assert row["status"] == "PENDING" and "HTTP 500" in row["error"] and row["attempts"] == 1 and row["later"]


async def test_client_reads_the_protocol(fake):
    embedder = OpenAIEmbedder(model="embed-ok", base_url=fake.openai_base_url, api_key="k", dimensions=8,
                              max_input_chars=10)
    vectors = await embedder.embed(["alpha beta", "gamma delta epsilon"], "document")
    assert len(vectors) == 2 and all(abs(sum(x * x for x in v) - 1) < 1e-9 for v in vectors)  # unit length
    body = fake.requests[-1].body
    assert body["dimensions"] == 8 and body["input"] == ["alpha beta", "gamma delt"]  # cut to 10 characters
    assert embedder.model == "openai:embed-ok@8"
    with pytest.raises(EmbeddingError, match="different lengths") as bad:
        await OpenAIEmbedder(model="malformed", base_url=fake.openai_base_url).embed(["a b", "c d"], "query")
    assert not bad.value.retryable
    with pytest.raises(EmbeddingError, match="HTTP 500") as err:
        await OpenAIEmbedder(model="server-error", base_url=fake.openai_base_url).embed(["x"], "query")
    assert err.value.retryable
