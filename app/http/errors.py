"""Exceptions that escape the routes are answered with JSON in the shape of a GraphQL response.

Without this, Starlette answers a plain-text 500. With it:

* the database cannot be reached (e.g. while a request authenticates its token): 503, a
  ``Retry-After`` header and ``{"errors": [{"message": ..., "extensions": {"code":
  "SERVICE_UNAVAILABLE"}}]}``, logged at WARNING in one line;
* anything else: 500 with INTERNAL_SERVER_ERROR and a request id, logged at ERROR with the traceback.

A response that had already started cannot be replaced: the exception is logged and re-raised.
"""
from __future__ import annotations

import json
import logging
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.errors import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE, is_database_unavailable

log = logging.getLogger("promptstudio.http")


def _wants_graphql_response_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"accept" and b"application/graphql-response+json" in value.lower():
            return True
    return False


async def send_error(scope: Scope, send: Send, status: int, message: str, code: str,
                     extra: dict | None = None, headers: dict[str, str] | None = None) -> None:
    error: dict = {"message": message, "extensions": {"code": code, **(extra or {})}}
    body = json.dumps({"errors": [error]}).encode()  # ASCII, whatever the message holds
    media = "application/graphql-response+json" if _wants_graphql_response_json(scope) else "application/json"
    raw = [(b"content-type", f"{media}; charset=utf-8".encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class JSONServerErrors:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            path = scope.get("path", "")
            if is_database_unavailable(exc):
                log.warning("database unavailable (%s %s): %s: %s", scope.get("method"), path,
                            type(exc).__name__, " ".join(str(exc).split())[:200])
                if started:
                    raise
                await send_error(scope, send, 503, UNAVAILABLE_MESSAGE, "SERVICE_UNAVAILABLE",
                                 headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
                return
            request_id = uuid.uuid4().hex[:16]
            log.error("internal error (%s %s, request %s)", scope.get("method"), path, request_id, exc_info=exc)
            if started:
                raise
            await send_error(scope, send, 500, "Internal server error", "INTERNAL_SERVER_ERROR",
                             extra={"requestId": request_id})
