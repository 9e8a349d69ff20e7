"""Benchmark of costReport over a month of usage: a million llm_usage rows, queried over HTTP from a real server.

What it does:

1. Database: ``--database-url`` / ``DATABASE_URL`` as given (seed data is added: a user, a project, prompts),
   or a throw-away database on the embedded PostgreSQL in ``--data-dir``, dropped at the end.
2. Server: the real app under uvicorn in a child process on 127.0.0.1 (``bench/resolve_prompt.py``'s).
3. Seed through GraphQL: sign up, a project, ``--prompts`` prompts.
4. Load ``--rows`` usage rows spread evenly over the 31 days of ``--month`` (5 models of 2 providers, the prompts
   and their versions or none, 1,000 end users, latencies, some calls without one) with ``INSERT … SELECT`` in
   chunks of 100,000 rows, through the triggers that keep the hourly rollup — the time is printed. Then what the
   rollup trigger costs a write: inserting ``--write-rows`` rows (in a transaction rolled back) with the triggers
   and without them, alternating, ``--repeat`` times each.
5. Reports over HTTP (``costReport`` with a member's token, ``--repeat`` times each, after one warm-up): the
   month by DAY, by DAY and MODEL, by HOUR and PROVIDER, by WEEK and END_USER (read from llm_usage: the rollup
   has no end users), and by DAY with p95 latency (read from llm_usage: percentiles do not add up). Medians,
   minimum and maximum in ms; then the same report from the service function alone (its SQL statement and
   rows, no GraphQL), which tells the database's share from the GraphQL layer's.
6. The same report's one statement from the rollup and from llm_usage directly (SQL only, alternating), and
   their ratio; the figures of both are checked to be equal.

    .venv/bin/python bench/cost_report.py                 # a million rows, about three minutes on two cores
    .venv/bin/python bench/cost_report.py --rows 100000   # quicker
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from bench.peers import add_database_options  # noqa: E402
from bench.resolve_prompt import database, gql, server  # noqa: E402

REPORT = """query($p: ID!, $from: DateTime!, $to: DateTime!, $bucket: TimeBucket, $groupBy: [CostDimension!]) {
  costReport(projectId: $p, from: $from, to: $to, bucket: $bucket, groupBy: $groupBy) {
    totals { calls inputTokens outputTokens costUsd }
    buckets { start provider model endUserId prompt { id } calls inputTokens outputTokens costUsd avgLatencyMs %s }
  } }"""

SCENARIOS = [
    ("DAY", [], False),
    ("DAY", ["MODEL"], False),
    ("HOUR", ["PROVIDER"], False),
    ("WEEK", ["END_USER"], False),
    ("DAY", [], True),
]

CHUNK = 100_000

# $1 project, $2 month start, $3 seconds between calls, $4 first row number, $5 rows, $6 prompt ids, $7 version ids
LOAD = """
INSERT INTO llm_usage (project_id, provider, model, input_tokens, output_tokens, input_cost_usd, output_cost_usd,
                       total_cost_usd, tokens_reported, latency_ms, end_user_id, prompt_id, version_id, created_at)
SELECT $1, m.provider, m.model, t.input_tokens, t.output_tokens, round(t.input_tokens * m.inp / 1e6, 6),
       round(t.output_tokens * m.outp / 1e6, 6),
       round(t.input_tokens * m.inp / 1e6, 6) + round(t.output_tokens * m.outp / 1e6, 6),
       true, CASE WHEN i % 17 = 0 THEN NULL ELSE 150 + ((i * 7919) % 4000)::int END, 'user-' || (i % 1000),
       CASE WHEN i % 4 = 3 THEN NULL ELSE ($6::uuid[])[1 + (i % 4) % array_length($6::uuid[], 1)] END,
       CASE WHEN i % 4 = 3 THEN NULL ELSE ($7::uuid[])[1 + (i % 4) % array_length($7::uuid[], 1)] END,
       $2::timestamptz + make_interval(secs => i * $3::float8)
FROM generate_series($4::bigint, $4::bigint + $5::bigint - 1) AS i
CROSS JOIN LATERAL (SELECT (100 + (i * 31) % 3000)::int AS input_tokens, (20 + (i * 17) % 800)::int AS output_tokens) t
CROSS JOIN LATERAL (SELECT * FROM (VALUES
    (0, 'openai', 'gpt-4o', 2.5, 10.0), (1, 'openai', 'gpt-4o-mini', 0.15, 0.6),
    (2, 'anthropic', 'claude-sonnet-4-5', 3.0, 15.0), (3, 'anthropic', 'claude-haiku-4-5', 1.0, 5.0),
    (4, 'openai', 'o3', 2.0, 8.0)) AS v(n, provider, model, inp, outp)
    WHERE v.n = i % 5) m
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/cost_report.py",
        description="Benchmark costReport over a month of usage rows: starts the real server on 127.0.0.1, loads the "
                    "rows through the rollup's triggers, then times reports over HTTP (rollup and raw paths) and the "
                    "report's statement on the rollup against plain aggregation.")
    p.add_argument("--rows", type=int, default=1_000_000, help="usage rows in the month (default: 1,000,000)")
    p.add_argument("--month", default="2026-10", help="the month of the rows, YYYY-MM (default: 2026-10)")
    p.add_argument("--prompts", type=int, default=3, help="prompts the calls are spread over (default: 3)")
    p.add_argument("--repeat", type=int, default=7, help="timed runs of each report (default: 7)")
    p.add_argument("--write-rows", type=int, default=10_000,
                   help="rows of the write-cost measurement, with and without the triggers (default: 10,000)")
    add_database_options(p)
    args = p.parse_args(argv)
    if not 1 <= args.rows <= 50_000_000 or not 1 <= args.prompts <= 50 or not 1 <= args.repeat <= 100:
        p.error("--rows 1..50,000,000, --prompts 1..50, --repeat 1..100")
    if not 0 <= args.write_rows <= 1_000_000:
        p.error("--write-rows 0..1,000,000")
    try:
        args.start = datetime.strptime(args.month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        p.error("--month takes YYYY-MM, e.g. 2026-10")
    args.end = (args.start + timedelta(days=32)).replace(day=1)
    args.server_workers = 1
    return args


def ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:8.1f} ms   min {min(values) * 1000:8.1f}   "
            f"max {max(values) * 1000:8.1f}")


async def seed(base: str, prompts: int) -> tuple[str, str, list[str], list[str]]:
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        user = await gql(c, "mutation($i: SignUpInput!) { signUp(input: $i) { token userErrors { message } } }",
                         {"i": {"email": f"bench-{tag}@example.com", "username": f"bench-{tag}",
                                "password": "benchmark password"}})
        token = user["token"]
        project = (await gql(c, """mutation($i: CreateProjectInput!) { createProject(input: $i) {
            project { id } userErrors { message } } }""", {"i": {"name": "Costs", "slug": f"costs-{tag}"}}, token)
                   )["project"]["id"]
        prompt_ids, version_ids = [], []
        for n in range(prompts):
            made = await gql(c, """mutation($i: CreatePromptInput!) { createPrompt(input: $i) {
                prompt { id } version { id } userErrors { message } } }""",
                             {"i": {"projectId": project, "name": f"prompt-{n}",
                                    "content": {"template": f"Prompt {n}: {{{{x}}}}"}}}, token)
            prompt_ids.append(made["prompt"]["id"])
            version_ids.append(made["version"]["id"])
    return token, project, prompt_ids, version_ids


def raw_uuid(gid: str) -> uuid.UUID:
    import base64

    return uuid.UUID(base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode().partition(":")[2])


async def load(url: str, args, project: str, prompts: list[str], versions: list[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        pid = raw_uuid(project)
        p_ids, v_ids = [raw_uuid(p) for p in prompts], [raw_uuid(v) for v in versions]
        step = (args.end - args.start).total_seconds() / args.rows
        started = time.perf_counter()
        for first in range(0, args.rows, CHUNK):
            await conn.execute(LOAD, pid, args.start, step, first, min(CHUNK, args.rows - first), p_ids, v_ids)
            print(f"  loaded {min(first + CHUNK, args.rows):>10,} rows", end="\r", flush=True)
        took = time.perf_counter() - started
        print(f"  loaded {args.rows:,} usage rows through the rollup's triggers in {took:.1f} s "
              f"({args.rows / took:,.0f} rows/s)")
        await conn.execute("VACUUM ANALYZE llm_usage")
        await conn.execute("VACUUM ANALYZE llm_usage_hourly")
        rollup = await conn.fetchval("SELECT count(*) FROM llm_usage_hourly WHERE project_id = $1", pid)
        print(f"  the hourly rollup holds {rollup:,} rows for them")

        if args.write_rows:
            with_t, without = [], []
            for _ in range(args.repeat):
                for triggers, into in ((True, with_t), (False, without)):
                    tx = conn.transaction()
                    await tx.start()
                    try:
                        if not triggers:
                            await conn.execute("ALTER TABLE llm_usage DISABLE TRIGGER USER")
                        t = time.perf_counter()
                        await conn.execute(LOAD, pid, args.start, step, args.rows, args.write_rows, p_ids, v_ids)
                        into.append(time.perf_counter() - t)
                    finally:
                        await tx.rollback()
            ratio = statistics.median(with_t) / statistics.median(without)
            print(f"  write cost, {args.write_rows:,} rows in one statement (rolled back), alternating:")
            print(f"    with the rollup triggers     {ms(with_t)}")
            print(f"    without them                 {ms(without)}")
            print(f"    ratio                        {ratio:.2f}x")
    finally:
        await conn.close()


async def reports(base: str, url: str, token: str, project: str, args) -> None:
    from app.db.engine import create_engine_and_sessionmaker
    from app.services.cost_report import CostDimension, TimeBucket, cost_report

    engine, sessionmaker = create_engine_and_sessionmaker(url)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=600, headers=headers) as c:
        for bucket, group_by, p95 in SCENARIOS:
            variables = {"p": project, "from": args.start.isoformat(), "to": args.end.isoformat(), "bucket": bucket,
                         "groupBy": group_by}
            query = REPORT % ("p95LatencyMs" if p95 else "")
            times, rows = [], 0
            for i in range(args.repeat + 1):
                t = time.perf_counter()
                resp = await c.post("/graphql", json={"query": query, "variables": variables})
                took = time.perf_counter() - t
                body = resp.json()
                if resp.status_code != 200 or body.get("errors"):
                    raise SystemExit(f"costReport failed: {resp.status_code} {str(body)[:500]}")
                report = body["data"]["costReport"]
                if report["totals"]["calls"] != args.rows:
                    raise SystemExit(f"costReport counted {report['totals']['calls']} calls, not {args.rows}")
                rows = len(report["buckets"])
                if i:  # the first is a warm-up
                    times.append(took)
            # the same report from the service alone (its SQL statement and the rows it makes), in this process
            alone = []
            for _ in range(args.repeat):
                async with sessionmaker() as session:
                    t = time.perf_counter()
                    data = await cost_report(session, raw_uuid(project), start=args.start, end=args.end,
                                             bucket=TimeBucket(bucket), group_by=[CostDimension(g) for g in group_by],
                                             with_p95=p95, max_buckets=1000, max_rows=20000)
                    alone.append(time.perf_counter() - t)
            label = f"{bucket} by {'+'.join(group_by) or 'nothing'}{' with p95' if p95 else ''}"
            print(f"  {label:28} {rows:>6} buckets  from {data.source:7}  HTTP {ms(times)}")
            print(f"  {'':28} {'':6}          {'':7}   SQL {ms(alone)}")
    await engine.dispose()


async def sql_compare(url: str, project: str, args) -> None:
    from sqlalchemy import text

    from app.db.engine import create_engine_and_sessionmaker
    from app.services.cost_report import CostDimension, TimeBucket, report_sql

    engine, sessionmaker = create_engine_and_sessionmaker(url)
    try:
        params = {"project": raw_uuid(project), "start": args.start, "end": args.end, "inner_start": args.start,
                  "inner_end": args.end, "unit": "day", "limit": 100_000}
        for dims in ([], [CostDimension.MODEL]):
            rollup = text(report_sql(TimeBucket.DAY, dims, raw=False, with_p95=False))
            raw = text(report_sql(TimeBucket.DAY, dims, raw=True, with_p95=False))
            async with sessionmaker() as session:
                a = (await session.execute(rollup, params)).all()
                b = (await session.execute(raw, params)).all()
                if [tuple(r)[:-2] for r in a] != [tuple(r)[:-2] for r in b] or not a:
                    raise SystemExit("the rollup's figures differ from llm_usage's")
                t_rollup, t_raw = [], []
                for _ in range(args.repeat):
                    for stmt, into in ((rollup, t_rollup), (raw, t_raw)):
                        t = time.perf_counter()
                        await session.execute(stmt, params)
                        into.append(time.perf_counter() - t)
            label = f"DAY by {'+'.join(d.value for d in dims) or 'nothing'}"
            print(f"  {label:20} rollup      {ms(t_rollup)}")
            print(f"  {'':20} llm_usage   {ms(t_raw)}")
            print(f"  {'':20} ratio       {statistics.median(t_raw) / statistics.median(t_rollup):.1f}x faster "
                  "from the rollup (same figures)")
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"costReport benchmark: {args.rows:,} usage rows in {args.month}, {os.cpu_count()} CPU(s)")
    with database(args) as url, server(url, 1) as base:
        token, project, prompts, versions = asyncio.run(seed(base, args.prompts))
        asyncio.run(load(url, args, project, prompts, versions))
        print(f"reports over HTTP (a month, {args.repeat} runs each after a warm-up):")
        asyncio.run(reports(base, url, token, project, args))
        print("the report's statement alone, rollup vs plain aggregation of llm_usage (alternating):")
        asyncio.run(sql_compare(url, project, args))


if __name__ == "__main__":
    main()
