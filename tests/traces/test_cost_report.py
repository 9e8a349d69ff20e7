"""costReport against real PostgreSQL: the figures equal what the raw usage rows say (computed here in Python),
whichever way the server reads them (the hourly rollup, or llm_usage when a p95 is asked for); empty buckets
are zeros; the rollup is kept exact by every writer (ingested spans, executions' priced calls, a deleted
prompt, concurrent batches); bad ranges and callers are refused."""
from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from app.services.cost_report import TimeBucket, advance, truncate
from tests.executions.util import create_prompt, db_fetch
from tests.helpers import create_api_key, create_project, signup
from tests.registry.util import DELETE

from .util import llm, raw_uuid, span

REPORT = """query($p: ID!, $from: DateTime!, $to: DateTime!, $bucket: TimeBucket, $groupBy: [CostDimension!]) {
  costReport(projectId: $p, from: $from, to: $to, bucket: $bucket, groupBy: $groupBy) {
    from to bucket groupBy totals { calls inputTokens outputTokens totalTokens costUsd }
    buckets { start provider model endUserId prompt { id } version { id } calls inputTokens outputTokens totalTokens
              costUsd avgLatencyMs %s } } }"""
WITH_P95 = REPORT % "p95LatencyMs"
WITHOUT_P95 = REPORT % ""

START = datetime(2026, 10, 1, tzinfo=UTC)
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5")]


async def _world(gql):
    await signup(gql, "root")
    token, _ = await signup(gql, "owner")
    project = await create_project(gql, token, "costs")
    prompts = [await create_prompt(gql, token, project, f"p{i}") for i in range(2)]
    return token, project, prompts


def _calls(prompts, n: int, seed: int = 7) -> list[dict]:
    """n calls over three days (at any minute, so hours are partial), with and without latency and prompt."""
    rng = random.Random(seed)
    calls = []
    for i in range(n):
        provider, model = MODELS[i % 3]
        prompt = prompts[i % 3] if i % 3 < len(prompts) else None
        calls.append({
            "at": START + timedelta(minutes=rng.randrange(3 * 24 * 60), seconds=rng.randrange(60)),
            "provider": provider, "model": model, "input": rng.randrange(10, 2000), "output": rng.randrange(1, 500),
            "cost": Decimal(rng.randrange(1, 10_000)) / 1_000_000, "latency": None if i % 7 == 0 else rng.randrange(50, 5000),
            "user": f"user-{i % 4}", "prompt": raw_uuid(prompt[0]) if prompt else None,
            "version": raw_uuid(prompt[1]) if prompt else None})
    return calls


async def _store(write, project: str, calls: list[dict], batch: int = 50) -> None:
    spans = [span(f"{i // 10 + 1:032x}", i + 1, None, start=0, end=0, t0=c["at"], kind="LLM", end_user_id=c["user"],
                  usage=llm(c["input"], c["output"], provider=c["provider"], model=c["model"], cost_usd=c["cost"],
                            latency_ms=c["latency"], prompt_id=c["prompt"], version_id=c["version"]))
             for i, c in enumerate(calls)]
    for i in range(0, len(spans), batch):
        await write(project, spans[i:i + batch])


def _p95(values: list[int]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    pos = 0.95 * (len(v) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _expected(calls: list[dict], start: datetime, end: datetime, bucket: TimeBucket, dims: list[str]):
    """The report computed from the raw calls, in Python: {(bucket start, group...): figures}, totals."""
    key_of = {"PROVIDER": "provider", "MODEL": "model", "END_USER": "user", "PROMPT": "prompt", "VERSION": "version"}
    inside = [c for c in calls if start <= c["at"] < end]
    groups = {tuple(c[key_of[d]] for d in dims) for c in inside} if dims else {()}
    rows = {}
    at = truncate(start, bucket)
    while at < end:
        for g in groups:
            rows[(at, g)] = []
        at = advance(at, bucket)
    for c in inside:
        rows[(truncate(c["at"], bucket), tuple(c[key_of[d]] for d in dims))].append(c)
    out = {}
    for key, cs in rows.items():
        lat = [c["latency"] for c in cs if c["latency"] is not None]
        out[key] = {"calls": len(cs), "inputTokens": sum(c["input"] for c in cs),
                    "outputTokens": sum(c["output"] for c in cs), "costUsd": sum((c["cost"] for c in cs), Decimal(0)),
                    "avg": sum(lat) / len(lat) if lat else None, "p95": _p95(lat)}
    totals = {"calls": len(inside), "inputTokens": sum(c["input"] for c in inside),
              "outputTokens": sum(c["output"] for c in inside), "costUsd": sum((c["cost"] for c in inside), Decimal(0))}
    return out, totals


def _got(report: dict, dims: list[str]):
    out = {}
    field = {"PROVIDER": "provider", "MODEL": "model", "END_USER": "endUserId"}
    for b in report["buckets"]:
        g = []
        for d in dims:
            if d in field:
                g.append(b[field[d]])
            else:
                ref = b["prompt" if d == "PROMPT" else "version"]
                g.append(raw_uuid(ref["id"]) if ref else None)
        out[(datetime.fromisoformat(b["start"]), tuple(g))] = b
    return out


def _same(got: dict, want: dict, *, p95: bool) -> None:
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        assert (g["calls"], g["inputTokens"], g["outputTokens"]) == (w["calls"], w["inputTokens"], w["outputTokens"]), key
        assert g["totalTokens"] == w["inputTokens"] + w["outputTokens"]
        assert Decimal(g["costUsd"]) == w["costUsd"], key
        assert (g["avgLatencyMs"] is None) == (w["avg"] is None) and (
            w["avg"] is None or abs(g["avgLatencyMs"] - w["avg"]) < 1e-6), key
        if p95:
            assert (g["p95LatencyMs"] is None) == (w["p95"] is None) and (
                w["p95"] is None or abs(g["p95LatencyMs"] - w["p95"]) < 1e-6), key


@pytest.mark.parametrize("bucket,dims", [
    ("HOUR", []), ("DAY", []), ("DAY", ["MODEL"]), ("DAY", ["PROVIDER", "PROMPT"]), ("HOUR", ["VERSION"]),
    ("WEEK", ["END_USER"]), ("MONTH", ["PROVIDER", "MODEL", "END_USER", "PROMPT", "VERSION"]),
])
async def test_figures_equal_the_raw_rows_by_either_path(gql, write, bucket, dims):
    token, project, prompts = await _world(gql)
    calls = _calls(prompts, 400)
    await _store(write, project, calls)
    # edges inside hours: the rollup serves the whole hours, the raw rows the partial ones at both ends
    start, end = START + timedelta(hours=5, minutes=17, seconds=3), START + timedelta(days=2, hours=20, minutes=41)
    want, totals = _expected(calls, start, end, TimeBucket(bucket), dims)
    for query, p95 in ((WITHOUT_P95, False), (WITH_P95, True)):
        body = await gql(query, {"p": project, "from": start.isoformat(), "to": end.isoformat(), "bucket": bucket,
                                 "groupBy": dims}, token=token)
        report = body["data"]["costReport"]
        assert report["bucket"] == bucket and report["groupBy"] == dims
        assert datetime.fromisoformat(report["from"]) == start and datetime.fromisoformat(report["to"]) == end
        got = _got(report, dims)
        _same(got, want, p95=p95)
        starts = [datetime.fromisoformat(b["start"]) for b in report["buckets"]]
        assert starts == sorted(starts)  # in time order
        t = report["totals"]
        assert (t["calls"], t["inputTokens"], t["outputTokens"]) == (totals["calls"], totals["inputTokens"],
                                                                     totals["outputTokens"])
        assert Decimal(t["costUsd"]) == totals["costUsd"] and totals["calls"] > 300


async def test_empty_buckets_are_zeros_and_groups_are_gap_free(gql, write):
    token, project, prompts = await _world(gql)
    day = lambda d, h=12: START + timedelta(days=d, hours=h)  # noqa: E731
    await _store(write, project, [
        {"at": day(1), "provider": "openai", "model": "gpt-4o", "input": 10, "output": 1, "cost": Decimal("0.01"),
         "latency": 100, "user": "a", "prompt": None, "version": None},
        {"at": day(3), "provider": "openai", "model": "gpt-4o-mini", "input": 20, "output": 2, "cost": Decimal("0.02"),
         "latency": None, "user": "b", "prompt": None, "version": None}])
    body = await gql(WITH_P95, {"p": project, "from": START.isoformat(), "to": day(5, 0).isoformat()}, token=token)
    buckets = body["data"]["costReport"]["buckets"]
    assert [b["calls"] for b in buckets] == [0, 1, 0, 1, 0]  # five days, DAY by default
    zero = buckets[0]
    assert (zero["costUsd"], zero["inputTokens"], zero["avgLatencyMs"], zero["p95LatencyMs"]) == ("0.000000", 0, None,
                                                                                                  None)
    assert buckets[3]["avgLatencyMs"] is None and buckets[1]["p95LatencyMs"] == 100.0

    body = await gql(WITHOUT_P95, {"p": project, "from": START.isoformat(), "to": day(5, 0).isoformat(),
                                   "groupBy": ["MODEL"]}, token=token)
    rows = [(b["start"][:10], b["model"], b["calls"]) for b in body["data"]["costReport"]["buckets"]]
    assert rows == [(f"2026-10-0{d}", m, int((d, m) in {(2, "gpt-4o"), (4, "gpt-4o-mini")}))
                    for d in range(1, 6) for m in ("gpt-4o", "gpt-4o-mini")]

    # no calls at all: every bucket as zeros without groupBy, no rows with it
    later = {"p": project, "from": "2027-01-01T00:00:00Z", "to": "2027-01-03T00:00:00Z"}
    report = (await gql(WITHOUT_P95, later, token=token))["data"]["costReport"]
    assert [b["calls"] for b in report["buckets"]] == [0, 0] and report["totals"]["calls"] == 0
    assert (await gql(WITHOUT_P95, {**later, "groupBy": ["MODEL"]}, token=token))["data"]["costReport"]["buckets"] == []
    # an empty range
    report = (await gql(WITHOUT_P95, {**later, "to": later["from"]}, token=token))["data"]["costReport"]
    assert report["buckets"] == [] and report["totals"]["costUsd"] == "0.000000"


async def test_bad_ranges_are_the_callers_mistake(gql, make_app, write):
    token, project, _ = await _world(gql)
    cases = [
        ({"from": "2026-10-02T00:00:00Z", "to": "2026-10-01T00:00:00Z"}, "is after"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "bucket": "HOUR"}, "larger bucket (DAY)"),
        ({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "bucket": "MONTH"}, "shorter range"),
    ]
    for args, words in cases:
        body = await gql(WITHOUT_P95, {"p": project, **args}, token=token, check=False)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT" and words in error["message"], error
        assert body["data"] is None

    # too many rows: a server allowing 5
    await _store(write, project, _calls([], 30))
    async with make_app(cost_report_max_rows=5) as small:
        transport = httpx.ASGITransport(app=small)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            resp = await c.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
                "query": WITHOUT_P95, "variables": {"p": project, "from": START.isoformat(),
                                                    "to": (START + timedelta(days=3)).isoformat(),
                                                    "groupBy": ["MODEL"]}})
    (error,) = resp.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "more than 5 rows" in error["message"]

    # totals past GraphQL's 32-bit Int: refused, never a wrong number
    big = START + timedelta(days=20)
    await write(project, [span(f"{999:032x}", n, None, start=0, end=0, t0=big, kind="LLM", usage=llm(2_000_000_000, 1))
                          for n in (1, 2)])
    body = await gql(WITHOUT_P95, {"p": project, "from": big.isoformat(), "to": (big + timedelta(days=1)).isoformat()},
                     token=token, check=False)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "GraphQL Int" in error["message"], error


async def test_who_may_read_costs(gql, write):
    token, project, prompts = await _world(gql)
    await _store(write, project, _calls(prompts, 20))
    other, _ = await signup(gql, "stranger")
    await create_project(gql, other, "theirs")
    args = {"p": project, "from": START.isoformat(), "to": (START + timedelta(days=3)).isoformat(),
            "groupBy": ["PROMPT"]}

    async def code(tok: str) -> str | None:
        body = await gql(WITHOUT_P95, args, token=tok, check=False)
        return body["errors"][0]["extensions"]["code"] if body.get("errors") else None

    assert await code(other) == "NOT_FOUND"  # another tenant: the project is not there
    assert await code("") == "UNAUTHENTICATED"
    prompts_key = await create_api_key(gql, token, project, ["PROMPTS_READ"], name="prompts")
    assert await code(prompts_key) == "FORBIDDEN"
    for scope in ("TRACES_READ", "EXECUTIONS_READ"):
        key = await create_api_key(gql, token, project, [scope], name=scope)
        body = await gql(WITHOUT_P95, args, token=key)
        assert body["data"]["costReport"]["totals"]["calls"] == 20
        # a key that may not read prompts sees the groups, not the prompts
        assert all(b["prompt"] is None for b in body["data"]["costReport"]["buckets"])
    body = await gql(WITHOUT_P95, args, token=token)
    assert {b["prompt"]["id"] for b in body["data"]["costReport"]["buckets"] if b["prompt"]} == {p for p, _ in prompts}


async def _rollup_matches_raw(db_url: str) -> int:
    """The rollup equals llm_usage summed per key, row for row; returns the number of calls."""
    key = "project_id, date_trunc('hour', created_at, 'UTC'), provider, model, prompt_id, version_id"
    raw = await db_fetch(db_url, f"""SELECT {key}, count(*) AS calls, sum(input_tokens) AS i, sum(output_tokens) AS o,
        sum(total_cost_usd) AS c, coalesce(sum(latency_ms), 0) AS ls, count(latency_ms) AS lc FROM llm_usage
        GROUP BY {key} ORDER BY 1, 2, 3, 4, 5, 6""")
    rollup = await db_fetch(db_url, """SELECT project_id, hour, provider, model, prompt_id, version_id, calls,
        input_tokens AS i, output_tokens AS o, cost_usd AS c, latency_ms_sum AS ls, latency_calls AS lc
        FROM llm_usage_hourly ORDER BY 1, 2, 3, 4, 5, 6""")
    assert [tuple(r) for r in rollup] == [tuple(r) for r in raw]
    return sum(r["calls"] for r in raw)


async def test_the_rollup_follows_every_writer(gql, write, db_url, app):
    from app.services.models import price_call

    token, project, prompts = await _world(gql)
    calls = _calls(prompts, 120)
    await _store(write, project, calls)
    # an execution's call, recorded the way the engine records it: priced first (for its logs), counted tokens
    at = datetime.now(UTC)
    async with app.state.runtime.sessionmaker() as session, session.begin():
        priced = await price_call(session, "openai", "gpt-4o", 1000, 100, 0, at)
    await write(project, [span(f"{6999:032x}", 1, None, start=0, end=1, t0=at, kind="LLM",
                               usage=llm(1000, 100, reported=False, cost=priced.cost, latency_ms=900,
                                         model_config_id=priced.config.id if priced.config else None,
                                         prompt_id=raw_uuid(prompts[0][0]), version_id=raw_uuid(prompts[0][1])))])
    assert await _rollup_matches_raw(db_url) == 121

    # concurrent batches of the same hours and models (the same rollup rows, in any order): no deadlock, nothing
    # counted twice or lost. (Each batch its own traces: concurrent batches sharing traces can deadlock in
    # write_spans itself, before any usage is written — see tests/traces/test_write_spans.py.)
    burst = _calls(prompts, 400, seed=11)
    random.Random(3).shuffle(burst)
    batches = [[span(f"{7000 + b:032x}", i + 1, None, start=0, end=0, t0=c["at"], kind="LLM",
                     usage=llm(c["input"], c["output"], provider=c["provider"], model=c["model"],
                               latency_ms=c["latency"]))
                for i, c in enumerate(burst[b::8])] for b in range(8)]
    await asyncio.gather(*(write(project, batch) for batch in batches))
    assert await _rollup_matches_raw(db_url) == 521

    # a deleted prompt: its calls' prompt and version become null in llm_usage, and in the rollup
    body = await gql(DELETE, {"i": {"id": prompts[0][0]}}, token=token)
    assert body["data"]["deletePrompt"]["userErrors"] == []
    assert await _rollup_matches_raw(db_url) == 521
    args = {"p": project, "from": START.isoformat(), "to": (START + timedelta(days=3)).isoformat(),
            "groupBy": ["PROMPT", "VERSION"]}
    rollup = (await gql(WITHOUT_P95, args, token=token))["data"]["costReport"]
    raw = (await gql(WITH_P95, args, token=token))["data"]["costReport"]
    strip = lambda r: [{k: v for k, v in b.items() if k != "p95LatencyMs"} for b in r["buckets"]]  # noqa: E731
    assert strip(rollup) == strip(raw) and rollup["totals"] == raw["totals"]

    # a deleted project takes its usage and rollup with it
    await db_fetch(db_url, "DELETE FROM projects WHERE id = $1", raw_uuid(project))
    assert await _rollup_matches_raw(db_url) == 0
    assert (await db_fetch(db_url, "SELECT count(*) AS n FROM llm_usage_hourly"))[0]["n"] == 0


async def test_the_upgrade_sums_the_usage_already_there(gql, write, db_url):
    import importlib.util

    from tests.conftest import ROOT

    token, project, prompts = await _world(gql)
    await _store(write, project, _calls(prompts, 60))
    spec = importlib.util.spec_from_file_location("m0009", ROOT / "alembic/versions/0009_usage_rollup.py")
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    await db_fetch(db_url, "DELETE FROM llm_usage_hourly")
    await db_fetch(db_url, migration.BACKFILL)  # what upgrade() runs after creating the table
    assert await _rollup_matches_raw(db_url) == 60
