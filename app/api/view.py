"""The /graphql endpoint: Strawberry's ASGI view with our context, authentication and media types.

Credentials: ``Authorization: Bearer <token>`` on HTTP requests and on the WebSocket upgrade, or an
``Authorization`` entry in the ``connection_init`` payload. No credential: anonymous. A credential
that is not valid (unknown, revoked, expired, malformed): every operation fails with
UNAUTHENTICATED (``RefuseBadCredentials``) — over HTTP as a 401 with a GraphQL error body and
``WWW-Authenticate: Bearer error="invalid_token"``; over WebSocket as an error of each operation
(the connection itself is accepted, so the client sees why).

Requests that are not GraphQL requests (a body that is not UTF-8 or not JSON, JSON nested deeper
than PROMPTSTUDIO_MAX_JSON_DEPTH, a JSON body that is not an object, an unsupported content type or
method) are answered 4xx with a GraphQL-shaped JSON body, ``{"errors": [{"message", "extensions":
{"code"}}]}``, never plain text. While the database cannot be reached the answer is a 503 with
``Retry-After`` and a SERVICE_UNAVAILABLE error; a query (never a mutation) whose connection was
lost under it is run once more first.

An operation refused as a whole by the rate limit (RATE_LIMITED, see ``core/limits.py``) is a 429 with
``Retry-After`` (seconds), as well as the GraphQL error with ``extensions.retryAfter``.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from app.db.errors import RETRY_AFTER_SECONDS, is_connection_lost
from app.services.auth import InvalidToken, authenticate
from app.services.principal import Principal
from app.settings import Settings

from .core.context import Context
from .core.extensions import SERVICE_UNAVAILABLE

log = logging.getLogger("promptstudio.graphql")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
#: extensions.code of the 4xx answers to requests that are not GraphQL requests, by status.
HTTP_ERROR_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE",
                    415: "UNSUPPORTED_MEDIA_TYPE"}


def _bearer(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _client_ip(request: Request | WebSocket) -> str | None:
    client = request.client
    return client.host if client else None


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, schema, settings: Settings):
        super().__init__(schema, graphql_ide="graphiql" if settings.graphiql else None,
                         allow_queries_via_get=True, keep_alive=True, keep_alive_interval=15)
        self.settings = settings
        #: The GraphiQL page (app.http.pages.graphiql_page, set by app.main); None: Strawberry's own.
        self.ide_page: Callable[[Request], Response] | None = None

    async def render_graphql_ide(self, request: Request) -> Response:
        if self.ide_page is not None:
            return self.ide_page(request)
        return await super().render_graphql_ide(request)

    def cdn_graphiql_html(self) -> str:
        """Strawberry's GraphiQL page, which loads GraphiQL from a CDN (the fallback when ours is not built)."""
        return self.graphql_ide_html

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as exc:
            response = error_response(request, exc.status_code, exc.reason,
                                      HTTP_ERROR_CODES.get(exc.status_code, "BAD_REQUEST"),
                                      headers={"Allow": "GET, POST"} if exc.status_code == 405 else None)
        await response(scope, receive, send)

    # --- the request body: UTF-8 JSON, an object, not too deep

    def decode_json(self, data: str | bytes) -> object:
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError(f"it is not UTF-8 (byte {exc.object[exc.start]:#04x})", "",
                                           exc.start) from None
        limit = self.settings.max_json_depth
        try:
            value = json.loads(data)
        except RecursionError:
            value = None  # deeper than the interpreter goes: deeper than the limit too
        else:
            if not _nested_deeper_than(value, limit):
                return value
        raise json.JSONDecodeError(f"it is nested deeper than {limit} levels", "", 0)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return self.decode_json(data)
        except json.JSONDecodeError as exc:
            raise HTTPException(400, f"Unable to parse the request's JSON: {exc.msg}.") from None

    async def parse_http_body(self, request_adapter):
        if request_adapter.method == "POST" and "application/json" in (request_adapter.content_type or ""):
            body = await request_adapter.get_body()  # Starlette keeps it: parsing it below reads no more
            if body.lstrip()[:1] not in (b"{", b"["):
                self.parse_json(body)  # says why it is not JSON, if it is not
                raise HTTPException(400, 'The request body must be a JSON object: {"query": "...", '
                                         '"variables": {...}, "operationName": "..."}.')
        return await super().parse_http_body(request_adapter)

    async def _principal(self, runtime, authorization: Any, ip: str | None,
                         ua: str | None) -> tuple[Principal, str | None]:
        token = _bearer(authorization)
        if authorization and token is None:
            return Principal.anonymous(ip, ua), "The Authorization header must be `Bearer <token>`."
        if token is None:
            return Principal.anonymous(ip, ua), None
        for attempt in (1, 2):
            try:
                principal = await authenticate(runtime.sessionmaker, token, ip_address=ip, user_agent=ua,
                                               last_used_resolution=self.settings.last_used_resolution_seconds,
                                               caches=runtime.caches, last_used=runtime.last_used)
                return principal, None
            except InvalidToken as exc:
                return Principal.anonymous(ip, ua), str(exc)
            except Exception as exc:
                # Authenticating is a read (and an idempotent lastUsedAt): once more when the connection
                # died under it, whatever the operation; an unreachable database ends up as a 503.
                if attempt == 2 or not is_connection_lost(exc):
                    raise
                log.warning("authenticating lost its database connection; trying once more")
        raise AssertionError("not reached")

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        runtime = request.app.state.runtime
        ip = _client_ip(request)
        ua = request.headers.get("user-agent")
        principal, auth_error = await self._principal(runtime, request.headers.get("authorization"), ip, ua)
        return Context(settings=self.settings, sessionmaker=runtime.sessionmaker, principal=principal,
                       request=request, response=response, auth_error=auth_error, services=runtime)

    async def on_ws_connect(self, context: Context) -> None:
        params = context.connection_params or {}
        authorization = None
        if isinstance(params, dict):
            authorization = params.get("Authorization") or params.get("authorization")
        if authorization:
            principal, error = await self._principal(context.services, authorization,
                                                     context.principal.ip_address, context.principal.user_agent)
            if error:
                log.info("websocket connection with a credential that is not valid: %s", error)
            context.principal = principal
            context.auth_error = error
        return None

    async def execute_single(self, request, request_adapter, sub_response, context, root_value, request_data):
        if context.auth_error:
            # RefuseBadCredentials fails the operation with UNAUTHENTICATED; as HTTP it is a 401.
            sub_response.status_code = 401
            sub_response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        # A subscription posted as a plain request cannot stream: say where subscriptions live.
        query = request_data.query or ""
        if "subscription" in query and _is_subscription(query, request_data.operation_name):
            raise HTTPException(400, "Subscriptions are served over WebSocket at /graphql (protocols "
                                     "graphql-transport-ws and graphql-ws), or over HTTP with "
                                     "Accept: text/event-stream or multipart/mixed.")
        try:
            result = await super().execute_single(request, request_adapter, sub_response, context, root_value,
                                                  request_data)
            if context.database_error == "lost" and context.operation_type == OperationType.QUERY.value:
                # A read whose connection died under it (the pool has replaced its connections): once more.
                log.warning("query %s lost its database connection; running it once more", context.request_id)
                context.database_error = None
                context.refresh_loaders()
                result = await super().execute_single(request, request_adapter, sub_response, context,
                                                      root_value, request_data)
        except asyncio.CancelledError:
            # The client went away (app/http/disconnect.py): stop the reads under way for it too.
            context.cancel_batches()
            raise
        if context.database_error:
            sub_response.status_code = 503
            sub_response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        retry_after = _rate_limited(result)
        if retry_after is not None:
            sub_response.status_code = 429
            sub_response.headers["Retry-After"] = str(retry_after)
        return result

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        data = await super().process_result(request, result)
        unavailable = [e for e in result.errors or () if (e.extensions or {}).get("code") == SERVICE_UNAVAILABLE]
        if unavailable:
            # Nothing of the answer holds: the client is to try again later (503, set above).
            return {"errors": [{"message": unavailable[0].message, "extensions": {"code": SERVICE_UNAVAILABLE}}]}
        if _is_request_error(result):
            # The request never executed (it did not parse or validate): no "data" entry at all,
            # as GraphQL-over-HTTP asks; with graphql-response+json it is also a 400 (below).
            data.pop("data", None)
        return data

    def create_response(self, response_data, sub_response: Response) -> Response:
        # Strawberry's, with the body encoded by orjson (a 10,000-object answer in milliseconds, not a
        # large share of the request). WebSocket messages keep ``encode_json``: text frames.
        response = Response(encode_response(response_data), status_code=200, media_type="application/json")
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        request = getattr(sub_response, "_ps_request", None)
        if request is not None and _wants_graphql_response_json(request):
            response.headers["content-type"] = GRAPHQL_RESPONSE_JSON + "; charset=utf-8"
            if (isinstance(response_data, dict) and "data" not in response_data and response_data.get("errors")
                    and response.status_code == 200):
                response.status_code = 400
        return response

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub = await super().get_sub_response(request)
        sub._ps_request = request  # type: ignore[attr-defined]
        return sub


def encode_response(data: object) -> bytes:
    """A GraphQL answer as UTF-8 JSON: orjson, or the json module for what orjson refuses (an integer
    beyond 64 bits, a key that is not a string inside a JSON scalar)."""
    try:
        return orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def error_response(request: Request, status: int, message: str, code: str,
                   headers: dict[str, str] | None = None) -> Response:
    """A request that is not a GraphQL request, answered in the shape of one."""
    media = GRAPHQL_RESPONSE_JSON if _wants_graphql_response_json(request) else "application/json"
    body = json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})  # ASCII: any text
    return Response(body, status_code=status, headers=headers, media_type=media)


def _nested_deeper_than(value: object, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _is_subscription(query: str, operation_name: str | None) -> bool:
    try:
        operation = get_operation_ast(parse(query), operation_name)
    except GraphQLError:
        return False  # the normal path reports the syntax error
    return operation is not None and operation.operation == OperationType.SUBSCRIPTION


def _is_request_error(result: ExecutionResult) -> bool:
    """Parse and validation errors: no data, and no error that belongs to a field (no path)."""
    errors = getattr(result, "errors", None)
    if not errors:
        return False
    return getattr(result, "data", None) is None and all(not e.path for e in errors)


def _rate_limited(result: ExecutionResult) -> int | None:
    """Seconds to wait when the whole operation was refused by the rate limit; None otherwise."""
    if not _is_request_error(result):
        return None
    extensions = [e.extensions or {} for e in result.errors or []]
    if not all(x.get("code") == "RATE_LIMITED" for x in extensions):
        return None
    return max(int(x.get("retryAfter") or 1) for x in extensions)


def _wants_graphql_response_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media == GRAPHQL_RESPONSE_JSON:
            return True
        if media in ("application/json",):
            return False
    return False
