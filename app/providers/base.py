"""The one interface every LLM provider implements, and what goes through it.

A provider turns a :class:`ProviderRequest` (model, messages, sampling parameters) plus a
:class:`Credential` into an asynchronous stream of events: zero or more :class:`TextDelta`, then
exactly one :class:`UsageReport`. Failures are :class:`ProviderError`, which says whether trying
again may help (``retryable``) and how long the provider asked us to wait (``retry_after``).

:func:`stream_with_retries` wraps a provider call with the retry policy the execution engine
uses: retryable errors raised before any text has streamed are retried with exponential back-off;
once text has been handed to the caller, an error is re-raised and the caller decides.

Nothing in this package touches the database or GraphQL.
"""
from __future__ import annotations

import asyncio
import math
import random
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Credential",
    "Provider",
    "ProviderError",
    "ProviderRequest",
    "StreamEvent",
    "TextDelta",
    "UsageReport",
    "backoff_delay",
    "count_message_tokens",
    "count_tokens",
    "message_text",
    "stream_with_retries",
]


@dataclass
class ProviderRequest:
    """One call to a model.

    ``messages`` are ``{"role": ..., "content": ...}`` dicts in conversation order; ``system`` is
    the system prompt (each provider puts it where its API wants it). ``extra`` holds
    provider-specific parameters passed through to the API body unchanged (for ``echo``: the
    stream shape, see :mod:`app.providers.echo`). ``timeout`` is the longest wait, in seconds,
    for the provider's next bytes (connecting uses a shorter limit); it is not a deadline for the
    whole generation, which may stream for longer.
    """

    model: str
    messages: list[dict]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    extra: dict | None = None
    timeout: float = 120.0


@dataclass
class Credential:
    """Where and as whom to call a provider. ``None`` fields fall back to the provider's default
    (``base_url``) or mean "none configured" (``api_key``)."""

    api_key: str | None = None
    base_url: str | None = None

    def __repr__(self) -> str:  # never print a secret into a log line
        key = "set" if self.api_key else None
        return f"Credential(api_key={key!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text, in order. Concatenating all deltas gives the output."""

    text: str


@dataclass(frozen=True)
class UsageReport:
    """Token usage of the call; the last event of every stream.

    ``reported`` is True when the numbers came from the provider and False when we estimated them
    with :func:`count_tokens` (the provider sent none, or the provider is ``echo``).
    ``cached_input_tokens`` is the part of ``input_tokens`` served from the provider's prompt
    cache (billed at the cached-input price), 0 when unknown.
    """

    input_tokens: int
    output_tokens: int
    reported: bool
    cached_input_tokens: int = 0


StreamEvent = TextDelta | UsageReport


class ProviderError(Exception):
    """A provider call failed.

    ``message`` is meant for people (it carries the provider's own error message when there is
    one); ``retryable`` says whether the same call may succeed later (rate limits, 5xx, timeouts,
    dropped connections); ``retry_after`` is the wait in seconds the provider asked for, if it did;
    ``status`` is the HTTP status when the provider answered with one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, retryable={self.retryable}, "
            f"retry_after={self.retry_after}, status={self.status})"
        )


@runtime_checkable
class Provider(Protocol):
    """What the execution engine needs from a provider.

    ``stream`` is implemented as an ``async def`` generator: calling it returns an async iterator
    of :data:`StreamEvent` that ends with exactly one :class:`UsageReport`, or raises
    :class:`ProviderError`. Cancelling the consuming task, or closing the iterator (use
    ``contextlib.aclosing`` when you may stop early), closes the underlying HTTP stream at once.
    """

    name: str
    requires_api_key: bool
    supports_streaming: bool
    default_base_url: str | None

    def stream(self, request: ProviderRequest, credential: Credential) -> AsyncGenerator[StreamEvent, None]:
        ...

    async def aclose(self) -> None:
        """Release pooled connections (called at shutdown)."""
        ...


# --------------------------------------------------------------------------- token counting

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
_TOKEN_RE = re.compile(
    rf"""
      [{_CJK}]                       # CJK ideographs, kana, hangul: about one token each
    | (?:(?![{_CJK}])[^\W\d_])+      # a run of letters (any script): a word
    | \d{{1,3}}                      # numbers, in groups of up to three digits
    | (?:\r?\n)+                     # a run of line breaks
    | [^\s]                          # any other visible character: punctuation, symbols, emoji, _
    """,
    re.VERBOSE,
)


def count_tokens(text: str) -> int:
    """Estimate how many tokens ``text`` is, offline and deterministically.

    This is an approximation, not any model's real tokenizer (tiktoken would download its
    vocabulary at run time, which cannot work here). It follows how BPE tokenizers of current
    models behave on ordinary text: a word of up to six letters is one token and each further
    four letters add one; numbers count one token per group of up to three digits; every other
    visible character (punctuation, symbols, emoji) is one token; a run of line breaks is one
    token; other whitespace is free (it rides along with the next word); CJK characters count one
    token each. On English prose this gives about one token per four characters, the usual rule
    of thumb for real tokenizers; it was not calibrated against any particular model, so expect
    it to be off by a fair margin on code or unusual text. It is only used when a provider
    reports no usage (and by ``echo``), and such usage is marked ``reported=False``.
    """
    if not text:
        return 0
    total = 0
    for match in _TOKEN_RE.finditer(text):
        piece = match.group()
        if len(piece) > 6 and piece.isalpha():
            total += 1 + math.ceil((len(piece) - 6) / 4)
        else:
            total += 1
    return total


def message_text(content: Any) -> str:
    """The text of a message's ``content``: a string as is; a list of OpenAI-style content parts
    (``{"type": "text", "text": ...}``) joined; ``None`` as empty; anything else via ``str``."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(content)


#: Estimated per-message overhead of chat formats (role and delimiter tokens), and the tokens
#: that prime the assistant's reply. Same spirit as OpenAI's published counting recipe.
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3


def count_message_tokens(messages: list[dict], system: str | None = None) -> int:
    """Estimated input tokens of a chat request (see :func:`count_tokens`): the tokens of every
    message's content plus a fixed overhead per message, the system prompt counted as a message,
    plus the reply priming."""
    total = REPLY_PRIMING_TOKENS
    if system:
        total += count_tokens(system) + MESSAGE_OVERHEAD_TOKENS
    for message in messages:
        total += count_tokens(message_text(message.get("content"))) + MESSAGE_OVERHEAD_TOKENS
    return total


# --------------------------------------------------------------------------- retries

#: First back-off step in seconds; step n waits about BACKOFF_BASE * 2**(n-1).
BACKOFF_BASE_SECONDS = 0.5


def backoff_delay(
    retry_number: int,
    *,
    backoff_max: float,
    retry_after: float | None = None,
    base: float = BACKOFF_BASE_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``retry_number`` (1 for the first retry).

    When the provider said how long to wait (``retry_after``), that is honoured, capped at
    ``backoff_max``. Otherwise exponential back-off (``base * 2**(n-1)``, capped) with "equal
    jitter": a uniformly random value between half the step and the full step, so that many
    workers hit by the same outage do not retry in lockstep.
    """
    if backoff_max <= 0:
        return 0.0
    if retry_after is not None:
        return min(max(retry_after, 0.0), backoff_max)
    step = min(backoff_max, base * (2 ** max(retry_number - 1, 0)))
    jitter = (rng or random).uniform(0.5, 1.0)
    return step * jitter


OnRetry = Callable[[ProviderError, int, float], Awaitable[None]]


async def stream_with_retries(
    provider: Provider,
    request: ProviderRequest,
    credential: Credential,
    *,
    retries: int,
    backoff_max: float,
    on_retry: OnRetry | None = None,
) -> AsyncGenerator[StreamEvent, None]:
    """Stream from ``provider``, retrying retryable failures that happen before any output.

    ``retries`` is the number of extra calls after the first (0: no retry). A
    :class:`ProviderError` with ``retryable=True`` raised before the first :class:`TextDelta` was
    yielded leads to a wait (:func:`backoff_delay`, honouring the provider's ``retry_after``) and a
    new call; ``on_retry(error, retry_number, delay)`` is awaited before each wait so the caller can
    log it. Once text has been yielded, a failure is re-raised as is: the caller has already shown
    that text and decides what to do (a retry would produce different text). Non-retryable errors
    and the last retryable one are re-raised unchanged.

    The provider's stream is always closed before this generator returns or raises, and when the
    consumer closes or cancels it.
    """
    if retries < 0:
        raise ValueError("retries must be 0 or more")
    retry_number = 0
    while True:
        emitted_text = False
        try:
            async with aclosing(provider.stream(request, credential)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        emitted_text = True
                    yield event
            return
        except ProviderError as error:
            if emitted_text or not error.retryable or retry_number >= retries:
                raise
            retry_number += 1
            delay = backoff_delay(retry_number, backoff_max=backoff_max, retry_after=error.retry_after)
            if on_retry is not None:
                await on_retry(error, retry_number, delay)
            await asyncio.sleep(delay)
