"""The benchmark harness's own parts (bench/run.py, bench/peers.py), against a real HTTP server on loopback.

Not a benchmark: nothing here is timed. It checks that the dispatcher finds every benchmark, that CPU is
read from /proc, and that both load generators send what a workload asks (a fresh subject key per
request) and count the answers.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import peers  # noqa: E402
from bench.run import scripts  # noqa: E402


def test_the_dispatcher_lists_the_side_by_side_workloads_and_every_script() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py")], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    for name in ("resolve", "dashboard", "large"):
        assert f"  {name} " in out
    expected = {p.stem for p in (ROOT / "bench").glob("*.py")
                if p.stem not in {"run", "compare", "peers"} and 'if __name__ == "__main__":' in p.read_text()}
    assert {"otlp_ingest", "resolve_prompt", "cost_report"} <= expected
    assert set(scripts()) == expected
    for name in expected:
        assert f"  {name} " in out
    unknown = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "no-such-workload"],
                             capture_output=True, text=True, cwd=ROOT)
    assert unknown.returncode == 2 and "unknown workload 'no-such-workload'" in unknown.stderr


def test_a_workload_help_says_where_the_peers_come_from() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "resolve", "--help"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "npm registry" in out and "postgraphile-4.14.1" in out and "phoenix-20.26.1" in out
    assert "apt-get install wrk" in out


def test_cpu_is_read_from_proc_for_a_process_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.3: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tree = peers.tree_cpu(peers.os.getpid())
            if tree.get(child.pid, 0.0) >= 0.25:
                break
            time.sleep(0.1)
        assert tree.get(child.pid, 0.0) >= 0.25, tree
        assert peers.cpu_delta({child.pid: 0.1}, {child.pid: 0.4, 12345678: 0.2}) == pytest.approx(0.5)
    finally:
        child.kill()
        child.wait()
    assert peers.proc_cpu(child.pid) is None


def test_a_trees_total_keeps_what_its_ended_children_used() -> None:
    """A parent whose child burned CPU, ended and was waited for: the child is gone from the tree, its CPU stays
    in the total (the postmaster's ended backends, an execution's finished sandbox process)."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time\n"
                               f"subprocess.run([sys.executable, '-c', {burn!r}], check=True)\n"
                               f"print('reaped', flush=True)\ntime.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "reaped"
        assert list(peers.tree_cpu(parent.pid)) == [parent.pid]
        assert peers.proc_cpu(parent.pid) < 0.25 <= peers.tree_cpu_total(parent.pid)
        assert peers.parent(parent.pid) == peers.os.getpid()
    finally:
        parent.kill()
        parent.wait()
    assert peers.parent(parent.pid) is None


def test_the_database_options_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    monkeypatch.setenv("BENCH_DATABASE_URL", "postgresql://u@db.example/x")
    p = argparse.ArgumentParser()
    peers.add_database_options(p, env="BENCH_DATABASE_URL")
    args = p.parse_args([])
    assert args.database_url == "postgresql://u@db.example/x" and args.data_dir == str(peers.DEFAULT_DATA_DIR)
    assert p.parse_args(["--data-dir", "/tmp/d"]).data_dir == "/tmp/d"
    assert "BENCH_DATABASE_URL" in p.format_help()


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[bytes] = []
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Authorization") != "Bearer k]]ey":
            self.send_response(401)
        else:
            type(self).bodies.append(body)
            self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder():
    _Recorder.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("generator", ["python", "wrk"])
def test_the_load_generators_send_a_fresh_subject_each_request(recorder: str, generator: str) -> None:
    if generator == "wrk" and not peers.have_wrk():
        pytest.skip("wrk is not installed (apt-get install wrk)")
    body = json.dumps({"query": "q", "variables": {"k": peers.SUBJECT, "note": "]=] and \"quotes\""}})
    req = peers.Request("POST", "/graphql", {"Content-Type": "application/json", "Authorization": "Bearer k]]ey"},
                        body)
    result = peers.load(recorder, req, connections=2, duration=1, threads=1, generator=generator)
    assert result.generator == generator
    assert result.errors == 0 and result.requests > 0
    assert result.requests <= len(_Recorder.bodies) <= result.requests + 2
    sent = [json.loads(b) for b in _Recorder.bodies]
    assert all(s["variables"]["note"] == "]=] and \"quotes\"" for s in sent)
    subjects = [s["variables"]["k"] for s in sent]
    assert peers.SUBJECT not in subjects
    assert len(set(subjects)) == len(subjects)
    assert 0 < result.p50_ms <= result.p99_ms


def test_the_backends_of_a_url_are_looked_up_on_its_database() -> None:
    b = peers.BackendCPU.of("postgresql+asyncpg://bench:s3cret@127.0.0.1:5433/bench_x?ssl=disable", "promptstudio%")
    assert (b.admin_url, b.database, b.application) == (
        "postgresql://bench:s3cret@127.0.0.1:5433/bench_x?ssl=disable", "bench_x", "promptstudio%")
