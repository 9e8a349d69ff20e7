"""Dataloaders of the prompt registry: one statement per relation and request shape, never per row."""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, column, func, select, tuple_

from app.db import models
from app.services.access import Action
from app.services.search import PromptFilterSpec, filter_clauses

from ..child_pages import ChildPageLoader
from ..loaders import BaseLoader
from ..pagination import decode_cursor
from ..relay import PaginationError


class VersionByNumber(BaseLoader):
    """Key (prompt id, number) -> the version or None. Serves latestVersion, version(number), previous."""

    async def batch_load_fn(self, keys: Sequence[tuple[uuid.UUID, int]]) -> list[models.PromptVersion | None]:
        V = models.PromptVersion
        async with self.ctx.db() as session:
            rows = (await session.execute(
                select(V).where(tuple_(V.prompt_id, V.number).in_(list(set(keys)))))).scalars().all()
        by_key = {(r.prompt_id, r.number): r for r in rows}
        return [by_key.get(k) for k in keys]


class PromptByName(BaseLoader):
    """Key (project id, name) -> the prompt or None (visibility is the caller's job)."""

    async def batch_load_fn(self, keys: Sequence[tuple[uuid.UUID, str]]) -> list[models.Prompt | None]:
        P = models.Prompt
        async with self.ctx.db() as session:
            rows = (await session.execute(
                select(P).where(tuple_(P.project_id, P.name).in_(list(set(keys)))))).scalars().all()
        by_key = {(r.project_id, r.name): r for r in rows}
        return [by_key.get(k) for k in keys]


class ProjectTags(BaseLoader):
    """Key project id -> the distinct tags of its prompts (all statuses), sorted."""

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[str]]:
        P = models.Prompt
        tag = func.unnest(P.tags).table_valued("tag").render_derived()
        stmt = (select(P.project_id, tag.c.tag).select_from(P).join(tag, column("true", is_literal=True))
                .where(P.project_id.in_(list(set(keys)))).distinct().order_by(P.project_id, tag.c.tag))
        async with self.ctx.db() as session:
            rows = (await session.execute(stmt)).all()
        grouped: dict[uuid.UUID, list[str]] = defaultdict(list)
        for project_id, t in rows:
            grouped[project_id].append(t)
        return [grouped.get(k, []) for k in keys]


class VisiblePrompts(BaseLoader):
    """Key prompt id -> the prompt, or None when missing or the viewer may not read the project's prompts."""

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[models.Prompt | None]:
        rows = await self.ctx.by_id(models.Prompt).load_many(list(keys))
        allowed = await self.ctx.can_many([r.project_id for r in rows if r is not None], Action.READ_PROMPTS)
        return [r if r is not None and allowed.get(r.project_id) else None for r in rows]


class VisibleVersions(BaseLoader):
    """Key version id -> the version, or None when missing or not readable by the viewer."""

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[models.PromptVersion | None]:
        versions = await self.ctx.by_id(models.PromptVersion).load_many(list(keys))
        prompts = await self.ctx.loader(VisiblePrompts).load_many(
            list({v.prompt_id for v in versions if v is not None}))
        readable = {p.id for p in prompts if p is not None}
        return [v if v is not None and v.prompt_id in readable else None for v in versions]


# ------------------------------------------------------------------ pages of children

class VersionsPage(ChildPageLoader):
    """Prompt.versions: newest first, one window-function statement for all prompts of a request."""

    model = models.PromptVersion
    parent_col = models.PromptVersion.prompt_id
    sort_col = models.PromptVersion.number
    id_col = models.PromptVersion.id
    descending = True


class _PromptsPage(ChildPageLoader):
    """Project.prompts: ``args`` = (PromptFilterSpec,)."""

    model = models.Prompt
    parent_col = models.Prompt.project_id
    id_col = models.Prompt.id

    def base(self) -> Select:
        spec: PromptFilterSpec = self.args[0]
        # Not the (deferred) search columns: search_text may be long and a listing never needs it.
        return select(*_LISTED_COLUMNS).where(*filter_clauses(spec))


_LISTED_COLUMNS = [c for c in models.Prompt.__table__.c if c.key not in ("search_vector", "search_text")]


def _page_class(field: str, descending: bool) -> type[ChildPageLoader]:
    sort_col = {"NAME": models.Prompt.name, "CREATED_AT": models.Prompt.created_at,
                "UPDATED_AT": models.Prompt.updated_at}[field]
    # Names are unique per project, so by name the name itself is the tie-breaker: the order is then
    # exactly that of the unique index (project_id, name), which serves it without sorting.
    id_col = models.Prompt.name if field == "NAME" else models.Prompt.id
    name = f"PromptsBy{field.title().replace('_', '')}{'Desc' if descending else 'Asc'}"
    return type(name, (_PromptsPage,), {"sort_col": sort_col, "id_col": id_col, "descending": descending})


#: (order field, descending) -> page loader class.
PROMPT_PAGES: dict[tuple[str, bool], type[ChildPageLoader]] = {
    (f, d): _page_class(f, d) for f in ("NAME", "CREATED_AT", "UPDATED_AT") for d in (False, True)}

_CURSOR_TYPES = {"NAME": str, "CREATED_AT": datetime, "UPDATED_AT": datetime, "NUMBER": int}


def check_cursor(after: str | None, sort: str) -> None:
    """Refuse (PaginationError) a cursor that is not from a connection ordered by ``sort``."""
    if not after:
        return
    value, id_ = decode_cursor(after)
    expected = _CURSOR_TYPES[sort]
    id_type = str if sort == "NAME" else uuid.UUID
    if not isinstance(id_, id_type) or not isinstance(value, expected) or isinstance(value, bool):
        raise PaginationError("`after` is not a cursor from this connection (or its order changed)")
