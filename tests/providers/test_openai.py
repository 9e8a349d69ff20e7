"""The OpenAI-compatible provider against a real HTTP server speaking the protocol."""
from __future__ import annotations

import asyncio
import socket
import time

import pytest

from app.providers.base import (
    Credential,
    ProviderError,
    ProviderRequest,
    TextDelta,
    UsageReport,
    count_message_tokens,
    count_tokens,
)
from app.providers.openai import OpenAIProvider

from .fake_llm_server import AUTH_ERROR_MESSAGE


def req(model: str = "ok", **kwargs) -> ProviderRequest:
    kwargs.setdefault("messages", [{"role": "user", "content": "Say hello."}])
    kwargs.setdefault("timeout", 2.0)
    return ProviderRequest(model=model, **kwargs)


def cred(server, key: str | None = "sk-test") -> Credential:
    return Credential(api_key=key, base_url=server.openai_base_url)


async def collect(provider, request, credential) -> list:
    return [event async for event in provider.stream(request, credential)]


async def failure(provider, request, credential) -> tuple[ProviderError, list]:
    events: list = []
    with pytest.raises(ProviderError) as info:
        async for event in provider.stream(request, credential):
            events.append(event)
    return info.value, events


async def test_streams_each_chunk_as_its_own_delta_then_usage(fake_llm, openai_provider):
    events = await collect(openai_provider, req(), cred(fake_llm))

    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert [d.text for d in deltas] == fake_llm._chunks()
    assert len(deltas) > 5
    assert "".join(d.text for d in deltas) == fake_llm.reply
    assert events[-1] == UsageReport(input_tokens=17, output_tokens=11, reported=True, cached_input_tokens=0)
    assert sum(isinstance(e, UsageReport) for e in events) == 1


async def test_sends_the_chat_completions_request(fake_llm, openai_provider):
    request = req(
        system="You are terse.",
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                  {"role": "user", "content": "Again"}],
        temperature=0.2, top_p=0.9, max_tokens=50, stop=["\n\n"], extra={"seed": 7, "user": "u1"},
    )
    await collect(openai_provider, request, cred(fake_llm))

    (recorded,) = fake_llm.requests
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.headers["content-type"] == "application/json"
    assert recorded.body == {
        "model": "ok",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 50,
        "stop": ["\n\n"],
        "seed": 7,
        "user": "u1",
    }
    assert recorded.completed


def test_official_openai_gets_max_completion_tokens_and_needs_a_key():
    provider = OpenAIProvider()
    url, headers, payload = provider.prepare(req(max_tokens=10), Credential(api_key="sk-x", base_url=None))
    assert url == "https://api.openai.com/v1/chat/completions"
    assert headers["authorization"] == "Bearer sk-x"
    assert payload["max_completion_tokens"] == 10 and "max_tokens" not in payload

    with pytest.raises(ProviderError) as info:
        provider.prepare(req(), Credential(api_key=None, base_url=None))
    assert not info.value.retryable and "API key" in info.value.message


async def test_key_is_optional_for_a_self_hosted_server(fake_llm, openai_provider):
    events = await collect(openai_provider, req(), cred(fake_llm, key=None))
    assert isinstance(events[-1], UsageReport)
    assert "authorization" not in fake_llm.requests[0].headers


async def test_extra_cannot_replace_what_we_set(fake_llm, openai_provider):
    error, _ = await failure(openai_provider, req(extra={"stream": False}), cred(fake_llm))
    assert not error.retryable and "'stream'" in error.message
    assert fake_llm.requests == []


async def test_usage_is_estimated_when_the_server_sends_none(fake_llm, openai_provider):
    request = req("no-usage", system="Be brief.")
    events = await collect(openai_provider, request, cred(fake_llm))
    assert events[-1] == UsageReport(
        input_tokens=count_message_tokens(request.messages, "Be brief."),
        output_tokens=count_tokens(fake_llm.reply),
        reported=False,
    )


async def test_cached_prompt_tokens_are_reported(fake_llm, openai_provider):
    fake_llm.cached_input_tokens = 5
    events = await collect(openai_provider, req(), cred(fake_llm))
    assert events[-1] == UsageReport(17, 11, True, cached_input_tokens=5)


async def test_a_plain_json_completion_is_understood(fake_llm, openai_provider):
    events = await collect(openai_provider, req("non-stream"), cred(fake_llm))
    assert events == [TextDelta(fake_llm.reply), UsageReport(17, 11, True)]


async def test_auth_error_surfaces_the_providers_message(fake_llm, openai_provider):
    error, events = await failure(openai_provider, req("auth-error"), cred(fake_llm))
    assert events == []
    assert error.status == 401 and not error.retryable and error.retry_after is None
    assert AUTH_ERROR_MESSAGE in error.message


async def test_wrong_key_is_rejected_by_the_server(fake_llm, openai_provider):
    fake_llm.api_key = "sk-right"
    error, _ = await failure(openai_provider, req(), cred(fake_llm, key="sk-wrong"))
    assert error.status == 401 and AUTH_ERROR_MESSAGE in error.message


async def test_bad_request_is_not_retryable(fake_llm, openai_provider):
    error, _ = await failure(openai_provider, req("bad-request"), cred(fake_llm))
    assert error.status == 400 and not error.retryable
    assert "Invalid value for 'temperature'." in error.message


async def test_rate_limit_is_retryable_and_carries_retry_after(fake_llm, openai_provider):
    error, _ = await failure(openai_provider, req("rate-limit"), cred(fake_llm))
    assert error.status == 429 and error.retryable and error.retry_after == 1.0
    assert "Rate limit reached" in error.message


async def test_server_error_is_retryable(fake_llm, openai_provider):
    error, _ = await failure(openai_provider, req("server-error"), cred(fake_llm))
    assert error.status == 500 and error.retryable


async def test_read_timeout_is_retryable_and_prompt(fake_llm, openai_provider):
    started = time.monotonic()
    error, _ = await failure(openai_provider, req("slow", timeout=0.3), cred(fake_llm))
    elapsed = time.monotonic() - started
    assert error.retryable and error.status is None and "timeout" in error.message
    assert 0.25 <= elapsed < 2.0


async def test_a_stall_mid_stream_times_out(fake_llm, openai_provider):
    error, events = await failure(openai_provider, req("slow-stream", timeout=0.3), cred(fake_llm))
    assert error.retryable and "timeout" in error.message
    assert [e.text for e in events] == fake_llm._chunks()[:1]


async def test_malformed_stream_is_not_retryable(fake_llm, openai_provider):
    error, events = await failure(openai_provider, req("malformed"), cred(fake_llm))
    assert events == [] and not error.retryable and "malformed" in error.message


@pytest.mark.parametrize("behaviour", ["cut", "truncated"])
async def test_a_stream_cut_midway_is_a_retryable_error(fake_llm, openai_provider, behaviour):
    error, events = await failure(openai_provider, req(behaviour), cred(fake_llm))
    assert [e.text for e in events] == fake_llm._chunks()[:2]  # what arrived was passed on
    assert not any(isinstance(e, UsageReport) for e in events)
    assert error.retryable


async def test_an_error_inside_the_stream_is_raised(fake_llm, openai_provider):
    error, events = await failure(openai_provider, req("stream-error"), cred(fake_llm))
    assert len(events) == 2
    assert error.retryable and error.status == 503 and "overloaded" in error.message


async def test_connection_refused_is_retryable(openai_provider):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    credential = Credential(api_key="k", base_url=f"http://127.0.0.1:{port}/v1")
    error, _ = await failure(openai_provider, req(), credential)
    assert error.retryable and "could not connect" in error.message


async def test_cancelling_the_consumer_closes_the_http_stream(fake_llm, openai_provider):
    first = asyncio.Event()

    async def consume():
        async for event in openai_provider.stream(req("slow-stream", timeout=10), cred(fake_llm)):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake_llm.wait_for_disconnect, 0, 3.0)
    assert time.monotonic() - started < 2.0  # not the 5 s the server would have stalled
    assert not fake_llm.requests[0].completed


async def test_closing_the_iterator_early_closes_the_http_stream(fake_llm, openai_provider):
    stream = openai_provider.stream(req("slow-stream", timeout=10), cred(fake_llm))
    assert isinstance(await stream.__anext__(), TextDelta)
    await stream.aclose()
    assert await asyncio.to_thread(fake_llm.wait_for_disconnect, 0, 3.0)


async def test_one_client_is_shared_and_can_be_closed(fake_llm, openai_provider):
    await collect(openai_provider, req(), cred(fake_llm))
    client = openai_provider._client
    await collect(openai_provider, req(), cred(fake_llm))
    assert openai_provider._client is client
    await openai_provider.aclose()
    assert client.is_closed and openai_provider._client is None
    events = await collect(openai_provider, req(), cred(fake_llm))  # reopens lazily
    assert isinstance(events[-1], UsageReport)
