"""Query.viewer and Query.users."""
from __future__ import annotations

import strawberry
from sqlalchemy import select

from app.db import models
from app.services import access

from ..core.context import Info
from ..core.pagination import Connection, keyset_connection
from ..core.relay import load_related
from .types import User


@strawberry.type
class IdentityQuery:
    @strawberry.field(description="The signed-in user; null for API keys and anonymous callers.")
    async def viewer(self, info: Info) -> User | None:
        p = info.context.principal
        if p.kind != "user":
            return None
        return await load_related(info, models.User, p.user_id)

    @strawberry.field(description="Superusers only.")
    async def users(self, info: Info, first: int | None = 20, after: str | None = None) -> Connection[User]:
        if not access.may_list_users(info.context.principal):
            return Connection.empty()
        return await keyset_connection(info, select(models.User), sort_col=models.User.created_at,
                                       id_col=models.User.id, first=first, after=after, wrap=User.from_row)
