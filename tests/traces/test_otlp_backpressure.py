"""Backpressure at /v1/traces: when writing falls behind, 503 with Retry-After (OTLP exporters retry it),
with bounded waiting; a 200 means the spans are committed, so a server killed mid-stream loses none of
the batches it answered 200.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.traces.otlp_util import PROTOBUF, post, request, response, rows, span, status, tenant

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def team(gql):
    return await tenant(gql, "busy")


class SlowBody:
    """A request body that sends its first bytes, then waits until told to send the rest: its request holds
    a turn at the write gate meanwhile (the gate is taken before the body is read)."""

    def __init__(self, body: bytes):
        self.body = body
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __aiter__(self):
        yield self.body[:10]
        self.started.set()
        await self.release.wait()
        yield self.body[10:]


async def _hold(c: httpx.AsyncClient, key: str, slow: SlowBody) -> httpx.Response:
    return await c.post("/v1/traces", content=slow, headers={"content-type": PROTOBUF, "authorization": f"Bearer {key}"})


async def _until_holding(server, n: int = 1) -> None:
    from app.services import ingest

    gate = ingest.for_runtime(server.app.state.runtime).gate
    for _ in range(200):
        if gate.active >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the slow request never got its turn")


async def test_a_full_queue_is_503_with_retry_after_at_once(live, team, db_url):
    async with live(ingest_concurrency=1, ingest_queue=0) as server, httpx.AsyncClient(base_url=server.url,
                                                                                       timeout=30) as c:
        slow = SlowBody(request([span(1, 1, name="slow")]).SerializeToString())
        holder = asyncio.create_task(_hold(c, team.key, slow))
        await _until_holding(server)
        began = time.monotonic()
        busy = await post(c, request([span(2, 1, name="refused")]), team.key)
        assert time.monotonic() - began < 2
        assert busy.status_code == 503, busy.content
        assert int(busy.headers["retry-after"]) >= 1
        assert status(busy.content).message.startswith("The server is busy writing spans (1 requests writing and 0 "
                                                       "waiting); retry in")
        slow.release.set()
        assert (await holder).status_code == 200
        again = await post(c, request([span(2, 1, name="accepted later")]), team.key)
        assert again.status_code == 200
    names = [r["name"] for r in await rows(db_url, "SELECT name FROM spans ORDER BY name")]
    assert names == ["accepted later", "slow"]


async def test_waiting_is_bounded_in_time_and_in_number(live, team):
    async with live(ingest_concurrency=1, ingest_queue=1, ingest_queue_timeout_seconds=0.5) as server, \
            httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        slow = SlowBody(request([span(1, 1)]).SerializeToString())
        holder = asyncio.create_task(_hold(c, team.key, slow))
        await _until_holding(server)
        began = time.monotonic()
        waiter = asyncio.create_task(post(c, request([span(2, 1)]), team.key))
        await asyncio.sleep(0.1)
        full = await post(c, request([span(3, 1)]), team.key, media="application/json")
        assert full.status_code == 503 and full.headers["retry-after"].isdigit()
        assert "1 requests writing and 1 waiting" in full.json()["message"]
        timed_out = await waiter
        assert timed_out.status_code == 503 and time.monotonic() - began >= 0.45
        assert "no turn within 0.5 s" in status(timed_out.content).message
        slow.release.set()
        assert (await holder).status_code == 200


def _export_with_retries(endpoint: str, key: str) -> tuple[bool, float]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=endpoint, headers={"Authorization": f"Bearer {key}"}, timeout=20)))
    began = time.monotonic()
    with provider.get_tracer("t").start_as_current_span("retried"):
        pass
    provider.shutdown()
    return True, time.monotonic() - began


async def test_the_sdk_exporter_retries_a_503_and_gets_through(live, team, db_url):
    async with live(ingest_concurrency=1, ingest_queue=0) as server, httpx.AsyncClient(base_url=server.url,
                                                                                       timeout=30) as c:
        slow = SlowBody(request([span(1, 1)]).SerializeToString())
        holder = asyncio.create_task(_hold(c, team.key, slow))
        await _until_holding(server)
        exporting = asyncio.create_task(asyncio.to_thread(_export_with_retries, server.url + "/v1/traces", team.key))
        await asyncio.sleep(1.5)  # the exporter has been refused at least once by now
        from app.services import ingest

        assert ingest.for_runtime(server.app.state.runtime).gate.refused >= 1
        slow.release.set()
        await holder
        _, took = await exporting
    assert took >= 1.0
    assert [r["name"] for r in await rows(db_url, "SELECT name FROM spans WHERE name = 'retried'")] == ["retried"]


def _server(db_url: str, tmp_path: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "PROMPTSTUDIO_DATA_DIR": str(tmp_path), "PROMPTSTUDIO_WORKERS": "0",
           "PROMPTSTUDIO_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app_from_env", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning", "--lifespan", "on"],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def test_every_batch_answered_200_survives_a_killed_server(team, db_url, tmp_path):
    port = free_port()
    server = _server(db_url, tmp_path, port)
    acknowledged: list[int] = []
    unanswered: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            for _ in range(300):
                try:
                    if (await c.get("/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the server did not start")

            async def sender(first: int) -> None:
                trace = first
                while True:
                    batch = request([span(trace, i + 1, None if i == 0 else 1, name=f"t{trace}") for i in range(200)])
                    try:
                        r = await post(c, batch, team.key)
                    except httpx.HTTPError:
                        unanswered.append(trace)
                        return
                    assert r.status_code == 200, r.content
                    assert not response(r.content).HasField("partial_success")
                    acknowledged.append(trace)
                    trace += 3

            senders = [asyncio.create_task(sender(first)) for first in (1, 2, 3)]
            while len(acknowledged) < 6:
                await asyncio.sleep(0.05)
            server.send_signal(signal.SIGKILL)  # no shutdown, no flushing: whatever was answered must be there
            await asyncio.wait_for(asyncio.gather(*senders), 30)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
    counts = {int(r["trace_id"], 16): r["span_count"]
              for r in await rows(db_url, "SELECT trace_id, span_count FROM traces WHERE project_id = $1",
                                  team.project_id)}
    assert acknowledged and all(counts.get(t) == 200 for t in acknowledged), (acknowledged, counts)
    # a batch in flight when the server died is all there or not at all (one transaction)
    assert all(counts.get(t) in (None, 200) for t in unanswered)
    stored = await rows(db_url, "SELECT count(*) AS n FROM spans WHERE project_id = $1", team.project_id)
    assert stored[0]["n"] == 200 * len(counts)
