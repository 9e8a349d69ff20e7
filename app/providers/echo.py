"""``echo``: a built-in, offline, deterministic provider that streams back the rendered prompt.

For demos and tests without credentials or network. No API key, any model name.

**The output rule** (exact, character for character):

- If ``messages`` is exactly one message and its role is ``user``, the output is that message's
  content, verbatim. The system prompt is *not* echoed in this case. This is how a TEXT prompt
  arrives (the execution engine sends ``[{"role": "user", "content": rendered_text}]`` with
  ``system=systemPrompt``), so a TEXT prompt's echo output is exactly its rendered text.
- Otherwise (several messages, or a message whose role is not ``user``): one line
  ``"{role}: {content}"`` per message, in order, preceded by ``"system: {system}"`` when a system
  prompt is given, all joined with ``"\\n"`` (no trailing newline). This is how a CHAT prompt
  arrives (its rendered messages, ``system=systemPrompt``).
- A message's content that is a list of content parts is echoed as the concatenation of its text
  parts.

So a CHAT prompt made of a single user message is indistinguishable from a TEXT prompt, and is
echoed as its content alone.

**Stream shape**, from ``request.extra``: ``chunkSize`` (characters per :class:`TextDelta`,
default 16) and ``chunkDelayMs`` (pause before each chunk after the first, default 30 ms).
Sampling parameters (temperature, max_tokens, stop, ...) are accepted and ignored: the output is
always the whole rendered prompt.

**Usage** is estimated with :func:`count_tokens` (input as a chat request, output as text), so
``reported`` is False.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

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

DEFAULT_CHUNK_SIZE = 16
DEFAULT_CHUNK_DELAY_MS = 30
MAX_CHUNK_DELAY_MS = 10_000


def render_echo(messages: list[dict], system: str | None = None) -> str:
    """The echo output for ``messages`` and ``system`` (see the module docstring)."""
    if len(messages) == 1 and messages[0].get("role", "user") == "user":
        return message_text(messages[0].get("content"))
    lines = [f"system: {system}"] if system else []
    for message in messages:
        lines.append(f"{message.get('role', 'user')}: {message_text(message.get('content'))}")
    return "\n".join(lines)


def _stream_shape(extra: dict | None) -> tuple[int, float]:
    extra = extra or {}
    size = extra.get("chunkSize", DEFAULT_CHUNK_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ProviderError(f"extra.chunkSize must be a whole number of characters, 1 or more (got {size!r})")
    delay = extra.get("chunkDelayMs", DEFAULT_CHUNK_DELAY_MS)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_CHUNK_DELAY_MS:
        raise ProviderError(
            f"extra.chunkDelayMs must be a number of milliseconds from 0 to {MAX_CHUNK_DELAY_MS} (got {delay!r})"
        )
    return size, delay / 1000.0


class EchoProvider:
    name = "echo"
    requires_api_key = False
    supports_streaming = True
    default_base_url: str | None = None

    async def stream(self, request: ProviderRequest, credential: Credential) -> AsyncGenerator[StreamEvent, None]:
        size, delay = _stream_shape(request.extra)
        output = render_echo(request.messages, request.system)
        for index in range(0, len(output), size):
            if index and delay:
                await asyncio.sleep(delay)
            yield TextDelta(output[index : index + size])
        yield UsageReport(
            input_tokens=count_message_tokens(request.messages, request.system),
            output_tokens=count_tokens(output),
            reported=False,
        )

    async def aclose(self) -> None:
        """Nothing to release."""
