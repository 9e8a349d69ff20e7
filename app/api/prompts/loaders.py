"""Dataloaders of the prompt registry: one statement per relation and request shape, never per row."""
from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Text, cast, column, func, select
from sqlalchemy.dialects.postgresql import JSONB

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

_UNREAD = object()
_VERSION_TABLE = models.PromptVersion.__table__
_PLAIN = tuple(c.name for c in _VERSION_TABLE.c if not isinstance(c.type, JSONB))
_JSON = tuple(c.name for c in _VERSION_TABLE.c if isinstance(c.type, JSONB))


def _json_column(name: str) -> property:
    text_slot, value_slot = f"_{name}_text", f"_{name}"

    def get(self: VersionRow) -> Any:
        value = getattr(self, value_slot)
        if value is _UNREAD:
            text = getattr(self, text_slot)
            value = None if text is None else json.loads(text)
            setattr(self, value_slot, value)
        return value

    return property(get, doc=f"The {name} column, decoded on first read.")


class VersionRow:
    """A prompt_versions row as version pages read it: plain attributes, no ORM entity (no identity map),
    and its JSONB columns fetched as text and decoded on first read, so a listing that selects
    ``number template`` decodes no JSON. It has the attributes of ``models.PromptVersion`` that
    readers use (``content_of``, related fields, cursors)."""

    __slots__ = (*_PLAIN, *(f"_{n}_text" for n in _JSON), *(f"_{n}" for n in _JSON))

    def __init__(self, *values: Any):
        for name, value in zip(_PLAIN, values, strict=False):
            setattr(self, name, value)
        for name, text in zip(_JSON, values[len(_PLAIN):], strict=True):
            setattr(self, f"_{name}_text", text)
            setattr(self, f"_{name}", _UNREAD)

    @staticmethod
    def columns(selectable: Any) -> list[Any]:
        """What to select from a subquery of prompt_versions, in ``__init__``'s order."""
        return [selectable.c[n] for n in _PLAIN] + [cast(selectable.c[n], Text) for n in _JSON]


for _name in _JSON:
    setattr(VersionRow, _name, _json_column(_name))


class VersionsPage(ChildPageLoader):
    """Prompt.versions: newest first, one window-function statement for all prompts of a request, read
    as ``VersionRow``s."""

    model = models.PromptVersion
    row_type = VersionRow
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
