"""Refuse request bodies over the limit (PROMPTSTUDIO_MAX_BODY_BYTES) before anything parses them,
and end quietly when a client disconnects before its request body arrived. Paths that enforce limits
of their own (``/v1/traces``: PROMPTSTUDIO_INGEST_MAX_BODY_BYTES, before and after decompression) are
exempt."""
from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[str, ...] = ()):
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        too_large = JSONResponse(
            {"errors": [{"message": f"Request body is larger than the limit of {self.max_bytes} bytes.",
                         "extensions": {"code": "PAYLOAD_TOO_LARGE"}}]}, status_code=413)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > self.max_bytes:
                        await too_large(scope, receive, send)
                        return
                except ValueError:
                    pass
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await too_large(scope, receive, send)
        except ClientDisconnect:
            # the client went away before sending its whole request: nobody to answer, nothing to log
            return
