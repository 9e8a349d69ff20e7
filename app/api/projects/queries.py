"""Query.project and Query.projects."""
from __future__ import annotations

import strawberry
from sqlalchemy import select

from app.db import models
from app.services import access
from app.services.access import Action

from ..core.context import Info
from ..core.pagination import Connection, keyset_connection
from .types import Project


@strawberry.type
class ProjectQuery:
    @strawberry.field(description="The project with this slug; null when there is none or you may not see it.")
    async def project(self, info: Info, slug: str) -> Project | None:
        ctx = info.context
        async with ctx.db() as session:
            row = (await session.execute(select(models.Project).where(models.Project.slug == slug))
                   ).scalar_one_or_none()
        if row is None or not await ctx.can(row.id, Action.VIEW_PROJECT):
            return None
        return Project.from_row(row)

    @strawberry.field(description="The caller's projects (all of them for superusers; its own for an API key).")
    async def projects(self, info: Info, first: int | None = 20, after: str | None = None) -> Connection[Project]:
        ctx = info.context
        stmt = select(models.Project).where(access.visible_projects(ctx.principal))
        return await keyset_connection(info, stmt, sort_col=models.Project.created_at, id_col=models.Project.id,
                                       first=first, after=after, wrap=Project.from_row)
