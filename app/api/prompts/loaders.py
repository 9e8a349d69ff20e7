"""Dataloaders of the prompt registry: one statement per relation and request shape, never per row."""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, column, func, select

from app.db import models
from app.services import search
from app.services.search import PromptFilterSpec, filter_clauses

from ..core.child_pages import ChildPageLoader
from ..core.loaders import BaseLoader, ByKeyLoader
from ..core.pagination import check_cursor_types


class VersionByNumber(ByKeyLoader):
    """Key (prompt id, number) -> the version or None. Serves latestVersion, version(number), previous."""

    model = models.PromptVersion
    columns = ("prompt_id", "number")


class EmbeddingOfVersion(ByKeyLoader):
    """Key (version id,) -> its version_embeddings row (status, model; not the vector) or None."""

    model = models.VersionEmbedding
    columns = ("version_id",)


class SimilarPrompts(BaseLoader):
    """Key (prompt id, first) -> the nearest other prompts of its project (one statement per ``first``)."""

    async def batch_load_fn(self, keys: Sequence[tuple[uuid.UUID, int]]) -> list[list[search.SemanticHit]]:
        by_limit: dict[int, set[uuid.UUID]] = defaultdict(set)
        for prompt_id, first in keys:
            by_limit[first].add(prompt_id)
        found: dict[tuple[uuid.UUID, int], list[search.SemanticHit]] = {}
        async with self.ctx.db_transaction() as session, session.begin():  # set_config(local)
            for first, ids in by_limit.items():
                hits = await search.similar_prompts(session, self.ctx.settings, sorted(ids), first)
                found.update({(pid, first): h for pid, h in hits.items()})
        return [found.get((k[0], k[1]), []) for k in keys]


class PromptByName(ByKeyLoader):
    """Key (project id, name) -> the prompt or None (visibility is the caller's job)."""

    model = models.Prompt
    columns = ("project_id", "name")


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

    def base(self) -> Select[Any]:
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

_CURSOR_TYPES: dict[str, type] = {"NAME": str, "CREATED_AT": datetime, "UPDATED_AT": datetime, "NUMBER": int}


def check_cursor(after: str | None, sort: str) -> None:
    """Refuse a cursor that is not from a connection ordered by ``sort`` (a top-level BAD_USER_INPUT)."""
    check_cursor_types(after, _CURSOR_TYPES[sort], str if sort == "NAME" else uuid.UUID)
