"""HTTP plumbing shared by the providers that call a remote API (``openai``, ``anthropic``).

- :func:`iter_sse` parses a Server-Sent Events byte stream as the WHATWG spec describes it
  (``\\r\\n``/``\\r``/``\\n`` line ends, multi-line ``data``, ``:`` comments, ``event``/``id``).
- :func:`error_from_status` / :func:`error_from_transport` turn HTTP statuses and httpx
  exceptions into :class:`ProviderError` with the right ``retryable`` flag.
- :class:`HTTPProvider` owns one shared ``httpx.AsyncClient`` per provider instance (created on
  first use, closed by ``aclose()``), sends the request and hands the response to the subclass's
  parser, mapping every failure on the way.
"""
from __future__ import annotations

import asyncio
import codecs
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from .base import Credential, ProviderError, ProviderRequest, StreamEvent

#: Longest wait for a TCP/TLS connection, whatever the request's timeout.
CONNECT_TIMEOUT_SECONDS = 10.0
#: How much of an error body we read to find the provider's message.
MAX_ERROR_BODY_BYTES = 64 * 1024
USER_AGENT = "promptstudio/0.1 (+httpx)"


# --------------------------------------------------------------------------- SSE


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None


_EOL = re.compile(r"\r\n|\r|\n")


class _SSEDecoder:
    """Line-level state machine of the SSE spec ("interpreting an event stream")."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""
        self._last_id: str | None = None

    def feed_line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # comment (keep-alive)
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._last_id = value
        # "retry" and unknown fields are ignored
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(event=self._event or "message", data="\n".join(self._data), id=self._last_id)
        self._data = []
        self._event = ""
        return event

    def flush(self) -> SSEEvent | None:
        """At end of stream: the pending event, if its lines all arrived complete.

        The spec drops an event not terminated by a blank line; we keep one whose lines were all
        fully received (some servers omit the last blank line), while a line cut in the middle has
        already been dropped by the caller, so truncated JSON never reaches a parser.
        """
        return self._dispatch()


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """Parse an SSE byte stream into events. Bytes are decoded as UTF-8 (invalid sequences are
    replaced, as the spec says); a leading BOM is skipped."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    sse = _SSEDecoder()
    buffer = ""
    first = True
    async for chunk in chunks:
        buffer += decoder.decode(chunk)
        if first and buffer:
            buffer = buffer.removeprefix("\ufeff")
            first = False
        pos = 0
        for match in _EOL.finditer(buffer):
            if match.group() == "\r" and match.end() == len(buffer):
                break  # may be the first half of "\r\n"; wait for more bytes
            event = sse.feed_line(buffer[pos : match.start()])
            pos = match.end()
            if event is not None:
                yield event
        buffer = buffer[pos:]
    buffer += decoder.decode(b"", final=True)
    if buffer.endswith("\r"):
        event = sse.feed_line(buffer[:-1])
        buffer = ""
        if event is not None:
            yield event
    # whatever is left in ``buffer`` is a line cut in the middle: dropped
    event = sse.flush()
    if event is not None:
        yield event


# --------------------------------------------------------------------------- errors


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` value: delay-seconds (``"2"``, ``"1.5"``) or an HTTP-date.
    A date in the past gives 0; anything unparseable gives None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for: ``retry-after-ms`` (sent by OpenAI/Azure) wins over
    ``retry-after``."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms)
            if value >= 0 and value != float("inf"):
                return value / 1000.0
        except ValueError:
            pass
    return retry_after_seconds(headers.get("retry-after"))


def extract_error_message(body: bytes | str) -> str | None:
    """The provider's own message from an error body: ``{"error": {"message": ...}}`` (OpenAI,
    Anthropic), ``{"error": "..."}`` (Ollama), ``{"message"|"detail": ...}``; else the text."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = text.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return _shorten(text)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            if isinstance(message, str) and message.strip():
                return _shorten(message.strip())
            return _shorten(json.dumps(error))
        if isinstance(error, str) and error.strip():
            return _shorten(error.strip())
        for key in ("message", "detail"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return _shorten(value.strip())
            if value:
                return _shorten(json.dumps(value))
    return _shorten(text)


def _shorten(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_retryable_status(status: int) -> bool:
    """408 (request timeout), 429 (rate limited) and every 5xx (incl. Anthropic's 529
    "overloaded") may succeed later; other statuses (400, 401, 403, 404, 413, 422, ...) will not."""
    return status in (408, 429) or status >= 500


def error_from_status(label: str, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    message = extract_error_message(body) or httpx.codes.get_reason_phrase(status) or "no details"
    retryable = is_retryable_status(status)
    should_retry = (headers.get("x-should-retry") or "").strip().lower()
    if should_retry in ("true", "false"):  # the provider's own verdict wins (OpenAI, Anthropic)
        retryable = should_retry == "true"
    retry_after = retry_after_from_headers(headers) if retryable else None
    return ProviderError(
        f"{label} returned HTTP {status}: {message}",
        retryable=retryable,
        retry_after=retry_after,
        status=status,
    )


def error_from_transport(label: str, exc: Exception, timeout: float) -> ProviderError:
    """Map an httpx exception to a ProviderError. Timeouts, refused/reset connections and
    connections closed mid-response are retryable; protocol misuse and bad URLs are not."""
    if isinstance(exc, httpx.ConnectTimeout):
        return ProviderError(f"timed out connecting to {label}", retryable=True)
    if isinstance(exc, httpx.ReadTimeout):
        return ProviderError(
            f"{label} sent nothing for {timeout:g} s (read timeout)", retryable=True
        )
    if isinstance(exc, httpx.TimeoutException):  # write or pool timeout
        return ProviderError(f"timed out talking to {label} ({type(exc).__name__})", retryable=True)
    if isinstance(exc, httpx.RemoteProtocolError):
        # The server closed the connection before the response was complete (or broke HTTP).
        return ProviderError(
            f"{label} closed the connection before the response was complete: {exc}", retryable=True
        )
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)):
        return ProviderError(f"cannot call {label}: {exc}", retryable=False)
    if isinstance(exc, httpx.ConnectError):
        return ProviderError(f"could not connect to {label}: {exc}", retryable=True)
    if isinstance(exc, httpx.NetworkError):  # ReadError, WriteError, CloseError: e.g. reset
        return ProviderError(f"connection to {label} failed: {exc or type(exc).__name__}", retryable=True)
    if isinstance(exc, httpx.DecodingError):
        return ProviderError(f"{label} sent a body that could not be decoded: {exc}", retryable=False)
    if isinstance(exc, httpx.TransportError):  # proxy errors and the like
        return ProviderError(f"transport error talking to {label}: {exc}", retryable=True)
    return ProviderError(f"HTTP error talking to {label}: {exc}", retryable=False)


def malformed(label: str, what: str) -> ProviderError:
    """A response we cannot understand: retrying the same call would give the same garbage."""
    return ProviderError(f"{label} sent a malformed response: {what}", retryable=False)


def stream_cut(label: str, what: str) -> ProviderError:
    # Retryable: the provider accepted the request and was answering, then the stream ended
    # without its end marker (connection dropped, proxy timeout, provider restart). That is a
    # transient failure, and the same request may well succeed on another try. Whether to retry
    # is still the caller's decision once text was shown (stream_with_retries re-raises then).
    return ProviderError(f"{label} stream ended before it was complete ({what})", retryable=True)


# --------------------------------------------------------------------------- client


class HTTPProvider:
    """Base of the HTTP providers: one lazily created ``httpx.AsyncClient`` per instance.

    Subclasses implement :meth:`prepare` (URL, headers, body) and :meth:`parse` (response to
    events). :meth:`stream` sends the request with the request's timeouts, turns non-2xx answers
    into :class:`ProviderError` with the provider's message, and maps transport failures.
    Leaving the ``async with`` (normal end, error, ``aclose`` or cancellation) closes the
    response, which drops the connection when the body was not read to the end, so the provider
    stops generating.
    """

    name: str = ""
    label: str = ""
    requires_api_key: bool = True
    supports_streaming: bool = True
    default_base_url: str | None = None

    def __init__(self, *, max_connections: int = 100) -> None:
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._max_connections = max_connections

    def _get_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._client_loop is not loop:
            # Pooled connections belong to the event loop that opened them; a client used from a
            # new loop (tests, a restarted worker) starts a fresh pool.
            self._client = httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=self._max_connections,
                    max_keepalive_connections=min(20, self._max_connections),
                ),
                headers={"user-agent": USER_AGENT},
                follow_redirects=False,
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client, self._client_loop = self._client, None, None
        if client is not None and not client.is_closed:
            await client.aclose()

    @staticmethod
    def timeouts(request: ProviderRequest) -> httpx.Timeout:
        total = float(request.timeout)
        return httpx.Timeout(total, connect=min(CONNECT_TIMEOUT_SECONDS, total))

    def base_url(self, credential: Credential) -> str:
        base = (credential.base_url or self.default_base_url or "").strip().rstrip("/")
        if not base:
            raise ProviderError(f"no base URL configured for {self.label}", retryable=False)
        return base

    def prepare(self, request: ProviderRequest, credential: Credential) -> tuple[str, dict, dict]:
        raise NotImplementedError

    def parse(self, response: httpx.Response, request: ProviderRequest) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError

    async def stream(self, request: ProviderRequest, credential: Credential) -> AsyncGenerator[StreamEvent, None]:
        url, headers, payload = self.prepare(request, credential)
        try:
            body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ProviderError(f"request for {self.label} cannot be sent as JSON: {exc}") from exc
        headers = {"content-type": "application/json", **headers}
        client = self._get_client()
        try:
            async with client.stream(
                "POST", url, content=body, headers=headers, timeout=self.timeouts(request)
            ) as response:
                if not 200 <= response.status_code < 300:
                    error_body = await _read_limited(response, MAX_ERROR_BODY_BYTES)
                    raise error_from_status(self.label, response.status_code, response.headers, error_body)
                async for event in self.parse(response, request):
                    yield event
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise error_from_transport(self.label, exc, request.timeout) from exc


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


async def read_json_body(response: httpx.Response, label: str, limit: int = 32 * 1024 * 1024) -> object:
    """Read and parse a (non-streamed) JSON body, as malformed error when it is not JSON."""
    raw = await _read_limited(response, limit)
    try:
        return json.loads(raw)
    except ValueError:
        raise malformed(label, f"expected JSON, got {raw[:200]!r}") from None
