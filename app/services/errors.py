"""Expected problems raised by service functions and turned into GraphQL UserErrors by the API layer."""
from __future__ import annotations

from collections.abc import Sequence


class ServiceError(Exception):
    """An expected problem: bad input, not found, conflict, not allowed, over a limit.

    ``code`` is one of INVALID, NOT_FOUND, CONFLICT, FORBIDDEN, LIMIT_EXCEEDED (the contract's
    UserErrorCode); ``field`` is the path to the input field at fault, e.g. ["input", "name"].
    A service may raise one with several ``errors`` when it checks everything at once.
    """

    def __init__(self, code: str, message: str, field: Sequence[str] | None = None,
                 errors: Sequence[ServiceError] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = list(field) if field is not None else None
        self.errors: list[ServiceError] = list(errors) if errors else [self]

    def __repr__(self) -> str:
        return f"ServiceError({self.code!r}, {self.message!r}, field={self.field!r})"


def invalid(message: str, field: Sequence[str] | None = None) -> ServiceError:
    return ServiceError("INVALID", message, field)


def not_found(message: str, field: Sequence[str] | None = None) -> ServiceError:
    return ServiceError("NOT_FOUND", message, field)


def conflict(message: str, field: Sequence[str] | None = None) -> ServiceError:
    return ServiceError("CONFLICT", message, field)


def forbidden(message: str = "You are not allowed to do this.", field: Sequence[str] | None = None) -> ServiceError:
    return ServiceError("FORBIDDEN", message, field)


def limit_exceeded(message: str, field: Sequence[str] | None = None) -> ServiceError:
    return ServiceError("LIMIT_EXCEEDED", message, field)


def many(errors: Sequence[ServiceError]) -> ServiceError:
    """Several problems found at once: raised as one, reported as several UserErrors."""
    first = errors[0]
    return ServiceError(first.code, first.message, first.field, errors=errors)
