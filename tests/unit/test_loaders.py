"""Our dataloaders share one future per key between callers; cancelling one caller must not cancel it."""
from __future__ import annotations

import asyncio

import pytest

from app.api.core.loaders import BaseLoader


class _Context:
    """What a loader needs of a request's context here: where its batches under way are kept."""

    def __init__(self):
        self.batches: set[asyncio.Task] = set()


class Slow(BaseLoader):
    def __init__(self):
        super().__init__(_Context())  # type: ignore[arg-type]
        self.batches: list[list[int]] = []

    async def batch_load_fn(self, keys):
        self.batches.append(list(keys))
        await asyncio.sleep(0.05)
        return [k * 10 for k in keys]


async def test_a_cancelled_caller_does_not_cancel_the_others_or_poison_the_cache():
    loader = Slow()
    first = asyncio.ensure_future(loader.load(1))
    second = asyncio.ensure_future(loader.load(1))
    await asyncio.sleep(0.01)  # both waiting on the batch
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == 10
    assert await loader.load(1) == 10  # the cached value, not a cancelled future
    assert loader.batches == [[1]]
