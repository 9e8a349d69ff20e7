"""UserErrors (expected problems in mutation payloads) and top-level GraphQL errors.

Top-level errors carry ``extensions.code``: UNAUTHENTICATED (no valid credential), BAD_USER_INPUT
(an argument outside a mutation input is wrong: a cursor, a limit), or a code of the field that
raised it (``ClientError``). The limits refuse a whole operation with QUERY_TOO_LARGE,
QUERY_TOO_COSTLY or RATE_LIMITED, the figures in ``extensions``. They are client mistakes: logged
briefly at INFO, never masked.
"""
from __future__ import annotations

import enum

import strawberry
from graphql import GraphQLError

from app.services.errors import ServiceError


@strawberry.enum
class UserErrorCode(enum.Enum):
    INVALID = "INVALID"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    FORBIDDEN = "FORBIDDEN"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"


@strawberry.type
class UserError:
    code: UserErrorCode
    message: str
    field: list[str] | None = strawberry.field(
        default=None, description='Path to the input field at fault, e.g. ["input", "variables", "name"].')


def user_errors(exc: ServiceError) -> list[UserError]:
    return [UserError(code=UserErrorCode(e.code), message=e.message, field=e.field) for e in exc.errors]


class ClientError(GraphQLError):
    """A top-level error the client caused, with ``extensions.code``."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, code: str | None = None, **extensions: object):
        super().__init__(message, extensions={"code": code or self.code, **extensions})


class Unauthenticated(ClientError):
    """No valid credential: none where one is needed, or one that is unknown, revoked or expired."""

    code = "UNAUTHENTICATED"

    def __init__(self, message: str = "Sign in (Authorization: Bearer <token>) to do this."):
        super().__init__(message)


class BadRequest(ClientError):
    """A client error in arguments that are not part of a mutation input (e.g. a bad cursor)."""

    code = "BAD_USER_INPUT"


class QueryTooLarge(ClientError):
    """A document with more field selections (or copies of one field at one place) than allowed;
    refused before validation."""

    code = "QUERY_TOO_LARGE"


class QueryTooCostly(ClientError):
    """An operation whose computed cost is over the budget; refused before execution."""

    code = "QUERY_TOO_COSTLY"

    def __init__(self, cost: int, budget: int):
        super().__init__(
            f"This operation would cost {cost:,} points; at most {budget:,} are allowed per request. Ask for "
            "smaller pages (`first`), fewer ids, or fewer expensive fields (render, diff), or split it into "
            "several requests.", cost=cost, maxCost=budget)


class RateLimited(ClientError):
    """The caller spent its budget of expensive operations; ``retryAfter`` says when to try again."""

    code = "RATE_LIMITED"

    def __init__(self, cost: int, retry_after: int):
        super().__init__(
            f"Too many expensive operations: this one costs {cost:,} points and your budget refills in "
            f"{retry_after} second{'s' if retry_after != 1 else ''}. Try again then.",
            cost=cost, retryAfter=retry_after)
