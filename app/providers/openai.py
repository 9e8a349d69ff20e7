"""``openai``: any OpenAI-compatible Chat Completions API (OpenAI, OpenRouter, Ollama, vLLM, ...).

Request: ``POST {base_url}/chat/completions`` with ``stream: true`` and
``stream_options: {"include_usage": true}``; the system prompt goes first as a ``system``
message; ``extra`` is merged into the body as is (so provider-specific parameters such as
``seed``, ``response_format`` or ``reasoning_effort`` pass through).

Response: Server-Sent Events, each ``data:`` a ``chat.completion.chunk`` JSON object; text in
``choices[0].delta.content``; with ``include_usage`` a last chunk with empty ``choices`` carries
``usage`` (``prompt_tokens``, ``completion_tokens``, ``prompt_tokens_details.cached_tokens``);
the stream ends with ``data: [DONE]``. A server that ignores ``stream`` and answers with a plain
``chat.completion`` JSON body is understood too.

The API key is sent as ``Authorization: Bearer``. It is required for the default base URL
(api.openai.com); with another base URL (a local Ollama or vLLM) it may be omitted.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from ._http import HTTPProvider, iter_sse, malformed, read_json_body, stream_cut
from .base import (
    Credential,
    ProviderError,
    ProviderRequest,
    StreamEvent,
    TextDelta,
    UsageReport,
    count_message_tokens,
    count_tokens,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Body keys we set ourselves; ``extra`` may not replace them.
RESERVED_KEYS = frozenset({"model", "messages", "stream"})


class OpenAIProvider(HTTPProvider):
    name = "openai"
    label = "OpenAI-compatible API"
    requires_api_key = True
    supports_streaming = True
    default_base_url: str | None = DEFAULT_BASE_URL

    def prepare(self, request: ProviderRequest, credential: Credential) -> tuple[str, dict, dict]:
        base = self.base_url(credential)
        official = (urlsplit(base).hostname or "").lower() == "api.openai.com"
        headers = {"accept": "text/event-stream"}
        if credential.api_key:
            headers["authorization"] = f"Bearer {credential.api_key}"
        elif official:
            raise ProviderError("no API key configured for OpenAI", retryable=False)

        messages: list[dict] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for message in request.messages:
            messages.append({"role": message.get("role", "user"), "content": message.get("content", "")})

        payload: dict = {
            "model": request.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.top_p is not None:
            payload["top_p"] = request.top_p
        if request.max_tokens is not None:
            # OpenAI itself deprecated max_tokens (its reasoning models reject it) in favour of
            # max_completion_tokens; compatible servers universally understand max_tokens.
            payload["max_completion_tokens" if official else "max_tokens"] = request.max_tokens
        if request.stop:
            payload["stop"] = list(request.stop)
        for key, value in (request.extra or {}).items():
            if key in RESERVED_KEYS:
                raise ProviderError(f"extra parameter {key!r} cannot be set; it is set by Prompt Studio")
            if key == "stream_options" and isinstance(value, dict):
                payload["stream_options"] = {**value, "include_usage": True}
            else:
                payload[key] = value
        return f"{base}/chat/completions", headers, payload

    async def parse(self, response: httpx.Response, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        content_type = response.headers.get("content-type", "").lower()
        if content_type.startswith("application/json"):
            async for event in self._parse_completion(response, request):
                yield event
            return

        output: list[str] = []
        usage: dict | None = None
        done = False
        finished = False
        async for sse in iter_sse(response.aiter_bytes()):
            data = sse.data.strip()
            if not data:
                continue  # an empty data line: a keep-alive some servers send
            if data == "[DONE]":
                done = True
                break
            if sse.event == "error":
                raise _stream_error(_loads(data, self.label), self.label)
            chunk = _loads(data, self.label)
            if not isinstance(chunk, dict):
                raise malformed(self.label, f"expected a JSON object, got {data[:200]!r}")
            if "error" in chunk and chunk.get("error"):
                raise _stream_error(chunk, self.label)
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            choices = chunk.get("choices")
            if choices is None:
                continue
            if not isinstance(choices, list):
                raise malformed(self.label, f"'choices' is not a list: {data[:200]!r}")
            for choice in choices:
                if not isinstance(choice, dict):
                    raise malformed(self.label, f"a choice is not an object: {data[:200]!r}")
                if choice.get("index", 0) != 0:
                    continue  # n > 1: only the first choice is the output
                delta = choice.get("delta") or {}
                if not isinstance(delta, dict):
                    raise malformed(self.label, f"'delta' is not an object: {data[:200]!r}")
                text = delta.get("content")
                if text is not None and not isinstance(text, str):
                    raise malformed(self.label, f"'delta.content' is not a string: {data[:200]!r}")
                if text:
                    output.append(text)
                    yield TextDelta(text)
                if choice.get("finish_reason"):
                    finished = True
        if not done and not finished:
            raise stream_cut(self.label, "no [DONE] and no finish_reason")
        # Some servers end without [DONE] after the finishing chunk: accepted as complete.
        yield _usage(usage, request, "".join(output))

    async def _parse_completion(self, response: httpx.Response, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        data = await read_json_body(response, self.label)
        if not isinstance(data, dict):
            raise malformed(self.label, "expected a chat.completion object")
        if data.get("error"):
            raise _stream_error(data, self.label)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise malformed(self.label, "chat.completion without choices")
        message = choices[0].get("message") or {}
        text = message.get("content") if isinstance(message, dict) else None
        if text is not None and not isinstance(text, str):
            raise malformed(self.label, "'message.content' is not a string")
        if text:
            yield TextDelta(text)
        yield _usage(data.get("usage") if isinstance(data.get("usage"), dict) else None, request, text or "")


def _loads(data: str, label: str) -> object:
    try:
        return json.loads(data)
    except ValueError:
        raise malformed(label, f"a data line is not JSON: {data[:200]!r}") from None


_RETRYABLE_ERROR_HINTS = ("rate_limit", "server_error", "overloaded", "timeout", "unavailable", "internal")


def _stream_error(payload: object, label: str) -> ProviderError:
    """An error sent inside the stream (OpenRouter, vLLM and others do this after a 200)."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):
        error = {"message": error}
    if not isinstance(error, dict):
        return malformed(label, f"unrecognised error event: {str(payload)[:200]!r}")
    message = error.get("message") or json.dumps(error)
    code = error.get("code")
    kind = str(error.get("type") or "")
    status = code if isinstance(code, int) else None
    hint = f"{kind} {code}".lower()
    retryable = (status is not None and (status == 429 or status >= 500)) or any(
        h in hint for h in _RETRYABLE_ERROR_HINTS
    )
    return ProviderError(f"{label} reported an error: {message}", retryable=retryable, status=status)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(usage: dict | None, request: ProviderRequest, output: str) -> UsageReport:
    prompt = _int((usage or {}).get("prompt_tokens"))
    completion = _int((usage or {}).get("completion_tokens"))
    cached = 0
    details = (usage or {}).get("prompt_tokens_details")
    if isinstance(details, dict):
        cached = _int(details.get("cached_tokens")) or 0
    reported = prompt is not None and completion is not None
    if prompt is None:
        prompt = count_message_tokens(request.messages, request.system)
    if completion is None:
        completion = count_tokens(output)
    return UsageReport(
        input_tokens=prompt,
        output_tokens=completion,
        reported=reported,
        cached_input_tokens=min(cached, prompt),
    )
