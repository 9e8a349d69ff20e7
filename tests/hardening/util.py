"""Helpers of the hardening tests: a second client that keeps pinging while an attack runs."""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

PING = {"query": "{ __typename }"}


@dataclass
class Pings:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def summary(self) -> str:
        ordered = sorted(self.latencies)
        load = os.getloadavg()[0]
        return (f"{len(ordered)} pings, p50 {ordered[len(ordered) // 2] * 1000:.0f} ms, p99 {self.p99() * 1000:.0f} ms, "
                f"max {ordered[-1] * 1000:.0f} ms; machine load {load:.1f}; failures {self.failures[:3]}")


@asynccontextmanager
async def pinging(url: str, interval: float = 0.01, samples: int = 200) -> AsyncIterator[Pings]:
    """Send `{ __typename }` to the server on a connection of its own, again and again, timing each
    one, for as long as the block runs and until there are at least ``samples`` timings (so that a
    p99 is not simply the single worst ping on a shared, noisy machine)."""
    pings = Pings()
    stop = asyncio.Event()

    async def loop() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    r = await client.post("/graphql", json=PING)
                    if r.status_code != 200 or r.json() != {"data": {"__typename": "Query"}}:
                        pings.failures.append(f"{r.status_code} {r.text[:100]}")
                except httpx.HTTPError as exc:
                    pings.failures.append(repr(exc))
                pings.latencies.append(time.perf_counter() - started)
                await asyncio.sleep(interval)

    task = asyncio.create_task(loop())
    try:
        yield pings
        while len(pings.latencies) < samples and not task.done():
            await asyncio.sleep(interval)
    finally:
        stop.set()
        await task


def assert_responsive(pings: Pings, *, p99_ms: float = 100.0, at_least: int = 200) -> None:
    assert not pings.failures, pings.summary()
    assert len(pings.latencies) >= at_least, pings.summary()
    assert pings.p99() * 1000 < p99_ms, pings.summary()
