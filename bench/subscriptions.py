"""Benchmark of live monitors: N real WebSocket subscribers of ``projectExecutions`` while executions run.

What it does:

1. Database and server as in ``bench/resolve_prompt.py`` (``--database-url`` or a throw-away database on
   the embedded PostgreSQL; the real app under uvicorn on 127.0.0.1), the server running
   ``--queue-workers`` execution workers.
2. Seeds through GraphQL: a user, a project, a prompt answered by the offline echo provider.
3. Opens ``--subscribers`` WebSocket connections (graphql-transport-ws, the token in connection_init),
   each subscribing to ``projectExecutions`` of the project: what a live monitor does. A warm-up
   execution then proves every subscriber is registered (each must see its COMPLETED).
4. Runs ``--executions`` executions through ``executePrompt`` (``--concurrency`` clients), timing each call.
5. Waits until every execution has ended and every subscriber has what the database says happened
   (or ``--grace`` seconds), then prints: delivery latency p50/p99/max (the event's ``at``, the database
   time of its transaction, against this process's clock when the message arrived: same machine),
   events expected / received / lost / duplicated or out of order, streams ended by the server (with
   their error codes), executePrompt failures and p50/p99, and the CPU milliseconds of the server and of
   its PostgreSQL backends (from /proc) per delivered event.

    .venv/bin/python bench/subscriptions.py --subscribers 1000 --executions 50
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import sys
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
import websockets  # noqa: E402
from resolve_prompt import database, gql, server, server_pid, sign_up_with_project  # noqa: E402
from websockets.typing import Subprotocol  # noqa: E402

from app.db.engine import plain_url  # noqa: E402
from bench.peers import BackendCPU, add_database_options, cpu_delta, tree_cpu  # noqa: E402

SUBSCRIPTION = """subscription($id: ID!) { projectExecutions(projectId: $id) {
  type sequence at execution { id status } } }"""
EXECUTE = """mutation($i: ExecutePromptInput!) { executePrompt(input: $i) {
  execution { id } userErrors { code message } } }"""
STATUS_TYPES = ("QUEUED", "STARTED", "COMPLETED", "FAILED", "CANCELLED")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/subscriptions.py",
        description="Benchmark live monitors: starts the real server on 127.0.0.1, opens N WebSocket subscribers of "
                    "projectExecutions on one project, runs executions with the echo provider, and prints delivery "
                    "latency, lost events, streams ended by errors, executePrompt latency and CPU per event.")
    p.add_argument("--subscribers", type=int, default=500,
                   help="WebSocket subscribers, one connection each (default: 500)")
    p.add_argument("--executions", type=int, default=50, help="executions to run while they listen (default: 50)")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent executePrompt clients (default: 4)")
    p.add_argument("--queue-workers", type=int, default=2, help="execution workers in the server (default: 2)")
    p.add_argument("--grace", type=float, default=30.0,
                   help="seconds to wait, after the last execution ended, for subscribers to get everything "
                        "(default: 30)")
    add_database_options(p)
    args = p.parse_args(argv)
    if not 1 <= args.subscribers <= 5000:
        p.error("--subscribers must be between 1 and 5000")
    if not 1 <= args.executions <= 10_000 or not 1 <= args.concurrency <= 256:
        p.error("--executions must be 1..10000 and --concurrency 1..256")
    args.split_parts = [100]  # for resolve_prompt.database's signature (unused)
    return args


# ---------------------------------------------------------------------- CPU from /proc


async def cpu_snapshot(pid: int, backends: BackendCPU) -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds so far of the server's process tree and of the database's PostgreSQL backends, by pid."""
    return tree_cpu(pid), await backends.read()


# ---------------------------------------------------------------------- subscribers


class Monitor:
    """One WebSocket subscriber; records every event with its arrival time, and how its stream ended."""

    def __init__(self, ws_url: str, token: str, project: str):
        self.ws_url, self.token, self.project = ws_url, token, project
        self.events: list[tuple[str, int, str, float, float]] = []  # (execution, seq, type, at, received)
        self.ended: str | None = None  # why the stream ended, if it did
        self.ready = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        try:
            async with websockets.connect(self.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")],
                                          max_queue=None, open_timeout=60, ping_interval=None, close_timeout=5) as ws:
                await ws.send(json.dumps({"type": "connection_init",
                                          "payload": {"authorization": f"Bearer {self.token}"}}))
                ack = json.loads(await ws.recv())
                if ack.get("type") != "connection_ack":
                    self.ended = f"no ack: {ack}"
                    return
                await ws.send(json.dumps({"type": "subscribe", "id": "1", "payload": {
                    "query": SUBSCRIPTION, "variables": {"id": self.project}}}))
                self.ready.set()
                async for raw in ws:
                    now = time.time()
                    msg = json.loads(raw)
                    kind = msg.get("type")
                    if kind == "next":
                        payload = msg["payload"]
                        if payload.get("errors"):
                            codes = {(e.get("extensions") or {}).get("code", "?") for e in payload["errors"]}
                            self.ended = "error " + ",".join(sorted(codes))
                            continue
                        e = payload["data"]["projectExecutions"]
                        at = datetime.fromisoformat(e["at"]).timestamp()
                        self.events.append((e["execution"]["id"], e["sequence"], e["type"], at, now))
                    elif kind == "error":
                        codes = {(x.get("extensions") or {}).get("code", "?") for x in msg.get("payload") or []}
                        self.ended = "error " + ",".join(sorted(codes))
                        return
                    elif kind == "complete":
                        self.ended = self.ended or "completed by the server"
                        return
                    elif kind == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any way a stream ends is counted
            self.ended = self.ended or f"connection: {type(exc).__name__}"
        finally:
            self.ready.set()


async def open_monitors(base: str, token: str, project: str, n: int) -> list[Monitor]:
    ws_url = base.replace("http://", "ws://") + "/graphql"
    monitors = [Monitor(ws_url, token, project) for _ in range(n)]
    for i in range(0, n, 50):  # connect in waves, as monitors would over a few seconds
        for m in monitors[i:i + 50]:
            m.task = asyncio.create_task(m.run())
        await asyncio.gather(*(m.ready.wait() for m in monitors[i:i + 50]))
    return monitors


# ---------------------------------------------------------------------- the run


async def seed(client: httpx.AsyncClient) -> tuple[str, str, str]:
    token, project = await sign_up_with_project(client, "Monitors", "monitors")
    prompt = (await gql(client, """mutation($i: CreatePromptInput!) { createPrompt(input: $i) { prompt { id }
        userErrors { message } } }""", {"i": {"projectId": project, "name": "echo",
                                               "content": {"template": "Echo {{n}}"}}}, token))["prompt"]["id"]
    return token, project, prompt


async def execute(client: httpx.AsyncClient, token: str, prompt: str, n: int) -> tuple[float, str | None, str]:
    """(seconds, execution id or None, what went wrong)."""
    started = time.perf_counter()
    try:
        resp = await client.post("/graphql", json={"query": EXECUTE, "variables": {"i": {"promptId": prompt,
                                                                                        "variables": {"n": str(n)}}}},
                                 headers={"Authorization": f"Bearer {token}"})
        elapsed = time.perf_counter() - started
        body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
        data = (body.get("data") or {}).get("executePrompt")
        if resp.status_code != 200 or body.get("errors") or not data or data["userErrors"]:
            return elapsed, None, f"HTTP {resp.status_code}: {str(body)[:160]}"
        return elapsed, data["execution"]["id"], ""
    except httpx.HTTPError as exc:
        return time.perf_counter() - started, None, type(exc).__name__


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def raw_id(gid: str) -> uuid.UUID:
    """The row id inside a global ID (base64 of "Type:uuid")."""
    return uuid.UUID(base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode().partition(":")[2])


async def expected_events(url: str, executions: list[str]) -> set[tuple[str, int]]:
    """(global execution id, seq) of every status-change event of these executions, from the database."""
    import asyncpg

    by_raw = {raw_id(g): g for g in executions}
    conn = await asyncpg.connect(plain_url(url))
    try:
        rows = await conn.fetch("SELECT execution_id, seq FROM execution_events WHERE execution_id = ANY($1) "
                                "AND type = ANY($2)", list(by_raw), list(STATUS_TYPES))
    finally:
        await conn.close()
    return {(by_raw[r["execution_id"]], r["seq"]) for r in rows}


async def all_ended(url: str, executions: list[str]) -> bool:
    import asyncpg

    conn = await asyncpg.connect(plain_url(url))
    try:
        ids = [raw_id(g) for g in executions]
        n = await conn.fetchval("SELECT count(*) FROM executions WHERE id = ANY($1) AND status = ANY($2)",
                                ids, list(TERMINAL))
    finally:
        await conn.close()
    return n == len(executions)


async def run(base: str, url: str, args: argparse.Namespace) -> dict:
    pid, backends = server_pid(base), BackendCPU.of(url)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        token, project, prompt = await seed(client)
        t0 = time.perf_counter()
        monitors = await open_monitors(base, token, project, args.subscribers)
        print(f"{args.subscribers} subscribers connected in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        # Warm-up: one execution every subscriber must see end (proves all are registered).
        _, warm, err = await execute(client, token, prompt, -1)
        if warm is None:
            raise SystemExit(f"warm-up executePrompt failed: {err}")
        deadline = time.monotonic() + 120
        while True:
            waiting = [m for m in monitors if m.ended is None
                       and not any(e[0] == warm and e[2] in TERMINAL for e in m.events)]
            if not waiting or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        if waiting:
            print(f"warning: {len(waiting)} subscribers did not see the warm-up execution end", file=sys.stderr)

        cpu0 = await cpu_snapshot(pid, backends)
        started = time.perf_counter()
        latencies: list[float] = []
        failures: Counter[str] = Counter()
        ids: list[str] = []
        queue = list(range(args.executions))

        async def client_loop() -> None:
            while queue:
                n = queue.pop()
                elapsed, eid, err = await execute(client, token, prompt, n)
                if eid is None:
                    failures[err] += 1
                else:
                    latencies.append(elapsed)
                    ids.append(eid)

        await asyncio.gather(*(client_loop() for _ in range(args.concurrency)))
        while not await all_ended(url, ids):
            if time.perf_counter() - started > 300:
                print("warning: executions still running after 300 s", file=sys.stderr)
                break
            await asyncio.sleep(0.2)
        ran = time.perf_counter() - started
        expected = await expected_events(url, ids)
        deadline = time.monotonic() + args.grace

        def missing(m: Monitor) -> int:
            got = {(e[0], e[1]) for e in m.events}
            return len(expected - got)

        while time.monotonic() < deadline:
            if all(m.ended is not None or missing(m) == 0 for m in monitors):
                break
            await asyncio.sleep(0.2)
        cpu1 = await cpu_snapshot(pid, backends)
        for m in monitors:
            if m.task is not None:
                m.task.cancel()
        await asyncio.gather(*(m.task for m in monitors if m.task is not None), return_exceptions=True)

    delivery: list[float] = []
    received = lost = wrong_order = duplicates = 0
    ended: Counter[str] = Counter()
    idset = set(ids)
    for m in monitors:
        if m.ended is not None:
            ended[m.ended] += 1
        mine = [e for e in m.events if e[0] in idset]
        received += len(mine)
        keys = [(e[0], e[1]) for e in mine]
        duplicates += len(keys) - len(set(keys))
        lost += len(expected - set(keys))
        last: dict[str, int] = {}
        for eid, seq, _, _, _ in mine:
            if seq <= last.get(eid, -1):
                wrong_order += 1
            last[eid] = seq
        delivery.extend(max(0.0, rec - at) for _, _, _, at, rec in mine)
    server_ms, pg_ms = cpu_delta(cpu0[0], cpu1[0]) * 1000, cpu_delta(cpu0[1], cpu1[1]) * 1000
    return {
        "subscribers": args.subscribers, "executions": len(ids), "seconds": ran,
        "expected": len(expected) * args.subscribers, "received": received, "lost": lost,
        "duplicates": duplicates, "out_of_order": wrong_order, "ended": dict(ended),
        "delivery_p50_ms": pct(delivery, 0.5) * 1000, "delivery_p99_ms": pct(delivery, 0.99) * 1000,
        "delivery_max_ms": (max(delivery) if delivery else float("nan")) * 1000,
        "execute_failures": dict(failures), "execute_p50_ms": pct(latencies, 0.5) * 1000,
        "execute_p99_ms": pct(latencies, 0.99) * 1000,
        "server_cpu_ms": server_ms, "pg_cpu_ms": pg_ms,
        "cpu_us_per_event": (server_ms + pg_ms) * 1000 / max(1, received),
    }


def report(r: dict) -> None:
    print(f"subscribers of projectExecutions: {r['subscribers']}, executions: {r['executions']} "
          f"(ran {r['seconds']:.1f}s)")
    print(f"events: expected {r['expected']:,}, received {r['received']:,}, lost {r['lost']:,}, "
          f"duplicated {r['duplicates']:,}, out of order {r['out_of_order']:,}")
    print(f"delivery: p50 {r['delivery_p50_ms']:.1f} ms, p99 {r['delivery_p99_ms']:.1f} ms, "
          f"max {r['delivery_max_ms']:.1f} ms")
    ended = ", ".join(f"{k}: {v}" for k, v in sorted(r["ended"].items())) or "none"
    print(f"streams ended by the server: {sum(r['ended'].values())} ({ended})")
    fails = ", ".join(f"{k}: {v}" for k, v in r["execute_failures"].items()) or "none"
    print(f"executePrompt: p50 {r['execute_p50_ms']:.1f} ms, p99 {r['execute_p99_ms']:.1f} ms, failures: {fails}")
    print(f"CPU: server {r['server_cpu_ms']:.0f} ms, PostgreSQL {r['pg_cpu_ms']:.0f} ms; "
          f"{r['cpu_us_per_event']:.0f} us per delivered event")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * args.subscribers + 512))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    with database(args) as url, server(url, 1, queue_workers=args.queue_workers) as base:
        result = asyncio.run(run(base, url, args))
    report(result)
    ok = result["lost"] == 0 and not result["ended"] and not result["execute_failures"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
