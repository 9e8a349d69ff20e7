"""Benchmark of the hot path: ``resolvePrompt`` over real HTTP against a real server.

What it does:

1. Database: ``--database-url`` / ``DATABASE_URL`` as given (seed data is added to it: a user, a
   project with a prompt, three versions, a traffic split and an API key, all with unique names),
   or else the embedded PostgreSQL in ``--data-dir``, where a throw-away database is created,
   migrated, and dropped at the end.
2. Server: the real app (``app.main:create_app_from_env``, what ``promptstudio serve`` runs) under
   uvicorn in a child process, on a free port on 127.0.0.1, with no execution workers.
3. Seed through GraphQL: sign up, create a project and a prompt with 3 versions, set a traffic
   split (default 70/20/10) in production, create an API key with PROMPTS_READ.
4. Load: ``--concurrency`` clients (httpx.AsyncClient, keep-alive) call ``resolvePrompt`` with
   random subject keys, as an application would, until ``--requests`` have been sent or
   ``--duration`` seconds have passed (whichever first), after a short warm-up.
5. Prints requests/s, latency p50/p95/p99/max, errors and the share of each version.

Loopback only: the server listens on 127.0.0.1 and the clients call nothing else.

    .venv/bin/python bench/resolve_prompt.py --requests 20000 --concurrency 32 --duration 30
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.peers import add_database_options  # noqa: E402

RESOLVE = """query R($p: ID!, $k: String) { resolvePrompt(projectId: $p, name: "checkout-assistant", subjectKey: $k) {
  bucket version { number } deployment { id } } }"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/resolve_prompt.py",
        description="Benchmark resolvePrompt (the hot path) over HTTP: starts the real server on 127.0.0.1, seeds a "
                    "prompt with a traffic split through GraphQL, then drives concurrent keep-alive clients with "
                    "random subject keys and prints requests/s and latency percentiles.")
    p.add_argument("--requests", type=int, default=20000,
                   help="stop after this many measured requests (default: 20000)")
    p.add_argument("--concurrency", type=int, default=32,
                   help="concurrent clients, each with requests in flight one at a time (default: 32)")
    p.add_argument("--duration", type=float, default=30.0,
                   help="stop after this many seconds of measuring, even if --requests is not reached (default: 30)")
    p.add_argument("--warmup", type=int, default=500, help="unmeasured requests first (default: 500)")
    p.add_argument("--split", default="70,20,10",
                   help="percentages of versions 1..n in production, adding up to 100 (default: 70,20,10)")
    p.add_argument("--server-workers", type=int, default=1,
                   help="uvicorn worker processes (default: 1)")
    add_database_options(p)
    p.add_argument("--load", choices=("python", "wrk"), default="python",
                   help="load generator: python (httpx clients in this process; counts version shares) or wrk "
                        "(C, from Debian's wrk package: far less CPU, so on a small machine the server gets "
                        "the cores) (default: python)")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.duration <= 0 or args.warmup < 0:
        p.error("--requests and --concurrency must be >= 1, --duration > 0, --warmup >= 0")
    if args.concurrency > 1000:
        p.error("--concurrency is capped at 1000")
    if args.requests > 10_000_000:
        p.error("--requests is capped at 10,000,000")
    try:
        args.split_parts = [int(x) for x in args.split.split(",")]
    except ValueError:
        p.error("--split takes comma-separated integers, e.g. 70,20,10")
    if sum(args.split_parts) != 100 or any(not 1 <= x <= 100 for x in args.split_parts):
        p.error(f"--split: percentages (1-100 each) add up to {sum(args.split_parts)}; they must add up to 100")
    return args


# ---------------------------------------------------------------------- database and server


@contextmanager
def database(args: argparse.Namespace):
    """Yield a migrated database URL: DATABASE_URL as given, or a throw-away database on the embedded server."""
    from app.db.migrate import upgrade

    if args.database_url:
        upgrade(args.database_url)
        yield args.database_url
        return
    import asyncpg

    from app.db.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(args.data_dir, database="postgres")
    pg.start()
    name = "ps_bench_" + uuid.uuid4().hex[:10]

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg.url_for("postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        try:
            url = pg.url_for(name)
            upgrade(url)
            yield url
        finally:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        pg.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: {base URL: process id} of the servers that server() is running.
SERVER_PIDS: dict[str, int] = {}


def server_pid(base: str) -> int:
    """The process of the server that server() runs at ``base`` (its uvicorn; with several workers, their
    parent), for its CPU (bench.peers.tree_cpu) or a profiler."""
    return SERVER_PIDS[base]


@contextmanager
def server(url: str, workers: int, *, queue_workers: int = 0):
    """The real app under uvicorn in a child process on 127.0.0.1 (``workers`` processes, each with
    ``queue_workers`` execution workers); yields its base URL."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, PROMPTSTUDIO_WORKERS=str(queue_workers),
               PROMPTSTUDIO_LOG_LEVEL="warning")
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app_from_env", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log", "--lifespan", "on",
           "--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    SERVER_PIDS[base] = proc.pid
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with code {proc.returncode} before it was ready")
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not become ready within 60 s")
            time.sleep(0.1)
        yield base
    finally:
        SERVER_PIDS.pop(base, None)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------------- seeding


async def gql(client: httpx.AsyncClient, query: str, variables: dict, token: str | None = None) -> dict:
    """The operation's one root field's value; any error or userError ends the benchmark, saying so."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    body = resp.json()
    if resp.status_code != 200 or body.get("errors"):
        raise SystemExit(f"request failed: {resp.status_code} {body}")
    data = next(iter(body["data"].values()))
    if isinstance(data, dict) and data.get("userErrors"):
        raise SystemExit(f"request refused: {data['userErrors']}")
    return data


async def sign_up_with_project(client: httpx.AsyncClient, name: str, slug_prefix: str) -> tuple[str, str]:
    """A new user (``bench-<tag>``) and a project of theirs named ``name``, slug ``<slug_prefix>-<tag>``;
    returns (session token, project id)."""
    tag = uuid.uuid4().hex[:8]
    token = (await gql(client, """mutation($i: SignUpInput!) { signUp(input: $i) { token userErrors { message } } }""",
                       {"i": {"email": f"bench-{tag}@example.com", "username": f"bench-{tag}",
                              "password": "benchmark password"}}))["token"]
    project = (await gql(client, """mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id }
        userErrors { message } } }""", {"i": {"name": name, "slug": f"{slug_prefix}-{tag}"}}, token))["project"]["id"]
    return token, project


async def seed(base: str, split: list[int]) -> tuple[str, str]:
    """Create what the benchmark resolves; returns (API key secret, project id)."""
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        user = await gql(c, """mutation($i: SignUpInput!) { signUp(input: $i) { token userErrors { message } } }""",
                         {"i": {"email": f"bench-{tag}@example.com", "username": f"bench-{tag}",
                                "password": "benchmark password"}})
        token = user["token"]
        project = await gql(c, """mutation($i: CreateProjectInput!) { createProject(input: $i) {
                                     project { id } userErrors { message } } }""",
                            {"i": {"name": "Bench", "slug": f"bench-{tag}"}}, token)
        project_id = project["project"]["id"]
        made = await gql(c, """mutation($i: CreatePromptInput!) { createPrompt(input: $i) {
                                  prompt { id } version { id } userErrors { message } } }""",
                         {"i": {"projectId": project_id, "name": "checkout-assistant",
                                "content": {"template": "v1: Help {{customer}} check out."}}}, token)
        prompt_id, versions = made["prompt"]["id"], [made["version"]["id"]]
        for n in range(2, len(split) + 1):
            v = await gql(c, """mutation($i: CreatePromptVersionInput!) { createPromptVersion(input: $i) {
                                   version { id } userErrors { message } } }""",
                          {"i": {"promptId": prompt_id,
                                 "content": {"template": f"v{n}: Help {{{{customer}}}} check out."}}}, token)
            versions.append(v["version"]["id"])
        await gql(c, """mutation($i: SetTrafficSplitInput!) { setTrafficSplit(input: $i) {
                           deployments { id } userErrors { message } } }""",
                  {"i": {"promptId": prompt_id, "environment": "production",
                         "splits": [{"versionId": v, "percentage": pct}
                                    for v, pct in zip(versions, split, strict=True)]}}, token)
        key = await gql(c, """mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) {
                                 secret userErrors { message } } }""",
                        {"i": {"projectId": project_id, "name": "bench", "scopes": ["PROMPTS_READ"]}}, token)
    return key["secret"], project_id


# ---------------------------------------------------------------------- load


async def drive(base: str, key: str, project_id: str, args: argparse.Namespace) -> dict:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    versions: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    rng = random.Random()
    async with httpx.AsyncClient(base_url=base, limits=limits, headers=headers, timeout=30) as client:

        async def one() -> None:
            subject = f"user-{rng.getrandbits(48):012x}"
            started = time.perf_counter()
            try:
                resp = await client.post("/graphql", json={"query": RESOLVE,
                                                           "variables": {"p": project_id, "k": subject}})
                elapsed = time.perf_counter() - started
                body = resp.json()
                if resp.status_code != 200 or body.get("errors") or not body["data"]["resolvePrompt"]:
                    errors[f"HTTP {resp.status_code}: {str(body)[:120]}"] += 1
                    return
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                return
            latencies.append(elapsed)
            versions[body["data"]["resolvePrompt"]["version"]["number"]] += 1

        # Warm-up: connections, prepared statements, caches.
        remaining = args.warmup

        async def warm() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        await asyncio.gather(*(warm() for _ in range(args.concurrency)))
        latencies.clear()
        versions.clear()
        errors.clear()

        sent = 0
        deadline = time.perf_counter() + args.duration

        async def worker() -> None:
            nonlocal sent
            while sent < args.requests and time.perf_counter() < deadline:
                sent += 1
                await one()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        wall = time.perf_counter() - started
    return {"latencies": latencies, "versions": versions, "errors": errors, "wall": wall, "sent": sent}


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def report(result: dict, args: argparse.Namespace) -> None:
    lat = sorted(result["latencies"])
    ok = len(lat)
    ms = [x * 1000 for x in lat]
    print(f"resolvePrompt benchmark: concurrency {args.concurrency}, split {args.split}, "
          f"{args.server_workers} server process(es), {os.cpu_count()} CPU(s)")
    print(f"  requests      {result['sent']} sent, {ok} ok, {sum(result['errors'].values())} errors "
          f"in {result['wall']:.2f} s")
    print(f"  throughput    {ok / result['wall']:.0f} requests/s")
    if ms:
        print(f"  latency (ms)  p50 {percentile(ms, 50):.2f}  p95 {percentile(ms, 95):.2f}  "
              f"p99 {percentile(ms, 99):.2f}  max {ms[-1]:.2f}  mean {statistics.fmean(ms):.2f}")
    total = sum(result["versions"].values()) or 1
    shares = ", ".join(f"v{n}: {c / total * 100:.1f}%" for n, c in sorted(result["versions"].items()))
    print(f"  versions      {shares}")
    for message, count in result["errors"].most_common(5):
        print(f"  error x{count}: {message}")


WRK_SCRIPT = r"""
-- POST resolvePrompt with a random subject key per request; count non-200 answers.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local query = %(query)s
local project = "%(project)s"
request = function()
  local key = string.format("user-%%d", math.random(1, 1000000000))
  local body = string.format('{"query":%%s,"variables":{"p":"%%s","k":"%%s"}}', query, project, key)
  return wrk.format(nil, "/graphql", nil, body)
end
done = function(summary, latency, requests)
  io.write(string.format("WRK requests=%%d duration_us=%%d errors_status=%%d errors_other=%%d\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  for _, q in ipairs({50, 95, 99}) do
    io.write(string.format("WRK p%%d=%%.2f\n", q, latency:percentile(q) / 1000))
  end
  io.write(string.format("WRK max=%%.2f mean=%%.2f\n", latency.max / 1000, latency.mean / 1000))
end
"""


def drive_wrk(base: str, key: str, project_id: str, args: argparse.Namespace) -> int:
    import json
    import shutil
    import tempfile

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (or use --load python)")
    threads = max(1, min(2, args.concurrency))
    script = WRK_SCRIPT % {"key": key, "project": project_id, "query": json.dumps(json.dumps(RESOLVE))}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        if args.warmup:
            subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-s", f.name, base], check=True, capture_output=True)
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{args.concurrency}", f"-d{int(args.duration)}s",
                              "--timeout", "10s", "-s", f.name, base], check=True, capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    values = dict(part.split("=", 1) for line in out.stdout.splitlines() if line.startswith("WRK ")
                  for part in line[4:].split())
    n, seconds = int(values["requests"]), int(values["duration_us"]) / 1e6
    errors = int(values["errors_status"]) + int(values["errors_other"])
    print(f"resolvePrompt benchmark (wrk): concurrency {args.concurrency}, split {args.split}, "
          f"{args.server_workers} server process(es), {os.cpu_count()} CPU(s)")
    print(f"  requests      {n} in {seconds:.2f} s, {errors} errors")
    print(f"  throughput    {n / seconds:.0f} requests/s")
    print(f"  latency (ms)  p50 {float(values['p50']):.2f}  p95 {float(values['p95']):.2f}  "
          f"p99 {float(values['p99']):.2f}  max {float(values['max']):.2f}  mean {float(values['mean']):.2f}")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with database(args) as url, server(url, args.server_workers) as base:
        key, project_id = asyncio.run(seed(base, args.split_parts))
        if args.load == "wrk":
            return drive_wrk(base + "/graphql", key, project_id, args)
        result = asyncio.run(drive(base, key, project_id, args))
    report(result, args)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
