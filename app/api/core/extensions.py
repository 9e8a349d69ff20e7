"""Schema extensions and the Schema class.

What happens to errors: client mistakes are logged briefly at INFO and shown as they are;
unexpected exceptions are logged with their traceback at ERROR and masked.

Strawberry hands every error of an operation to ``Schema.process_errors`` before extensions run,
so :class:`Schema` sees the original exceptions (and logs them); :class:`MaskInternalErrors`
then replaces the unexpected ones with "Internal server error" and a request id to find them.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionContext

from .errors import Unauthenticated

log = logging.getLogger("promptstudio.graphql")


#: Client mistakes that Strawberry raises as plain exceptions (not GraphQL errors).
CLIENT_EXCEPTIONS = (InvalidOperationTypeError,)


def _not_graphql(error: GraphQLError) -> bool:
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


def is_unexpected(error: GraphQLError) -> bool:
    """An exception that is neither a GraphQL error (ours or the machinery's) nor a known client mistake:
    a fault of the server."""
    return _not_graphql(error) and not isinstance(error.original_error, CLIENT_EXCEPTIONS)


def _client_message(error: GraphQLError) -> GraphQLError:
    """Client mistakes that Strawberry reports as plain exceptions, made GraphQL errors that say what was wrong."""
    original = error.original_error
    if isinstance(original, InvalidOperationTypeError):
        kind = original.operation_type.value
        return GraphQLError(f"A {kind} cannot be sent this way: the graphql-ws protocol carries subscriptions only "
                            "(send queries and mutations over HTTP, or use graphql-transport-ws).",
                            nodes=error.nodes, path=error.path, extensions={"code": "BAD_REQUEST"})
    return error


def _request_id(execution_context: ExecutionContext | None) -> str | None:
    ctx = getattr(execution_context, "context", None) if execution_context is not None else None
    return getattr(ctx, "request_id", None)


class Schema(strawberry.Schema):
    """strawberry.Schema, logging errors by who caused them."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        request_id = _request_id(execution_context)
        for error in errors:
            where = ".".join(map(str, error.path or [])) or "request"
            if is_unexpected(error):
                log.error("internal error in %s (request %s): %r", where, request_id, error.original_error,
                          exc_info=error.original_error)
            else:
                code = (error.extensions or {}).get("code") or "GRAPHQL_ERROR"
                log.info("client error in %s (request %s): %s [%s]", where, request_id, error.message, code)


class MaskInternalErrors(MaskErrors):
    """Unexpected exceptions become "Internal server error" with a request id to find them in the log;
    known client mistakes raised as plain exceptions become GraphQL errors that say what was wrong."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_not_graphql, error_message="Internal server error")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if not is_unexpected(error):
            return _client_message(error)
        request_id: Any = _request_id(self.execution_context)
        return GraphQLError(
            message=self.error_message, nodes=error.nodes, source=error.source, positions=error.positions,
            path=error.path, original_error=None,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


class RefuseBadCredentials(SchemaExtension):
    """An operation sent with a credential that is not valid (unknown, revoked or expired token, a
    malformed Authorization header) fails as a whole with UNAUTHENTICATED — queries, mutations and
    subscriptions alike, over HTTP and WebSocket — rather than running as anonymous. No credential
    at all stays anonymous."""

    def on_execute(self) -> Iterator[None]:
        auth_error = getattr(self.execution_context.context, "auth_error", None)
        if auth_error:
            raise Unauthenticated(auth_error)
        yield
