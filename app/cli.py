"""The ``promptstudio`` command (also ``python -m app``): serve, worker, migrate, export-schema, create-user,
demo, reindex, dataset import.

Settings come from the environment (``app.settings.Settings.from_env``); the README lists every
variable. With no ``DATABASE_URL`` the commands that need a database start the embedded PostgreSQL
in the data directory (``app.db.embedded``) for as long as they run.

Exit codes: 0 when the command did its work (a server stopped with Ctrl-C or SIGTERM included),
1 on an error (one line on stderr for expected problems: bad settings, a port in use, invalid input,
the database out of reach; a traceback only for bugs), 2 for a bad command line (argparse).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import Settings

logger = logging.getLogger("promptstudio.cli")

APP_FACTORY = "app.main:create_app_from_env"
APP_DIR = Path(__file__).resolve().parent
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
#: Seconds uvicorn waits for open connections (subscriptions) at shutdown before closing them.
GRACEFUL_SHUTDOWN_SECONDS = 10
#: Connections the kernel queues on the listening socket (uvicorn's default).
BACKLOG = 2048


class CLIError(Exception):
    """An expected problem, reported as one line on stderr with exit code 1."""


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so that cleanup (stopping PostgreSQL) runs as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Let cleanup finish: a second Ctrl-C must not leave PostgreSQL half stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------- helpers


def _configure_logging(level: str) -> None:
    numeric = logging.DEBUG if level == "trace" else getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic.runtime.plugins", "watchfiles.main"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


def _cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"must be between 1 and 256, got {value}")
    return value


def _load_settings(**overrides) -> Settings:
    from app.settings import Settings, SettingsError

    settings = Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    if settings.log_level not in LOG_LEVELS:
        raise SettingsError(
            f"PROMPTSTUDIO_LOG_LEVEL={settings.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
        )
    return settings


def _display_url(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[tuple[str, bool]]:
    """Yield (postgresql:// URL, embedded?): DATABASE_URL as given, or the embedded server, which
    is started here and stopped on the way out (Ctrl-C and SIGTERM included)."""
    if settings.database_url:
        logger.info("database: %s (DATABASE_URL)", _display_url(settings.database_url))
        yield settings.database_url, False
        return
    from app.db.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(settings.data_dir)
    try:
        url = pg.start()
        # Processes started from here (uvicorn's reload workers) read the same database from the env.
        os.environ["DATABASE_URL"] = url
        logger.info("database: embedded PostgreSQL in %s (%s)", pg.pgdata, url)
        yield url, True
    finally:
        with _signals_ignored():
            pg.stop()


def _migrate(url: str) -> None:
    from app.db.migrate import upgrade

    upgrade(url)


def _current_revision(url: str) -> str:
    import asyncpg

    from app.db.engine import plain_url

    async def fetch() -> str:
        conn = await asyncpg.connect(plain_url(url))
        try:
            rows = await conn.fetch("SELECT version_num FROM alembic_version")
        finally:
            await conn.close()
        return ", ".join(row["version_num"] for row in rows) or "(none)"

    return asyncio.run(fetch())


def _http_url(host: str, port: int, path: str = "") -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host  # noqa: S104 - not a bind
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}{path}"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind_error(host: str, port: int, exc: OSError) -> CLIError:
    """One line that says why host:port cannot be listened on, and what to do about it."""
    where = _address(host, port)
    if isinstance(exc, socket.gaierror):
        reason = (f"the host name does not resolve: {exc.strerror} "
                  "(choose another with --host or PROMPTSTUDIO_HOST)")
    elif exc.errno == errno.EADDRINUSE:
        reason = ("the address is already in use (another server running? "
                  "choose another port with --port or PROMPTSTUDIO_PORT)")
    elif exc.errno in (errno.EACCES, errno.EPERM) and 0 < port < 1024:
        reason = ("permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE "
                  "(choose another with --port or PROMPTSTUDIO_PORT)")
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason = ("the address is not one of this machine's (choose another with --host or "
                  "PROMPTSTUDIO_HOST, e.g. 127.0.0.1, or 0.0.0.0 for all interfaces)")
    elif exc.errno == errno.EAFNOSUPPORT:
        reason = "this machine does not support that address family (is IPv6 switched off?)"
    else:
        reason = exc.strerror or str(exc)
    return CLIError(f"cannot listen on {where}: {reason}")


@contextlib.contextmanager
def _listening(host: str, port: int) -> Iterator[list[socket.socket]]:
    """Bind and listen on host:port now, as uvicorn would have done (through asyncio's
    ``loop.create_server``): every address the host resolves to, SO_REUSEADDR, IPv6 sockets
    IPv6-only. ``serve`` does this before anything else, so a port in use fails at once; the
    sockets are then handed to uvicorn, and closed on the way out. Raises CLIError (one line)
    when it cannot listen."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise _bind_error(host, port, exc) from None
    sockets: list[socket.socket] = []
    first_error: OSError | None = None
    try:
        for family, type_, proto, _canonname, address in dict.fromkeys(infos):
            try:
                sock = socket.socket(family, type_, proto)
            except OSError as exc:  # e.g. IPv6 switched off: asyncio skips such an address too
                first_error = first_error or exc
                continue
            sockets.append(sock)  # not inheritable (Python's default): PostgreSQL must not hold the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
                # Listen at once: only a listening socket keeps the port from a second server that
                # also uses SO_REUSEADDR. Connections made before the app is up wait in the backlog.
                sock.listen(BACKLOG)
            except OSError as exc:
                raise _bind_error(host, port, exc) from None
        if not sockets:
            raise _bind_error(host, port, first_error or OSError(errno.EADDRNOTAVAIL, "no address to listen on"))
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def _run_uvicorn(config, sockets: list[socket.socket]) -> None:
    """``uvicorn.run`` for sockets bound already (what it does itself for --reload and --workers):
    ``Server.run(sockets=...)`` serves them; the reloader and the multiprocess supervisor pass them to
    each server process they start.
    (``uvicorn.Config(fd=...)`` would take one socket only, and re-creates it as an AF_UNIX
    socket, so asyncio would not set TCP_NODELAY on the connections.)"""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import ChangeReload, Multiprocess

    server = uvicorn.Server(config)
    if config.should_reload:
        ChangeReload(config, target=server.run, sockets=sockets).run()
    elif config.workers > 1:
        # Server processes sharing the listening sockets; one that dies is replaced. One that fails
        # to start stops them all (uvicorn's supervisor): then exit as a failed start.
        supervisor = Multiprocess(config, sockets=sockets)
        supervisor.run()
        if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
            sys.exit(STARTUP_FAILURE)
    else:
        config.load_app()
        server.run(sockets=sockets)
        if not server.started:
            sys.exit(STARTUP_FAILURE)  # as uvicorn.run; it has logged why


# ---------------------------------------------------------------------- commands


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _load_settings(host=args.host, port=args.port)
    _configure_logging(settings.log_level)
    import uvicorn

    # The port first: when it is taken (or not ours to take) that is one line and exit code 1
    # before PostgreSQL, the migrations and the workers are started for nothing.
    processes = 1 if args.reload else (args.workers or settings.server_processes or _cores())
    if args.reload and args.workers and args.workers > 1:
        logger.warning("--reload runs one server process; --workers %d is ignored", args.workers)
    with _listening(settings.host, settings.port) as sockets, _database(settings) as (url, _embedded):
        port = sockets[0].getsockname()[1]  # the one chosen when the port asked for is 0
        # The app (and uvicorn's reload workers, which are new processes) read their settings from the
        # environment: make them see the host and port given on the command line.
        os.environ["PROMPTSTUDIO_HOST"] = settings.host
        os.environ["PROMPTSTUDIO_PORT"] = str(port)
        _migrate(url)
        where = _http_url(settings.host, port)
        everywhere = settings.host in ("0.0.0.0", "::")  # noqa: S104 - not a bind
        print(f"Prompt Studio listening on {where}" + (" (all interfaces)" if everywhere else ""), flush=True)
        graphql = _http_url(settings.host, port, "/graphql")
        print(f"GraphQL endpoint: {graphql}" + ("  (open it in a browser for GraphiQL)" if settings.graphiql else ""),
              flush=True)
        if settings.console:
            print(f"Console: {_http_url(settings.host, port, '/console')}  (live executions, prompts, deployments)",
                  flush=True)
        if processes > 1:
            print(f"{processes} server processes, each with {settings.workers} worker tasks "
                  "(--workers / PROMPTSTUDIO_SERVER_PROCESSES, PROMPTSTUDIO_WORKERS)", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        config = uvicorn.Config(
            APP_FACTORY,
            factory=True,
            host=settings.host,
            port=port,
            reload=args.reload,
            workers=processes,
            reload_dirs=[str(APP_DIR)] if args.reload else None,
            log_level=settings.log_level,
            proxy_headers=True,
            lifespan="on",
            backlog=BACKLOG,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        try:
            _run_uvicorn(config, sockets)
        except (KeyboardInterrupt, Terminated):
            # uvicorn shut down gracefully and re-raised the signal that stopped it.
            pass
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise CLIError(
                    f"the HTTP server could not start on {_address(settings.host, port)} (see the messages above)"
                ) from None
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _load_settings()
    _configure_logging(settings.log_level)
    with _database(settings) as (url, _embedded):
        _migrate(url)
        settings = settings.replace(database_url=url)
        from app.lifecycle import run_worker

        logger.info("worker started with %s worker tasks", settings.workers)
        try:
            asyncio.run(run_worker(settings))
        except (KeyboardInterrupt, Terminated):
            logger.info("worker stopped")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _load_settings()
    _configure_logging(settings.log_level)
    with _database(settings) as (url, _embedded):
        _migrate(url)
        revision = _current_revision(url)
    print(f"database is at revision {revision}")
    return 0


def cmd_export_schema(args: argparse.Namespace) -> int:
    from app.api.schema import schema

    text = schema.as_str().rstrip("\n") + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.output)
        out.write_text(text)
        print(f"wrote {out} ({len(text.splitlines())} lines)", file=sys.stderr)
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password:
        return args.password
    from_env = os.environ.get("PROMPTSTUDIO_PASSWORD")
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise CLIError("no password given: use --password, set PROMPTSTUDIO_PASSWORD, or run in a terminal to be asked")
    first = getpass.getpass("Password: ")
    second = getpass.getpass("Password (again): ")
    if first != second:
        raise CLIError("the two passwords differ")
    if not first:
        raise CLIError("the password is empty")
    return first


def cmd_create_user(args: argparse.Namespace) -> int:
    settings = _load_settings()
    _configure_logging("warning" if settings.log_level == "info" else settings.log_level)
    password = _read_password(args)

    from app.db.engine import create_engine_and_sessionmaker
    from app.services.identity import create_user

    async def create():
        engine, sessionmaker = create_engine_and_sessionmaker(url, settings)
        try:
            async with sessionmaker() as session:
                user = await create_user(
                    session,
                    email=args.email,
                    username=args.username,
                    password=password,
                    display_name=args.display_name,
                    is_superuser=args.superuser,
                    settings=settings,
                )
                await session.commit()
                return user
        finally:
            await engine.dispose()

    with _database(settings) as (url, _embedded):
        _migrate(url)  # a fresh database has no tables yet; on an up-to-date one this changes nothing
        user = asyncio.run(create())
    kind = "superuser" if args.superuser else "user"
    print(f"created {kind} {user.username} (id {user.id})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _load_settings()
    _configure_logging("warning" if settings.log_level == "info" else settings.log_level)
    if args.executions < 0 or args.executions > 200:
        raise CLIError(f"--executions must be between 0 and 200; got {args.executions}")
    password = args.password or os.environ.get("PROMPTSTUDIO_PASSWORD") or None
    from app.demo import DemoError, load

    def say(line: str) -> None:
        print(f"  {line}", flush=True)

    with _database(settings) as (url, _embedded):
        _migrate(url)
        print(f"Loading the demo data into project {args.project_slug!r} ...", flush=True)
        try:
            result = asyncio.run(load(settings, url, username=args.username, password=password,
                                      slug=args.project_slug, executions=args.executions, say=say))
        except DemoError as exc:
            raise CLIError(str(exc)) from None
    console = _http_url(settings.host, settings.port, "/console")
    print(f"\nDone: project {result.project_slug!r} with {result.prompts} prompts ({result.versions} versions), a "
          f"90/10 traffic split in production, 2 validations and {result.finished} of {result.executions} "
          "executions finished.")
    print(f"\nSign in at {console} (start the server first: promptstudio serve, or make serve)")
    print(f"  username: {result.username}")
    if result.password:
        print(f"  password: {result.password}")
    else:
        print("  password: the one you gave")
    print(f"or use GraphiQL at {_http_url(settings.host, settings.port, '/graphql')} with the token from logIn.")
    return 0
class _ProgressBar:
    """A progress line on stderr: redrawn in place on a terminal, one line every 10% (or 10 s) otherwise."""

    WIDTH = 30

    def __init__(self, stream=None) -> None:
        import time

        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.last_line = 0.0
        self.last_step = -1

    def __call__(self, done: int, total: int) -> None:
        import time

        now = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        share = done / total if total else 1.0
        eta = f", about {(total - done) / rate:.0f} s left" if rate > 0 and done < total else ""
        filled = int(self.WIDTH * share)
        line = (f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {share:4.0%} {done}/{total} versions, "
                f"{rate:.1f}/s{eta}")
        if self.tty:
            self.stream.write("\r" + line + " " * 8)
            if done >= total:
                self.stream.write("\n")
        else:
            step = int(share * 10)
            if step != self.last_step or now - self.last_line >= 10 or done >= total:
                self.stream.write(line + "\n")
                self.last_step, self.last_line = step, now
        self.stream.flush()


def cmd_reindex(args: argparse.Namespace) -> int:
    settings = _load_settings()
    _configure_logging("warning" if settings.log_level == "info" else settings.log_level)

    from sqlalchemy import select

    from app import embeddings
    from app.db.engine import create_engine_and_sessionmaker
    from app.db.models import Project
    from app.embeddings import EmbeddingError
    from app.services.embeddings import reindex

    async def run(url: str):
        engine, sessionmaker = create_engine_and_sessionmaker(url, settings)
        try:
            project_id = None
            if args.project:
                async with sessionmaker() as session:
                    project_id = (await session.execute(
                        select(Project.id).where(Project.slug == args.project))).scalar_one_or_none()
                if project_id is None:
                    raise CLIError(f"no project with the slug {args.project!r}")
            try:
                return await reindex(sessionmaker, settings, project_id=project_id, force=args.all,
                                     progress=_ProgressBar())
            except EmbeddingError as exc:
                raise CLIError(f"the embedding model failed: {exc.message} (what was embedded stays; run reindex "
                               "again to go on)") from None
        finally:
            await embeddings.close()
            await engine.dispose()

    with _database(settings) as (url, _embedded):
        _migrate(url)
        model = embeddings.model_tag(settings)
        scope = f"project {args.project}" if args.project else "every project"
        what = "every version" if args.all else "versions without a vector of this model"
        print(f"reindexing {what} of {scope} with {model}", file=sys.stderr, flush=True)
        result = asyncio.run(run(url))
    rate = result.embedded / result.seconds if result.seconds > 0 else 0.0
    print(f"done: {result.embedded} versions embedded with {result.model}"
          + (f" ({result.dimensions} dimensions)" if result.dimensions else "")
          + f", {result.failed} failed, in {result.seconds:.1f} s ({rate:.1f} versions/s)")
    return 1 if result.failed else 0


# ---------------------------------------------------------------------- dataset import

#: Items per addDatasetItems call at most (the server takes up to 10,000) and request bytes at most (the server's
#: default body limit is 1,000,000).
IMPORT_BATCH_ITEMS = 5000
IMPORT_BATCH_BYTES = 800_000
_ADD_ITEMS = """mutation($i: AddDatasetItemsInput!) { addDatasetItems(input: $i) {
  items { id } userErrors { code message field } } }"""
_FIND_DATASET = """query($slug: String!, $after: String) { project(slug: $slug) { id
  datasets(first: 100, after: $after) { pageInfo { hasNextPage endCursor } nodes { id name itemCount } } } }"""
_CREATE_DATASET = """mutation($i: CreateDatasetInput!) { createDataset(input: $i) {
  dataset { id name itemCount } userErrors { code message field } } }"""
_DATASET = "query($id: ID!) { node(id: $id) { ... on Dataset { id name itemCount } } }"


def read_items(path: Path) -> list[dict]:
    """The items of a .jsonl file (one {"variables", "expectedOutput"?, "metadata"?} per line) or of a .csv file
    (a header row; ``expected_output``/``expectedOutput`` is the expected output, ``metadata.<key>`` columns the
    metadata, every other column a variable). Every line is checked before anything is sent."""
    import csv
    import json

    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise CLIError(f"{path}: expected a .jsonl or .csv file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    items: list[dict] = []
    problems: list[str] = []
    if suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"line {number}: not JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(data, dict) or not isinstance(data.get("variables"), dict):
                problems.append(f'line {number}: expected an object with "variables" (an object), e.g. '
                                '{"variables": {"question": "2 + 2?"}, "expectedOutput": "4"}')
                continue
            unknown = set(data) - {"variables", "expectedOutput", "metadata"}
            if unknown:
                problems.append(f"line {number}: unknown keys {', '.join(sorted(unknown))} (the keys are variables, "
                                "expectedOutput, metadata)")
                continue
            expected = data.get("expectedOutput")
            if expected is not None and not isinstance(expected, str):
                problems.append(f"line {number}: expectedOutput must be a string")
                continue
            items.append({k: data[k] for k in ("variables", "expectedOutput", "metadata") if data.get(k) is not None})
    else:
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise CLIError(f"{path}: no header row")
        for number, row in enumerate(reader, 2):
            if None in row:
                problems.append(f"line {number}: more values than columns")
                continue
            variables, metadata, expected = {}, {}, None
            for column, value in row.items():
                if column in ("expected_output", "expectedOutput"):
                    expected = value if value != "" else None
                elif column.startswith("metadata."):
                    metadata[column.removeprefix("metadata.")] = value
                else:
                    variables[column] = value
            item: dict = {"variables": variables}
            if expected is not None:
                item["expectedOutput"] = expected
            if metadata:
                item["metadata"] = metadata
            items.append(item)
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise CLIError(f"{path}: nothing was imported; fix these lines first:\n  {shown}{more}")
    if not items:
        raise CLIError(f"{path}: no items in the file")
    return items


def batches(items: list[dict], max_items: int = IMPORT_BATCH_ITEMS, max_bytes: int = IMPORT_BATCH_BYTES
            ) -> Iterator[list[dict]]:
    """Consecutive runs of ``items`` that each fit in one request."""
    import json

    batch: list[dict] = []
    size = 0
    for item in items:
        n = len(json.dumps(item, ensure_ascii=False).encode()) + 1
        if n > max_bytes:
            raise CLIError(f"one item is {n:,} bytes, more than a request may carry ({max_bytes:,})")
        if batch and (len(batch) >= max_items or size + n > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += n
    if batch:
        yield batch


class Progress:
    """A progress bar on stderr (redrawn in place on a terminal, a line per step otherwise)."""

    def __init__(self, total: int, what: str, stream=None):
        import time

        self.total, self.what, self.done = total, what, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()

    def advance(self, n: int) -> None:
        import time

        self.done += n
        elapsed = max(time.monotonic() - self.started, 1e-6)
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done:,}/{self.total:,} {self.what} "
                f"({100 * self.done / self.total:.0f}%, {self.done / elapsed:,.0f}/s)")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _graphql(client, url: str, query: str, variables: dict) -> dict:
    import httpx

    try:
        resp = client.post(url, json={"query": query, "variables": variables})
    except httpx.HTTPError as exc:
        raise CLIError(f"cannot reach {url}: {exc} (is `promptstudio serve` running? --url says where)") from None
    try:
        body = resp.json()
    except ValueError:
        raise CLIError(f"{url} answered HTTP {resp.status_code} without JSON") from None
    if body.get("errors"):
        error = body["errors"][0]
        raise CLIError(f"{error.get('message')} ({error.get('extensions', {}).get('code', 'ERROR')})")
    if resp.status_code != 200:
        raise CLIError(f"{url} answered HTTP {resp.status_code}")
    return body["data"]


def _user_errors(payload: dict) -> str | None:
    errors = payload.get("userErrors") or []
    if not errors:
        return None
    return "; ".join(f"{'.'.join(e['field'][1:]) + ': ' if e.get('field') else ''}{e['message']} ({e['code']})"
                     for e in errors[:5])


def _find_dataset(client, url: str, args: argparse.Namespace) -> dict:
    if args.project is None:
        data = _graphql(client, url, _DATASET, {"id": args.dataset})
        if not data["node"]:
            raise CLIError(f"no dataset with the ID {args.dataset!r} that this token may read (give --project SLUG "
                           "to name a dataset by its name instead)")
        return data["node"]
    after = None
    while True:
        project = _graphql(client, url, _FIND_DATASET, {"slug": args.project, "after": after})["project"]
        if project is None:
            raise CLIError(f"no project {args.project!r} that this token may see")
        page = project["datasets"]
        found = next((d for d in page["nodes"] if d["name"] == args.dataset), None)
        if found is not None:
            return found
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    if not args.create:
        raise CLIError(f"project {args.project!r} has no dataset named {args.dataset!r} (add --create to create it)")
    payload = _graphql(client, url, _CREATE_DATASET,
                       {"i": {"projectId": project["id"], "name": args.dataset}})["createDataset"]
    problem = _user_errors(payload)
    if problem:
        raise CLIError(f"could not create the dataset: {problem}")
    print(f"created dataset {args.dataset!r} in project {args.project!r}", file=sys.stderr)
    return payload["dataset"]


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{value} is not from 1 to 10,000")
    return value


def cmd_dataset_import(args: argparse.Namespace) -> int:
    import httpx

    settings = _load_settings()
    token = args.token or os.environ.get("PROMPTSTUDIO_TOKEN")
    if not token:
        raise CLIError("no token: give --token, or set PROMPTSTUDIO_TOKEN (an API key with EXPERIMENTS_WRITE, or "
                       "the token of logIn)")
    url = args.url or _http_url(settings.host, settings.port, "/graphql")
    items = read_items(Path(args.file))
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers, timeout=args.timeout) as client:
        dataset = _find_dataset(client, url, args)
        print(f"importing {len(items):,} items from {args.file} into dataset {dataset['name']!r} "
              f"({dataset['itemCount']:,} items so far)", file=sys.stderr)
        progress = Progress(len(items), "items")
        sent = 0
        for batch in batches(items, max_items=args.batch_size):
            payload = _graphql(client, url, _ADD_ITEMS, {"i": {"datasetId": dataset["id"], "items": batch}}
                               )["addDatasetItems"]
            problem = _user_errors(payload)
            if problem:
                raise CLIError(f"items {sent + 1:,} to {sent + len(batch):,} were refused: {problem}. The "
                               f"{sent:,} items before them were added; remove those lines and run again.")
            sent += len(batch)
            progress.advance(len(batch))
    print(f"imported {sent:,} items into dataset {dataset['name']!r} ({dataset['id']})")
    return 0


# ---------------------------------------------------------------------- argument parser

_SETTINGS_NOTE = (
    "Settings are read from environment variables: DATABASE_URL (unset: an embedded PostgreSQL is "
    "started in PROMPTSTUDIO_DATA_DIR, default ./.promptstudio), PROMPTSTUDIO_HOST, PROMPTSTUDIO_PORT, "
    "PROMPTSTUDIO_LOG_LEVEL, PROMPTSTUDIO_WORKERS and more; README.md lists them all."
)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("promptstudio")
    except Exception:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptstudio",
        description=(
            "Prompt Studio: a GraphQL server for prompt registries, deployments and LLM executions. "
            "Start it with `promptstudio serve` and open http://127.0.0.1:8000/ (the console, GraphiQL); "
            "`promptstudio demo` loads sample data to look at."
        ),
        epilog=_SETTINGS_NOTE,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the GraphQL server (migrates the database first)",
        description=(
            "Run the HTTP server: GraphQL over HTTP and WebSocket at /graphql (GraphiQL in a browser), the "
            "console at /console, a landing page at /, "
            "/healthz, /readyz and /metrics. The database is migrated first. With no DATABASE_URL an "
            "embedded PostgreSQL is started in the data directory and stopped on Ctrl-C or SIGTERM. "
            "PROMPTSTUDIO_WORKERS workers (executions, embeddings of new prompt versions) run inside the server "
            "process."
        ),
        epilog=_SETTINGS_NOTE,
    )
    serve.add_argument("--host", help="address to listen on (default: PROMPTSTUDIO_HOST or 127.0.0.1; "
                                      "0.0.0.0 for all interfaces)")
    serve.add_argument("--port", type=int, help="TCP port (default: PROMPTSTUDIO_PORT or 8000)")
    serve.add_argument("--reload", action="store_true",
                       help="restart the server when a file under app/ changes (development; one process)")
    serve.add_argument("--workers", type=_positive_int, metavar="N",
                       help="server processes sharing the port and the database, each with its own event bus, "
                            "caches and PROMPTSTUDIO_WORKERS worker tasks (default: PROMPTSTUDIO_SERVER_PROCESSES, "
                            "else the number of CPU cores this process may use)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker",
        help="run workers (executions, embeddings) without HTTP (scale out next to serve)",
        description=(
            "Run PROMPTSTUDIO_WORKERS workers (executions, embeddings of new prompt versions) without an HTTP "
            "server. Any number of worker and serve processes may share one database; point them all at the "
            "same DATABASE_URL (or the same PROMPTSTUDIO_DATA_DIR for the embedded PostgreSQL). Stops on Ctrl-C "
            "or SIGTERM."
        ),
        epilog=_SETTINGS_NOTE,
    )
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser(
        "migrate",
        help="bring the database schema up to date and print its revision",
        description="Apply every pending migration (alembic upgrade head) and print the revision.",
        epilog=_SETTINGS_NOTE,
    )
    migrate.set_defaults(func=cmd_migrate)

    export = sub.add_parser(
        "export-schema",
        help="write the GraphQL schema (SDL); needs no database",
        description="Write the server's GraphQL schema in SDL, as clients and the contract check see it.",
    )
    export.add_argument("--output", "-o", default="schema.graphql",
                        help="file to write (default: schema.graphql; '-' for standard output)")
    export.set_defaults(func=cmd_export_schema)

    create = sub.add_parser(
        "create-user",
        help="create a user account (e.g. the first superuser)",
        description=(
            "Create a user. The password comes from --password, else the PROMPTSTUDIO_PASSWORD environment "
            "variable (for scripts; it does not show in the process list), else it is asked twice."
        ),
        epilog=_SETTINGS_NOTE,
    )
    create.add_argument("--email", required=True, help="the user's e-mail address")
    create.add_argument("--username", required=True, help="the user's login name")
    create.add_argument("--password", help="the password (visible to other local users in the process list; "
                                           "prefer PROMPTSTUDIO_PASSWORD or the prompt)")
    create.add_argument("--display-name", help="the name shown to others (default: the username)")
    create.add_argument("--superuser", action="store_true", help="may do everything in every project")
    create.set_defaults(func=cmd_create_user)

    demo = sub.add_parser(
        "demo",
        help="load sample data (a project, prompts, a traffic split, executions) and say how to sign in",
        description=(
            "Load sample data to look at in the console and GraphiQL: a user (created when missing; the first "
            "account of a server becomes its superuser, as with signUp), a project with three prompts and "
            "several versions each, a 90/10 traffic split in production, two validations, and executions run "
            "with the built-in echo provider (it waits for them). Everything goes through the GraphQL API. "
            "Prints the username and password to sign in with. It needs the database, not a running server: "
            "run it before or beside `promptstudio serve`."
        ),
        epilog=_SETTINGS_NOTE,
    )
    demo.add_argument("--username", default="demo", help="the user to sign in as (default: demo)")
    demo.add_argument("--password", help="its password (default: PROMPTSTUDIO_PASSWORD, else a new random one "
                                         "for a new user; an existing user needs its password)")
    demo.add_argument("--project-slug", default="demo", help="the project's slug (default: demo)")
    demo.add_argument("--executions", type=int, default=12, help="executions to run (default: 12)")
    demo.set_defaults(func=cmd_demo)
    reindex = sub.add_parser(
        "reindex",
        help="embed prompt versions for semantic search (after changing the embedding model)",
        description=(
            "Embed, with the configured model (PROMPTSTUDIO_EMBEDDING_PROVIDER, PROMPTSTUDIO_EMBEDDING_MODEL), "
            "every prompt version that has no vector of that model yet: versions whose embedding is pending or "
            "failed, and all of them after the model changed. Workers do this for new versions on their own; run "
            "reindex after changing the model, or to retry failures. Shows progress on stderr; safe to stop and "
            "run again (what was embedded stays). Exit code 1 when some versions failed."
        ),
        epilog=_SETTINGS_NOTE,
    )
    reindex.add_argument("--project", metavar="SLUG", help="only this project's versions (default: every project)")
    reindex.add_argument("--all", action="store_true",
                         help="re-embed every version, even those that have a vector of the model already")
    reindex.set_defaults(func=cmd_reindex)

    dataset = sub.add_parser(
        "dataset",
        help="work with datasets of experiments (import a file)",
        description="Work with the datasets experiments run on, through the GraphQL API of a running server.",
        epilog=_SETTINGS_NOTE,
    )
    dataset_sub = dataset.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)
    imp = dataset_sub.add_parser(
        "import",
        help="append the items of a .jsonl or .csv file to a dataset, in batches, with a progress bar",
        description=(
            "Append the items of FILE to a dataset, in order, through addDatasetItems calls of a running server "
            f"(batches of at most {IMPORT_BATCH_ITEMS:,} items and {IMPORT_BATCH_BYTES:,} bytes), showing progress "
            "on stderr. FILE.jsonl: one JSON object per line, "
            '{"variables": {...}, "expectedOutput": "...", "metadata": {...}} (only variables is required). '
            "FILE.csv: a header row; the column expected_output (or expectedOutput) is the expected output, columns "
            "named metadata.<key> go into the metadata, every other column is a variable (as a string). The whole "
            "file is checked before anything is sent."
        ),
        epilog="Example: PROMPTSTUDIO_TOKEN=ps_... promptstudio dataset import qa.jsonl --project demo --dataset qa "
               "--create",
    )
    imp.add_argument("file", metavar="FILE", help="a .jsonl or .csv file")
    imp.add_argument("--dataset", required=True,
                     help="the dataset's ID, or its name when --project is given")
    imp.add_argument("--project", metavar="SLUG", help="the project whose dataset --dataset names")
    imp.add_argument("--create", action="store_true", help="with --project: create the dataset when it is missing")
    imp.add_argument("--url", help="the server's GraphQL endpoint (default: http://PROMPTSTUDIO_HOST:"
                                   "PROMPTSTUDIO_PORT/graphql)")
    imp.add_argument("--token", help="an API key with EXPERIMENTS_WRITE or a logIn token (default: PROMPTSTUDIO_TOKEN; "
                                     "on the command line it is visible to other local users)")
    imp.add_argument("--batch-size", type=_batch_size, default=IMPORT_BATCH_ITEMS, metavar="N",
                     help=f"items per call, 1 to 10,000 (default: {IMPORT_BATCH_ITEMS:,})")
    imp.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each call (default: 120)")
    imp.set_defaults(func=cmd_dataset_import)
    return parser


# ---------------------------------------------------------------------- entry point


def _expected_error(exc: BaseException) -> str | None:
    """The one-line message for an expected problem, or None for a bug (shown with its traceback)."""
    from app.settings import SettingsError

    if isinstance(exc, (CLIError, SettingsError)):
        return str(exc)
    try:
        from app.services.errors import ServiceError
    except ImportError:  # pragma: no cover
        pass
    else:
        if isinstance(exc, ServiceError):
            parts = []
            for err in exc.errors:
                field = ".".join(p for p in (err.field or []) if p != "input")
                parts.append(f"{field}: {err.message}" if field else err.message)
            return "; ".join(parts)
    from app.db.embedded import EmbeddedPostgresError

    if isinstance(exc, EmbeddedPostgresError):
        return str(exc)
    try:
        from sqlalchemy.exc import DBAPIError

        if isinstance(exc, DBAPIError):
            return f"database error: {exc.orig}"
    except ImportError:  # pragma: no cover
        pass
    try:
        import asyncpg

        if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError)):
            return f"database error: {exc}"
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)):
        return f"cannot reach the database: {exc}"
    if isinstance(exc, OSError):  # an unwritable output file, ...
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except Exception as exc:
        message = _expected_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
