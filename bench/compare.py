"""Side-by-side benchmarks: Prompt Studio and its peers on the same PostgreSQL, the same data, the same load.

Workloads (``bench/compare.py WORKLOAD``, or ``make bench ARGS="WORKLOAD ..."``):

* ``resolve``: one prompt for an application. Ours: ``resolvePrompt`` (a traffic split of 3 versions in
  production, a random subject key per request, an API key). Arize Phoenix: its prompt-by-tag REST
  endpoint (``GET /v1/prompts/{name}/tags/{tag}``; the same prompt, 3 versions, the tag on one).
  PostGraphile: ``promptByProjectIdAndName`` (the unique key of our prompts table) with its active
  production deployments and their versions' templates.
* ``dashboard``: one screen of a prompt registry: 50 prompts, each with its latest version, 5 versions
  and its active deployments (bench/nested_reads.py's seeding and ``DASHBOARD_QUERY``). PostGraphile:
  the same fields from ``projectBySlug`` (its latest version as ``first: 1`` of the versions newest first).
* ``large``: 10,000 version objects in one response: 100 prompts x 100 versions (``LARGE_QUERY``), and
  PostGraphile's equivalent.

How it runs:

1. PostgreSQL: the embedded server of ``--data-dir`` (or the server of ``--database-url``); a throw-away
   database for Prompt Studio (PostGraphile serves the same one: it reads our tables) and one for
   Phoenix (it migrates its own); dropped at the end.
2. Servers, each in a child process on 127.0.0.1: ours (``app.main:create_app_from_env`` under uvicorn,
   no execution workers, the rate limit and the query-cost ceiling lifted), Phoenix (``phoenix serve``
   from a virtualenv: ``--phoenix VENV``, or ``<data-dir>/peers/phoenix-20.26.1`` created from PyPI on
   the first run), PostGraphile 4.14.1 (``npx postgraphile``, installed from the npm registry into
   ``<data-dir>/peers/postgraphile-4.14.1`` on the first run; Node.js 18+; ``--schema public
   --disable-default-mutations``, the same credentials as ours).
3. Seeding through the public APIs: our GraphQL mutations, Phoenix's REST API. Each server's answer is
   checked once (the right objects, no errors) before the load starts.
4. Load: wrk, ``--connections`` keep-alive connections (16), ``--duration`` seconds a run, after a short
   unmeasured warm-up; the servers take turns (A, B, C, A, B, C, ... over ``--rounds``). Without wrk a
   Python load generator in a separate process is used, and the output says so.
5. CPU per request, read from /proc (utime + stime): the server's processes, and the PostgreSQL backends
   serving it (pg_stat_activity: its database, and for ours and PostGraphile's the application_name).
   The CPU of a run is read from just before wrk starts (the server idle: what was left of its previous
   run finished) to just after it stops; wrk leaves one request a connection unanswered, on average
   half done, so CPU per request = CPU / (answered + connections / 2). A run that answers few requests
   (under 10 a connection) says its CPU figure is rough: make --duration longer.
6. Prints each run, then per server the medians (requests/s, p50, p99, CPU ms per request of the server
   and of PostgreSQL) and the ratios, ours against each peer, of the medians and round by round.

    .venv/bin/python bench/compare.py resolve --rounds 3 --duration 20
    .venv/bin/python bench/compare.py dashboard --peers postgraphile
    .venv/bin/python bench/compare.py large --phoenix /work/phoenix-venv
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from bench import peers  # noqa: E402
from bench.peers import BackendCPU, LoadResult, Request  # noqa: E402

PROMPT_NAME = "checkout-assistant"
TAG = "production"

#: Ours: the hot path, as an application calls it (a random subject key per request picks the version).
RESOLVE_QUERY = """query R($p: ID!, $k: String) {
  resolvePrompt(projectId: $p, name: "checkout-assistant", subjectKey: $k) { version { number template } } }"""

#: PostGraphile: the prompt by its unique key (project, name), its active production deployments and their
#: versions' templates (it cannot pick one by a subject key: the client would).
PGL_RESOLVE_QUERY = """query R($p: UUID!) { promptByProjectIdAndName(projectId: $p, name: "checkout-assistant") {
  deploymentsByPromptId(condition: {environment: "production", retiredAt: null}) { nodes {
    trafficPercentage promptVersionByVersionId { number template } } } } }"""

PGL_DASHBOARD_QUERY = """query Dashboard($slug: String!) { projectBySlug(slug: $slug) {
  promptsByProjectId(first: 50, orderBy: CREATED_AT_DESC) { nodes {
    id name tags status updatedAt
    latest: promptVersionsByPromptId(first: 1, orderBy: NUMBER_DESC) { nodes {
      id number template commitMessage createdAt } }
    versions: promptVersionsByPromptId(first: 5, orderBy: NUMBER_DESC) { nodes { id number template createdAt } }
    deployments: deploymentsByPromptId(condition: {retiredAt: null}) { nodes {
      environment trafficPercentage deployedAt version: promptVersionByVersionId { number } } } } } } }"""

PGL_LARGE_QUERY = """query Large($slug: String!) { projectBySlug(slug: $slug) {
  promptsByProjectId(first: 100, orderBy: CREATED_AT_DESC) { nodes {
    name versions: promptVersionsByPromptId(first: 100, orderBy: NUMBER_DESC) { nodes {
      id number template createdAt } } } } } }"""

WORKLOADS = {
    "resolve": "one prompt for an application: resolvePrompt vs Phoenix's prompt-by-tag REST vs PostGraphile "
               "by unique key",
    "dashboard": "50 prompts x (latest version, 5 versions, deployments) in one query: ours vs PostGraphile",
    "large": "10,000 version objects in one response (100 prompts x 100 versions): ours vs PostGraphile",
}
PEERS = {"resolve": ("phoenix", "postgraphile"), "dashboard": ("postgraphile",), "large": ("postgraphile",)}
#: Default connections: 16, but 2 for large (one response is 10,000 objects; 16 of them at once share the
#: cores for tens of seconds on a slow server before any is answered, and a run answers nothing).
CONNECTIONS = {"resolve": 16, "dashboard": 16, "large": 2}
LABELS = {"promptstudio": "Prompt Studio", "phoenix": "Phoenix", "postgraphile": "PostGraphile"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/compare.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Side-by-side benchmark of one workload: starts our server and the peers on the same "
                    "PostgreSQL, seeds the same data through the public APIs, runs wrk against each in turn "
                    "(A, B, A, B ...) and prints per-run and median requests/s, p50/p99, CPU ms per request "
                    "(server and PostgreSQL, from /proc) and the ratios ours/peer.",
        epilog="workloads:\n" + "\n".join(f"  {k:<10} {v}" for k, v in WORKLOADS.items()) + """

first run: PostGraphile 4.14.1 is downloaded from the npm registry (npm install, Node.js 18+) into
  <data-dir>/peers/postgraphile-4.14.1 and run from there with npx; Arize Phoenix 20.26.1 is installed from
  PyPI into the virtualenv <data-dir>/peers/phoenix-20.26.1 unless --phoenix VENV names one. Both stay
  cached there (delete the directory to reinstall). Later runs need no network.
load generator: wrk (apt-get install wrk). Without it a Python load generator in a separate process is
  used (it says so): its own CPU cost caps the faster servers, so the ratios are not comparable then.
the servers: ours runs with no execution workers, the rate limit and the query-cost ceiling lifted
  (PROMPTSTUDIO_RATE_LIMIT_THRESHOLD, PROMPTSTUDIO_MAX_QUERY_COST), logs in --logs or a temporary directory.

examples:
  make bench ARGS="resolve --rounds 3"
  .venv/bin/python bench/compare.py dashboard --duration 20 --rounds 5
  .venv/bin/python bench/compare.py resolve --phoenix /work/phoenix-venv --peers phoenix
""")
    p.add_argument("workload", choices=sorted(WORKLOADS), help="what to measure (see below)")
    p.add_argument("--rounds", type=int, default=3, help="runs per server, taking turns (default: 3)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of load a run (default: 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds of load per server first (default: 3)")
    p.add_argument("--connections", type=int, default=None,
                   help="concurrent keep-alive connections (default: 16; 2 for large)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default: 2)")
    p.add_argument("--load", choices=("auto", "wrk", "python"), default="auto",
                   help="load generator: wrk, python (a separate process), auto: wrk when installed (default)")
    p.add_argument("--peers", default=None,
                   help="comma-separated peers to run (default for resolve: phoenix,postgraphile; for dashboard "
                        "and large: postgraphile); 'none' for ours alone")
    p.add_argument("--phoenix", metavar="VENV", default=None,
                   help="a virtualenv with arize-phoenix installed (default: <data-dir>/peers/phoenix-20.26.1, "
                        "installed from PyPI on first use)")
    p.add_argument("--server-workers", type=int, default=1, help="uvicorn worker processes of ours (default: 1)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for our server (repeatable)")
    peers.add_database_options(
        p, env="BENCH_DATABASE_URL",
        database_help="a PostgreSQL server whose databases are created and dropped here (default: BENCH_DATABASE_URL; "
                      "unset: the embedded server in --data-dir). CPU of PostgreSQL is read only where its processes "
                      "are on this machine",
        data_dir_help="data directory: the embedded PostgreSQL and the peers' installs (default: "
                      "./.promptstudio-bench)")
    p.add_argument("--logs", metavar="DIR", help="keep the servers' logs in DIR (default: a temporary directory)")
    p.add_argument("--json", metavar="FILE", help="also write the runs and medians as JSON to FILE")
    args = p.parse_args(argv)
    if args.connections is None:
        args.connections = CONNECTIONS[args.workload]
    if args.rounds < 1 or args.duration < 1 or args.warmup < 0 or not 1 <= args.connections <= 1000 \
            or args.threads < 1:
        p.error("--rounds >= 1, --duration >= 1, --warmup >= 0, --connections in 1..1000, --threads >= 1")
    if args.duration > 600:
        p.error("--duration is at most 600 seconds")
    if args.peers is None:
        args.peer_list = list(PEERS[args.workload])
    elif args.peers.strip() == "none":
        args.peer_list = []
    else:
        args.peer_list = [x.strip() for x in args.peers.split(",") if x.strip()]
        unknown = [x for x in args.peer_list if x not in PEERS[args.workload]]
        if unknown:
            p.error(f"--peers: {', '.join(unknown)} not a peer of {args.workload} (its peers: "
                    f"{', '.join(PEERS[args.workload])})")
    if args.load == "wrk" and not peers.have_wrk():
        p.error("--load wrk: wrk is not installed (apt-get install wrk)")
    try:
        args.env_pairs = dict(e.split("=", 1) for e in args.env)
    except ValueError:
        p.error("--env takes NAME=VALUE")
    return args


# ---------------------------------------------------------------------- targets


@dataclass
class Target:
    name: str
    base: str
    pid: int
    request: Request
    backends: BackendCPU | None
    check: Callable[[httpx.Response], str]


@dataclass
class Run:
    target: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    server_ms: float
    pg_ms: float | None
    load_before: float
    generator: str
    connections: int


def _json_body(query: str, variables: dict) -> str:
    return json.dumps({"query": query, "variables": variables}, separators=(",", ":"))


def _graphql_data(resp: httpx.Response, what: str) -> dict:
    if resp.status_code != 200:
        raise SystemExit(f"{what}: HTTP {resp.status_code}: {resp.text[:500]}")
    body = resp.json()
    if body.get("errors"):
        raise SystemExit(f"{what}: {json.dumps(body['errors'])[:800]}")
    return body["data"]


async def _fetchval(url: str, sql: str, *params: object) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql, *params)
    finally:
        await conn.close()


def _plain(url: str) -> str:
    from app.db.engine import plain_url

    return plain_url(url)


# ---------------------------------------------------------------------- seeding and requests, per workload


def seed_ours(workload: str, base: str, db_url: str) -> dict:
    """Seed our server through GraphQL; returns what the requests need."""
    started = time.perf_counter()
    what = {"resolve": "a prompt with 3 versions in a 70/20/10 traffic split and an API key",
            "dashboard": "50 prompts x 6 versions, deployed in production (70/30) and staging",
            "large": "100 prompts x 100 versions (minutes: 10,000 createPromptVersion mutations)"}[workload]
    print(f"  seeding Prompt Studio through GraphQL: {what}", flush=True)
    if workload == "resolve":
        from bench.resolve_prompt import seed

        key, project_id = asyncio.run(seed(base, [70, 20, 10]))
        project_uuid = asyncio.run(_fetchval(_plain(db_url), "SELECT project_id::text FROM prompts WHERE name = $1",
                                             PROMPT_NAME))
        seeded = {"key": key, "project_id": project_id, "project_uuid": project_uuid}
    else:
        nested = _nested_reads()

        async def go() -> dict:
            async with httpx.AsyncClient(base_url=base, timeout=120) as client:
                token = await nested.sign_up(client)
                if workload == "dashboard":
                    slug = await nested.seed_dashboard(client, token)
                else:
                    slug = await nested.seed_large(client, token)
            return {"token": token, "slug": slug}

        seeded = asyncio.run(go())
    print(f"  seeded Prompt Studio through GraphQL in {time.perf_counter() - started:.1f} s", flush=True)
    return seeded


def _nested_reads() -> ModuleType:
    try:
        from bench import nested_reads
    except ImportError as exc:
        raise SystemExit("the dashboard and large workloads use bench/nested_reads.py (its seeding and queries); "
                         f"it is missing here: {exc}") from exc
    return nested_reads


def ours_target(workload: str, base: str, pid: int, seeded: dict, backends: BackendCPU | None) -> Target:
    if workload == "resolve":
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {seeded['key']}"}
        body = _json_body(RESOLVE_QUERY, {"p": seeded["project_id"], "k": peers.SUBJECT})

        def check(resp: httpx.Response) -> str:
            data = _graphql_data(resp, "resolvePrompt")["resolvePrompt"]
            if not data or "{{customer}}" not in data["version"]["template"]:
                raise SystemExit(f"resolvePrompt answered {data}")
            return f"version {data['version']['number']} of {PROMPT_NAME}"

        return Target("promptstudio", base, pid, Request("POST", "/graphql", headers, body), backends, check)
    nested = _nested_reads()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {seeded['token']}"}
    query = nested.DASHBOARD_QUERY if workload == "dashboard" else nested.LARGE_QUERY

    def check_nested(resp: httpx.Response) -> str:
        data = _graphql_data(resp, workload)
        if workload == "dashboard":
            nested.check_dashboard(data)
            return f"50 prompts with versions and deployments, {len(resp.content) / 1000:.0f} kB"
        n = nested.check_large(data)
        return f"{n} versions, {len(resp.content) / 1e6:.1f} MB"

    return Target("promptstudio", base, pid, Request("POST", "/graphql", headers,
                                                     _json_body(query, {"slug": seeded["slug"]})),
                  backends, check_nested)


def postgraphile_target(workload: str, base: str, pid: int, seeded: dict, backends: BackendCPU | None) -> Target:
    headers = {"Content-Type": "application/json"}
    if workload == "resolve":
        body = _json_body(PGL_RESOLVE_QUERY, {"p": seeded["project_uuid"]})

        def check(resp: httpx.Response) -> str:
            nodes = _graphql_data(resp, "PostGraphile")["promptByProjectIdAndName"]["deploymentsByPromptId"]["nodes"]
            if len(nodes) != 3:
                raise SystemExit(f"PostGraphile answered {nodes}")
            return "the 3 production deployments with their templates"

        return Target("postgraphile", base, pid, Request("POST", "/graphql", headers, body), backends, check)
    query = PGL_DASHBOARD_QUERY if workload == "dashboard" else PGL_LARGE_QUERY

    def check_nested(resp: httpx.Response) -> str:
        prompts = _graphql_data(resp, "PostGraphile")["projectBySlug"]["promptsByProjectId"]["nodes"]
        if workload == "dashboard":
            if len(prompts) != 50 or any(len(p["versions"]["nodes"]) != 5 or not p["deployments"]["nodes"]
                                         or len(p["latest"]["nodes"]) != 1 for p in prompts):
                raise SystemExit(f"PostGraphile's dashboard is not what was seeded: {str(prompts)[:300]}")
            return f"50 prompts with versions and deployments, {len(resp.content) / 1000:.0f} kB"
        n = sum(len(p["versions"]["nodes"]) for p in prompts)
        if n != 10_000:
            raise SystemExit(f"PostGraphile's answer holds {n} versions, not 10,000")
        return f"{n} versions, {len(resp.content) / 1e6:.1f} MB"

    return Target("postgraphile", base, pid, Request("POST", "/graphql", headers,
                                                     _json_body(query, {"slug": seeded["slug"]})),
                  backends, check_nested)


def _phoenix_version(n: int) -> dict:
    return {"model_provider": "OPENAI", "model_name": "gpt-4o-mini", "template_type": "CHAT",
            "template_format": "MUSTACHE",
            "template": {"type": "chat", "messages": [
                {"role": "user", "content": f"v{n}: Help {{{{customer}}}} check out."}]},
            "invocation_parameters": {"type": "openai", "openai": {"temperature": 0.2}}}


def seed_phoenix(base: str) -> None:
    """Through Phoenix's REST API: the prompt with 3 versions, the tag on the last."""
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.post("/v1/prompts", json={"prompt": {"name": PROMPT_NAME}, "version": _phoenix_version(1)})
        if r.status_code != 200:
            raise SystemExit(f"Phoenix refused the prompt: HTTP {r.status_code} {r.text[:500]}")
        for n in (2, 3):
            tags = [{"name": TAG}] if n == 3 else []
            r = c.post(f"/v1/prompts/{PROMPT_NAME}/versions", json={"version": _phoenix_version(n), "tags": tags})
            if r.status_code not in (200, 201):
                raise SystemExit(f"Phoenix refused version {n}: HTTP {r.status_code} {r.text[:500]}")
    print(f"  seeded Phoenix through its REST API in {time.perf_counter() - started:.1f} s", flush=True)


def phoenix_target(base: str, pid: int, backends: BackendCPU | None) -> Target:
    def check(resp: httpx.Response) -> str:
        if resp.status_code != 200:
            raise SystemExit(f"Phoenix: HTTP {resp.status_code}: {resp.text[:300]}")
        data = resp.json()["data"]
        content = data["template"]["messages"][0]["content"]
        text = content if isinstance(content, str) else json.dumps(content)
        if "v3:" not in text:
            raise SystemExit(f"Phoenix answered {data}")
        return f"the version tagged {TAG} (v3)"

    return Target("phoenix", base, pid, Request("GET", f"/v1/prompts/{PROMPT_NAME}/tags/{TAG}",
                                                {"Accept": "application/json"}), backends, check)


# ---------------------------------------------------------------------- runs and report


def measure(target: Target, args: argparse.Namespace, round_no: int) -> Run:
    peers.drain(target.pid)  # what is left of its previous run (wrk's unanswered requests) is not counted here
    load_before = os.getloadavg()[0]
    server0 = peers.tree_cpu(target.pid)
    pg0 = target.backends.snapshot() if target.backends else {}
    result: LoadResult = peers.load(target.base, target.request, connections=args.connections,
                                    duration=args.duration, threads=args.threads, generator=args.load)
    server1 = peers.tree_cpu(target.pid)
    pg1 = target.backends.snapshot() if target.backends else {}
    # The requests wrk left unanswered had, on average, half their work done when it stopped.
    n = max(result.requests + result.unanswered / 2, 1)
    pg_ms = None
    if target.backends and target.backends.readable:
        pg_ms = peers.cpu_delta(pg0, pg1) * 1000 / n
    return Run(target.name, round_no, result.rps, result.p50_ms, result.p99_ms, result.requests, result.errors,
               peers.cpu_delta(server0, server1) * 1000 / n, pg_ms, load_before, result.generator,
               args.connections)


def _ms(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def show(run: Run) -> None:
    total = run.server_ms + (run.pg_ms or 0.0)
    if not run.requests:
        print(f"  {LABELS[run.target]:<13} no request answered within the run (make --duration longer); "
              f"CPU ms/request of the unanswered ones: server {_ms(run.server_ms)} + PostgreSQL {_ms(run.pg_ms)}",
              flush=True)
        return
    rough = " (few requests: rough CPU figure, make --duration longer)" if run.requests < 10 * run.connections else ""
    print(f"  {LABELS[run.target]:<13} {run.rps:>8.1f} req/s  p50 {run.p50_ms:>8.2f} ms  p99 {run.p99_ms:>8.2f} ms  "
          f"CPU ms/request: server {_ms(run.server_ms)} + PostgreSQL {_ms(run.pg_ms)} = {total:.2f}  "
          f"({run.requests} requests, {run.errors} errors, load {run.load_before:.2f}){rough}", flush=True)


@dataclass
class Median:
    target: str
    rps: float
    p50_ms: float
    p99_ms: float
    server_ms: float
    pg_ms: float | None
    errors: int
    rounds: list[float] = field(default_factory=list)

    @property
    def cpu_ms(self) -> float:
        return self.server_ms + (self.pg_ms or 0.0)


def medians(runs: list[Run], names: list[str]) -> dict[str, Median]:
    out = {}
    for name in names:
        mine = [r for r in runs if r.target == name]
        answered = [r for r in mine if r.requests] or mine  # latency of runs that answered something
        pg = [r.pg_ms for r in mine if r.pg_ms is not None]
        out[name] = Median(name, statistics.median(r.rps for r in mine), statistics.median(r.p50_ms for r in answered),
                           statistics.median(r.p99_ms for r in answered), statistics.median(r.server_ms for r in mine),
                           statistics.median(pg) if pg else None, sum(r.errors for r in mine),
                           [r.rps for r in mine])
    return out


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def report(workload: str, runs: list[Run], names: list[str]) -> dict[str, Median]:
    meds = medians(runs, names)
    print(f"medians over {len(runs) // max(1, len(names))} round(s) ({workload})")
    for m in meds.values():
        print(f"  {LABELS[m.target]:<13} {m.rps:>8.1f} req/s (rounds: {', '.join(f'{x:.1f}' for x in m.rounds)})  "
              f"p50 {m.p50_ms:.2f} ms  p99 {m.p99_ms:.2f} ms  CPU ms/request: server {m.server_ms:.2f} + "
              f"PostgreSQL {_ms(m.pg_ms)} = {m.cpu_ms:.2f}  errors {m.errors}")
    ours = meds.get("promptstudio")
    if ours is None:
        return meds
    for name, peer in meds.items():
        if name == "promptstudio":
            continue
        per_round = [a.rps / b.rps if b.rps else float("nan")
                     for a, b in zip([r for r in runs if r.target == "promptstudio"],
                                     [r for r in runs if r.target == name], strict=False)]
        cpu_per_round = [(a.server_ms + (a.pg_ms or 0)) / (b.server_ms + (b.pg_ms or 0))
                         if b.server_ms + (b.pg_ms or 0) else float("nan")
                         for a, b in zip([r for r in runs if r.target == "promptstudio"],
                                         [r for r in runs if r.target == name], strict=False)]
        print(f"  ours vs {LABELS[name]}: requests/s {_ratio(ours.rps, peer.rps)} (rounds: "
              f"{', '.join(f'{x:.2f}x' for x in per_round)}); CPU per request {_ratio(ours.cpu_ms, peer.cpu_ms)} "
              f"(server only {_ratio(ours.server_ms, peer.server_ms)}; rounds: "
              f"{', '.join(f'{x:.2f}x' for x in cpu_per_round)}); p99 {ours.p99_ms:.1f} vs {peer.p99_ms:.1f} ms")
    return meds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    generator = args.load if args.load != "auto" else ("wrk" if peers.have_wrk() else "python")
    print(f"{args.workload} benchmark: {WORKLOADS[args.workload]}", flush=True)
    print(f"  {args.rounds} round(s) of {args.duration:.0f} s per server, {args.connections} connections, "
          f"load generator {generator}; {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f}", flush=True)
    if generator == "python":
        print("  NOTE: " + peers.WRK_MISSING, flush=True)
    phoenix_venv = None
    pgl_install = None
    if "phoenix" in args.peer_list:
        phoenix_venv = peers.ensure_phoenix(args.phoenix, args.data_dir)
    if "postgraphile" in args.peer_list:
        pgl_install = peers.ensure_postgraphile(args.data_dir)
    db_names = ["promptstudio"] + (["phoenix"] if phoenix_venv else [])
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp, \
            peers.databases(args.database_url, args.data_dir, db_names) as urls, ExitStack() as stack:
        logs = Path(args.logs or tmp)
        logs.mkdir(parents=True, exist_ok=True)
        ours_url = urls["promptstudio"]
        admin_url = peers.url_with_db(_plain(ours_url), "postgres")
        ours_db = ours_url.rsplit("/", 1)[1].split("?")[0]
        local_pg = bool(peers.POSTMASTER)

        def backends(database: str, application: str | None) -> BackendCPU | None:
            return BackendCPU(admin_url, database, application) if local_pg or args.database_url else None

        base, proc = stack.enter_context(peers.promptstudio(ours_url, logs, workers=args.server_workers,
                                                            env=args.env_pairs))
        seeded = seed_ours(args.workload, base, ours_url)
        targets = [ours_target(args.workload, base, proc.pid, seeded, backends(ours_db, "promptstudio%"))]
        if pgl_install is not None:
            pbase, pproc = stack.enter_context(peers.postgraphile(_plain(ours_url), pgl_install, logs))
            targets.append(postgraphile_target(args.workload, pbase, pproc.pid, seeded,
                                               backends(ours_db, peers.POSTGRAPHILE_APP)))
        if phoenix_venv is not None:
            xurl = urls["phoenix"]
            xbase, xproc = stack.enter_context(peers.phoenix(xurl, phoenix_venv, logs))
            seed_phoenix(xbase)
            targets.append(phoenix_target(xbase, xproc.pid, backends(xurl.rsplit("/", 1)[1].split("?")[0], None)))
        for t in targets:
            with httpx.Client(base_url=t.base, headers=t.request.headers, timeout=120) as c:
                body = t.request.body.replace(peers.SUBJECT, "user-check") if t.request.body else None
                what = t.check(c.request(t.request.method, t.request.path, content=body))
            print(f"  checked {LABELS[t.name]}: {what}", flush=True)
            if args.warmup:
                peers.load(t.base, t.request, connections=args.connections, duration=args.warmup,
                           threads=args.threads, generator=args.load)
        for n in range(args.rounds):
            print(f"round {n + 1}", flush=True)
            for t in targets:
                run = measure(t, args, n + 1)
                runs.append(run)
                show(run)
        unreadable = [LABELS[t.name] for t in targets if t.backends is not None and not t.backends.readable]
        meds = report(args.workload, runs, [t.name for t in targets])
        if unreadable:
            print(f"  (PostgreSQL CPU not readable for {', '.join(unreadable)}: its processes are not visible here)")
        if generator == "python":
            print("  NOTE: measured with the Python load generator, not wrk: " + peers.WRK_MISSING)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "workload": args.workload, "args": {k: v for k, v in vars(args).items() if k != "env_pairs"},
            "runs": [asdict(r) for r in runs], "medians": {k: asdict(v) for k, v in meds.items()}}, indent=2))
    return 1 if any(r.errors for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
