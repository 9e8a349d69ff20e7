"""``anthropic``: the Anthropic Messages API, streamed.

Request: ``POST {base_url}/v1/messages`` with headers ``x-api-key`` and
``anthropic-version: 2023-06-01`` and body ``{"model", "messages", "max_tokens", "stream": true,
"system"?, "temperature"?, "top_p"?, "stop_sequences"?}`` plus ``extra`` merged as is.
``max_tokens`` is required by the API: :data:`DEFAULT_MAX_TOKENS` when the request names none.
The Messages API has no ``system`` role: the system prompt, and the content of any ``system``
messages of a chat prompt, go to the top-level ``system`` field (joined by a blank line).

Response: named SSE events — ``message_start`` (``message.usage.input_tokens``, plus
``cache_creation_input_tokens`` / ``cache_read_input_tokens``), ``content_block_start``,
``content_block_delta`` (``delta.type == "text_delta"`` carries ``delta.text``),
``content_block_stop``, ``message_delta`` (cumulative ``usage.output_tokens``), ``message_stop``,
``ping``, and ``error`` (``{"type": "error", "error": {"type": "overloaded_error", "message":
...}}``). Unknown event types are ignored, as Anthropic's versioning policy asks. A stream that
ends without ``message_stop`` was cut.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from ._http import HTTPProvider, iter_sse, malformed, stream_cut
from .base import (
    Credential,
    ProviderError,
    ProviderRequest,
    StreamEvent,
    TextDelta,
    UsageReport,
    count_message_tokens,
    count_tokens,
    message_text,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
RESERVED_KEYS = frozenset({"model", "messages", "stream"})

#: Error types of Anthropic's API and the HTTP status each one corresponds to.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
RETRYABLE_ERRORS = frozenset({"rate_limit_error", "api_error", "timeout_error", "overloaded_error"})


class AnthropicProvider(HTTPProvider):
    name = "anthropic"
    label = "Anthropic API"
    requires_api_key = True
    supports_streaming = True
    default_base_url: str | None = DEFAULT_BASE_URL

    def prepare(self, request: ProviderRequest, credential: Credential) -> tuple[str, dict, dict]:
        if not credential.api_key:
            raise ProviderError("no API key configured for Anthropic", retryable=False)
        base = self.base_url(credential)
        url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        headers = {
            "accept": "text/event-stream",
            "x-api-key": credential.api_key,
            "anthropic-version": ANTHROPIC_VERSION,
        }
        system_parts = [request.system] if request.system else []
        messages: list[dict] = []
        for message in request.messages:
            role = message.get("role", "user")
            if role == "system":
                text = message_text(message.get("content"))
                if text:
                    system_parts.append(text)
                continue
            messages.append({"role": role, "content": message.get("content", "")})

        payload: dict = {
            "model": request.model,
            "messages": messages,
            "max_tokens": request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system_parts:
            payload["system"] = "\n\n".join(system_parts)
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.stop:
            payload["stop_sequences"] = list(request.stop)
        for key, value in (request.extra or {}).items():
            if key in RESERVED_KEYS:
                raise ProviderError(f"extra parameter {key!r} cannot be set; it is set by Prompt Studio")
            payload[key] = value
        return url, headers, payload

    async def parse(self, response: httpx.Response, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        output: list[str] = []
        input_tokens: int | None = None
        cache_read = 0
        cache_write = 0
        output_tokens: int | None = None
        stopped = False
        started = False
        async for sse in iter_sse(response.aiter_bytes()):
            if not sse.data.strip():
                continue  # an empty data line: a keep-alive
            try:
                data = json.loads(sse.data)
            except ValueError:
                raise malformed(self.label, f"a data line is not JSON: {sse.data[:200]!r}") from None
            if not isinstance(data, dict):
                raise malformed(self.label, f"expected a JSON object, got {sse.data[:200]!r}")
            kind = data.get("type") or sse.event
            if kind == "error":
                raise _error_event(data, self.label)
            if kind == "message_start":
                started = True
                message = data.get("message")
                if not isinstance(message, dict):
                    raise malformed(self.label, "message_start without a message")
                usage = message.get("usage")
                if isinstance(usage, dict):
                    input_tokens = _int(usage.get("input_tokens"), input_tokens)
                    cache_read = _int(usage.get("cache_read_input_tokens"), cache_read) or 0
                    cache_write = _int(usage.get("cache_creation_input_tokens"), cache_write) or 0
                    output_tokens = _int(usage.get("output_tokens"), output_tokens)
            elif kind in ("content_block_start", "content_block_delta"):
                if not started:
                    raise malformed(self.label, f"{kind} before message_start")
                block = data.get("content_block" if kind == "content_block_start" else "delta")
                if not isinstance(block, dict):
                    raise malformed(self.label, f"{kind} without its block: {sse.data[:200]!r}")
                if block.get("type") in ("text", "text_delta"):
                    text = block.get("text")
                    if not isinstance(text, str):
                        raise malformed(self.label, f"{kind} text is not a string: {sse.data[:200]!r}")
                    if text:
                        output.append(text)
                        yield TextDelta(text)
                # thinking, tool input and signature deltas are not output text
            elif kind == "message_delta":
                usage = data.get("usage")
                if isinstance(usage, dict):  # cumulative counts
                    output_tokens = _int(usage.get("output_tokens"), output_tokens)
                    input_tokens = _int(usage.get("input_tokens"), input_tokens)
                    cache_read = _int(usage.get("cache_read_input_tokens"), cache_read) or 0
                    cache_write = _int(usage.get("cache_creation_input_tokens"), cache_write) or 0
            elif kind == "message_stop":
                stopped = True
                break
            # ping, content_block_stop and event types added later: nothing to do
        if not stopped:
            raise stream_cut(self.label, "no message_stop")

        reported = input_tokens is not None and output_tokens is not None
        if input_tokens is None:
            total_in = count_message_tokens(request.messages, request.system)
            cache_read = cache_write = 0
        else:
            # input_tokens excludes cached tokens on this API; the total is what the prompt cost.
            total_in = input_tokens + cache_read + cache_write
        if output_tokens is None:
            output_tokens = count_tokens("".join(output))
        yield UsageReport(
            input_tokens=total_in,
            output_tokens=output_tokens,
            reported=reported,
            cached_input_tokens=cache_read,
        )


def _int(value: object, default: int | None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return default


def _error_event(data: dict, label: str) -> ProviderError:
    error = data.get("error")
    if not isinstance(error, dict):
        return malformed(label, f"error event without an error object: {json.dumps(data)[:200]}")
    kind = str(error.get("type") or "error")
    message = error.get("message") or kind
    return ProviderError(
        f"{label} reported {kind}: {message}",
        retryable=kind in RETRYABLE_ERRORS,
        status=ERROR_STATUS.get(kind),
    )
