"""Token buckets per caller, in this process's memory.

Each caller (a key: the user, the API key, or the client IP of anonymous requests) has a bucket of
``capacity`` points that refills at ``refill_per_second``; an expensive operation takes its cost out
of it, or is refused with the seconds to wait until the bucket holds enough. Nothing is shared
between server processes: with N processes behind a balancer a caller may spend up to N buckets.

The map is bounded: buckets are kept in order of last use, and the least recently used ones are
dropped once they have refilled (a full bucket is the same as none), or when there are more than
``max_buckets`` of them (that caller then starts again from a full bucket).
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(self, capacity: float, refill_per_second: float, *, max_buckets: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        if capacity <= 0 or refill_per_second <= 0:
            raise ValueError("a rate limit needs a positive capacity and refill rate")
        self.capacity = float(capacity)
        self.rate = float(refill_per_second)
        self.max_buckets = max_buckets
        self.clock = clock
        #: key -> (points left, when that was computed); least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def spend(self, key: str, points: float) -> float:
        """Take ``points`` from ``key``'s bucket and return 0; or, when it holds fewer, take nothing
        and return the seconds until it will hold enough. More than the capacity empties a full bucket
        (so no operation is refused for ever)."""
        now = self.clock()
        points = min(points, self.capacity)
        left = self._level(key, now)
        wait = 0.0
        if left >= points:
            left -= points
        else:
            wait = (points - left) / self.rate
        self._buckets[key] = (left, now)
        self._buckets.move_to_end(key)
        self._evict(now)
        return wait

    def level(self, key: str) -> float:
        """Points in ``key``'s bucket now."""
        return self._level(key, self.clock())

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        left, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, left + (now - at) * self.rate)

    def _evict(self, now: float) -> None:
        while self._buckets:
            key, (left, at) = next(iter(self._buckets.items()))
            full = left + (now - at) * self.rate >= self.capacity
            if not full and len(self._buckets) <= self.max_buckets:
                return
            del self._buckets[key]
