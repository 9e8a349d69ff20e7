"""The promptstudio command (app/cli.py), run as a real process: `python -m app ...`."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict | None = None, timeout: float = 60,
        prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python -m app ARGS` (after the command PREFIX, e.g. setpriv ...) with ENV added to this one's."""
    return subprocess.run([*prefix, sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, timeout=timeout)


def test_help_lists_the_commands_and_points_to_the_settings():
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "worker", "migrate", "export-schema", "create-user", "demo", "dataset"):
        assert command in result.stdout
    assert "DATABASE_URL" in result.stdout and "README" in result.stdout


def test_serve_help_lists_its_options():
    result = cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--reload", "--workers"):
        assert option in result.stdout


def test_export_schema_to_stdout():
    result = cli("export-schema", "--output", "-")
    assert result.returncode == 0, result.stderr
    assert "type Query" in result.stdout


def test_a_bad_setting_is_one_line_on_stderr_and_exit_code_1():
    result = cli("migrate", env={"PROMPTSTUDIO_PORT": "eighty"})
    assert result.returncode == 1
    assert result.stderr == "error: PROMPTSTUDIO_PORT='eighty' is not an integer\n"


def test_create_user_without_a_password_and_no_terminal_is_refused():
    env = {k: v for k, v in os.environ.items() if k != "PROMPTSTUDIO_PASSWORD"}
    result = subprocess.run([sys.executable, "-m", "app", "create-user", "--email", "a@example.com",
                             "--username", "ada"], cwd=ROOT, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("error: no password given")
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_url_is_a_one_line_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens on it
    result = cli("migrate", env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/nothing"})
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("error: cannot reach the database")
    assert "Traceback" not in result.stderr


def _server_processes(supervisor: subprocess.Popen) -> list[psutil.Process]:
    """The server processes `serve --workers N` started (uvicorn's children running our app)."""
    return [p for p in psutil.Process(supervisor.pid).children()
            if "multiprocessing" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]


def _graphql_typename(base: str) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": "{ __typename }"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _wait_ready(server: subprocess.Popen, base: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert server.poll() is None, server.stdout.read()
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not become ready in 60 s"
        time.sleep(0.2)


def test_serve_with_two_processes_on_the_embedded_database_and_sigterm_stops_all(tmp_path):
    """`serve --workers 2`: two server processes share the port and the embedded PostgreSQL; one that
    dies is replaced while the other serves; SIGTERM stops them and PostgreSQL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PROMPTSTUDIO_DATA_DIR": str(tmp_path), "PROMPTSTUDIO_WORKERS": "0",
           "PROMPTSTUDIO_LOG_LEVEL": "warning"}
    env.pop("DATABASE_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "2"],
                              cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    children: list[psutil.Process] = []
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(server, base)
        assert _graphql_typename(base) == {"data": {"__typename": "Query"}}
        children = _server_processes(server)
        assert len(children) == 2, [p.cmdline() for p in children]
        # Each process answers on its own: stop one, and every new connection still gets an answer.
        children[0].kill()
        children[0].wait(10)
        for _ in range(10):
            assert _graphql_typename(base) == {"data": {"__typename": "Query"}}
        deadline = time.monotonic() + 60  # ... and the supervisor starts a replacement
        while len(replaced := _server_processes(server)) < 2 or children[0].pid in {p.pid for p in replaced}:
            assert time.monotonic() < deadline, "the dead server process was not replaced in 60 s"
            time.sleep(0.2)
        children = replaced
        pidfile = tmp_path / "pgdata" / "postmaster.pid"
        postmaster = int(pidfile.read_text().splitlines()[0])
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert f"GraphQL endpoint: {base}/graphql" in output
    assert "2 server processes" in output
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children)
    assert not pidfile.exists()
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE


def test_serve_workers_must_be_a_positive_number():
    result = cli("serve", "--workers", "0")
    assert result.returncode == 2
    assert "--workers: must be between 1 and 256, got 0" in result.stderr


def _serve_refused(tmp_path: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`serve ARGS` where it cannot listen, with the embedded database in an empty data directory."""
    data_dir = tmp_path / "data"
    result = cli("serve", *args, env={"PROMPTSTUDIO_DATA_DIR": str(data_dir), "DATABASE_URL": ""}, prefix=prefix)
    # Nothing was started: no data directory (so no cluster), no PostgreSQL running on it.
    assert not data_dir.exists()
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(data_dir) in " ".join(p.info["cmdline"] or [])]
    return result


def test_serve_on_a_port_in_use_fails_at_once_with_one_line_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve_refused(tmp_path, "--port", str(port))
    assert result.returncode == 1
    assert result.stdout == ""  # in particular no "listening on"
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: the address is already in use")
    assert "--port" in result.stderr


def test_serve_on_an_address_of_another_machine_fails_with_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _serve_refused(tmp_path, "--host", "192.0.2.1", "--port", str(port))  # TEST-NET-1 (RFC 5737)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot listen on 192.0.2.1:{port}: the address is not one of this machine's")


def _unprivileged() -> tuple[str, ...] | None:
    """A command prefix under which binding port 80 is refused, or None when there is none here."""
    try:
        first_free = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        first_free = 1024
    if first_free <= 80:
        return None
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")  # root without CAP_NET_BIND_SERVICE
    return (setpriv, "--inh-caps=-net_bind_service", "--bounding-set=-net_bind_service") if setpriv else None


@pytest.mark.skipif(_unprivileged() is None, reason="port 80 cannot be refused here (root without setpriv, "
                                                     "or ip_unprivileged_port_start <= 80)")
def test_serve_on_a_privileged_port_without_the_right_fails_with_one_line(tmp_path):
    result = _serve_refused(tmp_path, "--port", "80", prefix=_unprivileged())
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: cannot listen on 127.0.0.1:80: permission denied")
