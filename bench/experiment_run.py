"""Benchmark of experiments: an offline experiment through the queue, and statistics over many runs.

What it does:

1. Database: ``--database-url`` / ``DATABASE_URL`` as given (seed data is added to it, with unique names),
   or else the embedded PostgreSQL in ``--data-dir``, where a throw-away database is created, migrated,
   and dropped at the end.
2. Server: the real app (``app.main:create_app_from_env``, what ``promptstudio serve`` runs) under uvicorn in
   a child process on a free port on 127.0.0.1, with ``--workers`` in-process execution workers (the queue's
   workers; experiments' executions and scoring jobs go through them).
3. Run: through GraphQL, a dataset of ``--items`` items (one addDatasetItems call), two evaluators (CONTAINS
   and LEVENSHTEIN), and an experiment of ``--variants`` variants with the echo provider (no chunk delay);
   startExperiment queues variants x items runs; the clock runs from the start mutation until the experiment
   is COMPLETED (polled every 0.2 s), then its statistics are read.
4. Statistics: a second experiment of 2 variants gets ``--stats-runs`` COMPLETED runs with two scores each
   (pass/fail and a similarity), written straight into the tables with SQL (the queue is not what is measured
   here), then ``Experiment { winner variants { stats { ... } } }`` is asked ``--stats-queries`` times over
   HTTP: median, p95 and max.

    .venv/bin/python bench/experiment_run.py --items 1000 --variants 3 --workers 4 --stats-runs 100000
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from resolve_prompt import database, gql, server  # noqa: E402

from app.db.engine import plain_url  # noqa: E402
from bench.peers import add_database_options  # noqa: E402

STATS = """query($id: ID!) { node(id: $id) { ... on Experiment { status winner { name } progress { total completed }
  variants { name stats { runs completed failed successRate avgLatencyMs p95LatencyMs avgCostUsd totalCostUsd
    scores { name n mean stddev ci95Low ci95High ciMethod passRate deltaVsControl pValueVsControl adjustedPValue
             method significant } } } } } }"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/experiment_run.py",
        description="Benchmark experiments: an offline experiment (variants x items, echo provider) through the "
                    "queue of a real server to COMPLETED, and the statistics query over many runs.")
    p.add_argument("--items", type=int, default=1000, help="dataset items (default: 1000)")
    p.add_argument("--variants", type=int, default=3, help="variants, 2 to 20 (default: 3)")
    p.add_argument("--workers", type=int, default=4, help="execution workers in the server (default: 4)")
    p.add_argument("--stats-runs", type=int, default=100_000,
                   help="runs of the statistics experiment (default: 100000; 0 skips it)")
    p.add_argument("--stats-queries", type=int, default=20, help="timed statistics queries (default: 20)")
    p.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds (default: 1800)")
    add_database_options(p)
    args = p.parse_args(argv)
    if not 1 <= args.items <= 10_000 or not 2 <= args.variants <= 20 or args.workers < 1:
        p.error("--items is 1 to 10,000, --variants 2 to 20, --workers at least 1")
    if args.stats_runs < 0 or args.stats_queries < 1:
        p.error("--stats-runs must be >= 0 and --stats-queries >= 1")
    return args


async def seed(client: httpx.AsyncClient, args: argparse.Namespace) -> tuple[str, str, list[str], list[str], str]:
    """A user, a project, one prompt per variant, a dataset, two evaluators; returns (token, project, versions,
    evaluators, dataset)."""
    tag = uuid.uuid4().hex[:8]
    data = await gql(client, """mutation($i: SignUpInput!) { signUp(input: $i) { token userErrors { message } } }""",
                     {"i": {"email": f"bench-{tag}@example.com", "username": f"bench-{tag}",
                            "password": "benchmark password"}})
    token = data["token"]
    project = (await gql(client, """mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id }
        userErrors { message } } }""", {"i": {"name": "bench", "slug": f"bench-{tag}"}}, token))["project"]["id"]
    versions = []
    for v in range(args.variants):
        template = "Answer: {{answer}}" if v == 0 else f"Variant {v}: the answer may be {{{{answer}}}} or not"
        data = await gql(client, """mutation($i: CreatePromptInput!) { createPrompt(input: $i) { version { id }
            userErrors { message } } }""", {"i": {"projectId": project, "name": f"variant-{v}",
                                                   "content": {"template": template}}}, token)
        versions.append(data["version"]["id"])
    dataset = (await gql(client, """mutation($i: CreateDatasetInput!) { createDataset(input: $i) { dataset { id }
        userErrors { message } } }""", {"i": {"projectId": project, "name": "bench"}}, token))["dataset"]["id"]
    items = [{"variables": {"answer": f"a{i}" if i % 4 else "nope"}, "expectedOutput": f"a{i}"}
             for i in range(args.items)]
    await gql(client, """mutation($i: AddDatasetItemsInput!) { addDatasetItems(input: $i) { items { id }
        userErrors { message } } }""", {"i": {"datasetId": dataset, "items": items}}, token)
    evaluators = []
    for name, type_, config in (("correct", "CONTAINS", {}), ("similar", "LEVENSHTEIN", {"threshold": 0.5})):
        data = await gql(client, """mutation($i: CreateEvaluatorInput!) { createEvaluator(input: $i) {
            evaluator { id } userErrors { message } } }""",
                         {"i": {"projectId": project, "name": name, "type": type_, "config": config}}, token)
        evaluators.append(data["evaluator"]["id"])
    return token, project, versions, evaluators, dataset


async def create_experiment(client, token, project, versions, evaluators, dataset, name: str) -> str:
    variants = [{"name": f"v{i}", "versionId": v, "isControl": i == 0,
                 "modelSettings": {"extra": {"chunkSize": 10000, "chunkDelayMs": 0}}} for i, v in enumerate(versions)]
    data = await gql(client, """mutation($i: CreateExperimentInput!) { createExperiment(input: $i) {
        experiment { id } userErrors { message } } }""",
                     {"i": {"projectId": project, "name": name, "type": "MULTI_VARIANT", "datasetId": dataset,
                            "evaluatorIds": evaluators, "variants": variants}}, token)
    return data["experiment"]["id"]


async def run_offline(base: str, args: argparse.Namespace) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        token, project, versions, evaluators, dataset = await seed(client, args)
        experiment = await create_experiment(client, token, project, versions, evaluators, dataset, "offline")
        started = time.monotonic()
        await gql(client, """mutation($i: ExperimentIdInput!) { startExperiment(input: $i) { experiment { id }
            userErrors { message } } }""", {"i": {"id": experiment}}, token)
        queued = time.monotonic() - started
        deadline = started + args.timeout
        last = None
        while True:
            data = await gql(client, """query($id: ID!) { node(id: $id) { ... on Experiment { status
                progress { total completed failed percent } } } }""", {"id": experiment}, token)
            if data["status"] != "RUNNING":
                break
            if data["progress"] != last:
                last = data["progress"]
                print(f"  {data['progress']['percent']:5.1f}% ({data['progress']['completed']:,} of "
                      f"{data['progress']['total']:,} runs scored) after {time.monotonic() - started:6.1f} s",
                      file=sys.stderr)
            if time.monotonic() > deadline:
                raise SystemExit(f"not COMPLETED after {args.timeout:.0f} s: {data}")
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        stats_started = time.monotonic()
        stats = await gql(client, STATS, {"id": experiment}, token)
        stats_ms = (time.monotonic() - stats_started) * 1000
        return {"token": token, "project": project, "versions": versions, "evaluators": evaluators,
                "dataset": dataset, "status": data["status"], "progress": data["progress"], "queued_s": queued,
                "elapsed_s": elapsed, "stats": stats, "stats_ms": stats_ms}


FILL = """
WITH v AS (SELECT id, position FROM experiment_variants WHERE experiment_id = $1),
runs AS (
  INSERT INTO experiment_runs (id, experiment_id, variant_id, ordinal, item_position, repetition, status, output,
                               latency_ms, cost_usd, started_at, ended_at)
  SELECT gen_random_uuid(), $1, v.id, g * 2 + v.position + 1, g + 1, 1, 'COMPLETED', 'x',
         50 + (g % 97) + v.position * 3, 0.0001, now(), now()
  FROM generate_series(0, $2 - 1) AS g CROSS JOIN v
  RETURNING id, variant_id, item_position, (SELECT position FROM experiment_variants WHERE id = variant_id) AS vp
)
INSERT INTO experiment_scores (run_id, name, experiment_id, variant_id, pair_key, value, passed, source)
SELECT id, s.name, $1, variant_id, item_position * 128 + 1,
       CASE WHEN s.name = 'correct' THEN (CASE WHEN (item_position * 7 + vp * 3) % 10 < 6 + vp THEN 1 ELSE 0 END)
            ELSE ((item_position * 37 + vp * 11) % 100) / 100.0 END,
       CASE WHEN s.name = 'correct' THEN (item_position * 7 + vp * 3) % 10 < 6 + vp ELSE NULL END, 'EVALUATOR'
FROM runs CROSS JOIN (VALUES ('correct'), ('similar')) AS s(name)
"""


async def run_stats(base: str, url: str, offline: dict, args: argparse.Namespace) -> dict:
    import asyncpg

    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        experiment = await create_experiment(client, offline["token"], offline["project"], offline["versions"][:2],
                                             offline["evaluators"], offline["dataset"], "statistics")
        conn = await asyncpg.connect(plain_url(url))
        try:
            raw = uuid.UUID(base64.urlsafe_b64decode(experiment + "=" * (-len(experiment) % 4))
                            .decode().partition(":")[2])
            per_variant = args.stats_runs // 2
            await conn.execute(FILL, raw, per_variant)
            await conn.execute("UPDATE experiments SET status = 'COMPLETED', started_at = now(), ended_at = now(), "
                               "runs_total = $2, runs_completed = $2 WHERE id = $1", raw, per_variant * 2)
            await conn.execute("ANALYZE experiment_runs; ANALYZE experiment_scores")
        finally:
            await conn.close()
        await gql(client, STATS, {"id": experiment}, offline["token"])  # warm-up
        times = []
        for _ in range(args.stats_queries):
            t0 = time.monotonic()
            data = await gql(client, STATS, {"id": experiment}, offline["token"])
            times.append((time.monotonic() - t0) * 1000)
        return {"runs": per_variant * 2, "times": sorted(times), "data": data}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with database(args) as url, server(url, 1, queue_workers=args.workers) as base:
        print(f"server {base}, {args.workers} workers; {args.variants} variants x {args.items:,} items = "
              f"{args.variants * args.items:,} runs (echo provider)", file=sys.stderr)
        offline = asyncio.run(run_offline(base, args))
        runs = offline["progress"]["total"]
        print(f"\noffline experiment: {offline['status']}, {runs:,} runs ({offline['progress']['failed']} failed)")
        print(f"  startExperiment (render + queue):   {offline['queued_s'] * 1000:8.0f} ms")
        print(f"  start -> COMPLETED (run + score):   {offline['elapsed_s']:8.1f} s  "
              f"({runs / offline['elapsed_s']:,.0f} runs/s)")
        print(f"  statistics query:                   {offline['stats_ms']:8.0f} ms; winner: "
              f"{(offline['stats']['winner'] or {}).get('name')}")
        for v in offline["stats"]["variants"]:
            correct = next(s for s in v["stats"]["scores"] if s["name"] == "correct")
            print(f"    {v['name']}: correct {correct['mean']:.3f} [{correct['ci95Low']:.3f}, "
                  f"{correct['ci95High']:.3f}] p={correct['adjustedPValue']} {correct['method'] or ''}")
        if args.stats_runs:
            result = asyncio.run(run_stats(base, url, offline, args))
            t = result["times"]
            p95 = t[min(len(t) - 1, round(0.95 * (len(t) - 1)))]
            print(f"\nVariantStats over {result['runs']:,} runs (2 variants, 2 scores each), "
                  f"{len(t)} queries over HTTP:")
            print(f"  median {statistics.median(t):.1f} ms, p95 {p95:.1f} ms, max {t[-1]:.1f} ms "
                  f"(goal: under 200 ms); winner: {(result['data']['winner'] or {}).get('name')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
