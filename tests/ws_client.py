"""A real GraphQL-over-WebSocket client for tests: graphql-transport-ws and the legacy graphql-ws.

    async with GraphQLWebSocket(url, protocol="graphql-transport-ws", token=tok) as ws:
        async for payload in ws.subscribe(query, variables):
            ...   # each `next`/`data` payload ({"data": ..., "errors": ...}); ends on `complete`
"""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

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
                 header_token: str | None = None, timeout: float = 15.0):
        self.url = url.replace("http://", "ws://").rstrip("/") + ("" if url.endswith("/graphql") else "/graphql")
        self.protocol = protocol
        self.token = token
        self.header_token = header_token
        self.timeout = timeout
        self.ws: Any = None
        self._queues: dict[str, asyncio.Queue] = {}
        self._reader: asyncio.Task | None = None
        self.closed: asyncio.Future | None = None

    async def __aenter__(self) -> "GraphQLWebSocket":
        headers = {"Authorization": f"Bearer {self.header_token}"} if self.header_token else None
        self.ws = await websockets.connect(self.url, subprotocols=[self.protocol], additional_headers=headers,
                                           open_timeout=self.timeout)
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
            raise ConnectionRejected(exc.rcvd.code if exc.rcvd else None,
                                     exc.rcvd.reason if exc.rcvd else "") from None
        self.closed = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._reader:
            self._reader.cancel()
        await self.ws.close()

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
        except websockets.ConnectionClosed as exc:
            pass
        finally:
            code = self.ws.close_code
            for q in self._queues.values():
                await q.put({"type": "__closed__", "code": code, "reason": self.ws.close_reason})
            if self.closed and not self.closed.done():
                self.closed.set_result((code, self.ws.close_reason))

    async def subscribe(self, query: str, variables: dict | None = None, *,
                        timeout: float | None = None) -> AsyncIterator[dict]:
        op = uuid.uuid4().hex[:8]
        q: asyncio.Queue = asyncio.Queue()
        self._queues[op] = q
        start = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.ws.send(json.dumps({"id": op, "type": start,
                                       "payload": {"query": query, "variables": variables or {}}}))
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

    async def collect(self, query: str, variables: dict | None = None, *, limit: int | None = None,
                      timeout: float | None = None) -> list[dict]:
        out = []
        async for payload in self.subscribe(query, variables, timeout=timeout):
            out.append(payload)
            if limit is not None and len(out) >= limit:
                break
        return out
