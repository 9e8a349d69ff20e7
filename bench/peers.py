"""What the side-by-side benchmarks share: PostgreSQL, the servers (ours and the peers), CPU accounting
and the load generators.

* PostgreSQL: :func:`databases` makes throw-away databases on the embedded server of a data directory
  (or on the server of a URL) and drops them at the end.
* Servers, each in a child process on a free port of 127.0.0.1, logging to a file:
  :func:`promptstudio` (the real app under uvicorn), :func:`phoenix` (Arize Phoenix from PyPI, in its own
  virtualenv under the data directory, installed there on first use: :func:`ensure_phoenix`) and
  :func:`postgraphile` (PostGraphile v4 from the npm registry, installed under the data directory on first
  use and run with npx: :func:`ensure_postgraphile`).
* CPU: :func:`tree_cpu` (a server's processes) and :class:`BackendCPU` (the PostgreSQL backends serving
  one server), both from ``/proc/<pid>/stat`` (utime + stime), so a busy machine does not skew them the
  way requests/s is skewed.
* Load: :func:`load` runs wrk (C; a Lua script for POST bodies) for a fixed duration with a fixed number
  of keep-alive connections, or, where wrk is not installed, a Python load generator in a separate
  process (``python bench/peers.py --load SPEC``), which says so.

Run as a script, this module is that Python load generator (internal).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

PHOENIX_VERSION = "20.26.1"
POSTGRAPHILE_VERSION = "4.14.1"
DEFAULT_DATA_DIR = ROOT / ".promptstudio-bench"

#: The embedded PostgreSQL's postmaster (set by databases(); empty for a server given by URL).
POSTMASTER: list[int] = []


# ---------------------------------------------------------------------- PostgreSQL


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def url_with_db(url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=database).render_as_string(hide_password=False)


@contextmanager
def databases(database_url: str | None, data_dir: str | Path, names: list[str]) -> Iterator[dict[str, str]]:
    """Yield {name: URL} of fresh databases (dropped at the end) on the server of ``database_url``, or else
    on the embedded PostgreSQL of ``data_dir`` (started here, stopped at the end)."""
    with ExitStack() as stack:
        if database_url:
            admin_url = url_with_db(database_url, "postgres")
            url_for = lambda db: url_with_db(database_url, db)  # noqa: E731
        else:
            from app.db.embedded import EmbeddedPostgres

            pg = EmbeddedPostgres(data_dir, database="postgres")
            pg.start()
            stack.callback(pg.stop)
            if pg.pid is not None:
                POSTMASTER[:] = [pg.pid]
            admin_url, url_for = pg.url_for("postgres"), pg.url_for
        tag = uuid.uuid4().hex[:8]
        urls = {n: url_for(f"bench_{n}_{tag}") for n in names}
        for n in names:
            asyncio.run(admin(admin_url, f'CREATE DATABASE "bench_{n}_{tag}"'))
            stack.callback(lambda db=f"bench_{n}_{tag}": asyncio.run(admin(admin_url, f'DROP DATABASE IF EXISTS "{db}" '
                                                                                      f'WITH (FORCE)')))
        yield urls


def add_database_options(parser: argparse.ArgumentParser, *, env: str = "DATABASE_URL",
                         database_help: str | None = None, data_dir_help: str | None = None) -> None:
    """``--database-url`` (default: the environment variable ``env``) and ``--data-dir`` (the embedded
    PostgreSQL's, default ./.promptstudio-bench), as every benchmark takes them."""
    parser.add_argument("--database-url", default=os.environ.get(env),
                        help=database_help or f"PostgreSQL to use (default: {env}; unset: the embedded server in "
                                              f"--data-dir)")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                        help=data_dir_help or "data directory of the embedded PostgreSQL (default: "
                                              "./.promptstudio-bench)")


# ---------------------------------------------------------------------- servers


def _answers(ready: str | Callable[[], bool]) -> bool:
    if callable(ready):
        return ready()
    return httpx.get(ready, timeout=2).status_code == 200


def wait_ready(proc: subprocess.Popen, ready: str | Callable[[], bool], what: str, timeout: float = 120,
               log: Path | None = None) -> None:
    """Until ``ready`` (a URL answering 200, or a function) says so; ends the benchmark if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = ""
            if log is not None and log.exists():
                tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise SystemExit(f"{what} exited with code {proc.returncode} before it was ready{tail}")
        try:
            if _answers(ready):
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not become ready within {timeout:.0f} s (log: {log})")
        time.sleep(0.2)


@contextmanager
def running(cmd: list[str], env: dict[str, str], ready: str | Callable[[], bool], what: str, log: Path,
            cwd: Path = ROOT) -> Iterator[subprocess.Popen]:
    """``cmd`` in its own process group, its output in ``log``, until ``ready`` answers 200; terminated
    (the whole group) at the end."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_ready(proc, ready, what, log=log)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


#: Our server's settings for benchmarks: no execution workers, quiet logs, and no rate limit or cost
#: ceiling in the way of a client that sends large queries as fast as they are answered.
BENCH_SERVER_ENV = {
    "PROMPTSTUDIO_WORKERS": "0",
    "PROMPTSTUDIO_LOG_LEVEL": "warning",
    "PROMPTSTUDIO_RATE_LIMIT_THRESHOLD": str(10**9),
    "PROMPTSTUDIO_MAX_QUERY_COST": str(10**7),
}


@contextmanager
def promptstudio(url: str, logs: Path, *, name: str = "promptstudio", workers: int = 1,
                 env: dict[str, str] | None = None, uvicorn_args: list[str] | None = None,
                 migrate: bool = True) -> Iterator[tuple[str, subprocess.Popen]]:
    """Our server (``app.main:create_app_from_env``, what ``promptstudio serve`` runs) under uvicorn on a free
    port of 127.0.0.1, on the database ``url`` (migrated here); yields (base URL, process)."""
    if migrate:
        from app.db.migrate import upgrade

        upgrade(url)
    port = free_port()
    full_env = dict(os.environ, DATABASE_URL=url, PROMPTSTUDIO_DATA_DIR=str(logs), PYTHONPATH=str(ROOT),
                    **BENCH_SERVER_ENV)
    full_env.update(env or {})
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app_from_env", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log", "--lifespan", "on",
           "--workers", str(workers), *(uvicorn_args or [])]
    base = f"http://127.0.0.1:{port}"
    with running(cmd, full_env, base + "/readyz", f"the Prompt Studio server ({name})", logs / f"{name}.log") as proc:
        yield base, proc


def ensure_phoenix(venv: str | Path | None, data_dir: str | Path) -> Path:
    """The virtualenv with Arize Phoenix: ``venv`` as given (it must have bin/phoenix), or else
    ``<data_dir>/peers/phoenix-<version>``, created and filled from PyPI on first use."""
    if venv:
        path = Path(venv)
        if not (path / "bin" / "phoenix").exists():
            raise SystemExit(f"--phoenix {venv}: no bin/phoenix there (pip install arize-phoenix=={PHOENIX_VERSION} "
                             f"in that virtualenv, or leave --phoenix out to have it installed under the data "
                             f"directory)")
        return path
    path = Path(data_dir) / "peers" / f"phoenix-{PHOENIX_VERSION}"
    if (path / "bin" / "phoenix").exists():
        return path
    print(f"Installing Arize Phoenix {PHOENIX_VERSION} from PyPI into {path} (first run only; a few minutes, "
          f"several hundred MB)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(path, ignore_errors=True)
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base_python, "-m", "venv", str(path)], check=True)
    try:
        subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        f"arize-phoenix=={PHOENIX_VERSION}"], check=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise SystemExit(f"installing arize-phoenix=={PHOENIX_VERSION} failed (pip exit code {exc.returncode}); "
                         f"or pass --phoenix VENV with it installed") from exc
    return path


@contextmanager
def phoenix(url: str, venv: str | Path, logs: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """Arize Phoenix (``<venv>/bin/phoenix serve``) on a free port of 127.0.0.1, storing in the database
    ``url`` (it migrates it itself); yields (base URL, process)."""
    port = free_port()
    work = logs / "phoenix"
    work.mkdir(exist_ok=True)
    env = dict(os.environ, PHOENIX_SQL_DATABASE_URL=url, PHOENIX_PORT=str(port), PHOENIX_GRPC_PORT=str(free_port()),
               PHOENIX_HOST="127.0.0.1", PHOENIX_WORKING_DIR=str(work), PHOENIX_TELEMETRY_ENABLED="false")
    env.pop("PYTHONPATH", None)
    base = f"http://127.0.0.1:{port}"
    with running([str(Path(venv) / "bin" / "phoenix"), "serve"], env, base + "/healthz", "Phoenix",
                 logs / "phoenix.log") as proc:
        yield base, proc


def node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], check=False, capture_output=True, text=True).stdout.strip()
    try:
        return int(out.lstrip("v").split(".")[0])
    except ValueError:
        return None


def ensure_postgraphile(data_dir: str | Path) -> Path:
    """The directory holding PostGraphile ``POSTGRAPHILE_VERSION`` (``<data_dir>/peers/postgraphile-<version>``),
    installed there from the npm registry on first use; run it with ``npx --no-install postgraphile`` in it."""
    major = node_major()
    if major is None or shutil.which("npm") is None or shutil.which("npx") is None:
        raise SystemExit("PostGraphile needs Node.js 18 or newer with npm and npx (Debian: apt-get install nodejs npm)")
    if major < 18:
        raise SystemExit(f"PostGraphile {POSTGRAPHILE_VERSION} is run here with Node.js 18 or newer; found {major}")
    path = Path(data_dir) / "peers" / f"postgraphile-{POSTGRAPHILE_VERSION}"
    if (path / "node_modules" / ".bin" / "postgraphile").exists():
        return path
    print(f"Installing PostGraphile {POSTGRAPHILE_VERSION} from the npm registry into {path} (first run only)",
          flush=True)
    path.mkdir(parents=True, exist_ok=True)
    (path / "package.json").write_text(json.dumps({"name": "bench-postgraphile", "private": True}) + "\n")
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--save-exact",
                           f"postgraphile@{POSTGRAPHILE_VERSION}"],
                          cwd=path, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"npm install postgraphile@{POSTGRAPHILE_VERSION} failed:\n{done.stdout}{done.stderr}")
    return path


#: PostGraphile's connections carry this application_name (so its PostgreSQL backends can be told apart).
POSTGRAPHILE_APP = "bench-postgraphile"


@contextmanager
def postgraphile(url: str, install: Path, logs: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """PostGraphile v4 over the ``public`` schema of the database ``url`` (read-only: no default mutations),
    on a free port of 127.0.0.1, with the same credentials as ``url``; yields (base URL, process)."""
    from sqlalchemy.engine import make_url

    port = free_port()
    u = make_url(url).set(drivername="postgres")
    conn = u.update_query_dict({"application_name": POSTGRAPHILE_APP}).render_as_string(hide_password=False)
    cmd = ["npx", "--no-install", "postgraphile", "--connection", conn, "--schema", "public", "--host", "127.0.0.1",
           "--port", str(port), "--disable-default-mutations", "--disable-query-log", "--disable-graphiql"]
    env = dict(os.environ, NODE_ENV="production")
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        resp = httpx.post(base + "/graphql", json={"query": "{ __typename }"}, timeout=2)
        return resp.status_code == 200

    with running(cmd, env, ready, "PostGraphile", logs / "postgraphile.log", cwd=install) as proc:
        yield base, proc


# ---------------------------------------------------------------------- CPU from /proc

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after "(comm)" (the first is field 3 of proc(5), the state), or None
    when the process is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2:].split()


def proc_cpu(pid: int, *, reaped: bool = False) -> float | None:
    """utime + stime of one process, in seconds (None when it is gone or unreadable); with ``reaped``, plus
    cutime + cstime: what its children that it has waited for used (a postmaster's ended backends)."""
    fields = _stat(pid)
    if fields is None:
        return None
    last = 15 if reaped else 13  # fields 14 and 15 of proc(5), then 16 and 17
    return sum(int(x) for x in fields[11:last]) / _TICK


def parent(pid: int) -> int | None:
    """The parent of ``pid`` (None when it is gone, or not on this machine)."""
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/*/stat's ppid)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (ppid := parent(int(entry))) is not None:
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu(pid: int, *, reaped: bool = False) -> dict[int, float]:
    """{pid: CPU seconds} of a server's process tree (uvicorn workers, node, sandbox workers ...); with
    ``reaped``, each process's count includes its children that ended and were waited for, so the sum of the
    values only grows while the tree's processes come and go."""
    return {p: c for p in descendants(pid) if (c := proc_cpu(p, reaped=reaped)) is not None}


def tree_cpu_total(pid: int) -> float:
    """CPU seconds so far of ``pid``'s process tree, its ended and reaped children included (a counter that only
    grows: take the difference of two readings)."""
    return sum(tree_cpu(pid, reaped=True).values())


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots by the processes seen in either (new ones count from 0; one that
    ended in between counts up to the first snapshot only, which a benchmark of long-lived servers seldom sees)."""
    return sum(c - before.get(p, 0.0) for p, c in after.items())


def drain(pid: int, *, idle_share: float = 0.05, interval: float = 0.3, timeout: float = 120.0) -> float:
    """Wait until the process tree of ``pid`` is idle (under ``idle_share`` of a core over ``interval``), so the
    requests still in flight when a load generator stopped are finished; returns the seconds waited."""
    started = time.monotonic()
    last = sum(tree_cpu(pid).values())
    while time.monotonic() - started < timeout:
        time.sleep(interval)
        now = sum(tree_cpu(pid).values())
        if now - last < idle_share * interval:
            break
        last = now
    return time.monotonic() - started


def _is_postgres(pid: int) -> bool:
    """Whether ``pid`` is a PostgreSQL process of this machine (pg_stat_activity's pids are the server's: with a
    server elsewhere, the same number here is some other process, or none)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0", 1)[0].startswith(b"postgres")
    except OSError:
        return False


@dataclass
class BackendCPU:
    """The PostgreSQL backends serving one server: client backends on ``database`` whose application_name
    is like ``application`` (None: any), found in pg_stat_activity, their CPU read from /proc. Only where
    PostgreSQL runs on this machine (the embedded server, or a local one readable by this user)."""

    admin_url: str
    database: str
    application: str | None = None
    readable: bool = True

    async def pids(self) -> list[int]:
        conn = await asyncpg.connect(self.admin_url, server_settings={"application_name": "bench-monitor"})
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND datname = $1 "
                "AND pid <> pg_backend_pid() AND ($2::text IS NULL OR application_name LIKE $2)",
                self.database, self.application)
        finally:
            await conn.close()
        return [r["pid"] for r in rows]

    async def read(self) -> dict[int, float]:
        """{pid: CPU seconds} of the backends now (for a caller inside an event loop)."""
        pids = await self.pids()
        snap = {p: c for p in pids if _is_postgres(p) and (c := proc_cpu(p)) is not None}
        if pids and not snap:
            self.readable = False
        return snap

    def snapshot(self) -> dict[int, float]:
        return asyncio.run(self.read())

    @classmethod
    def of(cls, url: str, application: str | None = None) -> BackendCPU:
        """The backends on the database of ``url`` (any SQLAlchemy or libpq URL), looked up through that
        database itself."""
        from sqlalchemy.engine import make_url

        u = make_url(url).set(drivername="postgresql")
        return cls(u.render_as_string(hide_password=False), str(u.database), application)


def postmaster_pid(url: str) -> int | None:
    """The main process of the PostgreSQL server of ``url`` when it runs on this machine (the parent of a
    backend; its other backends are its children too), else None."""
    from sqlalchemy.engine import make_url

    async def parent_of_backend() -> int | None:
        conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            pid = int(await conn.fetchval("SELECT pg_backend_pid()"))
            return parent(pid) if _is_postgres(pid) else None  # read while the backend lives
        finally:
            await conn.close()

    return asyncio.run(parent_of_backend())


# ---------------------------------------------------------------------- load


@dataclass
class Request:
    """One HTTP request of a workload; ``__SUBJECT__`` in the body becomes a random subject key per request."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    generator: str
    #: Requests sent but not answered when the run ended (wrk drops them; the server still does their work).
    unanswered: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


SUBJECT = "__SUBJECT__"

WRK_SCRIPT = r"""
wrk.method = "%(method)s"
%(headers)s
local body = %(body)s
local path = "%(path)s"
local randomized = body ~= nil and string.find(body, "__SUBJECT__", 1, true) ~= nil
if body ~= nil and not randomized then wrk.body = body end
local counter = 0
init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) %% 100000)
end
request = function()
  if randomized then
    counter = counter + 1
    local key = string.format("user-%%d-%%d", math.random(1, 1000000000), counter)
    local b = string.gsub(body, "__SUBJECT__", key)
    return wrk.format(nil, path, nil, b)
  end
  return wrk.format(nil, path)
end
done = function(summary, latency, requests)
  io.write(string.format("WRK requests=%%d duration_us=%%d errors_status=%%d errors_other=%%d\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write(string.format("WRK p50=%%.3f p99=%%.3f mean=%%.3f\n", latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.mean / 1000))
end
"""


def _lua_string(s: str) -> str:
    level = 0
    while f"]{'=' * level}]" in s:
        level += 1
    return f"[{'=' * level}[{s}]{'=' * level}]"


def wrk_script(req: Request) -> str:
    headers = "\n".join(f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in req.headers.items())
    return WRK_SCRIPT % {"method": req.method, "path": req.path, "headers": headers,
                         "body": "nil" if req.body is None else _lua_string(req.body)}


WRK_MISSING = ("wrk is not installed, so the Python load generator (a separate process, far more CPU per request "
               "than wrk: the figures understate the faster servers) is used instead. Install wrk for comparable "
               "figures: apt-get install wrk (Debian/Ubuntu), brew install wrk (macOS), or build "
               "https://github.com/wg/wrk.")


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def load(base: str, req: Request, *, connections: int, duration: float, threads: int = 2,
         generator: str = "auto", timeout: float = 30.0) -> LoadResult:
    """Send ``req`` to ``base`` over ``connections`` keep-alive connections for ``duration`` seconds, as fast as
    it is answered; generator: wrk, python or auto (wrk when installed)."""
    if generator == "auto":
        generator = "wrk" if have_wrk() else "python"
    if generator == "wrk":
        return _wrk(base, req, connections=connections, duration=duration, threads=threads, timeout=timeout)
    spec = {"base": base, "method": req.method, "path": req.path, "headers": req.headers, "body": req.body,
            "connections": connections, "duration": duration, "timeout": timeout}
    out = subprocess.run([sys.executable, __file__, "--load", json.dumps(spec)], check=False, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"the Python load generator failed: {out.stderr[-2000:]}")
    return LoadResult(**json.loads(out.stdout.strip().splitlines()[-1]), generator="python")


def _wrk(base: str, req: Request, *, connections: int, duration: float, threads: int, timeout: float) -> LoadResult:
    if not have_wrk():
        raise SystemExit("wrk is not installed: apt-get install wrk (or choose --load python)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-", delete=False) as f:
        f.write(wrk_script(req))
    try:
        out = subprocess.run(["wrk", f"-t{max(1, min(threads, connections))}", f"-c{connections}",
                              f"-d{max(1, round(duration))}s", "--timeout", f"{max(1, round(timeout))}s", "-s", f.name,
                              base], check=False, capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if out.returncode != 0:
        raise SystemExit(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    values = dict(part.split("=", 1) for line in out.stdout.splitlines() if line.startswith("WRK ")
                  for part in line[4:].split())
    if "requests" not in values:
        raise SystemExit(f"wrk printed no summary: {out.stdout}{out.stderr}")
    return LoadResult(requests=int(values["requests"]), seconds=int(values["duration_us"]) / 1e6,
                      errors=int(values["errors_status"]) + int(values["errors_other"]),
                      p50_ms=float(values["p50"]), p99_ms=float(values["p99"]), mean_ms=float(values["mean"]),
                      generator="wrk", unanswered=connections)


async def _python_load(spec: dict) -> dict:
    import random

    latencies: list[float] = []
    errors = 0
    rng = random.Random()
    limits = httpx.Limits(max_connections=spec["connections"], max_keepalive_connections=spec["connections"])
    body: str | None = spec["body"]
    async with httpx.AsyncClient(base_url=spec["base"], limits=limits, headers=spec["headers"],
                                 timeout=spec["timeout"]) as client:
        deadline = time.perf_counter() + spec["duration"]

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                content = body.replace(SUBJECT, f"user-{rng.getrandbits(48):012x}") if body is not None else None
                began = time.perf_counter()
                try:
                    resp = await client.request(spec["method"], spec["path"], content=content)
                    await resp.aread()
                    if resp.status_code >= 400:
                        errors += 1
                        continue
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - began)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(spec["connections"])))
        seconds = time.perf_counter() - started
    lat = sorted(x * 1000 for x in latencies)

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, max(0, round(q / 100 * len(lat)) - 1))] if lat else float("nan")

    return {"requests": len(lat), "seconds": seconds, "errors": errors, "p50_ms": pct(50), "p99_ms": pct(99),
            "mean_ms": sum(lat) / len(lat) if lat else float("nan")}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--load":
        print(json.dumps(asyncio.run(_python_load(json.loads(sys.argv[2])))))
        raise SystemExit(0)
    print(__doc__)
    print("Internal use: python bench/peers.py --load SPEC (SPEC: JSON of base, method, path, headers, body, "
          "connections, duration, timeout). The benchmarks are run with bench/run.py (make bench).")
    raise SystemExit(2)
