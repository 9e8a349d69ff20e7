"""The built-in echo provider: exact output, stream shape, estimated usage."""
from __future__ import annotations

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
from app.providers.echo import EchoProvider, render_echo

NO_DELAY = {"chunkDelayMs": 0}


async def run(request: ProviderRequest) -> list:
    return [event async for event in EchoProvider().stream(request, Credential())]


def text_of(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_a_text_prompt_is_echoed_exactly_without_its_system_prompt():
    text = "Summarise:\n  the quick brown fox — ünïcödé ✓ 🦊\n\ttrailing space "
    events = await run(ProviderRequest(
        model="echo-1", messages=[{"role": "user", "content": text}], system="Be brief.", extra=NO_DELAY,
    ))
    assert text_of(events) == text


async def test_a_chat_prompt_is_echoed_as_role_lines_with_the_system_prompt_first():
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Two\nlines"},
    ]
    events = await run(ProviderRequest(model="echo-1", messages=messages, system="Be kind.", extra=NO_DELAY))
    assert text_of(events) == "system: Be kind.\nuser: Hi\nassistant: Hello!\nuser: Two\nlines"


def test_the_rule_for_single_and_non_user_messages():
    assert render_echo([{"role": "user", "content": "x"}]) == "x"
    assert render_echo([{"role": "assistant", "content": "x"}]) == "assistant: x"
    assert render_echo([{"role": "system", "content": "s"}]) == "system: s"
    assert render_echo([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "user: a\nuser: b"
    assert render_echo([]) == ""
    assert render_echo([], system="only") == "system: only"
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "b"}]
    assert render_echo([{"role": "user", "content": parts}]) == "ab"


async def test_chunk_size_shapes_the_deltas():
    text = "abcdefghijklmnopqrstuvwxyz"
    events = await run(ProviderRequest(
        model="echo-1", messages=[{"role": "user", "content": text}], extra={"chunkSize": 5, "chunkDelayMs": 0},
    ))
    assert [e.text for e in events[:-1]] == ["abcde", "fghij", "klmno", "pqrst", "uvwxy", "z"]


async def test_default_chunks_are_16_characters():
    text = "x" * 40
    events = await run(ProviderRequest(model="echo-1", messages=[{"role": "user", "content": text}], extra=NO_DELAY))
    assert [len(e.text) for e in events[:-1]] == [16, 16, 8]


async def test_chunk_delay_paces_the_stream():
    request = ProviderRequest(
        model="echo-1", messages=[{"role": "user", "content": "y" * 10}], extra={"chunkSize": 2, "chunkDelayMs": 40},
    )
    arrivals = []
    started = time.monotonic()
    async for event in EchoProvider().stream(request, Credential()):
        arrivals.append(time.monotonic() - started)
    # 5 chunks: the first at once, four pauses of 40 ms between them
    assert arrivals[0] < 0.03
    assert arrivals[4] >= 0.16
    assert all(b - a >= 0.035 for a, b in zip(arrivals[:4], arrivals[1:5]))


async def test_usage_is_estimated_and_not_reported():
    messages = [{"role": "user", "content": "Count these words, please."}]
    events = await run(ProviderRequest(model="echo-1", messages=messages, system="sys", extra=NO_DELAY))
    assert events[-1] == UsageReport(
        input_tokens=count_message_tokens(messages, "sys"),
        output_tokens=count_tokens("Count these words, please."),
        reported=False,
    )
    assert sum(isinstance(e, UsageReport) for e in events) == 1


async def test_an_empty_prompt_gives_only_usage():
    events = await run(ProviderRequest(model="echo-1", messages=[{"role": "user", "content": ""}]))
    assert len(events) == 1 and events[0].output_tokens == 0


@pytest.mark.parametrize("extra", [{"chunkSize": 0}, {"chunkSize": "4"}, {"chunkSize": True},
                                   {"chunkDelayMs": -1}, {"chunkDelayMs": 10**6}])
async def test_a_bad_stream_shape_is_a_clear_non_retryable_error(extra):
    with pytest.raises(ProviderError) as info:
        await run(ProviderRequest(model="echo-1", messages=[{"role": "user", "content": "x"}], extra=extra))
    assert not info.value.retryable
    assert "extra.chunk" in info.value.message


def test_echo_needs_no_key():
    provider = EchoProvider()
    assert provider.name == "echo" and provider.requires_api_key is False and provider.supports_streaming
