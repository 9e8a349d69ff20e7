"""Time-ordered UUIDs (the layout of UUID version 7, RFC 9562) for rows written in volume.

Random UUIDs scatter inserts over the whole primary-key index; these begin with the millisecond
time, so a batch of new rows lands at the index's right edge, as a serial key would, while ids stay
unguessable (74 random bits) and need no round trip to the database.
"""
from __future__ import annotations

import os
import time
import uuid

_RANDOM_MASK = (1 << 80) - 1
_VERSION_VARIANT_MASK = ~(0xF << 76 | 0x3 << 62)
_VERSION_VARIANT = 0x7 << 76 | 0x2 << 62  # version 7, RFC 4122 variant


def _make(ms: int, rand: bytes) -> uuid.UUID:
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(rand, "big") & _RANDOM_MASK
    return uuid.UUID(int=value & _VERSION_VARIANT_MASK | _VERSION_VARIANT)


def uuid7(at_ms: int | None = None) -> uuid.UUID:
    """A version-7 UUID for ``at_ms`` (milliseconds since the epoch; now when left out)."""
    return _make(time.time_ns() // 1_000_000 if at_ms is None else at_ms, os.urandom(10))


def uuid7s(n: int) -> list[uuid.UUID]:
    """``n`` version-7 UUIDs of this millisecond (a batch's ids), from one read of random bytes."""
    ms = time.time_ns() // 1_000_000
    rand = os.urandom(10 * n)
    return [_make(ms, rand[i:i + 10]) for i in range(0, 10 * n, 10)]
