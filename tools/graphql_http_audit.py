#!/usr/bin/env python3
"""Start a real Prompt Studio server and run graphql-http's GraphQL-over-HTTP audit against it.

    .venv/bin/python tools/graphql_http_audit.py        (what `make audit` runs)

The server is `python -m app serve` on a free port of 127.0.0.1. Without DATABASE_URL it gets a
temporary data directory (its own embedded PostgreSQL, removed afterwards); with DATABASE_URL it
uses that database. Once /readyz answers 200 the audit runs (tools/graphql-http-audit/audit.mjs,
dependencies installed with `npm ci` from the committed package-lock.json), then the server is
stopped with SIGTERM. Exit code: the audit's (1 when a MUST requirement fails), or 1 when the
server does not come up (its output is shown).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIT_DIR = ROOT / "tools" / "graphql-http-audit"
READY_TIMEOUT = 180.0  # first start: initdb + migrations
STOP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, server: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


def npm_ci() -> None:
    marker = AUDIT_DIR / "node_modules" / ".package-lock.json"
    lock = AUDIT_DIR / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return  # installed from this lock already
    subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=AUDIT_DIR, check=True)


def stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)  # the CLI shuts uvicorn down and stops the embedded PostgreSQL
    try:
        server.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"server did not stop within {STOP_TIMEOUT:.0f}s; killing it", file=sys.stderr)
        server.kill()
        server.wait()


def main() -> int:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: the graphql-http audit needs Node.js 18+ and npm", file=sys.stderr)
            return 1
    npm_ci()

    port = free_port()
    env = dict(os.environ)
    env.setdefault("PROMPTSTUDIO_LOG_LEVEL", "warning")
    data_dir = None
    if not env.get("DATABASE_URL"):
        data_dir = Path(tempfile.mkdtemp(prefix="promptstudio-audit-"))
        env["PROMPTSTUDIO_DATA_DIR"] = str(data_dir)
    log = tempfile.TemporaryFile("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        print(f"starting Prompt Studio on {base} ...", flush=True)
        if not wait_ready(f"{base}/readyz", server, READY_TIMEOUT):
            stop(server)
            log.seek(0)
            print(f"the server did not become ready (exit code {server.returncode}); its output:\n{log.read()}",
                  file=sys.stderr)
            return 1
        audit = subprocess.run(["node", "audit.mjs", f"{base}/graphql"], cwd=AUDIT_DIR)
        return audit.returncode
    finally:
        stop(server)
        if server.returncode not in (0, None):
            log.seek(0)
            print(f"server exited with code {server.returncode}; its output:\n{log.read()}", file=sys.stderr)
        log.close()
        if data_dir is not None:
            _cleanup(data_dir)


def _cleanup(data_dir: Path) -> None:
    """Remove the temporary data directory, stopping a PostgreSQL the server failed to stop."""
    sys.path.insert(0, str(ROOT))
    from app.db.embedded import EmbeddedPostgres

    if (data_dir / "pgdata" / "postmaster.pid").exists():
        pg = EmbeddedPostgres(data_dir)
        pg.start()  # reuses the leftover server ...
        pg.stop()  # ... and stops it, as its last user
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
