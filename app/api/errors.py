"""UserErrors (expected problems in mutation payloads) and top-level GraphQL errors."""
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


class Unauthenticated(GraphQLError):
    """Not signed in at all: a top-level error with extensions.code UNAUTHENTICATED."""

    def __init__(self, message: str = "Sign in (Authorization: Bearer <token>) to do this."):
        super().__init__(message, extensions={"code": "UNAUTHENTICATED"})


class BadRequest(GraphQLError):
    """A client error in arguments that are not part of a mutation input (e.g. a bad cursor)."""

    def __init__(self, message: str):
        super().__init__(message, extensions={"code": "BAD_USER_INPUT"})
