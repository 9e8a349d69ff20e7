"""Benchmark of the execution queue: executePrompt with the echo provider, through the workers, to COMPLETED.

What it does:

1. Database: ``--database-url`` / ``DATABASE_URL`` as given (seed data is added to it, with unique names),
   or else the embedded PostgreSQL in ``--data-dir``, where a throw-away database is created, migrated,
   and dropped at the end (``bench/resolve_prompt.py``'s helpers).
2. Server: the real app under uvicorn in a child process on 127.0.0.1 with ``--workers`` in-process
   worker tasks, plus ``--worker-processes`` extra ``promptstudio worker`` processes (each with
   ``--workers`` tasks) on the same database.
3. Seed through GraphQL: a user, a project, a prompt with one variable, the echo model's prices
   (upsertModelConfig), an API key with EXECUTIONS_READ and EXECUTIONS_WRITE.
4. Load: ``--concurrency`` clients with the API key call ``executePrompt`` (echo, the whole answer in one
   chunk, no delay) until ``--executions`` are queued; the benchmark then polls the project's PENDING and
   RUNNING count until it is 0, and reads every execution's createdAt, startedAt and completedAt.
5. Idle probes: ``--idle-probes`` executions one at a time (each waited for), for the queue wait when the
   workers are free.
6. Prints: enqueue rate, executePrompt p50/p99, completed/s (first createdAt to last completedAt, the
   database's clock), queue wait p50/p99 (startedAt - createdAt), and CPU milliseconds per execution of the
   server, the worker processes and PostgreSQL (utime + stime from /proc of each process tree, reaped
   children included), over the load phase.

    .venv/bin/python bench/execution_queue.py --executions 2000 --concurrency 32 --worker-processes 2
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from resolve_prompt import database, gql, percentile, server, server_pid, sign_up_with_project  # noqa: E402

from bench.peers import add_database_options, postmaster_pid, tree_cpu_total  # noqa: E402

EXECUTE = """mutation($i: ExecutePromptInput!) { executePrompt(input: $i) { execution { id status }
  userErrors { message code } } }"""
OPEN = """query($p: ID!) { node(id: $p) { ... on Project {
  executions(filter: {status: [PENDING, RUNNING]}) { totalCount } } } }"""
PAGE = """query($p: ID!, $after: String, $f: ExecutionFilter) { node(id: $p) { ... on Project {
  executions(first: 100, after: $after, filter: $f) { nodes { id status createdAt startedAt completedAt }
  pageInfo { hasNextPage endCursor } } } } }"""
ONE = """query($id: ID!) { node(id: $id) { ... on Execution { status createdAt startedAt completedAt } } }"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/execution_queue.py",
        description="Benchmark the execution queue: concurrent executePrompt calls (echo provider) on a real "
                    "server, run by its workers (and optional extra `promptstudio worker` processes) to COMPLETED; "
                    "prints enqueue rate, executePrompt latency, completed/s, queue wait and CPU per execution.")
    p.add_argument("--executions", type=int, default=2000, help="executions to queue (default: 2000)")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent executePrompt clients (default: 32)")
    p.add_argument("--workers", type=int, default=4,
                   help="worker tasks per process (PROMPTSTUDIO_WORKERS) in the server and in each worker process "
                        "(default: 4)")
    p.add_argument("--server-workers", type=int,
                   help="worker tasks in the server only (default: --workers; 0: the server only enqueues, so its CPU "
                        "is executePrompt's and the worker processes' is the runs')")
    p.add_argument("--worker-processes", type=int, default=0,
                   help="extra `promptstudio worker` processes on the same database (default: 0)")
    p.add_argument("--idle-probes", type=int, default=30,
                   help="executions queued one at a time afterwards, for the queue wait of free workers "
                        "(default: 30; 0 skips)")
    p.add_argument("--timeout", type=float, default=600, help="give up after this many seconds (default: 600)")
    p.add_argument("--profile", metavar="FILE",
                   help="record the server with py-spy (must be installed) during the load into FILE (speedscope "
                        "JSON if it ends in .json, collapsed stacks if .txt, else an SVG flame graph)")
    add_database_options(p)
    args = p.parse_args(argv)
    if not 1 <= args.executions <= 1_000_000 or not 1 <= args.concurrency <= 1000:
        p.error("--executions is 1 to 1,000,000 and --concurrency 1 to 1000")
    if args.server_workers is None:
        args.server_workers = args.workers
    if args.workers < 1 or not 0 <= args.worker_processes <= 64 or args.idle_probes < 0 or args.server_workers < 0:
        p.error("--workers must be >= 1, --server-workers >= 0, --worker-processes 0 to 64, --idle-probes >= 0")
    if args.server_workers == 0 and args.worker_processes == 0:
        p.error("with --server-workers 0, give --worker-processes (someone must run the executions)")
    return args


# ---------------------------------------------------------------------- processes


@contextmanager
def worker_processes(url: str, count: int, tasks: int):
    env = dict(os.environ, DATABASE_URL=url, PROMPTSTUDIO_WORKERS=str(tasks), PROMPTSTUDIO_LOG_LEVEL="warning")
    procs = [subprocess.Popen([sys.executable, "-m", "app", "worker"], cwd=ROOT, env=env) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------------- seeding and load


async def seed(client: httpx.AsyncClient) -> tuple[str, str, str]:
    """(API key secret, project id, prompt id)."""
    token, project = await sign_up_with_project(client, "Queue bench", "queue")
    prompt = (await gql(client, """mutation($i: CreatePromptInput!) { createPrompt(input: $i) { prompt { id }
        userErrors { message } } }""", {"i": {"projectId": project, "name": "support-reply", "content": {
        "template": "Answer {{customer}} politely about their order.", "modelSettings": {
            "provider": "echo", "model": "echo-1", "extra": {"chunkSize": 100000, "chunkDelayMs": 0}}}}},
        token))["prompt"]["id"]
    # The echo model's prices (the seeded ones, set again through the API, as an operator would).
    await gql(client, """mutation($i: UpsertModelConfigInput!) { upsertModelConfig(input: $i) { modelConfig { id }
        userErrors { message } } }""", {"i": {"provider": "echo", "modelId": "echo-1", "inputPricePerMillion": "0.10",
                                             "outputPricePerMillion": "0.20"}}, token)
    key = (await gql(client, """mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret
        userErrors { message } } }""", {"i": {"projectId": project, "name": "queue bench",
                                               "scopes": ["EXECUTIONS_READ", "EXECUTIONS_WRITE"]}}, token))["secret"]
    return key, project, prompt


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


async def load(base: str, key: str, project: str, prompt: str, args: argparse.Namespace,
               cpu_probe) -> dict:
    limits = httpx.Limits(max_connections=args.concurrency + 2, max_keepalive_connections=args.concurrency + 2)
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    errors: list[str] = []
    measured: set[str] = set()
    async with httpx.AsyncClient(base_url=base, limits=limits, headers=headers, timeout=120) as client:
        async def execute(n: int) -> str | None:
            started = time.perf_counter()
            resp = await client.post("/graphql", json={"query": EXECUTE, "variables": {"i": {
                "promptId": prompt, "variables": {"customer": f"customer {n}"}}}})
            elapsed = time.perf_counter() - started
            body = resp.json()
            data = (body.get("data") or {}).get("executePrompt")
            if resp.status_code != 200 or body.get("errors") or not data or data["userErrors"]:
                errors.append(f"HTTP {resp.status_code}: {str(body)[:200]}")
                return None
            latencies.append(elapsed)
            return data["execution"]["id"]

        # warm-up: a few executions, waited for (connections, prepared statements, sandbox workers)
        for n in range(8):
            await execute(-n)
        await wait_idle(client, project, time.monotonic() + 60)
        latencies.clear()

        cpu_before = cpu_probe()
        sent = 0
        started = time.perf_counter()

        async def client_loop() -> None:
            nonlocal sent
            while sent < args.executions:
                sent += 1
                execution_id = await execute(sent)
                if execution_id is not None:
                    measured.add(execution_id)

        await asyncio.gather(*(client_loop() for _ in range(args.concurrency)))
        enqueue_wall = time.perf_counter() - started
        await wait_idle(client, project, time.monotonic() + args.timeout)
        wall = time.perf_counter() - started
        cpu_after = cpu_probe()
        rows = [r for r in await all_executions(client, project) if r["id"] in measured]
        measured_latencies = list(latencies)

        probe_waits: list[float] = []
        for n in range(args.idle_probes):
            execution_id = await execute(10_000_000 + n)
            while execution_id is not None:
                resp = (await client.post("/graphql", json={"query": ONE, "variables": {"id": execution_id}})).json()
                node = resp["data"]["node"]
                if node["status"] not in ("PENDING", "RUNNING"):
                    probe_waits.append((_ts(node["startedAt"]) - _ts(node["createdAt"])).total_seconds())
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)
    return {"latencies": measured_latencies, "errors": errors, "enqueue_wall": enqueue_wall, "wall": wall,
            "cpu": {k: cpu_after[k] - cpu_before[k] for k in cpu_before}, "rows": rows, "probe_waits": probe_waits}


async def wait_idle(client: httpx.AsyncClient, project: str, deadline: float) -> None:
    while True:
        data = await gql(client, OPEN, {"p": project})
        if data["executions"]["totalCount"] == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{data['executions']['totalCount']} executions still open at the deadline")
        await asyncio.sleep(0.1)


async def all_executions(client: httpx.AsyncClient, project: str) -> list[dict]:
    rows: list[dict] = []
    after = None
    while True:
        data = await gql(client, PAGE, {"p": project, "after": after})
        rows.extend(data["executions"]["nodes"])
        if not data["executions"]["pageInfo"]["hasNextPage"]:
            return rows
        after = data["executions"]["pageInfo"]["endCursor"]


# ---------------------------------------------------------------------- report


def report(result: dict, args: argparse.Namespace) -> int:
    lat = sorted(x * 1000 for x in result["latencies"])
    measured = result["rows"]
    done = [r for r in measured if r["status"] == "COMPLETED"]
    waits = sorted((_ts(r["startedAt"]) - _ts(r["createdAt"])).total_seconds() * 1000 for r in done)
    n = len(lat)
    span = ((max(_ts(r["completedAt"]) for r in done) - min(_ts(r["createdAt"]) for r in measured))
            .total_seconds() if done else float("nan"))
    print(f"execution queue benchmark: {args.executions} executions, {args.concurrency} clients, "
          f"{args.server_workers} worker tasks in the server + {args.worker_processes} worker process(es) x "
          f"{args.workers}, "
          f"{os.cpu_count()} CPU(s)")
    print(f"  enqueued       {n} ok, {len(result['errors'])} errors in {result['enqueue_wall']:.2f} s: "
          f"{n / result['enqueue_wall']:.1f}/s")
    if lat:
        print(f"  executePrompt  p50 {percentile(lat, 50):.1f} ms  p99 {percentile(lat, 99):.1f} ms  "
              f"max {lat[-1]:.1f} ms")
    print(f"  completed      {len(done)} of {len(measured)} COMPLETED; {len(done) / span:.1f}/s (first createdAt "
          f"to last completedAt: {span:.2f} s; wall to all done {result['wall']:.2f} s)")
    if waits:
        print(f"  queue wait     p50 {percentile(waits, 50):.1f} ms  p99 {percentile(waits, 99):.1f} ms  "
              f"max {waits[-1]:.1f} ms (startedAt - createdAt)")
    probes = sorted(x * 1000 for x in result["probe_waits"])
    if probes:
        print(f"  idle wait      p50 {percentile(probes, 50):.1f} ms  p99 {percentile(probes, 99):.1f} ms  "
              f"(startedAt - createdAt of {len(probes)} executions queued one at a time)")
    cpu = result["cpu"]
    per = {k: v * 1000 / max(n, 1) for k, v in cpu.items()}
    parts = "  ".join(f"{k} {v:.1f}" for k, v in per.items())
    print(f"  CPU ms/exec    total {sum(per.values()):.1f}  ({parts}); machine load avg "
          f"{os.getloadavg()[0]:.1f}")
    for message in result["errors"][:5]:
        print(f"  error: {message}")
    return 1 if result["errors"] or len(done) != len(measured) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("PROMPTSTUDIO_MAX_QUEUED_PER_PROJECT", str(max(1000, args.executions + 100)))
    with ExitStack() as stack:
        url = stack.enter_context(database(args))
        pg = postmaster_pid(url)
        base = stack.enter_context(server(url, 1, queue_workers=args.server_workers))
        spid = server_pid(base)
        procs = stack.enter_context(worker_processes(url, args.worker_processes, args.workers))

        def cpu_probe() -> dict[str, float]:
            probe = {"server": tree_cpu_total(spid)}
            if procs:
                probe["workers"] = sum(tree_cpu_total(p.pid) for p in procs)
            if pg is not None:
                probe["postgres"] = tree_cpu_total(pg)
            return probe

        async def seeded() -> tuple[str, str, str]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                return await seed(c)

        key, project, prompt = asyncio.run(seeded())
        spy = None
        if args.profile:
            fmt = (["--format", "speedscope"] if args.profile.endswith(".json")
                   else ["--format", "raw"] if args.profile.endswith(".txt") else [])
            spy = subprocess.Popen(["py-spy", "record", "-p", str(spid), "-o", args.profile, "--rate", "200",
                                    "--subprocesses", *fmt], stdout=subprocess.DEVNULL)
            time.sleep(1)
        try:
            result = asyncio.run(load(base, key, project, prompt, args, cpu_probe))
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
    return report(result, args)


if __name__ == "__main__":
    sys.exit(main())
