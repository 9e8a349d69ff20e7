"""Benchmark of OTLP trace ingest: batches of LLM spans (binary protobuf, as the OpenTelemetry exporters
send them) from concurrent clients to a real server's ``POST /v1/traces``, and the same payloads to
Arize Phoenix's, on the same machine and the same PostgreSQL.

What it does:

1. PostgreSQL: the embedded server in ``--data-dir`` (durable settings: fsync and synchronous_commit on)
   or the server of ``--database-url``; a throw-away database for Prompt Studio (migrated) and, with
   ``--phoenix``, another for Phoenix (it migrates its own). Both are dropped at the end.
2. Servers, on free ports of 127.0.0.1: Prompt Studio (``app.main:create_app_from_env`` under uvicorn,
   ``--server-workers`` processes, no execution workers), seeded through GraphQL with a project and an
   API key holding TRACES_WRITE; and Phoenix (``<--phoenix>/bin/phoenix serve``, with
   PHOENIX_SQL_DATABASE_URL pointing at its database).
3. Payloads: ``--batch-size`` LLM spans a request (traces of 5 spans: a root and 4 children), OpenInference
   attributes as openinference-instrumentation-openai writes them (model, provider, invocation parameters,
   input and output messages and values, token counts, user, session, metadata, tags), a resource and a
   scope. Every batch has new ids. Built before a round starts, so the clients only send.
4. Rounds, alternating (A, B, A, B, ...): ``--concurrency`` clients (httpx, keep-alive) send the round's
   ``--batches`` batches as fast as they are answered, retrying 429/503 after Retry-After. A round ends when
   every span is in the database: Prompt Studio answers after COMMIT, Phoenix answers before it stores
   (it queues spans and inserts them in the background), so spans/s counts **stored** spans over the time
   from the first request to the moment the database holds them all — the same measure for both.
   Every ``--probe-every``-th batch, a probe on its own connection measures how long after the 2xx the
   batch's last span can be read.
5. Prints each round (spans/s stored and acknowledged, request latency, visibility delay, refusals, load
   average, server CPU), then the medians and the ratio.

With ``--without-rollup``, a second Prompt Studio server on its own database, whose ``llm_usage`` has the
cost-report rollup's triggers (migration 0009) disabled, takes its turn in the rounds too: the ratio of
the two is what keeping the rollup on write costs ingest.

    .venv/bin/python bench/otlp_ingest.py --rounds 3 --batches 60 --concurrency 4
    .venv/bin/python bench/otlp_ingest.py --phoenix /work/phoenix-venv --rounds 3
    .venv/bin/python bench/otlp_ingest.py --only promptstudio --without-rollup --rounds 5
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402

from bench import peers  # noqa: E402
from bench.peers import POSTMASTER, add_database_options, admin, databases, tree_cpu, tree_cpu_total  # noqa: E402

PROTOBUF = "application/x-protobuf"
SPANS_PER_TRACE = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/otlp_ingest.py",
        description="Benchmark OTLP/HTTP trace ingest: concurrent clients send protobuf batches of LLM spans to a real "
                    "Prompt Studio server (and, with --phoenix, to Arize Phoenix on the same PostgreSQL), in "
                    "alternating rounds; prints stored spans/s per round, the medians and the ratio.")
    p.add_argument("--batches", type=int, default=60, help="batches per round (default: 60)")
    p.add_argument("--phoenix-batches", type=int, default=5,
                   help="batches per Phoenix round (it stores about a hundredth as fast; default: 5)")
    p.add_argument("--batch-size", type=int, default=1000, help="spans per batch (default: 1000)")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent clients (default: 4)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per server, alternating (default: 3)")
    p.add_argument("--warmup", type=int, default=4, help="unmeasured batches before the rounds (default: 4)")
    p.add_argument("--probe-every", type=int, default=5,
                   help="measure read-after-2xx visibility of every n-th batch (default: 5)")
    p.add_argument("--server-workers", type=int, default=1,
                   help="uvicorn worker processes of Prompt Studio (default: 1)")
    p.add_argument("--phoenix", metavar="VENV", default=None,
                   help="a virtualenv with arize-phoenix installed (e.g. /work/phoenix-venv): benchmark it too")
    p.add_argument("--only", choices=("promptstudio", "phoenix"), default=None,
                   help="benchmark one server only")
    p.add_argument("--without-rollup", action="store_true",
                   help="also run a Prompt Studio server whose database has the cost-report rollup's triggers on "
                        "llm_usage disabled, in the same alternating rounds (what the rollup costs ingest)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for the Prompt Studio server (repeatable), e.g. "
                        "PROMPTSTUDIO_INGEST_CONCURRENCY=2")
    p.add_argument("--uvicorn-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument of Prompt Studio's uvicorn (repeatable), e.g. --uvicorn-arg=--loop=asyncio "
                        "(py-spy sees into asyncio's loop, not uvloop's)")
    add_database_options(p, env="BENCH_DATABASE_URL",
                         database_help="a PostgreSQL server (its databases are created and dropped here; default: "
                                       "BENCH_DATABASE_URL; unset: the embedded server in --data-dir)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--logs", metavar="DIR", help="keep the servers' logs in DIR (default: a temporary directory)")
    args = p.parse_args(argv)
    if min(args.batches, args.phoenix_batches, args.batch_size, args.concurrency, args.rounds,
           args.probe_every) < 1 or args.warmup < 0:
        p.error("--batches, --phoenix-batches, --batch-size, --concurrency, --rounds and --probe-every must be >= 1")
    if args.batch_size > 10_000 or args.batches * args.batch_size > 2_000_000:
        p.error("at most 10,000 spans a batch and 2,000,000 a round")
    if args.phoenix and not (Path(args.phoenix) / "bin" / "phoenix").exists():
        p.error(f"--phoenix {args.phoenix}: no bin/phoenix there (pip install arize-phoenix in that virtualenv)")
    if args.only == "phoenix" and not args.phoenix:
        p.error("--only phoenix needs --phoenix VENV")
    if args.without_rollup and args.only == "phoenix":
        p.error("--without-rollup is a second Prompt Studio server: not with --only phoenix")
    return args


# ---------------------------------------------------------------------- payloads


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    elif isinstance(value, list):
        v = AnyValue()
        v.array_value.values.extend(AnyValue(string_value=str(x)) for x in value)
    else:
        v = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=v)


WORDS = ["order", "shipping", "refund", "invoice", "account", "password", "delivery", "warehouse", "parcel",
         "tracking", "customer", "subscription", "upgrade", "discount", "payment", "card", "address", "return",
         "exchange", "support", "ticket"]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def template(batch_size: int, seed: int = 1) -> ExportTraceServiceRequest:
    """One batch of LLM spans; :func:`batches` gives each copy new ids."""
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", "support-agent"), _kv("telemetry.sdk.language", "python"),
                                   _kv("telemetry.sdk.name", "opentelemetry"), _kv("telemetry.sdk.version", "1.45.2"),
                                   _kv("deployment.environment", "bench")])
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "openinference.instrumentation.openai", "0.1.66"
    for i in range(batch_size):
        model = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")[i % 3]
        system, question, answer = _text(rng, 25), _text(rng, 18), _text(rng, 50)
        prompt, completion = rng.randint(200, 4000), rng.randint(20, 800)
        sp = ss.spans.add(name="ChatCompletion", kind=3)
        sp.status.code = 1
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        sp.attributes.extend([
            _kv("openinference.span.kind", "LLM"), _kv("llm.system", "openai"), _kv("llm.provider", "openai"),
            _kv("llm.model_name", model),
            _kv("llm.invocation_parameters", json.dumps({"model": model, "temperature": 0.2, "max_tokens": 1024})),
            _kv("input.value", json.dumps({"messages": messages, "model": model})),
            _kv("input.mime_type", "application/json"), _kv("output.value", answer),
            _kv("output.mime_type", "text/plain"),
            _kv("llm.input_messages.0.message.role", "system"), _kv("llm.input_messages.0.message.content", system),
            _kv("llm.input_messages.1.message.role", "user"), _kv("llm.input_messages.1.message.content", question),
            _kv("llm.output_messages.0.message.role", "assistant"),
            _kv("llm.output_messages.0.message.content", answer),
            _kv("llm.token_count.prompt", prompt), _kv("llm.token_count.completion", completion),
            _kv("llm.token_count.total", prompt + completion),
            _kv("llm.token_count.prompt_details.cache_read", prompt // 4),
            _kv("user.id", f"user-{rng.randint(1, 5000)}"), _kv("session.id", f"session-{rng.randint(1, 20000)}"),
            _kv("metadata", json.dumps({"tenant": "acme", "plan": rng.choice(["free", "pro"])})),
            _kv("tag.tags", ["support", rng.choice(["billing", "shipping", "account"])]),
        ])
    return req


def batches(req: ExportTraceServiceRequest, n: int, seed: int) -> list[tuple[bytes, str, str]]:
    """``n`` serialized copies with new ids and current times; with each, its last span's (trace id, span id)."""
    rng = random.Random(seed)
    spans = req.resource_spans[0].scope_spans[0].spans
    out = []
    now = time.time_ns()
    for _ in range(n):
        trace = b""
        root = b""
        for i, sp in enumerate(spans):
            if i % SPANS_PER_TRACE == 0:
                trace, root = rng.randbytes(16), rng.randbytes(8)
                sp.span_id, sp.parent_span_id = root, b""
            else:
                sp.span_id, sp.parent_span_id = rng.randbytes(8), root
            sp.trace_id = trace
            start = now - rng.randint(1, 600) * 1_000_000_000
            sp.start_time_unix_nano, sp.end_time_unix_nano = start, start + rng.randint(200, 9000) * 1_000_000
        out.append((req.SerializeToString(), spans[-1].trace_id.hex(), spans[-1].span_id.hex()))
    return out


# ---------------------------------------------------------------------- database and servers


#: The Prompt Studio server whose llm_usage has no rollup triggers (--without-rollup).
NO_ROLLUP = "no-rollup"


@contextmanager
def promptstudio(url: str, args: argparse.Namespace, logs: Path, name: str = "promptstudio"):
    from app.db.migrate import upgrade

    upgrade(url)
    if name == NO_ROLLUP:
        asyncio.run(admin(url, "ALTER TABLE llm_usage DISABLE TRIGGER llm_usage_rollup_insert"))
    env = dict(e.split("=", 1) for e in args.env)
    with peers.promptstudio(url, logs, name=name, workers=args.server_workers, env=env,
                            uvicorn_args=args.uvicorn_arg, migrate=False) as (base, proc):
        key = asyncio.run(_seed(base))
        yield Target(name, base, {"Authorization": f"Bearer {key}"}, url, proc)


@contextmanager
def phoenix(url: str, venv: str, logs: Path):
    with peers.phoenix(url, venv, logs) as (base, proc):
        yield Target("phoenix", base, {}, url, proc)


async def _seed(base: str) -> str:
    tag = uuid.uuid4().hex[:8]

    async def gql(c: httpx.AsyncClient, query: str, variables: dict, token: str | None = None) -> dict:
        resp = await c.post("/graphql", json={"query": query, "variables": variables},
                            headers={"Authorization": f"Bearer {token}"} if token else {})
        body = resp.json()
        data = (body.get("data") or {}).get(next(iter(body.get("data") or {"x": 0})))
        if resp.status_code != 200 or body.get("errors") or (isinstance(data, dict) and data.get("userErrors")):
            raise SystemExit(f"seeding failed: {resp.status_code} {body}")
        return data

    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        user = await gql(c, "mutation($i: SignUpInput!) { signUp(input: $i) { token userErrors { message } } }",
                         {"i": {"email": f"bench-{tag}@example.com", "username": f"bench-{tag}",
                                "password": "benchmark password"}})
        project = await gql(c, "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } "
                               "userErrors { message } } }", {"i": {"name": "Bench", "slug": f"bench-{tag}"}},
                            user["token"])
        key = await gql(c, "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret "
                           "userErrors { message } } }",
                        {"i": {"projectId": project["project"]["id"], "name": "otel", "scopes": ["TRACES_WRITE"]}},
                        user["token"])
    return key["secret"]


# ---------------------------------------------------------------------- rounds


def postgres_cpu(postmaster: int | None) -> float:
    """CPU seconds of the embedded PostgreSQL so far: the postmaster, its live backends and the ones it
    has reaped (0 for a server of --database-url, whose processes are not ours to see)."""
    return 0.0 if postmaster is None else tree_cpu_total(postmaster)


@dataclass
class Target:
    name: str
    base: str
    headers: dict[str, str]
    database_url: str
    proc: subprocess.Popen

    def cpu_seconds(self) -> float:
        """CPU time of the server's process tree so far."""
        return sum(tree_cpu(self.proc.pid).values())

    @property
    def count_sql(self) -> str:
        return "SELECT count(*) FROM spans"

    @property
    def probe_sql(self) -> str:
        if self.name == "phoenix":
            return "SELECT 1 FROM spans WHERE span_id = $2 AND $1::text IS NOT NULL"
        return "SELECT 1 FROM traces t JOIN spans s ON s.trace_pk = t.id WHERE t.trace_id = $1 AND s.span_id = $2"


@dataclass
class Round:
    target: str
    spans: int
    stored_seconds: float
    acked_seconds: float
    latencies: list[float] = field(default_factory=list)
    visibility: list[float] = field(default_factory=list)
    refused: int = 0
    load_before: float = 0.0
    load_after: float = 0.0
    server_cpu: float = 0.0
    db_cpu: float = 0.0

    @property
    def stored_rate(self) -> float:
        return self.spans / self.stored_seconds

    @property
    def acked_rate(self) -> float:
        return self.spans / self.acked_seconds


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))]


async def run_round(target: Target, payloads: list[tuple[bytes, str, str]], args: argparse.Namespace,
                    baseline: int) -> Round:
    pending = list(enumerate(payloads))
    pending.reverse()
    latencies: list[float] = []
    visibility: list[float] = []
    refused = 0
    probes: list[asyncio.Task] = []
    probe_conn = await asyncpg.connect(target.database_url)
    probe_lock = asyncio.Lock()

    async def probe(acked_at: float, trace_id: str, span_id: str) -> None:
        async with probe_lock:
            while True:
                if await probe_conn.fetchval(target.probe_sql, trace_id, span_id):
                    visibility.append(time.perf_counter() - acked_at)
                    return
                waited = time.perf_counter() - acked_at
                if waited > 900:
                    visibility.append(float("inf"))
                    return
                await asyncio.sleep(0.01 if waited < 1 else 0.1)

    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    headers = {"Content-Type": PROTOBUF, **target.headers}
    async with httpx.AsyncClient(base_url=target.base, limits=limits, headers=headers, timeout=120) as client:
        async def worker() -> None:
            nonlocal refused
            while pending:
                i, (body, trace_id, span_id) = pending.pop()
                while True:
                    began = time.perf_counter()
                    resp = await client.post("/v1/traces", content=body)
                    if resp.status_code in (429, 502, 503, 504):
                        refused += 1
                        await asyncio.sleep(float(resp.headers.get("retry-after", "0.5")))
                        continue
                    if resp.status_code != 200:
                        raise SystemExit(f"{target.name}: HTTP {resp.status_code}: {resp.text[:300]}")
                    done = time.perf_counter()
                    latencies.append(done - began)
                    if i % args.probe_every == 0:
                        probes.append(asyncio.create_task(probe(done, trace_id, span_id)))
                    break

        load_before = os.getloadavg()[0]
        cpu_before = target.cpu_seconds()
        db_before = postgres_cpu(POSTMASTER[0] if POSTMASTER else None)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        acked = time.perf_counter() - started
    expected = baseline + len(payloads) * args.batch_size
    while True:
        async with probe_lock:
            if await probe_conn.fetchval(target.count_sql) >= expected:
                break
        if time.perf_counter() - started > 1800:
            raise SystemExit(f"{target.name}: the spans were not all stored within 30 minutes")
        await asyncio.sleep(0.05 if time.perf_counter() - started < 10 else 0.5)
    stored = time.perf_counter() - started
    server_cpu = target.cpu_seconds() - cpu_before
    db_cpu = postgres_cpu(POSTMASTER[0] if POSTMASTER else None) - db_before
    await asyncio.gather(*probes)
    await probe_conn.close()
    return Round(target.name, len(payloads) * args.batch_size, stored, acked, latencies, visibility, refused,
                 load_before, os.getloadavg()[0], server_cpu, db_cpu)


async def stored_count(target: Target) -> int:
    conn = await asyncpg.connect(target.database_url)
    try:
        return await conn.fetchval(target.count_sql)
    finally:
        await conn.close()


def show(r: Round) -> None:
    vis = [v * 1000 for v in r.visibility]
    print(f"  {r.target:<13} {r.stored_rate:>8.0f} spans/s stored ({r.spans} in {r.stored_seconds:.2f} s; acknowledged "
          f"at {r.acked_rate:.0f}/s)  request p50 {pct(r.latencies, 50) * 1000:.0f} ms p95 "
          f"{pct(r.latencies, 95) * 1000:.0f} ms  readable after 2xx p50 {pct(vis, 50):.0f} ms max "
          f"{max(vis) if vis else float('nan'):.0f} ms  503s {r.refused}  load {r.load_before:.2f}->{r.load_after:.2f}"
          f"  CPU µs/span: server {r.server_cpu / r.spans * 1e6:.0f}, PostgreSQL {r.db_cpu / r.spans * 1e6:.0f}",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n for n in ("promptstudio", "phoenix") if (args.only in (None, n)) and (n != "phoenix" or args.phoenix)]
    if args.without_rollup:
        names.insert(1, NO_ROLLUP)
    print(f"OTLP ingest benchmark: {args.rounds} round(s) each, Prompt Studio {args.batches} and Phoenix "
          f"{args.phoenix_batches} batches a round, of {args.batch_size} LLM spans; {args.concurrency} clients, "
          f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}", flush=True)
    t0 = time.perf_counter()
    proto = template(args.batch_size)
    warm = batches(proto, args.warmup, seed=0)
    size = sum(len(b) for b, _, _ in warm) / max(1, len(warm))
    print(f"  payload: {size / 1e6:.2f} MB a batch ({size / args.batch_size:.0f} bytes a span), built in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    results: list[Round] = []
    with (tempfile.TemporaryDirectory(prefix="otlp-bench-") as tmp,
          databases(args.database_url, args.data_dir, names) as urls, ExitStack() as stack):
        logs = Path(args.logs or tmp)
        logs.mkdir(parents=True, exist_ok=True)
        targets: list[Target] = []
        if "promptstudio" in names:
            targets.append(stack.enter_context(promptstudio(urls["promptstudio"], args, logs)))
        if NO_ROLLUP in names:
            targets.append(stack.enter_context(promptstudio(urls[NO_ROLLUP], args, logs, NO_ROLLUP)))
        if "phoenix" in names:
            targets.append(stack.enter_context(phoenix(urls["phoenix"], args.phoenix, logs)))
        for target in targets:  # warm-up: connections, caches, the first batches' tables
            if warm:
                asyncio.run(run_round(target, warm, args, asyncio.run(stored_count(target))))
        seed = 1
        for n in range(args.rounds):
            print(f"round {n + 1}", flush=True)
            order = targets if n % 2 == 0 else list(reversed(targets))
            for target in order:
                payloads = batches(proto, args.phoenix_batches if target.name == "phoenix" else args.batches,
                                   seed=seed)
                seed += 1
                r = asyncio.run(run_round(target, payloads, args, asyncio.run(stored_count(target))))
                results.append(r)
                show(r)
                del payloads
    print("medians")
    medians: dict[str, float] = {}
    for name in names:
        mine = [r for r in results if r.target == name]
        medians[name] = statistics.median(r.stored_rate for r in mine)
        vis = [v for r in mine for v in r.visibility]
        server = statistics.median(r.server_cpu / r.spans for r in mine) * 1e6
        db = statistics.median(r.db_cpu / r.spans for r in mine) * 1e6
        print(f"  {name:<13} {medians[name]:>8.0f} spans/s stored (rounds: "
              f"{', '.join(f'{r.stored_rate:.0f}' for r in mine)}); acknowledged "
              f"{statistics.median(r.acked_rate for r in mine):.0f}/s; readable after 2xx p50 "
              f"{pct(vis, 50) * 1000:.0f} ms, max {max(vis) * 1000:.0f} ms; CPU µs/span: server {server:.0f}, "
              f"PostgreSQL {db:.0f}")
    if NO_ROLLUP in medians:
        pairs = [a.stored_rate / b.stored_rate for a, b in zip([r for r in results if r.target == "promptstudio"],
                                                               [r for r in results if r.target == NO_ROLLUP],
                                                               strict=True)]
        print(f"  rollup        {medians['promptstudio'] / medians[NO_ROLLUP]:.2f}x (with the rollup's triggers / "
              f"without, medians; per round: {', '.join(f'{p:.2f}x' for p in pairs)})")
    if "promptstudio" in medians and "phoenix" in medians:
        ratio = medians["promptstudio"] / medians["phoenix"]
        pairs = [a.stored_rate / b.stored_rate for a, b in zip([r for r in results if r.target == "promptstudio"],
                                                               [r for r in results if r.target == "phoenix"],
                                                               strict=True)]
        print(f"  ratio         {ratio:.1f}x (Prompt Studio / Phoenix, medians; per round: "
              f"{', '.join(f'{p:.1f}x' for p in pairs)})")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": [
            {"target": r.target, "spans": r.spans, "stored_seconds": r.stored_seconds, "acked_seconds": r.acked_seconds,
             "stored_rate": r.stored_rate, "acked_rate": r.acked_rate, "p50_ms": pct(r.latencies, 50) * 1000,
             "p95_ms": pct(r.latencies, 95) * 1000, "visibility_ms": [v * 1000 for v in r.visibility],
             "refused": r.refused, "load": [r.load_before, r.load_after], "server_cpu": r.server_cpu,
             "db_cpu": r.db_cpu}
            for r in results], "medians": medians}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
