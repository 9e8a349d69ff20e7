"""searchPrompts: full-text (english + simple), trigram similarity for typos, snippets, filters; index use."""
from __future__ import annotations

import re

from sqlalchemy import event, text

from app.api.core.relay import decode_gid

from tests.registry.util import UPDATE, commit, create_prompt, make_world, ok

SEARCH = """query($p: ID!, $q: String!, $mode: SearchMode, $f: PromptFilter, $first: Int) {
  searchPrompts(projectId: $p, query: $q, mode: $mode, filter: $f, first: $first) {
    score snippet prompt { name } version { number } } }"""


async def _search(gql, token, project, q, **kw):
    body = await gql(SEARCH, {"p": project, "q": q, **kw}, token=token)
    return body["data"]["searchPrompts"]


async def _corpus(gql, w):
    await create_prompt(gql, w.alice, w.a, "support/refund-reply", "Thank you for contacting us about your refund.",
                        description="Answers customers who ask for their money back", tags=["support"])
    await create_prompt(gql, w.alice, w.a, "security/code-audit", "Review this code: {{code}}",
                        description="Lists every vulnerability found in a pull request", tags=["security"])
    await create_prompt(gql, w.alice, w.a, "kundendienst/antwort", "Sehr geehrte Kundin, Ihre Rückerstattung ist "
                        "unterwegs.", description="Antwort an Kunden", tags=["deutsch"])
    await create_prompt(gql, w.alice, w.a, "customer-onboarding-email", "Welcome aboard, {{name}}!",
                        description="First mail after sign-up", tags=["marketing"])
    await create_prompt(gql, w.alice, w.a, "chat/triage", content={
        "kind": "CHAT", "messages": [{"role": "user", "content": "Classify the incident severity: {{text}}"}]},
        tags=["ops"])


async def test_full_text_inflections_languages_and_typos(gql):
    w = await make_world(gql)
    await _corpus(gql, w)

    hits = await _search(gql, w.alice, w.a, "refunds")
    assert hits[0]["prompt"]["name"] == "support/refund-reply"
    assert "<mark>refund</mark>" in hits[0]["snippet"] and hits[0]["version"] == {"number": 1}
    hits = await _search(gql, w.alice, w.a, "vulnerabilities")
    assert [h["prompt"]["name"] for h in hits] == ["security/code-audit"]
    assert "<mark>vulnerability</mark>" in hits[0]["snippet"]
    hits = await _search(gql, w.alice, w.a, "Rückerstattung")
    assert [h["prompt"]["name"] for h in hits] == ["kundendienst/antwort"]
    assert "<mark>Rückerstattung</mark>" in hits[0]["snippet"]
    # Misspelt names are found by trigram similarity.
    hits = await _search(gql, w.alice, w.a, "custmer onbording")
    assert hits and hits[0]["prompt"]["name"] == "customer-onboarding-email"
    assert hits[0]["snippet"] is None  # found by name similarity alone: no text to show
    hits = await _search(gql, w.alice, w.a, "securty")
    assert hits and hits[0]["prompt"]["name"] == "security/code-audit"
    # Chat message contents, tags and web-search syntax.
    assert [h["prompt"]["name"] for h in await _search(gql, w.alice, w.a, "severity")] == ["chat/triage"]
    assert [h["prompt"]["name"] for h in await _search(gql, w.alice, w.a, "marketing")] == [
        "customer-onboarding-email"]
    names = {h["prompt"]["name"] for h in await _search(gql, w.alice, w.a, "refund or vulnerability")}
    assert names == {"support/refund-reply", "security/code-audit"}
    assert await _search(gql, w.alice, w.a, "refund -money") == []
    body = await gql(SEARCH, {"p": w.a, "q": "   "}, token=w.alice, check=False)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"  # an empty query is a user error
    assert await _search(gql, w.alice, w.a, "xylophone") == []


async def test_ranking_modes_filters_and_freshness(gql):
    w = await make_world(gql)
    await _corpus(gql, w)
    await create_prompt(gql, w.alice, w.a, "refund", "refund refund refund", description="refund", tags=["refund"])
    hits = await _search(gql, w.alice, w.a, "refund")
    assert [h["prompt"]["name"] for h in hits] == ["refund", "support/refund-reply"]
    assert hits[0]["score"] > hits[1]["score"] > 0
    # No embeddings yet (this app runs no workers): HYBRID ranks as FULLTEXT, SEMANTIC says why it cannot
    # (tests/search covers both with embeddings).
    for mode in ("FULLTEXT", "HYBRID"):
        assert await _search(gql, w.alice, w.a, "refund", mode=mode) == hits
    body = await gql(SEARCH, {"p": w.a, "q": "refund", "mode": "SEMANTIC"}, token=w.alice, check=False)
    assert body["errors"][0]["extensions"]["code"] == "EMBEDDINGS_NOT_READY"
    assert len(await _search(gql, w.alice, w.a, "refund", first=1)) == 1
    assert [h["prompt"]["name"] for h in await _search(gql, w.alice, w.a, "refund", f={"tags": ["support"]})] == [
        "support/refund-reply"]

    # The document follows the latest version, tags and status.
    p = (await gql("""query { project(slug: "alpha") { prompt(name: "support/refund-reply") { id } } }""",
                   token=w.alice))["data"]["project"]["prompt"]
    await commit(gql, w.alice, p["id"], "We are sorry about the delayed parcel.")
    hits = await _search(gql, w.alice, w.a, "parcel")
    assert [(h["prompt"]["name"], h["version"]["number"]) for h in hits] == [("support/refund-reply", 2)]
    assert await _search(gql, w.alice, w.a, "contacting") == []
    ok(await gql(UPDATE, {"i": {"id": p["id"], "tags": ["logistics"], "status": "ARCHIVED"}}, token=w.alice),
       "updatePrompt")
    assert await _search(gql, w.alice, w.a, "logistics") == []
    hits = await _search(gql, w.alice, w.a, "logistics", f={"status": ["ARCHIVED"]})
    assert [h["prompt"]["name"] for h in hits] == ["support/refund-reply"]

    body = await gql(SEARCH, {"p": w.a, "q": "x" * 501}, token=w.alice, check=False)
    assert "at most 500" in body["errors"][0]["message"]


async def _capture(app, gql, query, variables, token, marker):
    """The SQL (with its parameters) that a GraphQL request sent, for the statement containing ``marker``."""
    engine = app.state.runtime.engine.sync_engine
    seen = []

    def on(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", on)
    try:
        await gql(query, variables, token=token)
    finally:
        event.remove(engine, "before_cursor_execute", on)
    matches = [(s, p) for s, p in seen if marker in s]
    assert matches, [s for s, _ in seen]
    return matches[0]


async def _explain(app, statement, parameters) -> str:
    async with app.state.runtime.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        async with raw.transaction():
            await raw.execute("SET LOCAL enable_seqscan = off")
            rows = await raw.fetch("EXPLAIN " + statement, *parameters)
    return "\n".join(r[0] for r in rows)


async def _fill(app, project_gid: str, n: int) -> None:
    """``n`` filler prompts in the project, with varied names, descriptions and tags, and ANALYZE.

    Plain SQL: they only give the planner realistic row counts and statistics. Their search
    vectors are left empty (building them is what would make the test slow); the statistics of
    the vector column then come from the real prompts.
    """
    project_id = decode_gid(project_gid)[1]
    async with app.state.runtime.sessionmaker() as session, session.begin():
        await session.execute(text(
            "INSERT INTO prompts (project_id, name, description, tags, latest_version) "
            "SELECT :p, 'filler/' || substr(md5(i::text || random()::text), 1, 10), 'x' || substr(md5('a' || i), 1, 6), "
            "       ARRAY['t' || (i % 50)], 0 "
            "FROM generate_series(1, :n) AS i"), {"p": project_id, "n": n})
    async with app.state.runtime.engine.connect() as conn:
        await conn.execute(text("ANALYZE prompts"))
        await conn.commit()


async def test_search_and_listing_use_their_indexes(app, gql):
    w = await make_world(gql)
    await _corpus(gql, w)
    await _fill(app, w.a, 3000)
    stmt, params = await _capture(app, gql, SEARCH, {"p": w.a, "q": "refund"}, w.alice, "websearch_to_tsquery")
    plan = await _explain(app, stmt, params)
    assert re.search(r"Bitmap Index Scan on ix_prompts_search_vector", plan), plan
    # Both trigram branches (name % q, name %> q) go through the trigram index (see migration 0002).
    assert len(re.findall(r"Bitmap Index Scan on ix_prompts_name_trgm", plan)) == 2, plan
    assert "Seq Scan" not in plan, plan

    listing = """query($o: PromptOrder) { project(slug: "alpha") { prompts(first: 2, orderBy: $o) {
        nodes { name } } } }"""
    for order, index in ((None, "ix_prompts_project_id_created_at_id"),
                         ({"field": "UPDATED_AT", "direction": "DESC"}, "ix_prompts_project_id_updated_at_id"),
                         ({"field": "NAME", "direction": "ASC"}, "uq_prompts_project_id_name")):
        stmt, params = await _capture(app, gql, listing, {"o": order}, w.alice, "row_number()")
        plan = await _explain(app, stmt, params)
        assert index in plan, (order, plan)
        assert "Sort" not in plan.split("WindowAgg")[-1], (order, plan)
