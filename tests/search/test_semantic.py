"""SEMANTIC and HYBRID search, Prompt.similar and the embedding jobs, against real PostgreSQL + pgvector
(vectors from the deterministic test embedder: see embedder.py)."""
from __future__ import annotations

import logging

from tests.registry.util import UPDATE, commit, create_prompt, make_world, ok

from .util import names, search, statuses, wait_embedded

VERSION_EMBEDDING = """query($id: ID!) { node(id: $id) { ... on PromptVersion { number
  embedding { status model dimensions error } } } }"""


async def _corpus(gql, w):
    made = {}
    for name, template, extra in (
        ("support/refund-reply", "Thank you for contacting us about your refund.", {"tags": ["support"]}),
        ("security/code-audit", "Review this code and list every vulnerability: {{code}}", {"tags": ["security"]}),
        ("poetry/sea", "Write a haiku about the sea.", {"tags": ["fun"]}),
        ("translate/fr", "Translate the text into French: {{text}}", {"tags": ["fun"], "category": "language"}),
        ("ops/triage", "Classify the incident severity: {{text}}", {"tags": ["ops"]}),
    ):
        made[name] = await create_prompt(gql, w.alice, w.a, name, template, **extra)
    return made


async def test_every_version_is_embedded_by_a_job_after_the_commit(gql, db_url, embedder, monkeypatch):
    import app.engine.embeddings as handler

    monkeypatch.setattr(handler, "RETRY_BASE_SECONDS", 0.2)
    w = await make_world(gql)
    embedder.down = True  # the provider is down: creating prompts works all the same
    made = await _corpus(gql, w)
    version = made["poetry/sea"]["version"]
    body = await gql(VERSION_EMBEDDING, {"id": version["id"]}, token=w.alice)
    assert body["data"]["node"]["embedding"]["status"] == "PENDING"
    assert not any(kind == "query" for kind, _ in embedder.calls)
    embedder.down = False
    counts = await wait_embedded(db_url)
    assert counts == {"READY": 5}
    body = await gql(VERSION_EMBEDDING, {"id": version["id"]}, token=w.alice)
    assert body["data"]["node"]["embedding"] == {"status": "READY", "model": "test:hash", "dimensions": 384,
                                                 "error": None}
    documents = [t for kind, texts in embedder.calls if kind == "document" for t in texts]
    assert "poetry sea\nWrite a haiku about the sea." in documents  # name (/ as space) and template
    embedder.calls.clear()
    await gql(VERSION_EMBEDDING, {"id": version["id"]}, token=w.alice)
    assert embedder.calls == []  # embedded once: reading never embeds
    assert len(set(documents)) == 5  # the five versions (some more than once: the failed attempts)

    # A text the model refuses: FAILED at once with the provider's message; a transient error: retried.
    bad = await create_prompt(gql, w.alice, w.a, "bad", "REFUSE this")
    flaky = await create_prompt(gql, w.alice, w.a, "flaky", "FLAKY text")
    counts = await wait_embedded(db_url)
    assert counts == {"READY": 6, "FAILED": 1}
    body = await gql(VERSION_EMBEDDING, {"id": bad["version"]["id"]}, token=w.alice)
    assert body["data"]["node"]["embedding"]["status"] == "FAILED"
    assert "refuses this text" in body["data"]["node"]["embedding"]["error"]
    body = await gql(VERSION_EMBEDDING, {"id": flaky["version"]["id"]}, token=w.alice)
    assert body["data"]["node"]["embedding"]["status"] == "READY"


async def test_semantic_finds_meaning_hybrid_fuses_and_scores(gql, db_url):
    w = await make_world(gql)
    await _corpus(gql, w)
    await wait_embedded(db_url)

    # No word in common with "support/refund-reply": FULLTEXT finds nothing, SEMANTIC finds it first.
    assert await search(gql, w.alice, w.a, "money back please", mode="FULLTEXT") == []
    hits = await search(gql, w.alice, w.a, "money back please", mode="SEMANTIC")
    assert hits[0]["prompt"]["name"] == "support/refund-reply" and hits[0]["version"] == {"number": 1}
    assert 0 < hits[0]["score"] <= 1 and hits[0]["snippet"] is None
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert names(await search(gql, w.alice, w.a, "exploit holes", mode="SEMANTIC"))[0] == "security/code-audit"

    # HYBRID (the default): both rankings fused by reciprocal rank fusion, k = 60.
    hybrid = await search(gql, w.alice, w.a, "refund")
    assert hybrid[0]["prompt"]["name"] == "support/refund-reply"
    assert abs(hybrid[0]["score"] - 2 / 61) < 1e-9  # first in both rankings
    assert "<mark>refund</mark>" in hybrid[0]["snippet"]
    assert all(h["score"] <= 2 / 61 + 1e-12 for h in hybrid)
    only_semantic = await search(gql, w.alice, w.a, "money back please")
    assert only_semantic[0]["prompt"]["name"] == "support/refund-reply"
    assert abs(only_semantic[0]["score"] - 1 / 61) < 1e-9  # first in the semantic ranking only

    # A prompt ranks by its best-matching version, which the hit returns.
    p = (await gql("""query { project(slug: "alpha") { prompt(name: "poetry/sea") { id } } }""",
                   token=w.alice))["data"]["project"]["prompt"]
    await commit(gql, w.alice, p["id"], "Describe the ocean in plain prose for a travel brochure.")
    await wait_embedded(db_url)
    hits = await search(gql, w.alice, w.a, "a haiku please", mode="SEMANTIC", first=1)
    assert [(h["prompt"]["name"], h["version"]["number"]) for h in hits] == [("poetry/sea", 1)]
    hits = await search(gql, w.alice, w.a, "ocean brochure", mode="SEMANTIC", first=1)
    assert [(h["prompt"]["name"], h["version"]["number"]) for h in hits] == [("poetry/sea", 2)]


async def test_filters_apply_inside_the_query(gql, db_url):
    w = await make_world(gql)
    # 30 prompts near the query without the tag, 6 far from it with the tag: a filter applied after a
    # top-k would return nothing; applied in the query it returns `first` hits.
    for i in range(30):
        await create_prompt(gql, w.alice, w.a, f"near/{i}", f"refund money reimbursement number {i}")
    for i in range(6):
        await create_prompt(gql, w.alice, w.a, f"far/{i}", f"completely unrelated words {i}", tags=["wanted"],
                            category="cat")
    await wait_embedded(db_url)
    for mode in ("SEMANTIC", "HYBRID"):
        hits = await search(gql, w.alice, w.a, "refund", mode=mode, first=5, f={"tags": ["wanted"]})
        assert len(hits) == 5 and all(n.startswith("far/") for n in names(hits)), (mode, hits)
        hits = await search(gql, w.alice, w.a, "refund", mode=mode, first=10, f={"category": "cat"})
        assert sorted(names(hits)) == [f"far/{i}" for i in range(6)], mode
    hits = await search(gql, w.alice, w.a, "refund", mode="SEMANTIC", first=12)
    assert len(hits) == 12 and all(n.startswith("near/") for n in names(hits))
    # Archived prompts are left out unless the status filter asks for them.
    pid = (await gql("""query { project(slug: "alpha") { prompt(name: "near/3") { id } } }""",
                     token=w.alice))["data"]["project"]["prompt"]["id"]
    ok(await gql(UPDATE, {"i": {"id": pid, "status": "ARCHIVED"}}, token=w.alice), "updatePrompt")
    assert "near/3" not in names(await search(gql, w.alice, w.a, "refund number 3", mode="SEMANTIC", first=40))
    hits = await search(gql, w.alice, w.a, "refund number 3", mode="SEMANTIC", f={"status": ["ARCHIVED"]})
    assert names(hits) == ["near/3"]
    # Another project's prompts are never found; a project you cannot read gives nothing.
    assert await search(gql, w.bob, w.b, "refund", mode="SEMANTIC") == []
    assert await search(gql, w.bob, w.a, "refund", mode="SEMANTIC") == []


async def test_fallbacks_and_user_errors(gql, db_url, embedder, make_app, caplog):
    w = await make_world(gql)
    # Embeddings not ready (the embedder is down while the prompts are created and the job retries):
    embedder.down = True
    await _corpus(gql, w)
    caplog.set_level(logging.INFO, logger="promptstudio.search")
    q = "refund or parcel"  # a query not seen before (recent query vectors are cached)
    hybrid = await search(gql, w.alice, w.a, q)
    assert names(hybrid) == names(await search(gql, w.alice, w.a, q, mode="FULLTEXT")) == ["support/refund-reply"]
    assert any("fell back to FULLTEXT" in r.getMessage() and "connection refused" in r.getMessage()
               for r in caplog.records)
    body = await search(gql, w.alice, w.a, q, mode="SEMANTIC", check=False)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "EMBEDDING_PROVIDER_UNAVAILABLE"
    assert "connection refused" in error["message"] and body["data"] is None
    # The provider is back, but nothing is embedded yet (the jobs wait for their retry): not ready.
    embedder.down = False
    body = await search(gql, w.alice, w.a, q, mode="SEMANTIC", check=False)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "EMBEDDINGS_NOT_READY", error
    assert "none is ready yet (5 pending" in error["message"]
    caplog.clear()
    assert names(await search(gql, w.alice, w.a, q)) == ["support/refund-reply"]
    assert any("fell back to FULLTEXT" in r.getMessage() and "none is ready yet" in r.getMessage()
               for r in caplog.records)
    assert (await statuses(db_url)) == {"PENDING": 5}

    # Empty and over-long queries.
    for q in ("", "   "):
        body = await search(gql, w.alice, w.a, q, check=False)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        assert "empty" in body["errors"][0]["message"]
    body = await search(gql, w.alice, w.a, "x" * 501, mode="SEMANTIC", check=False)
    assert "at most 500" in body["errors"][0]["message"]


SIMILAR = """query($s: String!, $n: String!, $first: Int) { project(slug: $s) { prompt(name: $n) {
  similar(first: $first) { score prompt { name } version { number } } } } }"""


async def test_similar_prompts(gql, db_url, sql_counter, embedder, monkeypatch):
    import app.engine.embeddings as handler

    monkeypatch.setattr(handler, "RETRY_BASE_SECONDS", 0.2)
    w = await make_world(gql)
    embedder.down = True  # hold the embeddings back until the first check is done
    await create_prompt(gql, w.alice, w.a, "a/refund", "refund the money")
    await create_prompt(gql, w.alice, w.a, "b/reimburse", "reimbursement of money")
    await create_prompt(gql, w.alice, w.a, "c/poem", "a poem in verses")
    await create_prompt(gql, w.alice, w.a, "d/haiku", "haiku rhymes")
    await create_prompt(gql, w.bob, w.b, "other/refund", "refund the money")  # another project: never similar
    body = await gql(SIMILAR, {"s": "alpha", "n": "a/refund"}, token=w.alice)
    assert body["data"]["project"]["prompt"]["similar"] == []  # not embedded yet
    embedder.down = False
    await wait_embedded(db_url)
    similar = (await gql(SIMILAR, {"s": "alpha", "n": "a/refund"}, token=w.alice))["data"]["project"]["prompt"][
        "similar"]
    assert [h["prompt"]["name"] for h in similar][0] == "b/reimburse"
    assert "a/refund" not in [h["prompt"]["name"] for h in similar] and len(similar) == 3
    assert similar[0]["score"] > similar[1]["score"] and similar[0]["version"] == {"number": 1}
    one = (await gql(SIMILAR, {"s": "alpha", "n": "c/poem", "first": 1}, token=w.alice))["data"]["project"][
        "prompt"]["similar"]
    assert [h["prompt"]["name"] for h in one] == ["d/haiku"]
    # Many prompts' similar lists: one statement for all of them, not one per prompt.
    query = """query { project(slug: "alpha") { prompts(first: 10) { nodes { name similar(first: 2) {
      prompt { name } } } } } }"""
    with sql_counter() as c:
        body = await gql(query, token=w.alice)
    nodes = body["data"]["project"]["prompts"]["nodes"]
    assert len(nodes) == 4 and all(len(n["similar"]) == 2 for n in nodes)
    assert sum("unnest" in s and "LATERAL" in s for s in c.statements) == 1
    body = await gql(SIMILAR, {"s": "alpha", "n": "a/refund", "first": 101}, token=w.alice, check=False)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
