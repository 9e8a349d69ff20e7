"""The Anthropic Messages provider against a real HTTP server speaking the protocol."""
from __future__ import annotations

import asyncio
import time

import pytest

from app.providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicProvider
from app.providers.base import (
    Credential,
    ProviderError,
    ProviderRequest,
    TextDelta,
    UsageReport,
    count_message_tokens,
    count_tokens,
)


def req(model: str = "ok", **kwargs) -> ProviderRequest:
    kwargs.setdefault("messages", [{"role": "user", "content": "Say hello."}])
    kwargs.setdefault("timeout", 2.0)
    return ProviderRequest(model=model, **kwargs)


def cred(server, key: str | None = "sk-ant-test") -> Credential:
    return Credential(api_key=key, base_url=server.anthropic_base_url)


async def collect(provider, request, credential) -> list:
    return [event async for event in provider.stream(request, credential)]


async def failure(provider, request, credential) -> tuple[ProviderError, list]:
    events: list = []
    with pytest.raises(ProviderError) as info:
        async for event in provider.stream(request, credential):
            events.append(event)
    return info.value, events


async def test_streams_text_deltas_then_usage(fake_llm, anthropic_provider):
    events = await collect(anthropic_provider, req(), cred(fake_llm))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == fake_llm._chunks() and len(deltas) > 5
    assert "".join(deltas) == fake_llm.reply
    assert events[-1] == UsageReport(input_tokens=17, output_tokens=11, reported=True)
    assert sum(isinstance(e, UsageReport) for e in events) == 1


async def test_sends_the_messages_request(fake_llm, anthropic_provider):
    request = req(
        system="You are terse.",
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                  {"role": "user", "content": "Again"}],
        temperature=0.3, top_p=0.8, stop=["END"], extra={"metadata": {"user_id": "u1"}},
    )
    await collect(anthropic_provider, request, cred(fake_llm))

    (recorded,) = fake_llm.requests
    assert recorded.path == "/v1/messages"
    assert recorded.headers["x-api-key"] == "sk-ant-test"
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in recorded.headers
    assert recorded.body == {
        "model": "ok",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
        "max_tokens": DEFAULT_MAX_TOKENS,
        "stream": True,
        "system": "You are terse.",
        "temperature": 0.3,
        "top_p": 0.8,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
    }


async def test_system_messages_move_to_the_system_field(fake_llm, anthropic_provider):
    request = req(
        system="Top.",
        messages=[{"role": "system", "content": "Chat rule."}, {"role": "user", "content": "Hi"}],
        max_tokens=64,
    )
    await collect(anthropic_provider, request, cred(fake_llm))
    body = fake_llm.requests[0].body
    assert body["system"] == "Top.\n\nChat rule."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["max_tokens"] == 64


def test_base_url_with_or_without_v1():
    provider = AnthropicProvider()
    for base in ("https://proxy.example", "https://proxy.example/", "https://proxy.example/v1"):
        url, _, _ = provider.prepare(req(), Credential(api_key="k", base_url=base))
        assert url == "https://proxy.example/v1/messages"
    url, _, _ = provider.prepare(req(), Credential(api_key="k"))
    assert url == "https://api.anthropic.com/v1/messages"


def test_an_api_key_is_required():
    with pytest.raises(ProviderError) as info:
        AnthropicProvider().prepare(req(), Credential(api_key=None))
    assert not info.value.retryable and "API key" in info.value.message


async def test_usage_is_estimated_when_the_stream_has_none(fake_llm, anthropic_provider):
    request = req("no-usage")
    events = await collect(anthropic_provider, request, cred(fake_llm))
    assert events[-1] == UsageReport(
        input_tokens=count_message_tokens(request.messages),
        output_tokens=count_tokens(fake_llm.reply),
        reported=False,
    )


async def test_cache_reads_count_as_input_and_are_reported_as_cached(fake_llm, anthropic_provider):
    fake_llm.cached_input_tokens = 10
    events = await collect(anthropic_provider, req(), cred(fake_llm))
    assert events[-1] == UsageReport(17, 11, True, cached_input_tokens=10)


async def test_auth_error_surfaces_the_providers_message(fake_llm, anthropic_provider):
    error, events = await failure(anthropic_provider, req("auth-error"), cred(fake_llm))
    assert events == [] and error.status == 401 and not error.retryable
    assert "invalid x-api-key" in error.message


async def test_bad_request_is_not_retryable(fake_llm, anthropic_provider):
    error, _ = await failure(anthropic_provider, req("bad-request"), cred(fake_llm))
    assert error.status == 400 and not error.retryable and "temperature: must be at most 1" in error.message


async def test_rate_limit_and_server_error_are_retryable(fake_llm, anthropic_provider):
    error, _ = await failure(anthropic_provider, req("rate-limit"), cred(fake_llm))
    assert error.status == 429 and error.retryable and error.retry_after == 1.0
    error, _ = await failure(anthropic_provider, req("server-error"), cred(fake_llm))
    assert error.status == 500 and error.retryable


async def test_overloaded_error_event_is_retryable(fake_llm, anthropic_provider):
    error, events = await failure(anthropic_provider, req("stream-error"), cred(fake_llm))
    assert len(events) == 2
    assert error.retryable and error.status == 529
    assert "overloaded_error" in error.message and "Overloaded" in error.message


async def test_read_timeout_is_retryable(fake_llm, anthropic_provider):
    started = time.monotonic()
    error, _ = await failure(anthropic_provider, req("slow", timeout=0.3), cred(fake_llm))
    assert error.retryable and "timeout" in error.message
    assert time.monotonic() - started < 2.0


async def test_malformed_stream_is_not_retryable(fake_llm, anthropic_provider):
    error, events = await failure(anthropic_provider, req("malformed"), cred(fake_llm))
    assert events == [] and not error.retryable and "malformed" in error.message


@pytest.mark.parametrize("behaviour", ["cut", "truncated"])
async def test_a_stream_cut_midway_is_a_retryable_error(fake_llm, anthropic_provider, behaviour):
    error, events = await failure(anthropic_provider, req(behaviour), cred(fake_llm))
    assert [e.text for e in events] == fake_llm._chunks()[:2]
    assert error.retryable


async def test_cancelling_the_consumer_closes_the_http_stream(fake_llm, anthropic_provider):
    first = asyncio.Event()

    async def consume():
        async for _ in anthropic_provider.stream(req("slow-stream", timeout=10), cred(fake_llm)):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake_llm.wait_for_disconnect, 0, 3.0)
