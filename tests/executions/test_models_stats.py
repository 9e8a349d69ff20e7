"""Model prices (seed, upsertModelConfig, models, providers), feedback, version stats, split report, retention."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from app.engine.retention import sweep_executions
from app.services.models import seed_pricing
from tests.deployments.util import add_version, split

from .util import (ERR, add_member, db_execute, db_fetch, execute_ok, raw_uuid, signup, tenant, upsert_model)

FEEDBACK = f"""mutation($i: SubmitFeedbackInput!) {{ submitFeedback(input: $i) {{
  feedback {{ id rating comment user {{ id }} execution {{ id }} }} {ERR} }} }}"""
STATS = """query($id: ID!, $from: DateTime, $to: DateTime) { node(id: $id) { ... on PromptVersion {
  stats(from: $from, to: $to) { version { number } executions completed failed successRate validationPassRate
    avgLatencyMs p95LatencyMs avgInputTokens avgOutputTokens avgCostUsd totalCostUsd avgRating ratingCount } } } }"""


async def test_upsert_model_config_and_models_query(gql, app, db_url):
    admin = await tenant(gql, "ann")  # first user: superuser
    other, _ = await signup(gql, "bob")
    p = await upsert_model(gql, other, provider="acme", modelId="m1", inputPricePerMillion="1",
                           outputPricePerMillion="2")
    assert [(e["code"], e["field"]) for e in p["userErrors"]] == [("FORBIDDEN", None)]
    p = await upsert_model(gql, admin.token, provider="Acme!", modelId="", inputPricePerMillion="-1",
                           outputPricePerMillion="0.0000001")
    assert sorted(tuple(e["field"]) for e in p["userErrors"]) == sorted([
        ("input", "provider"), ("input", "modelId"), ("input", "inputPricePerMillion"),
        ("input", "outputPricePerMillion")])

    past = "2024-01-01T00:00:00Z"
    p = await upsert_model(gql, admin.token, provider="acme", modelId="m1", displayName="Acme One",
                           contextLength=1000, supportsTools=True, inputPricePerMillion="1",
                           outputPricePerMillion="2", effectiveFrom=past)
    first = p["modelConfig"]
    assert p["userErrors"] == [] and first["displayName"] == "Acme One" and first["effectiveFrom"].startswith("2024")
    # same effectiveFrom: that row is updated
    p = await upsert_model(gql, admin.token, provider="acme", modelId="m1", inputPricePerMillion="1.5",
                           outputPricePerMillion="2", effectiveFrom=past)
    assert p["modelConfig"]["id"] == first["id"] and Decimal(p["modelConfig"]["inputPricePerMillion"]) == Decimal("1.5")
    # a later price is a new row; fields left out come from the latest row
    p = await upsert_model(gql, admin.token, provider="acme", modelId="m1", inputPricePerMillion="3",
                           outputPricePerMillion="4")
    new = p["modelConfig"]
    assert new["id"] != first["id"] and new["displayName"] == "Acme One" and new["contextLength"] == 1000
    assert new["supportsTools"] is True
    # a future price is not in force yet
    await upsert_model(gql, admin.token, provider="acme", modelId="m1", inputPricePerMillion="9",
                       outputPricePerMillion="9", effectiveFrom="2999-01-01T00:00:00Z")
    body = await gql("""{ models(provider: "acme") { id modelId inputPricePerMillion } }""")
    assert [(m["id"], Decimal(m["inputPricePerMillion"])) for m in body["data"]["models"]] == [(new["id"], 3)]
    rows = await db_fetch(db_url, "SELECT result FROM audit_events WHERE action = 'model_config.upsert' "
                                  "ORDER BY created_at")
    assert [r["result"] for r in rows] == ["DENIED", "FAILURE", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"]

    # the shipped table is seeded at start-up, once
    body = await gql("""{ models { provider modelId inputPricePerMillion effectiveFrom } }""")
    models = {(m["provider"], m["modelId"]): m for m in body["data"]["models"]}
    assert {("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("acme", "m1")} <= set(models)
    assert {p for p, _ in models} >= {"openai", "anthropic", "google", "echo"}
    assert models[("openai", "gpt-4o")]["effectiveFrom"].startswith("2026-11-22")
    assert ("echo", "echo-1") in models and Decimal(models[("echo", "echo-1")]["inputPricePerMillion"]) == 0
    assert await seed_pricing(app.state.runtime.sessionmaker) == 0
    node = await gql("query($id: ID!) { node(id: $id) { ... on ModelConfig { modelId } } }", {"id": new["id"]})
    assert node["data"]["node"] == {"modelId": "m1"}


async def test_seeding_keeps_an_admins_later_price(gql, app, db_url):
    admin = await tenant(gql, "cyd")
    await db_execute(db_url, "DELETE FROM model_configs WHERE provider = 'openai' AND model_id = 'gpt-4o'")
    p = await upsert_model(gql, admin.token, provider="openai", modelId="gpt-4o", inputPricePerMillion="7",
                           outputPricePerMillion="7")
    assert p["userErrors"] == []
    assert await seed_pricing(app.state.runtime.sessionmaker) == 0
    rows = await db_fetch(db_url, "SELECT input_price_per_million FROM model_configs WHERE model_id = 'gpt-4o'")
    assert [r["input_price_per_million"] for r in rows] == [Decimal(7)]


async def test_providers_query(gql):
    t = await tenant(gql, "deb")
    q = "query($id: ID!) { providers(projectId: $id) { name configured supportsStreaming hasStoredCredential } }"
    got = {p["name"]: p for p in (await gql(q, {"id": t.project_id}, token=t.token))["data"]["providers"]}
    assert got["echo"]["configured"] is True and got["openai"]["configured"] is False
    assert got["anthropic"]["configured"] is False and all(p["supportsStreaming"] for p in got.values())
    body = await gql(f"""mutation($i: SetProviderCredentialInput!) {{ setProviderCredential(input: $i) {{ {ERR} }} }}""",
                     {"i": {"projectId": t.project_id, "provider": "anthropic", "apiKey": "ak-1234567890"}},
                     token=t.token)
    assert body["data"]["setProviderCredential"]["userErrors"] == []
    got = {p["name"]: p for p in (await gql(q, {"id": t.project_id}, token=t.token))["data"]["providers"]}
    assert got["anthropic"]["configured"] is True and got["anthropic"]["hasStoredCredential"] is True
    stranger, _ = await signup(gql, "eve")
    assert (await gql(q, {"id": t.project_id}, token=stranger))["data"]["providers"] == []


async def finish(db_url, eid, status="COMPLETED", latency=None, cost=None, validation="SKIPPED", tokens=(10, 20),
                 environment=None, created=None):
    await db_execute(
        db_url, "UPDATE executions SET status = $2, started_at = coalesce($7, now()), completed_at = "
                "coalesce($7, now()), latency_ms = $3, cost_usd = $4, validation_status = $5, input_tokens = $6, "
                "output_tokens = $8, environment = $9, created_at = coalesce($7, created_at) WHERE id = $1",
        raw_uuid(eid), status, latency, cost, validation, tokens[0], created, tokens[1], environment)


async def test_feedback(gql, db_url):
    t = await tenant(gql, "fay")
    viewer, _ = await signup(gql, "vic")
    await add_member(gql, t.token, t.project_id, "vic", "VIEWER")
    eid = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
    p = (await gql(FEEDBACK, {"i": {"executionId": eid, "rating": 5}}, token=t.token))["data"]["submitFeedback"]
    assert [(e["code"], e["field"]) for e in p["userErrors"]] == [("CONFLICT", ["input", "executionId"])]
    await finish(db_url, eid)
    for bad in (0, 6):
        p = (await gql(FEEDBACK, {"i": {"executionId": eid, "rating": bad}}, token=t.token))["data"]["submitFeedback"]
        assert [(e["code"], e["field"]) for e in p["userErrors"]] == [("INVALID", ["input", "rating"])]
    p = (await gql(FEEDBACK, {"i": {"executionId": eid, "rating": 4, "comment": " nice "}},
                   token=viewer))["data"]["submitFeedback"]
    assert p["userErrors"] == [] and p["feedback"]["rating"] == 4 and p["feedback"]["comment"] == "nice"
    assert p["feedback"]["execution"]["id"] == eid and p["feedback"]["user"] is not None
    stranger, _ = await signup(gql, "sam")
    p = (await gql(FEEDBACK, {"i": {"executionId": eid, "rating": 4}}, token=stranger))["data"]["submitFeedback"]
    assert [(e["code"], e["field"]) for e in p["userErrors"]] == [("NOT_FOUND", ["input", "executionId"])]
    body = await gql("query($id: ID!) { node(id: $id) { ... on Execution { feedback { rating } } } }", {"id": eid},
                     token=t.token)
    assert body["data"]["node"]["feedback"] == [{"rating": 4}]
    fid = (await gql("query($id: ID!) { node(id: $id) { ... on Execution { feedback { id } } } }", {"id": eid},
                     token=t.token))["data"]["node"]["feedback"][0]["id"]
    node = "query($id: ID!) { node(id: $id) { ... on Feedback { rating execution { id } } } }"
    assert (await gql(node, {"id": fid}, token=viewer))["data"]["node"] == {"rating": 4, "execution": {"id": eid}}
    assert (await gql(node, {"id": fid}, token=stranger))["data"]["node"] is None
    rows = await db_fetch(db_url, "SELECT result FROM audit_events WHERE action = 'feedback.create' "
                                  "ORDER BY created_at")
    assert [r["result"] for r in rows] == ["FAILURE", "FAILURE", "FAILURE", "SUCCESS", "FAILURE"]


async def test_version_stats_and_split_report(gql, db_url, sql_counter):
    t = await tenant(gql, "gus")
    v2 = await add_version(gql, t.token, t.prompt_id, "v2 {{name}}")
    v1_ids = [await execute_ok(gql, t.token, versionId=t.version_id, variables={"name": "a"}) for _ in range(5)]
    v2_ids = [await execute_ok(gql, t.token, versionId=v2, variables={"name": "a"}) for _ in range(2)]
    await finish(db_url, v1_ids[0], latency=100, cost=Decimal("0.01"), validation="PASSED", environment="production")
    await finish(db_url, v1_ids[1], latency=200, cost=Decimal("0.02"), validation="PASSED", environment="production")
    await finish(db_url, v1_ids[2], latency=300, cost=Decimal("0.03"), validation="FAILED", environment="staging")
    await finish(db_url, v1_ids[3], status="FAILED", tokens=(None, None), environment="production")
    # v1_ids[4] stays PENDING; an old one of v2 falls outside the window below
    old = datetime.now(timezone.utc) - timedelta(days=30)
    await finish(db_url, v2_ids[0], latency=50, cost=Decimal("0.5"), environment="production", created=old)
    await finish(db_url, v2_ids[1], latency=70, cost=Decimal("0.1"), environment="production")
    for eid, rating in ((v1_ids[0], 4), (v1_ids[1], 2), (v1_ids[1], 3)):
        p = (await gql(FEEDBACK, {"i": {"executionId": eid, "rating": rating}}, token=t.token))["data"]
        assert p["submitFeedback"]["userErrors"] == []

    s = (await gql(STATS, {"id": t.version_id}, token=t.token))["data"]["node"]["stats"]
    assert (s["executions"], s["completed"], s["failed"]) == (5, 3, 1)
    assert s["successRate"] == 0.75 and abs(s["validationPassRate"] - 2 / 3) < 1e-9
    assert s["avgLatencyMs"] == 200 and abs(s["p95LatencyMs"] - 290) < 1e-9
    assert s["avgInputTokens"] == 10 and s["avgOutputTokens"] == 20
    assert Decimal(s["avgCostUsd"]) == Decimal("0.02") and Decimal(s["totalCostUsd"]) == Decimal("0.06")
    assert s["avgRating"] == 3 and s["ratingCount"] == 3 and s["version"]["number"] == 1

    week_ago = (datetime.now(timezone.utc) - timedelta(days=7)).isoformat()
    s = (await gql(STATS, {"id": v2, "from": week_ago}, token=t.token))["data"]["node"]["stats"]
    assert s["executions"] == 1 and Decimal(s["totalCostUsd"]) == Decimal("0.1")
    s = (await gql(STATS, {"id": v2, "to": week_ago}, token=t.token))["data"]["node"]["stats"]
    assert s["executions"] == 1 and Decimal(s["totalCostUsd"]) == Decimal("0.5")
    empty = (await gql(STATS, {"id": v2, "from": "2999-01-01T00:00:00Z"}, token=t.token))["data"]["node"]["stats"]
    assert empty["executions"] == 0 and empty["successRate"] is None and empty["totalCostUsd"] in ("0", "0.000000")

    q = """query($id: ID!, $env: String!) { node(id: $id) { ... on Prompt { splitReport(environment: $env) {
      version { number } executions completed successRate avgRating totalCostUsd } } } }"""
    assert (await gql(q, {"id": t.prompt_id, "env": "production"}, token=t.token))["data"]["node"]["splitReport"] == []
    await split(gql, t.token, t.prompt_id, [(t.version_id, 70), (v2, 30)])
    report = (await gql(q, {"id": t.prompt_id, "env": "production"}, token=t.token))["data"]["node"]["splitReport"]
    assert [(r["version"]["number"], r["executions"], r["completed"]) for r in report] == [(1, 3, 2), (2, 2, 2)]
    assert report[0]["successRate"] == 2 / 3 and report[0]["avgRating"] == 3

    # stats of many versions: one statement, whatever the number of versions
    many = """query($id: ID!) { node(id: $id) { ... on Prompt { versions { nodes { number
      stats { executions avgRating } } } } } }"""
    with sql_counter() as c1:
        await gql(many, {"id": t.prompt_id}, token=t.token)
    await add_version(gql, t.token, t.prompt_id, "v3 {{name}}")
    await add_version(gql, t.token, t.prompt_id, "v4 {{name}}")
    with sql_counter() as c2:
        body = await gql(many, {"id": t.prompt_id}, token=t.token)
    assert [v["stats"]["executions"] for v in body["data"]["node"]["versions"]["nodes"]] == [0, 0, 2, 5]
    assert c1.count == c2.count


async def test_retention_deletes_old_finished_executions(gql, app, db_url):
    t = await tenant(gql, "hal")
    keep_forever = await tenant(gql, "ivy")
    body = await gql(f"""mutation($i: UpdateProjectInput!) {{ updateProject(input: $i) {{ {ERR} }} }}""",
                     {"i": {"id": t.project_id, "settings": {"executionRetentionDays": 7}}}, token=t.token)
    assert body["data"]["updateProject"]["userErrors"] == []
    old = datetime.now(timezone.utc) - timedelta(days=10)
    gone = [await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"}) for _ in range(3)]
    recent = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
    old_pending = await execute_ok(gql, t.token, promptId=t.prompt_id, variables={"name": "a"})
    other = await execute_ok(gql, keep_forever.token, promptId=keep_forever.prompt_id, variables={"name": "a"})
    for eid in gone + [other]:
        await finish(db_url, eid, created=old)
    await finish(db_url, recent)
    await db_execute(db_url, "UPDATE executions SET created_at = $2 WHERE id = $1", raw_uuid(old_pending), old)
    await db_execute(db_url, "INSERT INTO feedback (execution_id, rating) VALUES ($1, 5)", raw_uuid(gone[0]))
    await db_execute(db_url, "INSERT INTO llm_usage (project_id, provider, model, input_tokens, output_tokens, "
                             "input_cost_usd, output_cost_usd, total_cost_usd, execution_id) "
                             "SELECT project_id, 'echo', 'echo-1', 1, 1, 0, 0, 0, id FROM executions WHERE id = $1",
                     raw_uuid(gone[0]))

    deleted = await sweep_executions(app.state.runtime.sessionmaker, batch_size=2)
    assert deleted == 3
    left = {r["id"] for r in await db_fetch(db_url, "SELECT id FROM executions")}
    assert left == {raw_uuid(recent), raw_uuid(old_pending), raw_uuid(other)}
    assert (await db_fetch(db_url, "SELECT count(*) AS n FROM feedback"))[0]["n"] == 0
    assert (await db_fetch(db_url, "SELECT count(*) AS n FROM execution_events WHERE execution_id = ANY($1)",
                           [raw_uuid(g) for g in gone]))[0]["n"] == 0
    usage = await db_fetch(db_url, "SELECT execution_id FROM llm_usage")
    assert [u["execution_id"] for u in usage] == [None]  # usage records stay for cost reports
    assert await sweep_executions(app.state.runtime.sessionmaker) == 0
