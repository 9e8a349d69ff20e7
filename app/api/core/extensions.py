"""Schema extensions and the Schema class.

What happens to errors: client mistakes are logged briefly at INFO and shown as they are;
unexpected exceptions are logged with their traceback at ERROR and masked; a database that cannot
be reached is logged at WARNING (one line) and reported as SERVICE_UNAVAILABLE (over HTTP the view
makes that a 503 with Retry-After).

Every error leaves with an ``extensions.code`` (:func:`settle` fills in the ones the machinery
leaves without): GRAPHQL_PARSE_FAILED (the document does not parse, or has too many
tokens), GRAPHQL_VALIDATION_FAILED (unknown fields, wrong argument literals, the depth and alias
limits), BAD_USER_INPUT (variables that do not fit their types, an unknown operation name),
INTERNAL_SERVER_ERROR (anything else: a fault of ours), or the code of the error that was raised.

Strawberry hands every error of an operation to ``Schema.process_errors`` before extensions run,
so :class:`Schema` sees the original exceptions (and logs them), then replaces the unexpected ones
with "Internal server error" and a request id to find them in the log.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionContext

from app.db.errors import UNAVAILABLE_MESSAGE, is_connection_lost, is_database_unavailable

from .errors import Unauthenticated

log = logging.getLogger("promptstudio.graphql")


#: Client mistakes that Strawberry raises as plain exceptions (not GraphQL errors).
CLIENT_EXCEPTIONS = (InvalidOperationTypeError,)


PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"



def error_code(error: GraphQLError) -> str | None:
    code = (error.extensions or {}).get("code")
    return code if isinstance(code, str) and code else None


def set_code_if_missing(error: GraphQLError, code: str) -> None:
    """Give ``error`` a code unless it has one. Parse and validation errors may be cached and shared
    by requests: this only ever adds the same code, so sharing them stays harmless."""
    if error_code(error) is None:
        error.extensions = {**(error.extensions or {}), "code": code}


def _not_graphql(error: GraphQLError) -> bool:
    return error.original_error is not None and not isinstance(error.original_error, GraphQLError)


def database_unavailable(error: GraphQLError) -> bool:
    return _not_graphql(error) and is_database_unavailable(error.original_error)


def is_unexpected(error: GraphQLError) -> bool:
    """A fault of the server: an exception that is neither a GraphQL error (ours or the machinery's)
    nor a known client mistake nor an unreachable database; or an error of a field that the
    machinery raised without a code (a null for a non-null field, a value its type cannot
    represent). An error with a code was meant for the client."""
    if error_code(error) is not None:
        return False
    if _not_graphql(error):
        return not isinstance(error.original_error, CLIENT_EXCEPTIONS) and not database_unavailable(error)
    return bool(error.path)


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


def _one_line(exc: BaseException | None) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"


def _note_database_error(execution_context: ExecutionContext | None, error: GraphQLError) -> None:
    """Tell the view (through the context) that the database failed this operation, and how."""
    context = getattr(execution_context, "context", None)
    if context is None or not hasattr(context, "database_error"):
        return
    if is_connection_lost(error.original_error) and context.database_error != "unreachable":
        context.database_error = "lost"
    else:
        context.database_error = "unreachable"


def settle(error: GraphQLError, execution_context: ExecutionContext | None) -> GraphQLError:
    """What the client is shown for ``error``: always with a code; faults masked."""
    if database_unavailable(error):
        _note_database_error(execution_context, error)
        return GraphQLError(UNAVAILABLE_MESSAGE, nodes=error.nodes, source=error.source,
                            positions=error.positions, path=error.path, extensions={"code": SERVICE_UNAVAILABLE})
    if is_unexpected(error):
        return GraphQLError(
            "Internal server error", nodes=error.nodes, source=error.source, positions=error.positions,
            path=error.path, extensions={"code": INTERNAL_SERVER_ERROR, "requestId": _request_id(execution_context)},
        )
    error = _client_message(error)
    if isinstance(error, GraphQLSyntaxError):
        set_code_if_missing(error, PARSE_FAILED)
    else:
        # Validation errors have their code already (MaskInternalErrors.on_validate); without a
        # field, what is left is about the request's inputs: variables that do not fit their
        # types, an unknown operation name.
        set_code_if_missing(error, BAD_USER_INPUT)
    return error


class Schema(strawberry.Schema):
    """strawberry.Schema, logging errors by who caused them and settling what the client sees.

    Strawberry calls ``process_errors`` once for every error of an operation, in every phase
    (parse, validation, variables, execution, subscription events), before extensions run; the
    errors are replaced in place by what :func:`settle` makes of them, so the response shows them
    settled and the log shows the originals."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        request_id = _request_id(execution_context)
        for index, error in enumerate(errors):
            where = ".".join(map(str, error.path or [])) or "request"
            if database_unavailable(error):
                log.warning("database unavailable in %s (request %s): %s", where, request_id,
                            _one_line(error.original_error))
            elif is_unexpected(error):
                log.error("internal error in %s (request %s): %r", where, request_id,
                          error.original_error or error.message, exc_info=error.original_error)
            else:
                code = error_code(error) or "GRAPHQL_ERROR"
                log.info("client error in %s (request %s): %s [%s]", where, request_id, error.message, code)
            errors[index] = settle(error, execution_context)


class MaskInternalErrors(MaskErrors):
    """Unexpected exceptions become "Internal server error" with a request id to find them in the log;
    known client mistakes raised as plain exceptions become GraphQL errors that say what was wrong.

    :class:`Schema` settles errors as they are reported; this extension gives validation errors
    their code (only it knows the phase), records the operation type on the context (the view
    retries a query whose database connection was lost), and settles any error that did not pass
    through ``Schema.process_errors`` (a schema that is not ours)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_unsettled, error_message="Internal server error")

    def on_validate(self) -> Iterator[None]:
        yield
        for error in self.execution_context.pre_execution_errors or ():
            # A document that did not parse is reported at validation by DocumentLimits (limits.py).
            set_code_if_missing(error, PARSE_FAILED if isinstance(error, GraphQLSyntaxError) else VALIDATION_FAILED)

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        if hasattr(context, "operation_type"):
            context.operation_type = self.execution_context.operation_type.value
        yield

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return settle(error, self.execution_context)


def _unsettled(error: GraphQLError) -> bool:
    return error_code(error) is None


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
