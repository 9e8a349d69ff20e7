"""The mutation convention: every mutation is written the same way.

    @mutation("Create a project; you become its OWNER.")
    async def create_project(self, info: Info, input: CreateProjectInput) -> ProjectPayload:
        row = await run(info, projects.create_project, name=input.name, slug=input.slug)
        return ProjectPayload(project=Project.from_row(row))

* ``run`` authenticates the caller (UNAUTHENTICATED, a top-level error, unless the service is
  declared ``anonymous``) and runs the service function in one audited transaction
  (``app.services.tx.perform``).
* ``@mutation`` is ``strawberry.mutation`` with the ``UserErrors`` extension: a ServiceError
  raised by the resolver becomes the payload with only ``userErrors`` set. Every payload type is a
  ``Payload`` (which brings ``userErrors``) and gives its other fields defaults (None, or an empty
  list); a mutation whose type is not one fails when the schema is built.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types.field import StrawberryField

from app.services.errors import ServiceError
from app.services.tx import Service, perform

from .context import Info
from .errors import UserError, user_errors

P = ParamSpec("P")
R = TypeVar("R")


@strawberry.type
class Payload:
    """What every mutation returns: its own fields (declared by the subclass), and the expected problems."""

    # The type given as an object, not the (lazy) annotation: subclasses in other modules inherit it.
    user_errors: list[UserError] = strawberry.field(default_factory=list, graphql_type=list[UserError])


class UserErrors(FieldExtension):
    """Turns a ServiceError from the resolver into its payload type with ``userErrors``."""

    def apply(self, field: StrawberryField) -> None:
        self.field = field
        payload = field.type
        if not (isinstance(payload, type) and issubclass(payload, Payload)):
            raise TypeError(f"mutation {field.python_name} returns {payload!r}; a mutation returns a Payload subclass")

    async def resolve_async(self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info,
                            **kwargs: Any) -> Any:
        try:
            return await next_(source, info, **kwargs)
        except ServiceError as exc:
            # The payload class (strawberry types field.type as a union of every kind of type).
            payload = cast("type[Any]", self.field.type)
            return payload(user_errors=user_errors(exc))


def mutation(description: str) -> Any:
    """``strawberry.mutation`` with the convention's ServiceError -> userErrors handling."""
    return strawberry.mutation(description=description, extensions=[UserErrors()])


async def run(info: Info, fn: Service[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run service ``fn`` as the caller, in one audited transaction (ServiceError passes through)."""
    ctx = info.context
    principal = ctx.principal if fn.anonymous and not ctx.auth_error else ctx.require_auth()
    return await perform(ctx.sessionmaker, principal, ctx.settings, fn, *args, **kwargs)
