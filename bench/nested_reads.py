"""Benchmark of nested reads: the dashboard (50 prompts with their latest version, 5 versions and
active deployments, in one query) and a response of 10,000 version objects, over real HTTP against
a real server.

What it does:

1. Database and server: as ``bench/resolve_prompt.py`` (whose helpers it uses): ``--database-url``
   or a throw-away database on the embedded PostgreSQL in ``--data-dir``; the real app under
   uvicorn on 127.0.0.1 with no execution workers. The server's rate limit is raised (refill
   PROMPTSTUDIO_RATE_LIMIT_REFILL_PER_SECOND=1e9): a dashboard costs about 2,500 points and the large
   query about 40,000, so the default bucket (50,000, 500/s) would refuse most of the load.
2. Seed through GraphQL (aliased mutations, 25 per request): a user, a project ``dash-*`` with 50
   prompts of 6 versions each, deployed in production (70/30 of versions 5 and 6) and staging
   (version 6); a project ``large-*`` with 100 prompts of 100 versions each (10,000 versions).
3. Dashboard: ``wrk`` with ``--concurrency`` connections for ``--duration`` seconds, posting
   ``DASHBOARD_QUERY``; prints requests/s, p50/p99 and CPU milliseconds per request of the server
   process and of the PostgreSQL backends (utime+stime from /proc, robust on a busy machine).
4. Large: ``--large-requests`` sequential requests of ``LARGE_QUERY``; the API pages at most 100
   items per connection (``first`` above 100 is clamped), so 10,000 version objects are
   ``prompts(first: 100) { versions(first: 100) }`` of the large project (checked in the answer);
   prints p50/max and CPU ms per request.

``--seed-file PATH`` keeps the seeded ids (and the token) in a JSON file and reuses them on the next
run against the same ``--database-url`` (seeding 10,000 versions takes a minute).

    .venv/bin/python bench/nested_reads.py --duration 20
    .venv/bin/python bench/nested_reads.py --workload large --large-requests 10

The peer harness imports ``sign_up``, ``seed_dashboard``, ``seed_large``, ``DASHBOARD_QUERY`` and
``LARGE_QUERY`` from here.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.peers import BackendCPU, Request, add_database_options, cpu_delta, have_wrk, load, tree_cpu  # noqa: E402
from bench.resolve_prompt import database, gql, percentile, server, server_pid  # noqa: E402

#: One screen of a prompt registry front end. Variables: {"slug": <the dashboard project's slug>}.
DASHBOARD_QUERY = """query Dashboard($slug: String!) { project(slug: $slug) { prompts(first: 50) { nodes {
  id name tags status updatedAt
  latestVersion { id number template commitMessage createdAt }
  versions(first: 5) { nodes { id number template createdAt } }
  deployments { environment trafficPercentage deployedAt version { number } } } } } }"""

#: 10,000 version objects: 100 prompts x 100 versions (connections page at most 100 items).
#: Variables: {"slug": <the large project's slug>}.
LARGE_QUERY = """query Large($slug: String!) { project(slug: $slug) { prompts(first: 100) { nodes {
  name versions(first: 100) { nodes { id number template createdAt } } } } } }"""

BATCH = 25  # aliased mutations per request (PROMPTSTUDIO_MAX_ALIASES is 30 by default)

SIGN_UP = """mutation($i: SignUpInput!) { signUp(input: $i) { token userErrors { message } } }"""
CREATE_PROJECT = """mutation($i: CreateProjectInput!) { createProject(input: $i) {
  project { id slug } userErrors { message } } }"""


async def batched(client: httpx.AsyncClient, token: str, field: str, input_type: str, selection: str,
                  inputs: list[dict]) -> list[dict]:
    """Run ``field(input: ...)`` once per input, BATCH aliased mutations per request (run in order by
    the server); returns the payloads in order. Any error or userError ends the benchmark."""
    out: list[dict] = []
    for start in range(0, len(inputs), BATCH):
        chunk = inputs[start:start + BATCH]
        params = ", ".join(f"$i{n}: {input_type}!" for n in range(len(chunk)))
        fields = " ".join(f"m{n}: {field}(input: $i{n}) {{ {selection} userErrors {{ code message }} }}"
                          for n in range(len(chunk)))
        resp = await client.post("/graphql", json={"query": f"mutation({params}) {{ {fields} }}",
                                                   "variables": {f"i{n}": v for n, v in enumerate(chunk)}},
                                 headers={"Authorization": f"Bearer {token}"})
        body = resp.json()
        if resp.status_code != 200 or body.get("errors"):
            raise SystemExit(f"seeding failed: {resp.status_code} {str(body)[:500]}")
        for n in range(len(chunk)):
            payload = body["data"][f"m{n}"]
            if payload.get("userErrors"):
                raise SystemExit(f"seeding refused: {payload['userErrors']}")
            out.append(payload)
    return out


async def sign_up(client: httpx.AsyncClient) -> str:
    """A new user; returns its session token."""
    tag = uuid.uuid4().hex[:8]
    user = await gql(client, SIGN_UP, {"i": {"email": f"nested-{tag}@example.com", "username": f"nested-{tag}",
                                             "password": "benchmark password"}})
    return str(user["token"])


async def _project(client: httpx.AsyncClient, token: str, prefix: str) -> tuple[str, str]:
    slug = f"{prefix}-{uuid.uuid4().hex[:8]}"
    made = await gql(client, CREATE_PROJECT, {"i": {"name": slug, "slug": slug}}, token)
    return made["project"]["id"], made["project"]["slug"]


async def _prompts_with_versions(client: httpx.AsyncClient, token: str, project_id: str, prompts: int,
                                 versions: int, concurrency: int) -> list[tuple[str, list[str]]]:
    """``prompts`` prompts of ``versions`` versions each; returns (prompt id, version ids oldest first)."""
    created = await batched(client, token, "createPrompt", "CreatePromptInput", "prompt { id } version { id }",
                            [{"projectId": project_id, "name": f"prompt-{n:03d}", "tags": ["bench", f"t{n % 7}"],
                              "content": {"template": f"Prompt {n} v1: help {{{{customer}}}} with {{{{topic}}}}."}}
                             for n in range(prompts)])
    out = [(c["prompt"]["id"], [c["version"]["id"]]) for c in created]
    gate = asyncio.Semaphore(concurrency)

    async def grow(n: int) -> None:
        async with gate:  # one prompt's versions in order; several prompts at once
            prompt_id, ids = out[n]
            more = await batched(client, token, "createPromptVersion", "CreatePromptVersionInput", "version { id }",
                                 [{"promptId": prompt_id, "commitMessage": f"edit {v}",
                                   "content": {"template": f"Prompt {n} v{v}: help {{{{customer}}}} with "
                                                           f"{{{{topic}}}}, politely ({v})."}}
                                  for v in range(2, versions + 1)])
            ids.extend(m["version"]["id"] for m in more)

    await asyncio.gather(*(grow(n) for n in range(prompts)))
    return out


async def seed_dashboard(client: httpx.AsyncClient, token: str, *, prompts: int = 50, versions: int = 6,
                         concurrency: int = 4) -> str:
    """A project of ``prompts`` prompts with ``versions`` versions each, each prompt deployed in
    production (70/30 of its last two versions) and staging (its latest); returns the project's slug
    (the ``slug`` variable of DASHBOARD_QUERY)."""
    if versions < 2:
        raise ValueError("versions must be at least 2 (the production split uses the last two)")
    project_id, slug = await _project(client, token, "dash")
    made = await _prompts_with_versions(client, token, project_id, prompts, versions, concurrency)
    await batched(client, token, "setTrafficSplit", "SetTrafficSplitInput", "deployments { id }",
                  [{"promptId": prompt_id, "environment": "production",
                    "splits": [{"versionId": ids[-2], "percentage": 70}, {"versionId": ids[-1], "percentage": 30}]}
                   for prompt_id, ids in made])
    await batched(client, token, "deployPromptVersion", "DeployPromptVersionInput", "deployments { id }",
                  [{"versionId": ids[-1], "environment": "staging"} for _, ids in made])
    return slug


async def seed_large(client: httpx.AsyncClient, token: str, *, prompts: int = 100, versions: int = 100,
                     concurrency: int = 4) -> str:
    """A project of ``prompts`` prompts with ``versions`` versions each (10,000 by default); returns its
    slug (the ``slug`` variable of LARGE_QUERY)."""
    project_id, slug = await _project(client, token, "large")
    await _prompts_with_versions(client, token, project_id, prompts, versions, concurrency)
    return slug


# ---------------------------------------------------------------------- CPU of the server and PostgreSQL


class CpuMeter:
    """CPU milliseconds of the server's process tree and of the database's backends between ``start`` and
    ``stop`` (bench.peers: /proc; a backend that connected meanwhile counts from zero; one that disconnected
    meanwhile is lost)."""

    def __init__(self, base: str, url: str):
        self.pid, self.backends = server_pid(base), BackendCPU.of(url)

    def start(self) -> None:
        self.server0, self.pg0 = tree_cpu(self.pid), self.backends.snapshot()

    def stop(self) -> tuple[float, float]:
        """(server ms, PostgreSQL ms) since start."""
        server1, pg1 = tree_cpu(self.pid), self.backends.snapshot()
        return cpu_delta(self.server0, server1) * 1000, cpu_delta(self.pg0, pg1) * 1000


# ---------------------------------------------------------------------- the workloads


def _body(query: str, slug: str) -> str:
    return json.dumps({"query": query, "variables": {"slug": slug}})


def check_dashboard(data: dict, prompts: int = 50) -> None:
    nodes = data["project"]["prompts"]["nodes"]
    if len(nodes) != prompts or any(len(n["versions"]["nodes"]) != 5 or not n["deployments"] for n in nodes):
        raise SystemExit(f"the dashboard answer is not what was seeded: {str(data)[:300]}")


def check_large(data: dict) -> int:
    count = sum(len(n["versions"]["nodes"]) for n in data["project"]["prompts"]["nodes"])
    if count != 10_000:
        raise SystemExit(f"the large answer holds {count} versions, not 10,000")
    return count


def run_dashboard(base: str, url: str, token: str, slug: str, *, concurrency: int, duration: float) -> dict:
    """wrk against DASHBOARD_QUERY; requests/s, p50/p99 (ms), CPU ms per request (server, PostgreSQL)."""
    if not have_wrk():
        raise SystemExit("wrk is not installed: apt-get install wrk")
    body = _body(DASHBOARD_QUERY, slug)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    answer = httpx.post(base + "/graphql", content=body, timeout=60, headers=headers).json()
    if answer.get("errors"):
        raise SystemExit(f"the dashboard query failed: {answer['errors']}")
    check_dashboard(answer["data"])
    req = Request("POST", "/graphql", headers, body)
    load(base, req, connections=min(concurrency, 4), duration=2, threads=1, generator="wrk")  # warm-up
    meter = CpuMeter(base, url)
    meter.start()
    r = load(base, req, connections=concurrency, duration=int(duration), threads=2, generator="wrk")
    server_ms, pg_ms = meter.stop()
    n = r.requests
    return {"requests": n, "rps": r.rps, "p50": r.p50_ms, "p99": r.p99_ms, "errors": r.errors,
            "server_ms": server_ms / max(n, 1), "pg_ms": pg_ms / max(n, 1)}


def run_large(base: str, url: str, token: str, slug: str, *, requests: int) -> dict:
    """``requests`` sequential LARGE_QUERY requests; p50/max (ms), CPU ms per request, response size."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = _body(LARGE_QUERY, slug)
    latencies: list[float] = []
    size = 0
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        warm = client.post("/graphql", content=body).json()
        if warm.get("errors"):
            raise SystemExit(f"the large query failed: {warm['errors']}")
        check_large(warm["data"])
        meter = CpuMeter(base, url)
        meter.start()
        for _ in range(requests):
            started = time.perf_counter()
            resp = client.post("/graphql", content=body)
            latencies.append((time.perf_counter() - started) * 1000)
            if resp.status_code != 200:
                raise SystemExit(f"the large query failed: HTTP {resp.status_code} {resp.text[:300]}")
            size = len(resp.content)
        server_ms, pg_ms = meter.stop()
    latencies.sort()
    return {"requests": requests, "p50": percentile(latencies, 50), "max": latencies[-1],
            "mean": statistics.fmean(latencies), "server_ms": server_ms / requests, "pg_ms": pg_ms / requests,
            "bytes": size}


# ---------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/nested_reads.py",
        description="Benchmark nested reads over HTTP: the dashboard query (50 prompts x latest version, 5 versions, "
                    "deployments) under wrk load, and a 10,000-version response; starts the real server on "
                    "127.0.0.1, seeds through GraphQL, prints requests/s, latency and CPU ms per request of the "
                    "server and of PostgreSQL.")
    p.add_argument("--workload", choices=("dashboard", "large", "both"), default="both",
                   help="what to measure (default: both)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of dashboard load (default: 20)")
    p.add_argument("--concurrency", type=int, default=16, help="wrk connections for the dashboard (default: 16)")
    p.add_argument("--large-requests", type=int, default=10,
                   help="sequential requests of the 10,000-version query (default: 10)")
    p.add_argument("--server-workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    add_database_options(p, database_help="PostgreSQL to use (default: DATABASE_URL; unset: the embedded server in "
                                          "--data-dir, in a throw-away database)")
    p.add_argument("--seed-file", default=None,
                   help="JSON file keeping the seeded slugs and token: reused when it exists (same --database-url), "
                        "written after seeding otherwise")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 600 or not 1 <= args.concurrency <= 1000:
        p.error("--duration must be in (0, 600] and --concurrency in 1..1000")
    if not 1 <= args.large_requests <= 1000:
        p.error("--large-requests must be in 1..1000")
    if args.seed_file and not args.database_url:
        p.error("--seed-file needs --database-url (the throw-away database is dropped after each run)")
    return args


async def seed_all(base: str, workload: str) -> dict:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        token = await sign_up(client)
        seeded = {"token": token}
        if workload in ("dashboard", "both"):
            seeded["dashboard"] = await seed_dashboard(client, token)
        if workload in ("large", "both"):
            seeded["large"] = await seed_large(client, token)
    print(f"seeded through GraphQL in {time.perf_counter() - started:.1f} s")
    return seeded


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A dashboard costs about 2,500 points and the large query about 40,000: the default bucket
    # (50,000, refilled at 500/s) would refuse most of the load.
    os.environ["PROMPTSTUDIO_RATE_LIMIT_REFILL_PER_SECOND"] = "1000000000"
    failed = 0
    with database(args) as url, server(url, args.server_workers) as base:
        needed = ("dashboard", "large") if args.workload == "both" else (args.workload,)
        seeded: dict = {}
        if args.seed_file and Path(args.seed_file).exists():
            seeded = json.loads(Path(args.seed_file).read_text())
        if any(w not in seeded for w in needed) or "token" not in seeded:
            seeded = asyncio.run(seed_all(base, args.workload))
            if args.seed_file:
                Path(args.seed_file).write_text(json.dumps(seeded))
        print(f"nested reads benchmark: {os.cpu_count()} CPU(s), {args.server_workers} server process(es)")
        if args.workload in ("dashboard", "both"):
            r = run_dashboard(base, url, seeded["token"], seeded["dashboard"], concurrency=args.concurrency,
                              duration=args.duration)
            failed += r["errors"]
            print(f"  dashboard  {r['requests']} requests in {args.duration:.0f} s at concurrency {args.concurrency}: "
                  f"{r['rps']:.1f} requests/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, {r['errors']} errors; "
                  f"CPU per request: server {r['server_ms']:.1f} ms, PostgreSQL {r['pg_ms']:.1f} ms")
        if args.workload in ("large", "both"):
            r = run_large(base, url, seeded["token"], seeded["large"], requests=args.large_requests)
            print(f"  10,000 versions  {r['requests']} sequential requests ({r['bytes'] / 1e6:.1f} MB each): "
                  f"p50 {r['p50']:.0f} ms, max {r['max']:.0f} ms; CPU per request: server {r['server_ms']:.0f} ms, "
                  f"PostgreSQL {r['pg_ms']:.0f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
