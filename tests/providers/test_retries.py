"""stream_with_retries against the fake server: what is retried, how long it waits, what is not."""
from __future__ import annotations

import asyncio
import random
import time

import pytest

from app.providers.anthropic import AnthropicProvider
from app.providers.base import (
    Credential,
    ProviderError,
    ProviderRequest,
    TextDelta,
    UsageReport,
    backoff_delay,
    stream_with_retries,
)
from app.providers.openai import OpenAIProvider


@pytest.fixture(params=["openai", "anthropic"])
async def target(request, fake_llm):
    """(provider, credential) for each protocol, against the fake server."""
    if request.param == "openai":
        provider = OpenAIProvider()
        credential = Credential(api_key="k", base_url=fake_llm.openai_base_url)
    else:
        provider = AnthropicProvider()
        credential = Credential(api_key="k", base_url=fake_llm.anthropic_base_url)
    try:
        yield provider, credential
    finally:
        await provider.aclose()


def req(model: str, timeout: float = 2.0) -> ProviderRequest:
    return ProviderRequest(model=model, messages=[{"role": "user", "content": "hi"}], timeout=timeout)


class Retries:
    def __init__(self) -> None:
        self.calls: list[tuple[ProviderError, int, float]] = []

    async def __call__(self, error: ProviderError, number: int, delay: float) -> None:
        self.calls.append((error, number, delay))


async def test_rate_limit_then_success_waits_for_retry_after(fake_llm, target):
    provider, credential = target
    on_retry = Retries()
    started = time.monotonic()
    events = [
        e async for e in stream_with_retries(
            provider, req("rate-limit-then-ok"), credential, retries=3, backoff_max=30, on_retry=on_retry
        )
    ]
    elapsed = time.monotonic() - started

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == fake_llm.reply
    assert isinstance(events[-1], UsageReport) and events[-1].reported
    assert [r.behaviour for r in fake_llm.requests] == ["rate-limit", "ok"]
    ((error, number, delay),) = on_retry.calls
    assert error.status == 429 and number == 1 and delay == 1.0
    assert 1.0 <= elapsed < 3.0  # Retry-After: 1 was honoured, measured


async def test_retry_after_is_capped_by_backoff_max(fake_llm, target):
    provider, credential = target
    fake_llm.retry_after = "120"
    on_retry = Retries()
    started = time.monotonic()
    events = [
        e async for e in stream_with_retries(
            provider, req("rate-limit-then-ok"), credential, retries=1, backoff_max=0.2, on_retry=on_retry
        )
    ]
    assert isinstance(events[-1], UsageReport)
    assert on_retry.calls[0][2] == 0.2
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("model", ["server-error-then-ok", "slow-then-ok", "cut-early-then-ok"])
async def test_retryable_failures_before_output_are_retried(fake_llm, target, model):
    provider, credential = target
    on_retry = Retries()
    events = [
        e async for e in stream_with_retries(
            provider, req(model, timeout=0.3), credential, retries=2, backoff_max=0.05, on_retry=on_retry
        )
    ]
    assert isinstance(events[-1], UsageReport)
    assert len(fake_llm.requests) == 2
    assert len(on_retry.calls) == 1 and on_retry.calls[0][0].retryable
    assert 0 <= on_retry.calls[0][2] <= 0.05


async def test_the_last_error_is_raised_when_retries_run_out(fake_llm, target):
    provider, credential = target
    on_retry = Retries()
    with pytest.raises(ProviderError) as info:
        async for _ in stream_with_retries(
            provider, req("server-error"), credential, retries=2, backoff_max=0.01, on_retry=on_retry
        ):
            pass
    assert info.value.status == 500
    assert len(fake_llm.requests) == 3  # the first call and two retries
    assert [number for _, number, _ in on_retry.calls] == [1, 2]


async def test_no_retries_means_one_call(fake_llm, target):
    provider, credential = target
    with pytest.raises(ProviderError):
        async for _ in stream_with_retries(provider, req("server-error"), credential, retries=0, backoff_max=1):
            pass
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("model", ["auth-error", "bad-request", "malformed"])
async def test_non_retryable_errors_are_raised_at_once(fake_llm, target, model):
    provider, credential = target
    on_retry = Retries()
    with pytest.raises(ProviderError) as info:
        async for _ in stream_with_retries(provider, req(model), credential, retries=3, backoff_max=0.01, on_retry=on_retry):
            pass
    assert not info.value.retryable
    assert len(fake_llm.requests) == 1 and on_retry.calls == []


async def test_a_failure_after_output_is_re_raised_not_retried(fake_llm, target):
    provider, credential = target
    received: list = []
    with pytest.raises(ProviderError) as info:
        async for event in stream_with_retries(provider, req("cut"), credential, retries=3, backoff_max=0.01):
            received.append(event)
    assert info.value.retryable  # retryable in itself, but text was already shown
    assert [e.text for e in received] == fake_llm._chunks()[:2]
    assert len(fake_llm.requests) == 1


async def test_cancelling_during_a_retried_stream_closes_it(fake_llm, target):
    provider, credential = target
    first = asyncio.Event()

    async def consume():
        async for _ in stream_with_retries(provider, req("slow-stream", timeout=10), credential, retries=2, backoff_max=1):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake_llm.wait_for_disconnect, 0, 3.0)
    assert len(fake_llm.requests) == 1


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    rng = random.Random(1)
    for number, step in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)]:
        for _ in range(50):
            delay = backoff_delay(number, backoff_max=30, rng=rng)
            assert step / 2 <= delay <= step
    assert all(5 <= backoff_delay(20, backoff_max=10, rng=rng) <= 10 for _ in range(50))
    assert len({backoff_delay(3, backoff_max=30) for _ in range(20)}) > 1  # jittered


def test_backoff_honours_retry_after_within_the_cap():
    assert backoff_delay(1, backoff_max=30, retry_after=2.5) == 2.5
    assert backoff_delay(5, backoff_max=30, retry_after=0) == 0
    assert backoff_delay(1, backoff_max=3, retry_after=60) == 3
    assert backoff_delay(1, backoff_max=0, retry_after=5) == 0
    assert backoff_delay(3, backoff_max=0) == 0


async def test_negative_retries_are_refused():
    with pytest.raises(ValueError):
        async for _ in stream_with_retries(None, req("ok"), Credential(), retries=-1, backoff_max=1):
            pass
