"""A real GraphQL-over-WebSocket client for tests: graphql-transport-ws and the legacy graphql-ws.

    async with GraphQLWebSocket(url, protocol="graphql-transport-ws", token=tok) as ws:
        async for payload in ws.subscribe(query, variables):
            ...   # each `next`/`data` payload ({"data": ..., "errors": ...}); ends on `complete`

An `error` message (the operation failed before it started) is yielded as ``{"errors": [...]}``
and ends the stream. ``reading=False`` makes a client that does not read from its socket
(with ``recv_buffer`` shrinking the socket's receive buffer) until ``resume_reading()``: a slow
consumer that exerts real TCP back-pressure on the server.
"""
from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import websockets

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"


class ConnectionRejected(Exception):
    def __init__(self, code: int | None, reason: str):
        super().__init__(f"connection rejected ({code}): {reason}")
        self.code = code
        self.reason = reason


class GraphQLWebSocket:
    def __init__(self, url: str, *, protocol: str = TRANSPORT_WS, token: str | None = None,
                 header_token: str | None = None, timeout: float = 15.0, reading: bool = True,
                 recv_buffer: int | None = None, max_queue: int | None = 16, origin: str | None = None):
        self.url = url.replace("http://", "ws://").rstrip("/") + ("" if url.endswith("/graphql") else "/graphql")
        self.protocol = protocol
        self.token = token
        self.header_token = header_token
        self.timeout = timeout
        self.reading = reading
        self.recv_buffer = recv_buffer
        self.max_queue = max_queue
        #: The Origin header a browser would send (None: like a non-browser client, none).
        self.origin = origin
        self.ws: Any = None
        self._queues: dict[str, asyncio.Queue] = {}
        self._reader: asyncio.Task | None = None
        self.closed: asyncio.Future | None = None
        #: Messages that belonged to no known operation (e.g. late ones after a stop), for inspection.
        self.stray: list[dict] = []

    def _socket(self) -> socket.socket | None:
        if self.recv_buffer is None:
            return None
        parts = urlsplit(self.url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # set before connecting, so the advertised TCP window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.recv_buffer)
        sock.settimeout(self.timeout)
        sock.connect((parts.hostname, parts.port or 80))
        sock.setblocking(False)
        return sock

    async def __aenter__(self) -> "GraphQLWebSocket":
        headers = {"Authorization": f"Bearer {self.header_token}"} if self.header_token else None
        try:
            self.ws = await websockets.connect(self.url, subprotocols=[self.protocol], additional_headers=headers,
                                               open_timeout=self.timeout, sock=self._socket(),
                                               max_queue=self.max_queue, origin=self.origin)
        except websockets.InvalidStatus as exc:  # refused at the handshake (HTTP status instead of 101)
            raise ConnectionRejected(exc.response.status_code, exc.response.reason_phrase) from None
        payload = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        await self.ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            while True:
                msg = json.loads(await asyncio.wait_for(self.ws.recv(), self.timeout))
                if msg["type"] == "connection_ack":
                    break
                if msg["type"] == "connection_error":
                    raise ConnectionRejected(None, json.dumps(msg.get("payload")))
                # legacy keep-alives ("ka") may arrive before or after the ack
        except websockets.ConnectionClosed as exc:
            await self.ws.close()
            raise ConnectionRejected(exc.rcvd.code if exc.rcvd else None,
                                     exc.rcvd.reason if exc.rcvd else "") from None
        except BaseException:
            await self.ws.close()
            raise
        self.closed = asyncio.get_running_loop().create_future()
        if self.reading:
            self.resume_reading()
        return self

    async def __aexit__(self, *exc) -> None:
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.ws.close()

    def resume_reading(self) -> None:
        """Start reading the socket (a client made with ``reading=False`` reads nothing until then)."""
        self.reading = True
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if msg["type"] == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                    continue
                op = msg.get("id")
                if op in self._queues:
                    await self._queues[op].put(msg)
                elif msg["type"] not in ("ka", "pong"):
                    self.stray.append(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            code = self.ws.close_code
            for q in self._queues.values():
                await q.put({"type": "__closed__", "code": code, "reason": self.ws.close_reason})
            if self.closed and not self.closed.done():
                self.closed.set_result((code, self.ws.close_reason))

    async def start(self, query: str, variables: dict | None = None) -> str:
        """Send a subscribe/start message; returns the operation id (read it with ``stream``)."""
        op = uuid.uuid4().hex[:8]
        self._queues[op] = asyncio.Queue()
        start = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.ws.send(json.dumps({"id": op, "type": start,
                                       "payload": {"query": query, "variables": variables or {}}}))
        return op

    async def stop(self, op: str) -> None:
        """Stop an operation (``complete`` in graphql-transport-ws, ``stop`` in graphql-ws)."""
        await self.ws.send(json.dumps({"id": op, "type": "complete" if self.protocol == TRANSPORT_WS else "stop"}))

    async def stream(self, op: str, *, timeout: float | None = None) -> AsyncIterator[dict]:
        """The payloads of operation ``op`` until it completes (``timeout`` bounds each wait)."""
        q = self._queues[op]
        try:
            while True:
                msg = await asyncio.wait_for(q.get(), timeout or self.timeout)
                kind = msg["type"]
                if kind in ("next", "data"):
                    yield msg["payload"]
                elif kind == "error":
                    payload = msg.get("payload")
                    yield {"errors": payload if isinstance(payload, list) else [payload]}
                    return
                elif kind == "complete":
                    return
                elif kind == "__closed__":
                    raise ConnectionRejected(msg.get("code"), msg.get("reason") or "closed")
        finally:
            self._queues.pop(op, None)

    async def subscribe(self, query: str, variables: dict | None = None, *,
                        timeout: float | None = None) -> AsyncIterator[dict]:
        op = await self.start(query, variables)
        async for payload in self.stream(op, timeout=timeout):
            yield payload

    async def collect(self, query: str, variables: dict | None = None, *, limit: int | None = None,
                      timeout: float | None = None) -> list[dict]:
        out = []
        async for payload in self.subscribe(query, variables, timeout=timeout):
            out.append(payload)
            if limit is not None and len(out) >= limit:
                break
        return out
