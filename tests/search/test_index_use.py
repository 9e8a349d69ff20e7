"""SEMANTIC search and Prompt.similar go through the HNSW index (EXPLAIN of the statements the app sends)."""
from __future__ import annotations

import re

from sqlalchemy import event, text

from app.api.core.relay import decode_gid

from tests.registry.util import create_prompt, make_world

from .util import SEARCH, wait_embedded

N = 3000


async def _fill(app, project_gid: str, n: int) -> None:
    """``n`` prompts with one version each and a READY random 384-d vector of the test model, and ANALYZE
    (plain SQL: they give the planner realistic row counts; embedding them would only be slower)."""
    project_id = decode_gid(project_gid)[1]
    async with app.state.runtime.sessionmaker() as session, session.begin():
        await session.execute(text("""
            WITH p AS (
                INSERT INTO prompts (project_id, name, latest_version)
                SELECT :p, 'filler/' || i, 1 FROM generate_series(1, :n) AS i RETURNING id
            ), v AS (
                INSERT INTO prompt_versions (prompt_id, number, kind, format, template, content_hash)
                SELECT id, 1, 'TEXT', 'MUSTACHE', 'filler', md5(id::text) FROM p RETURNING id, prompt_id
            )
            INSERT INTO version_embeddings (version_id, prompt_id, project_id, status, model, dimensions, embedding)
            SELECT v.id, v.prompt_id, :p, 'READY', 'test:hash', 384,
                   ARRAY(SELECT random() - 0.5 + 0 * length(v.id::text) FROM generate_series(1, 384))::vector
            FROM v"""), {"p": project_id, "n": n})
    async with app.state.runtime.engine.connect() as conn:
        await conn.execute(text("ANALYZE prompts, prompt_versions, version_embeddings"))
        await conn.commit()


async def _captured(app, gql, query, variables, token, marker):
    engine = app.state.runtime.engine.sync_engine
    seen = []

    def on(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", on)
    try:
        body = await gql(query, variables, token=token)
    finally:
        event.remove(engine, "before_cursor_execute", on)
    matches = [(s, p) for s, p in seen if marker in s]
    assert matches, [s for s, _ in seen]
    return body, matches[0]


async def _explain(app, statement, parameters) -> str:
    async with app.state.runtime.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        async with raw.transaction():
            await raw.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = await raw.fetch("EXPLAIN " + statement, *parameters)
    return "\n".join(r[0] for r in rows)


async def test_semantic_search_and_similar_use_the_hnsw_index(app, gql, db_url):
    w = await make_world(gql)
    await create_prompt(gql, w.alice, w.a, "support/refund-reply", "refund the money", tags=["support"])
    await wait_embedded(db_url)
    await _fill(app, w.a, N)

    body, (stmt, params) = await _captured(app, gql, SEARCH, {"p": w.a, "q": "money back", "mode": "SEMANTIC"},
                                           w.alice, "<=>")
    assert body["data"]["searchPrompts"][0]["prompt"]["name"] == "support/refund-reply"
    plan = await _explain(app, stmt, params)
    assert re.search(r"Index Scan using ix_version_embeddings_hnsw_384 on version_embeddings", plan), plan
    assert plan.count("ix_version_embeddings_hnsw_384") == 1, plan  # one scan, though its rows are used twice

    # A filter that keeps few rows: the planner rightly reads those rows and sorts them instead, and the
    # answer is exact.
    body, (stmt, params) = await _captured(app, gql, SEARCH, {"p": w.a, "q": "money back", "mode": "SEMANTIC",
                                                              "f": {"tags": ["support"]}}, w.alice, "<=>")
    assert [h["prompt"]["name"] for h in body["data"]["searchPrompts"]] == ["support/refund-reply"]

    similar = """query { project(slug: "alpha") { prompt(name: "support/refund-reply") { similar(first: 3) {
      prompt { name } } } } }"""
    body, (stmt, params) = await _captured(app, gql, similar, {}, w.alice, "LATERAL")
    assert len(body["data"]["project"]["prompt"]["similar"]) == 3
    plan = await _explain(app, stmt, params)
    assert "Index Scan using ix_version_embeddings_hnsw_384 on version_embeddings" in plan, plan
