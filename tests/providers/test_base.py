"""SSE parsing, error mapping, token estimates, the registry and the pricing table."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime

import pytest

from app.providers import PROVIDERS, Provider, ProviderError, UnknownProvider, get_provider
from app.providers._http import (
    SSEEvent,
    error_from_status,
    extract_error_message,
    iter_sse,
    retry_after_from_headers,
    retry_after_seconds,
)
from app.providers.base import Credential, count_message_tokens, count_tokens
from app.providers.pricing import find_model_pricing, load_pricing, pricing_document


async def parse(*chunks: bytes) -> list[SSEEvent]:
    async def source():
        for chunk in chunks:
            yield chunk

    return [event async for event in iter_sse(source())]


# --------------------------------------------------------------------------- SSE

STREAM = (
    "\ufeff: a comment\n"
    "data: one\n\n"
    "event: custom\r\n"
    "data: line 1\r\n"
    "data:line 2\r\n"
    "id: 7\r\n\r\n"
    "data: cr\r\r"
    ": keep-alive\n\n"
    "retry: 100\n"
    "data\n\n"
    "data: ünïcödé ✓\n\n"
).encode()
EXPECTED = [
    SSEEvent("message", "one"),
    SSEEvent("custom", "line 1\nline 2", "7"),
    SSEEvent("message", "cr", "7"),
    SSEEvent("message", "", "7"),
    SSEEvent("message", "ünïcödé ✓", "7"),
]


async def test_sse_parses_the_spec_cases():
    assert await parse(STREAM) == EXPECTED


async def test_sse_does_not_care_where_chunks_split():
    assert await parse(*[STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED
    assert await parse(STREAM[:37], STREAM[37:90], STREAM[90:]) == EXPECTED


async def test_sse_end_of_stream():
    # an event whose lines all arrived is kept even without the final blank line
    assert await parse(b"data: a\n\ndata: b\n") == [SSEEvent("message", "a"), SSEEvent("message", "b")]
    # a line cut in the middle is dropped, never handed to a JSON parser
    assert await parse(b'data: a\n\ndata: {"cho') == [SSEEvent("message", "a")]
    assert await parse(b"data: a\r") == [SSEEvent("message", "a")]
    assert await parse(b"") == []


# --------------------------------------------------------------------------- errors


def test_retry_after_values():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("2", now=now) == 2.0
    assert retry_after_seconds(" 1.5 ", now=now) == 1.5
    assert retry_after_seconds("-3", now=now) == 0.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon", now=now) is None
    assert retry_after_seconds("nan") is None
    assert retry_after_seconds(None) is None
    assert retry_after_from_headers({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_from_headers({"retry-after": "9"}) == 9.0
    assert retry_after_from_headers({}) is None


def test_provider_messages_are_extracted_from_error_bodies():
    assert extract_error_message(b'{"error": {"message": "Bad key", "type": "x"}}') == "Bad key"
    assert extract_error_message(b'{"type": "error", "error": {"type": "t", "message": "Nope"}}') == "Nope"
    assert extract_error_message(b'{"error": "model not found"}') == "model not found"
    assert extract_error_message(b'{"detail": "Not Found"}') == "Not Found"
    assert extract_error_message(b"<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"
    assert extract_error_message(b"") is None


@pytest.mark.parametrize(
    "status, retryable",
    [(400, False), (401, False), (403, False), (404, False), (413, False), (422, False),
     (408, True), (429, True), (500, True), (502, True), (503, True), (529, True)],
)
def test_which_statuses_are_retryable(status, retryable):
    error = error_from_status("X", status, {"retry-after": "3"}, b'{"error": {"message": "m"}}')
    assert error.retryable is retryable and error.status == status
    assert error.message == f"X returned HTTP {status}: m"
    assert error.retry_after == (3.0 if retryable else None)


def test_the_providers_should_retry_header_wins():
    assert error_from_status("X", 409, {"x-should-retry": "true"}, b"").retryable
    assert not error_from_status("X", 503, {"x-should-retry": "false"}, b"").retryable


# --------------------------------------------------------------------------- tokens


def test_token_estimates():
    assert count_tokens("") == 0
    assert count_tokens("hello") == 1
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("internationalization") == 1 + 4  # 20 letters: 6, then 4 per piece
    assert count_tokens("1234567") == 3  # 123 456 7
    assert count_tokens("a\n\n\nb") == 3
    assert count_tokens("日本語") == 3
    assert count_tokens("x " * 100) == 100
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert count_tokens(text) == 20 * count_tokens("The quick brown fox jumps over the lazy dog.")
    # about one token per four characters of English, like real tokenizers
    assert 0.15 <= count_tokens(text) / len(text) <= 0.35


def test_message_token_estimate_adds_overheads():
    messages = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]
    assert count_message_tokens(messages) == 3 + (1 + 4) + (2 + 4)
    assert count_message_tokens(messages, "sys") == count_message_tokens(messages) + 1 + 4


# --------------------------------------------------------------------------- registry


def test_registry_hands_out_one_instance_per_provider():
    assert [info.name for info in PROVIDERS] == ["openai", "anthropic", "echo"]
    for info in PROVIDERS:
        provider = get_provider(info.name)
        assert provider is get_provider(info.name)
        assert isinstance(provider, Provider)
        assert provider.name == info.name
        assert provider.requires_api_key == info.requires_api_key
        assert provider.supports_streaming == info.supports_streaming
        assert provider.default_base_url == info.default_base_url


def test_unknown_provider():
    with pytest.raises(UnknownProvider) as info:
        get_provider("gemini")
    assert isinstance(info.value, ProviderError) and isinstance(info.value, LookupError)
    assert not info.value.retryable and info.value.name == "gemini"
    assert "anthropic, echo, openai" in info.value.message


# --------------------------------------------------------------------------- pricing


def test_pricing_table_shape():
    document = pricing_document()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", document["takenAt"]) and document["source"]
    models = load_pricing()
    ids = {(m["provider"], m["modelId"]) for m in models}
    for expected in [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"),
                     ("openai", "gpt-4.1-mini"), ("openai", "gpt-4.1-nano"), ("openai", "o3"),
                     ("openai", "o4-mini"), ("openai", "gpt-5"), ("openai", "gpt-5-mini"),
                     ("google", "gemini-2.5-pro"), ("google", "gemini-2.5-flash"),
                     ("google", "gemini-2.0-flash"), ("echo", "echo-1")]:
        assert expected in ids
    for model in models:
        for field in ("inputPricePerMillion", "outputPricePerMillion", "cachedInputPricePerMillion"):
            assert isinstance(model[field], str) and Decimal(model[field]) >= 0
        assert model["contextLength"] > 0 and model["maxOutputTokens"] > 0
        assert isinstance(model["supportsStreaming"], bool) and isinstance(model["supportsTools"], bool)
    load_pricing()[0]["modelId"] = "changed"
    assert load_pricing()[0]["modelId"] != "changed"  # callers get copies


def test_finding_a_models_price():
    assert find_model_pricing("gpt-4o")["inputPricePerMillion"] == "2.50"
    assert find_model_pricing("gpt-4o-mini-2024-07-18")["modelId"] == "gpt-4o-mini"
    assert find_model_pricing("GPT-4.1")["modelId"] == "gpt-4.1"
    assert find_model_pricing("claude-sonnet-4-0")["modelId"] == "claude-sonnet-4-20250514"
    assert find_model_pricing("claude-3-5-haiku-latest")["outputPricePerMillion"] == "4.00"
    assert find_model_pricing("anthropic/claude-opus-4")["inputPricePerMillion"] == "15.00"
    assert find_model_pricing("gemini-2.5-flash", provider="openai")["provider"] == "google"
    assert find_model_pricing("echo-1", provider="echo")["inputPricePerMillion"] == "0"
    assert find_model_pricing("llama3:8b") is None


def test_a_credentials_repr_hides_the_key():
    text = repr(Credential(api_key="sk-secret-123", base_url="http://x"))
    assert "sk-secret" not in text and "http://x" in text
