"""The /graphql endpoint: Strawberry's ASGI view with our context, authentication and media types.

Credentials: ``Authorization: Bearer <token>`` on HTTP requests and on the WebSocket upgrade, or an
``Authorization`` entry in the ``connection_init`` payload. No credential: anonymous. A credential
that is not valid (unknown, revoked, expired, malformed): every operation fails with
UNAUTHENTICATED (``RefuseBadCredentials``) — over HTTP as a 401 with a GraphQL error body and
``WWW-Authenticate: Bearer error="invalid_token"``; over WebSocket as an error of each operation
(the connection itself is accepted, so the client sees why).

An operation refused as a whole by the rate limit (RATE_LIMITED, see ``core/limits.py``) is a 429 with
``Retry-After`` (seconds), as well as the GraphQL error with ``extensions.retryAfter``.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from app.services.auth import InvalidToken, authenticate
from app.services.principal import Principal
from app.settings import Settings

from .core.context import Context

log = logging.getLogger("promptstudio.graphql")

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"


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

    async def _principal(self, runtime, authorization: Any, ip: str | None,
                         ua: str | None) -> tuple[Principal, str | None]:
        token = _bearer(authorization)
        if authorization and token is None:
            return Principal.anonymous(ip, ua), "The Authorization header must be `Bearer <token>`."
        if token is None:
            return Principal.anonymous(ip, ua), None
        try:
            principal = await authenticate(runtime.sessionmaker, token, ip_address=ip, user_agent=ua,
                                           last_used_resolution=self.settings.last_used_resolution_seconds)
            return principal, None
        except InvalidToken as exc:
            return Principal.anonymous(ip, ua), str(exc)

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
        except asyncio.CancelledError:
            # The client went away (app/http/disconnect.py): stop the reads under way for it too.
            context.cancel_batches()
            raise
        retry_after = _rate_limited(result)
        if retry_after is not None:
            sub_response.status_code = 429
            sub_response.headers["Retry-After"] = str(retry_after)
        return result

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        data = await super().process_result(request, result)
        if _is_request_error(result):
            # The request never executed (it did not parse or validate): no "data" entry at all,
            # as GraphQL-over-HTTP asks; with graphql-response+json it is also a 400 (below).
            data.pop("data", None)
        return data

    def create_response(self, response_data, sub_response: Response) -> Response:
        response = super().create_response(response_data, sub_response)
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
