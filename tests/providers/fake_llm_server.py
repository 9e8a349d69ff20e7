"""A small, real HTTP server speaking the OpenAI Chat Completions and Anthropic Messages
streaming protocols, for tests that must exercise the real HTTP client code.

It runs uvicorn in a background thread on 127.0.0.1 and a free port::

    with FakeLLMServer() as server:
        Credential(api_key="k", base_url=server.openai_base_url)     # {url}/v1
        Credential(api_key="k", base_url=server.anthropic_base_url)  # {url}
        ...
        server.requests[-1].headers["x-api-key"]

Behaviour is chosen per request by the **model name**:

=================  ===========================================================================
``ok`` (or any     stream :attr:`reply` in word-sized chunks, then usage
unknown name)      (:attr:`input_tokens`, :attr:`output_tokens`) and the end marker
``no-usage``       like ok, but no usage anywhere in the stream
``rate-limit``     HTTP 429, ``Retry-After: 1`` (:attr:`retry_after`), an error JSON body
``server-error``   HTTP 500 with an error JSON body
``auth-error``     HTTP 401 with the provider's error JSON (message :data:`AUTH_ERROR_MESSAGE`)
``bad-request``    HTTP 400 with an error JSON body
``slow``           sleeps :attr:`slow_seconds` before answering at all
``slow-stream``    sends the first chunk, then sleeps :attr:`slow_seconds` (no bytes at all)
``malformed``      200 and a ``data:`` line that is not JSON
``cut``            sends two chunks, then drops the connection mid-body
``truncated``      sends two chunks, then ends the body cleanly without the end marker
``cut-early``      200 and the stream's opening event, then drops the connection before any text
``stream-error``   200, two chunks, then an in-stream error (Anthropic: ``overloaded_error``)
``non-stream``     OpenAI only: ignores ``stream`` and answers with a ``chat.completion`` JSON
=================  ===========================================================================

``<behaviour>-then-ok`` (e.g. ``rate-limit-then-ok``, ``server-error-then-ok``) behaves as
``<behaviour>`` for the first request with that model name and as ``ok`` afterwards.

Every request is recorded in :attr:`requests` (path, headers, JSON body, behaviour, and whether
the client disconnected before the stream finished: :meth:`wait_for_disconnect`).
When :attr:`api_key` is set, requests with another key get a 401, as the real APIs do. The
Anthropic endpoint also insists on the ``anthropic-version`` header and ``max_tokens``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

AUTH_ERROR_MESSAGE = "Incorrect API key provided: sk-bad***. You can find your API key in your account."
BEHAVIOURS = frozenset(
    {"ok", "no-usage", "rate-limit", "server-error", "auth-error", "bad-request", "slow",
     "slow-stream", "malformed", "cut", "cut-early", "truncated", "stream-error", "non-stream"}
)


class _CutConnection(Exception):
    """Raised inside a streaming body to make the server drop the connection mid-response."""


def _drop_cut_tracebacks(record: logging.LogRecord) -> bool:
    """uvicorn logs the exception that cuts a response; that one is intended, keep it quiet."""
    exc = record.exc_info[1] if record.exc_info else None
    while exc is not None:
        if isinstance(exc, _CutConnection):
            return False
        exc = exc.__cause__ or exc.__context__
    return True


@dataclass
class RecordedRequest:
    protocol: str  # "openai" | "anthropic"
    path: str
    headers: dict[str, str]
    body: dict | None
    model: str
    behaviour: str
    completed: bool = False
    _disconnected: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def disconnected(self) -> bool:
        return self._disconnected.is_set()


class FakeLLMServer:
    def __init__(
        self,
        *,
        reply: str = "Hello from the fake LLM! It streams its reply in several pieces.",
        input_tokens: int = 17,
        output_tokens: int = 11,
        cached_input_tokens: int = 0,
        slow_seconds: float = 5.0,
        chunk_delay: float = 0.005,
        retry_after: str = "1",
        api_key: str | None = None,
    ) -> None:
        self._defaults = {
            "reply": reply, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "cached_input_tokens": cached_input_tokens, "slow_seconds": slow_seconds,
            "chunk_delay": chunk_delay, "retry_after": retry_after, "api_key": api_key,
        }
        self.reply = reply
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cached_input_tokens = cached_input_tokens
        self.slow_seconds = slow_seconds
        self.chunk_delay = chunk_delay
        self.retry_after = retry_after
        self.api_key = api_key
        self._requests: list[RecordedRequest] = []
        self._seen: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
            ]
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeLLMServer is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def start(self) -> FakeLLMServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_config=None, log_level="warning", access_log=False, lifespan="off",
            http="h11", loop="asyncio", timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(_drop_cut_tracebacks)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-llm-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("FakeLLMServer did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Back to a fresh server: forget recorded requests and which ``-then-ok`` models were
        seen, and restore the settings given to the constructor (reply, usage, api_key, ...)."""
        with self._lock:
            self._requests.clear()
            self._seen.clear()
        for name, value in self._defaults.items():
            setattr(self, name, value)

    def wait_for_disconnect(self, index: int = -1, timeout: float = 5.0) -> bool:
        """Block until the client of request ``index`` disconnected mid-stream (True) or the
        timeout passed (False). Call it through ``asyncio.to_thread`` from async tests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            requests = self.requests
            if requests:
                return requests[index]._disconnected.wait(max(0.0, deadline - time.monotonic()))
            time.sleep(0.01)
        return False

    # ------------------------------------------------------------------ helpers

    def _behaviour(self, protocol: str, model: str) -> str:
        if model.endswith("-then-ok") and model[: -len("-then-ok")] in BEHAVIOURS:
            with self._lock:
                count = self._seen.get((protocol, model), 0)
                self._seen[(protocol, model)] = count + 1
            return model[: -len("-then-ok")] if count == 0 else "ok"
        return model if model in BEHAVIOURS else "ok"

    async def _record(self, request: Request, protocol: str) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        model = body.get("model", "") if isinstance(body, dict) else ""
        record = RecordedRequest(
            protocol=protocol,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body if isinstance(body, dict) else None,
            model=str(model),
            behaviour=self._behaviour(protocol, str(model)),
        )
        with self._lock:
            self._requests.append(record)
        return record

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up early when the server stops."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(0.05, remaining))

    def _chunks(self) -> list[str]:
        return re.findall(r"\S+\s*|\s+", self.reply) or [""]

    async def _tracked(self, record: RecordedRequest, body: AsyncIterator[str]) -> AsyncIterator[bytes]:
        try:
            async for piece in body:
                yield piece.encode("utf-8")
            record.completed = True
        except (asyncio.CancelledError, GeneratorExit):
            record._disconnected.set()  # Starlette cancels the body when the client goes away
            raise

    def _stream(self, record: RecordedRequest, body: AsyncIterator[str]) -> StreamingResponse:
        return StreamingResponse(
            self._tracked(record, body),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    def _error(self, status: int, payload: dict, headers: dict | None = None) -> Response:
        return JSONResponse(payload, status_code=status, headers=headers)

    # ------------------------------------------------------------------ OpenAI

    async def _openai(self, request: Request) -> Response:
        record = await self._record(request, "openai")
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._openai_error(401, AUTH_ERROR_MESSAGE, "invalid_request_error", "invalid_api_key")
        if record.body is None or not isinstance(record.body.get("messages"), list):
            return self._openai_error(400, "'messages' is a required property", "invalid_request_error", None)
        return await self._openai_behaviour(record)

    def _openai_error(self, status: int, message: str, kind: str, code: str | None, headers=None) -> Response:
        return self._error(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)

    async def _openai_behaviour(self, record: RecordedRequest) -> Response:
        b = record.behaviour
        if b == "rate-limit":
            return self._openai_error(
                429, "Rate limit reached for requests. Please try again in 1s.", "requests",
                "rate_limit_exceeded", {"retry-after": self.retry_after},
            )
        if b == "server-error":
            return self._openai_error(500, "The server had an error while processing your request.", "server_error", None)
        if b == "auth-error":
            return self._openai_error(401, AUTH_ERROR_MESSAGE, "invalid_request_error", "invalid_api_key")
        if b == "bad-request":
            return self._openai_error(400, "Invalid value for 'temperature'.", "invalid_request_error", None)
        if b == "slow":
            await self._sleep(self.slow_seconds)
        if b == "non-stream":
            record.completed = True
            return JSONResponse({
                "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": record.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": self.reply},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": self.input_tokens, "completion_tokens": self.output_tokens,
                          "total_tokens": self.input_tokens + self.output_tokens},
            })
        include_usage = bool((record.body.get("stream_options") or {}).get("include_usage"))
        return self._stream(record, self._openai_events(record, include_usage))

    async def _openai_events(self, record: RecordedRequest, include_usage: bool) -> AsyncIterator[str]:
        b = record.behaviour
        created = int(time.time())

        def chunk(delta: dict, finish: str | None = None, choices: bool = True, usage=None) -> str:
            payload = {
                "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                "model": record.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
            }
            if include_usage:
                payload["usage"] = usage
            return f"data: {json.dumps(payload)}\n\n"

        if b == "malformed":
            yield "data: {this is not json\n\n"
            return
        yield ": keep-alive comment\n\n"
        yield chunk({"role": "assistant", "content": ""})
        if b == "cut-early":
            raise _CutConnection("dropping the connection before any text")
        pieces = self._chunks()
        for i, piece in enumerate(pieces):
            if b in ("cut", "truncated", "stream-error") and i == 2:
                break
            if b == "slow-stream" and i == 1:
                await self._sleep(self.slow_seconds)
            yield chunk({"content": piece})
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        if b == "cut":
            raise _CutConnection("dropping the connection mid-stream")
        if b == "truncated":
            return
        if b == "stream-error":
            error = {"error": {"message": "The server is overloaded.", "type": "server_error", "code": 503}}
            yield f"data: {json.dumps(error)}\n\n"
            return
        yield chunk({}, finish="stop")
        if include_usage and b != "no-usage":
            usage = {
                "prompt_tokens": self.input_tokens,
                "completion_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cached_input_tokens},
            }
            yield chunk({}, choices=False, usage=usage)
        yield "data: [DONE]\n\n"

    # ------------------------------------------------------------------ Anthropic

    async def _anthropic(self, request: Request) -> Response:
        record = await self._record(request, "anthropic")
        if self.api_key is not None and record.headers.get("x-api-key") != self.api_key:
            return self._anthropic_error(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in record.headers:
            return self._anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")
        body = record.body
        if body is None or not isinstance(body.get("messages"), list):
            return self._anthropic_error(400, "invalid_request_error", "messages: Field required")
        if not isinstance(body.get("max_tokens"), int):
            return self._anthropic_error(400, "invalid_request_error", "max_tokens: Field required")
        if any(m.get("role") not in ("user", "assistant") for m in body["messages"]):
            return self._anthropic_error(400, "invalid_request_error", "messages: roles must be user or assistant")
        b = record.behaviour
        if b == "rate-limit":
            return self._anthropic_error(
                429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
                {"retry-after": self.retry_after},
            )
        if b == "server-error":
            return self._anthropic_error(500, "api_error", "Internal server error")
        if b == "auth-error":
            return self._anthropic_error(401, "authentication_error", "invalid x-api-key")
        if b == "bad-request":
            return self._anthropic_error(400, "invalid_request_error", "temperature: must be at most 1")
        if b == "slow":
            await self._sleep(self.slow_seconds)
        return self._stream(record, self._anthropic_events(record))

    def _anthropic_error(self, status: int, kind: str, message: str, headers=None) -> Response:
        return self._error(status, {"type": "error", "error": {"type": kind, "message": message}}, headers)

    async def _anthropic_events(self, record: RecordedRequest) -> AsyncIterator[str]:
        b = record.behaviour

        def event(name: str, payload: dict) -> str:
            return f"event: {name}\ndata: {json.dumps(payload)}\n\n"

        if b == "malformed":
            yield "event: message_start\ndata: {this is not json\n\n"
            return
        message = {
            "id": "msg_fake", "type": "message", "role": "assistant", "content": [],
            "model": record.model, "stop_reason": None, "stop_sequence": None,
        }
        if b != "no-usage":
            message["usage"] = {
                "input_tokens": self.input_tokens - self.cached_input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": self.cached_input_tokens,
                "output_tokens": 1,
            }
        yield event("message_start", {"type": "message_start", "message": message})
        if b == "cut-early":
            raise _CutConnection("dropping the connection before any text")
        yield event("content_block_start", {"type": "content_block_start", "index": 0,
                                            "content_block": {"type": "text", "text": ""}})
        yield event("ping", {"type": "ping"})
        for i, piece in enumerate(self._chunks()):
            if b in ("cut", "truncated", "stream-error") and i == 2:
                break
            if b == "slow-stream" and i == 1:
                await self._sleep(self.slow_seconds)
            yield event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": piece}})
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        if b == "cut":
            raise _CutConnection("dropping the connection mid-stream")
        if b == "truncated":
            return
        if b == "stream-error":
            yield event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
        delta: dict = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
        if b != "no-usage":
            delta["usage"] = {"output_tokens": self.output_tokens}
        yield event("message_delta", delta)
        yield event("message_stop", {"type": "message_stop"})
