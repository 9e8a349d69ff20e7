"""Schema extensions: masking of unexpected errors (logged with the request id)."""
from __future__ import annotations

import logging

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from .relay import PaginationError

log = logging.getLogger("promptstudio.graphql")

#: Exceptions whose message is meant for the client.
EXPOSED = (GraphQLError, PaginationError)


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, EXPOSED)


class MaskInternalErrors(MaskErrors):
    """Unexpected exceptions become "Internal server error" with a request id to find them in the log."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Internal server error")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        ctx = self.execution_context.context
        request_id = getattr(ctx, "request_id", None)
        log.error("internal error in %s (request %s): %r", ".".join(map(str, error.path or [])), request_id,
                  error.original_error, exc_info=error.original_error)
        return GraphQLError(
            message=self.error_message, nodes=error.nodes, source=error.source, positions=error.positions,
            path=error.path, original_error=None,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )
