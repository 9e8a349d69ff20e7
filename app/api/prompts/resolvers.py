"""Fields the registry supplies to other domains' types: Project.prompts, Project.prompt, Project.tags."""
from __future__ import annotations

from app.db import models
from app.services.access import Action

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.pagination import Connection
from .content import OrderDirection, PromptOrderField
from .inputs import PromptFilter, PromptOrder, filter_spec
from .loaders import PROMPT_PAGES, ProjectTags, PromptByName, check_cursor
from .types import Prompt


async def project_prompts(info: Info, project: models.Project, first: int | None, after: str | None,
                          filter: PromptFilter | None, order_by: PromptOrder | None) -> Connection[Prompt]:
    field = order_by.field.value if order_by is not None else PromptOrderField.CREATED_AT.value
    descending = order_by.direction == OrderDirection.DESC if order_by is not None else True
    check_cursor(after, field)
    ctx = info.context
    if not await ctx.can(project.id, Action.READ_PROMPTS):
        return Connection.empty()
    # Later fields (Prompt.project, PromptVersion.prompt) find these rows without querying again.
    ctx.by_id(models.Project).prime(project.id, project)

    def wrap(row: models.Prompt) -> Prompt:
        ctx.by_id(models.Prompt).prime(row.id, row)
        return Prompt.from_row(row)

    return await child_connection(info, PROMPT_PAGES[(field, descending)], project.id, first=first, after=after,
                                  wrap=wrap, args=(filter_spec(filter),))


async def project_prompt(info: Info, project: models.Project, name: str) -> Prompt | None:
    if not await info.context.can(project.id, Action.READ_PROMPTS):
        return None
    row = await info.context.loader(PromptByName).load((project.id, name.strip()))
    return Prompt.from_row(row) if row is not None else None


async def project_tags(info: Info, project: models.Project) -> list[str]:
    if not await info.context.can(project.id, Action.READ_PROMPTS):
        return []
    return await info.context.loader(ProjectTags).load(project.id)
