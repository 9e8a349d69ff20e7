"""Shared feeds (app.events.feed): one read per batch of notices for all subscribers, failing reads retried,
each subscriber gets the items of the notices after it registered, rights failed per subscriber."""
from __future__ import annotations

import asyncio

from app.events.bus import RESYNC, EventBus, Notice


class Reader:
    """Turns each notice {"s": n} into one item {"s": n}; fails the first ``failures`` reads."""

    def __init__(self, failures: int = 0, delay: float = 0.0):
        self.failures, self.delay = failures, delay
        self.reads: list[list[int]] = []
        self.resyncs = 0
        self.denied: set[str] = set()
        self.checks = 0

    async def read(self, notices, resync):
        await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database went away")
        self.reads.append([n.data["s"] for _, n in notices])
        if resync is not None:
            self.resyncs += 1
        return [(i, Notice(topic="t", data={"s": n.data["s"]})) for i, n in notices]

    def check_due(self) -> bool:
        return True

    async def check(self, subscribers) -> None:
        self.checks += 1
        for sub in subscribers:
            if sub.owner in self.denied:
                sub.fail(PermissionError(f"{sub.owner} may no longer read this"))


async def _take(sub, n: int) -> list[int]:
    got: list[int] = []
    while len(got) < n:
        batch = await asyncio.wait_for(sub.next_batch(), 5)
        assert sub.error is None and not sub.overflowed
        got += [x.data["s"] for x in batch if not x.resync]
    return got


async def test_one_read_per_batch_shared_by_all_and_failing_reads_are_retried():
    bus = EventBus("postgresql://unused/db", buffer=100)
    reader = Reader(failures=2)
    subs = [bus.subscribe("t", feed=lambda: (reader, None)) for _ in range(50)]
    assert bus.subscriber_count == 50 and bus.feed("t") is not None
    for s in range(1, 6):
        bus.dispatch(Notice(topic="t", data={"s": s}))
    for sub in subs:
        assert await _take(sub, 5) == [1, 2, 3, 4, 5]
    feed = bus.feed("t")
    assert feed is not None and feed.failures == 2
    assert reader.reads == [[1, 2, 3, 4, 5]]  # one read for the burst, for all 50, after two failed attempts
    for sub in subs:
        bus.unsubscribe(sub)
    assert bus.feed("t") is None  # stopped with its last subscriber


async def test_a_subscriber_gets_the_items_of_notices_after_it_registered():
    bus = EventBus("postgresql://unused/db", buffer=100)
    reader = Reader(delay=0.2)
    early = bus.subscribe("t", feed=lambda: (reader, None))
    bus.dispatch(Notice(topic="t", data={"s": 1}))  # being read when `late` registers
    await asyncio.sleep(0.05)
    late = bus.subscribe("t", feed=lambda: (Reader(), None))  # the topic's feed exists: this factory is unused
    bus.dispatch(Notice(topic="t", data={"s": 2}))
    assert await _take(early, 2) == [1, 2]
    assert await _take(late, 1) == [2]
    bus._broadcast(RESYNC)  # a reconnect: the feed catches up once, for everyone
    bus.dispatch(Notice(topic="t", data={"s": 3}))
    assert await _take(early, 1) == [3] and await _take(late, 1) == [3]
    assert reader.resyncs == 1
    bus.unsubscribe(early)
    bus.unsubscribe(late)


async def test_the_batched_check_fails_only_the_subscribers_that_lost_their_rights():
    bus = EventBus("postgresql://unused/db", buffer=100)
    reader = Reader()
    kept = bus.subscribe("t", feed=lambda: (reader, None), owner="ann")
    lost = bus.subscribe("t", feed=lambda: (reader, None), owner="bob")
    reader.denied.add("bob")
    bus.dispatch(Notice(topic="t", data={"s": 1}))
    assert await _take(kept, 1) == [1]
    assert await asyncio.wait_for(lost.next_batch(), 5) == []
    assert isinstance(lost.error, PermissionError) and reader.checks == 1  # one check for both
    bus.unsubscribe(kept)
    bus.unsubscribe(lost)
