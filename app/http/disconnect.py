"""Cancel the handling of an HTTP request whose client has gone away before its response started.

Once the request body has been read, nothing else arrives on an HTTP connection but a disconnect;
so from then on a watcher waits for it, and when it comes before the response has started (a
GraphQL operation still executing: every resolver, loader batch and render it awaits) the handler
is cancelled instead of running to an end nobody will read. Its ``async with`` blocks unwind as for
any cancellation: database sessions roll back and go back to the pool.

After the response has started (a streaming response, such as subscriptions over SSE or multipart
would be — the view serves subscriptions over WebSocket only today — and everything else once it
answers) nothing is cancelled here: the disconnect is handed to the app when it asks ``receive()``,
as before. WebSockets and lifespan pass through untouched.
"""
from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("promptstudio.http")

_DISCONNECT: Message = {"type": "http.disconnect"}


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = _Request(scope, receive)
        if not _has_body(scope):
            state.watch(read_body=True)  # a GET: the app may never ask for its (empty) body
        handler = state.handler = asyncio.ensure_future(self.app(scope, state.receive, state.send_through(send)))
        try:
            await handler
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if state.cancelled_for_disconnect and not (task is not None and task.cancelling()):
                log.info("%s %s: the client disconnected before the response; its handling was cancelled",
                         scope.get("method"), scope.get("path"))
                return
            raise
        finally:
            state.stop()


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
    return False


class _Request:
    """One request's receive side. The body goes to the app as it asks for it; after the body one
    watcher task owns the real ``receive()`` and waits for the disconnect."""

    def __init__(self, scope: Scope, receive: Receive):
        self.scope = scope
        self._receive = receive
        self.handler: asyncio.Future[None] | None = None
        self.watcher: asyncio.Task[None] | None = None
        #: A request without a body: its (empty) body messages, read by the watcher for the app (an ASGI
        #: server may send more than one, such as an empty chunk and then the end).
        self.body: asyncio.Queue[Message] | None = None
        self.body_read = False
        self.disconnected = asyncio.Event()
        self.response_started = False
        self.cancelled_for_disconnect = False

    async def receive(self) -> Message:
        if self.watcher is None:
            message = await self._receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                self.watch(read_body=False)
            return message
        if self.body is not None and not self.body_read:
            message = await self.body.get()
            if message["type"] != "http.request" or not message.get("more_body", False):
                self.body_read = True
            return message
        await self.disconnected.wait()  # nothing but a disconnect can come now; the watcher reads it
        return _DISCONNECT

    def send_through(self, send: Send) -> Send:
        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.response_started = True
            await send(message)

        return tracking_send

    def watch(self, *, read_body: bool) -> None:
        if read_body:
            self.body = asyncio.Queue()
        self.watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        message = await self._receive()
        if self.body is not None:
            while message["type"] == "http.request":
                self.body.put_nowait(message)
                more = message.get("more_body", False)
                message = await self._receive()
                if not more:
                    break
        while message["type"] != "http.disconnect":
            message = await self._receive()
        if self.body is not None:
            self.body.put_nowait(message)  # for an app still reading its body
        self.disconnected.set()
        if not self.response_started and self.handler is not None and not self.handler.done():
            self.cancelled_for_disconnect = True
            self.handler.cancel()

    def stop(self) -> None:
        if self.watcher is not None and not self.watcher.done():
            self.watcher.cancel()
