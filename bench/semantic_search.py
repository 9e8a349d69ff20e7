"""Benchmark of searchPrompts SEMANTIC and HYBRID (FULLTEXT for reference) over real HTTP, with 100,000
prompt versions embedded by the default built-in model.

What it does:

1. Database: a throw-away database on the embedded PostgreSQL in ``--data-dir`` (or ``--database-url``,
   where the seed data is added), migrated.
2. Seed: a user and a project through GraphQL, then ``--versions`` versions (default 100,000) in SQL:
   ``--versions / 5`` prompts of 5 versions each, their text made from the labelled prompts of
   ``bench/data/semantic_prompts.tsv`` (a base prompt, a subject, one of several variations and an
   audience), tags and categories spread over the prompts, the full-text documents rebuilt. Then
   every version is embedded for real by ``app.services.embeddings.reindex`` with the configured
   model (default: the built-in default): its embeddings/s is printed.
3. Server: the real app (``app.main:create_app_from_env``) under uvicorn in a child process on
   127.0.0.1, no execution workers (the query embeddings run in its query worker process).
4. Load: ``--concurrency`` keep-alive clients (each number of a list in turn) send searchPrompts
   with the labelled queries of ``bench/data/semantic_queries.tsv``, each made unique by a number
   (so the query-vector cache never answers: every request embeds its query), one in five with a
   tag filter. The modes are measured in alternating rounds (``--rounds`` of ``--requests-per-round``
   each) so that the machine's load weighs on each alike; p50/p95/p99 per mode and the ratio of
   medians.

Loopback only.

    .venv/bin/python bench/semantic_search.py                       # 100,000 versions
    .venv/bin/python bench/semantic_search.py --versions 20000 --rounds 3
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.peers import add_database_options  # noqa: E402
from bench.resolve_prompt import database, gql, server  # noqa: E402

DATA = ROOT / "bench" / "data"
MODES = ("SEMANTIC", "HYBRID", "FULLTEXT")
SUBJECTS = ("a bakery", "a bank", "a hospital", "a school", "an airline", "a game studio", "a law firm", "a city hall",
            "a startup", "a supermarket", "a museum", "a hotel chain", "a car dealer", "a university", "a charity")
VARIATIONS = ("Keep it short.", "Use a friendly tone.", "Answer in bullet points.", "Be formal.",
              "Add an example.", "Mention the deadline.", "Avoid jargon.", "End with a question.")
AUDIENCES = ("for beginners", "for experts", "for managers", "for customers", "for the internal team")
SEARCH = """query($p: ID!, $q: String!, $mode: SearchMode, $f: PromptFilter) {
  searchPrompts(projectId: $p, query: $q, mode: $mode, first: 10, filter: $f) {
    score prompt { id } version { number } } }"""


def read_tsv(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/semantic_search.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--versions", type=int, default=100_000, help="prompt versions to seed (default: 100000)")
    p.add_argument("--concurrency", default="1,4",
                   help="concurrent clients; a comma-separated list measures each in turn (default: 1,4)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per mode (default: 5)")
    p.add_argument("--requests-per-round", type=int, default=200, help="requests per mode and round (default: 200)")
    p.add_argument("--warmup", type=int, default=100, help="unmeasured requests per mode first (default: 100)")
    add_database_options(p)
    args = p.parse_args(argv)
    try:
        args.concurrencies = [int(x) for x in args.concurrency.split(",")]
    except ValueError:
        p.error("--concurrency takes integers, e.g. 1,4")
    if args.versions < 5 or min(args.concurrencies) < 1 or args.rounds < 1 or args.requests_per_round < 1:
        p.error("--versions >= 5, --concurrency, --rounds and --requests-per-round >= 1")
    if args.versions > 2_000_000 or max(args.concurrencies) > 256:
        p.error("--versions is capped at 2,000,000 and --concurrency at 256")
    args.server_workers = 1
    return args


# ---------------------------------------------------------------------- seeding


async def seed(base: str, url: str, versions: int) -> tuple[str, str]:
    """A user and project through GraphQL, the prompts and versions in SQL, all embedded; (token, project id)."""
    import asyncpg

    from app.db.engine import create_engine_and_sessionmaker
    from app.embeddings import close
    from app.services.embeddings import reindex
    from app.services.search import refresh_search
    from app.settings import Settings

    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        token = (await gql(c, """mutation($i: SignUpInput!) { signUp(input: $i) { token userErrors { message } } }""",
                           {"i": {"email": f"sem-{tag}@example.com", "username": f"sem-{tag}",
                                  "password": "benchmark password"}}))["token"]
        project_id = (await gql(c, """mutation($i: CreateProjectInput!) { createProject(input: $i) {
                                    project { id } userErrors { message } } }""",
                                {"i": {"name": "Semantic bench", "slug": f"sem-{tag}"}}, token))["project"]["id"]
    base_prompts = read_tsv("semantic_prompts.tsv")
    rng = random.Random(42)
    prompts = versions // 5
    names, descriptions, tags, categories, bodies = [], [], [], [], []
    for i in range(prompts):
        b = base_prompts[i % len(base_prompts)]
        names.append(f"{b['name']}-{i}")
        descriptions.append(f"{b['description']} ({rng.choice(SUBJECTS)})")
        tags.append([b["name"].split("/")[0], f"team-{i % 20}"])
        categories.append(f"cat-{i % 10}")
        bodies.append([f"{b['template']} This is for {rng.choice(SUBJECTS)}, {rng.choice(AUDIENCES)}. "
                       f"{rng.choice(VARIATIONS)} (revision {n})" for n in range(1, 6)])
    conn = await asyncpg.connect(url)
    try:
        pid = uuid.UUID(await conn.fetchval("SELECT id::text FROM projects WHERE slug = $1", f"sem-{tag}"))
        started = time.monotonic()
        ids = await conn.fetch("""
            INSERT INTO prompts (project_id, name, description, tags, category, latest_version)
            SELECT $1, n, d, ARRAY[t1, t2], c, 5
            FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS x(n, d, t1, t2, c)
            RETURNING id, name""", pid, names, descriptions, [t[0] for t in tags], [t[1] for t in tags], categories)
        by_name = {r["name"]: r["id"] for r in ids}
        prompt_ids, numbers, templates = [], [], []
        for name, texts in zip(names, bodies, strict=True):
            for n, t in enumerate(texts, start=1):
                prompt_ids.append(by_name[name])
                numbers.append(n)
                templates.append(t)
        version_ids = await conn.fetch("""
            INSERT INTO prompt_versions (prompt_id, number, kind, format, template, content_hash)
            SELECT p, n, 'TEXT', 'MUSTACHE', t, md5(t) FROM unnest($1::uuid[], $2::int[], $3::text[]) AS x(p, n, t)
            RETURNING id, prompt_id""", prompt_ids, numbers, templates)
        await conn.execute("""
            INSERT INTO version_embeddings (version_id, prompt_id, project_id)
            SELECT v, p, $1 FROM unnest($2::uuid[], $3::uuid[]) AS x(v, p)""",
                           pid, [r["id"] for r in version_ids], [r["prompt_id"] for r in version_ids])
        print(f"seeded {prompts} prompts and {len(version_ids)} versions in {time.monotonic() - started:.1f} s",
              file=sys.stderr, flush=True)
    finally:
        await conn.close()
    settings = Settings.from_env(workers=0)
    engine, sessionmaker = create_engine_and_sessionmaker(url, settings)
    try:
        all_ids = list(by_name.values())
        for i in range(0, len(all_ids), 2000):
            async with sessionmaker() as session, session.begin():
                await refresh_search(session, all_ids[i:i + 2000])
        last = [0.0]

        def progress(done: int, total: int) -> None:
            if time.monotonic() - last[0] > 15 or done == total:
                last[0] = time.monotonic()
                print(f"  embedded {done}/{total}", file=sys.stderr, flush=True)

        result = await reindex(sessionmaker, settings, project_id=pid, progress=progress)
        print(f"embedded {result.embedded} versions with {result.model} in {result.seconds:.1f} s: "
              f"{result.embedded / result.seconds:.1f} embeddings/s (batches of {settings.embedding_batch_size}, "
              "HNSW index kept up to date)", file=sys.stderr, flush=True)
        async with engine.connect() as c2:
            from sqlalchemy import text
            await c2.execute(text("ANALYZE prompts, prompt_versions, version_embeddings"))
            await c2.commit()
    finally:
        await close()
        await engine.dispose()
    return token, project_id


# ---------------------------------------------------------------------- load


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


async def drive(base: str, token: str, project_id: str, args: argparse.Namespace,
                concurrency: int) -> dict[str, list[float]]:
    queries = [q["query"] for q in read_tsv("semantic_queries.tsv")]
    counter = [0]
    errors: dict[str, int] = dict.fromkeys(MODES, 0)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, headers=headers) as client:
        async def run(mode: str, n: int, out: list[float] | None) -> None:
            left = [n]

            async def worker() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    counter[0] += 1
                    q = f"{random.choice(queries)} {counter[0]}"
                    variables = {"p": project_id, "q": q, "mode": mode}
                    if counter[0] % 5 == 0:
                        variables["f"] = {"tags": [f"team-{counter[0] % 20}"]}
                    t = time.perf_counter()
                    resp = await client.post("/graphql", json={"query": SEARCH, "variables": variables})
                    elapsed = time.perf_counter() - t
                    body = resp.json()
                    if resp.status_code != 200 or body.get("errors") or (mode != "FULLTEXT"
                                                                       and not body["data"]["searchPrompts"]):
                        errors[mode] += 1
                        if errors[mode] <= 3:
                            print(f"{mode} failed: {resp.status_code} {str(body)[:300]}", file=sys.stderr)
                    elif out is not None:
                        out.append(elapsed)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        for mode in MODES:
            await run(mode, args.warmup, None)
        samples: dict[str, list[float]] = {m: [] for m in MODES}
        for r in range(args.rounds):
            for mode in (MODES if r % 2 == 0 else tuple(reversed(MODES))):
                await run(mode, args.requests_per_round, samples[mode])
    samples["errors"] = [float(errors[m]) for m in MODES]
    return samples


def report(samples: dict[str, list[float]], args: argparse.Namespace, versions: int, concurrency: int) -> None:
    print(f"searchPrompts benchmark: {versions} versions in one project, concurrency {concurrency}, "
          f"{args.rounds} alternating rounds of {args.requests_per_round} requests per mode, first: 10, "
          f"{os.cpu_count()} CPUs")
    print("| mode | requests | p50 ms | p95 ms | p99 ms | max ms | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for i, mode in enumerate(MODES):
        s = [x * 1000 for x in samples[mode]]
        print(f"| {mode} | {len(s)} | {statistics.median(s):.1f} | {percentile(s, 0.95):.1f} | "
              f"{percentile(s, 0.99):.1f} | {max(s):.1f} | {int(samples['errors'][i])} |")
    full = statistics.median(samples["FULLTEXT"])
    print(f"median ratios to FULLTEXT (same run): SEMANTIC {statistics.median(samples['SEMANTIC']) / full:.2f}, "
          f"HYBRID {statistics.median(samples['HYBRID']) / full:.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    with database(args) as url, server(url, 1) as base:
        token, project_id = asyncio.run(seed(base, url, args.versions))
        for concurrency in args.concurrencies:
            results.append((concurrency, asyncio.run(drive(base, token, project_id, args, concurrency))))
    for concurrency, samples in results:
        report(samples, args, args.versions // 5 * 5, concurrency)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
