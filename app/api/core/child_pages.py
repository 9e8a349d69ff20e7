"""Nested connections without N+1: one page of children for many parents in one statement.

A connection inside a list (``projects { nodes { members(first: 5) { ... } } }``) must not query per
parent. ``ChildPageLoader`` subclasses describe one relation; all parents asked for in one tick are
paged together with ``ROW_NUMBER() OVER (PARTITION BY parent ORDER BY sort, id)``, and totalCount
(when selected) is one ``GROUP BY parent`` for all of them.

    class MembersPage(ChildPageLoader):
        model = ProjectMember
        parent_col = ProjectMember.project_id
        sort_col = ProjectMember.added_at
        id_col = ProjectMember.user_id

    return await child_connection(info, MembersPage, project_id, first=first, after=after, wrap=Member.from_row)

Extra arguments (filters) go in ``args`` (hashable); ``base()`` reads them from ``self.args``.

``row_type`` reads plain rows instead of ORM entities (no identity map, no per-row ORM state):
``row_type.columns(selectable)`` says what to select from the paged subquery, ``row_type(*values)``
builds a row (see ``prompts.loaders.VersionRow``, which also leaves JSON undecoded until read).

``lateral = True`` pages each parent with its own ``LATERAL (… ORDER BY … LIMIT n + 1)`` instead: an
index scan that stops after the page, where the window numbers every child of every parent first —
for big children tables (a project's traces, a trace's spans), whose parents may have millions.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, column, func, select, true, tuple_, values
from sqlalchemy.orm import aliased

from .context import Context, Info
from .loaders import BaseLoader
from .pagination import Connection, clamp_first, decode_cursor, encode_cursor

T = TypeVar("T")


@dataclass
class ChildPage(Generic[T]):
    rows: list[T]
    has_next: bool


class ChildPageLoader(BaseLoader):
    """Key: parent id. Value: ChildPage of that parent's rows. Constructed per (first, after, *args)."""

    model: Any = None
    parent_col: Any = None
    sort_col: Any = None
    id_col: Any = None
    descending: bool = False
    #: Page each parent with a LATERAL subquery (see the module docstring).
    lateral: bool = False
    #: Rows of this class instead of ORM entities (see the module docstring); None: entities.
    row_type: Any = None

    def __init__(self, ctx: Context, first: int | None, after: str | None, *args: Any):
        super().__init__(ctx)
        self.limit = clamp_first(first)
        self.after = after
        self.cursor = decode_cursor(after) if after else None
        self.args = args

    def base(self) -> Select[Any]:
        """The children of all parents, filtered (no ordering, no parent restriction)."""
        return select(self.model)

    # Column attributes are read from the class: on an instance they would act as ORM descriptors.
    @property
    def parent(self):
        return type(self).parent_col

    @property
    def sort(self):
        return type(self).sort_col

    @property
    def ident(self):
        return type(self).id_col

    def _order(self):
        if self.descending:
            return self.sort.desc(), self.ident.desc()
        return self.sort.asc(), self.ident.asc()

    def _after_cursor(self, stmt: Select[Any]) -> Select[Any]:
        if self.cursor is None:
            return stmt
        cmp = tuple_(self.sort, self.ident)
        value = tuple_(*self.cursor)
        return stmt.where(cmp < value if self.descending else cmp > value)

    async def batch_load_fn(self, keys: Sequence[Any]) -> list[ChildPage]:
        parents = list(set(keys))
        if self.lateral:
            result = await self._lateral_pages(parents)
        else:
            result = await self._window_pages(parents)
        rows_by_parent: dict[Any, list[Any]] = defaultdict(list)
        for row, parent in result:
            rows_by_parent[parent].append(row)
        out = []
        for k in keys:
            rows = rows_by_parent.get(k, [])
            out.append(ChildPage(rows[: self.limit], len(rows) > self.limit))
        return out

    async def _lateral_pages(self, parents: list[Any]) -> Sequence[Any]:
        keys = values(column("ps_parent", self.parent.type), name="ps_keys").data([(p,) for p in parents])
        page = (self._after_cursor(self.base().where(self.parent == keys.c.ps_parent))
                .order_by(*self._order()).limit(self.limit + 1).subquery("ps_page").lateral())
        if self.row_type is not None:
            sort, ident = page.c[self.sort.key], page.c[self.ident.key]
            selected: list[Any] = [*self.row_type.columns(page)]
        else:
            entity = aliased(type(self).model, page)
            sort, ident = getattr(entity, self.sort.key), getattr(entity, self.ident.key)
            selected = [entity]
        order = (sort.desc(), ident.desc()) if self.descending else (sort.asc(), ident.asc())
        outer = (select(*selected, keys.c.ps_parent).select_from(keys).join(page, true())
                 .order_by(keys.c.ps_parent, *order))
        return await self._run(outer)

    async def _run(self, outer: Select[Any]) -> Sequence[Any]:
        """(row, parent) pairs of ``outer``, whose last column is the parent."""
        async with self.ctx.db() as session:
            result = (await session.execute(outer)).all()
        if self.row_type is None:
            return result
        make = self.row_type
        return [(make(*r[:-1]), r[-1]) for r in result]

    async def _window_pages(self, parents: list[Any]) -> Sequence[Any]:
        rn = func.row_number().over(partition_by=self.parent, order_by=self._order()).label("ps_rn")
        stmt = self._after_cursor(
            self.base().add_columns(self.parent.label("ps_parent"), rn).where(self.parent.in_(parents)))
        sub = stmt.subquery()
        selected = self.row_type.columns(sub) if self.row_type is not None else [aliased(type(self).model, sub)]
        outer = (select(*selected, sub.c.ps_parent).where(sub.c.ps_rn <= self.limit + 1)
                 .order_by(sub.c.ps_parent, sub.c.ps_rn))
        return await self._run(outer)


class ChildCountLoader(BaseLoader):
    """Key: parent id. Value: how many children (after the page loader's filters)."""

    def __init__(self, ctx: Context, page_cls: type[ChildPageLoader], *args: Any):
        super().__init__(ctx)
        self.spec = page_cls(ctx, None, None, *args)

    async def batch_load_fn(self, keys: Sequence[Any]) -> list[int]:
        spec = self.spec
        stmt = (spec.base().with_only_columns(spec.parent, func.count())
                .where(spec.parent.in_(list(set(keys)))).group_by(spec.parent))
        async with self.ctx.db() as session:
            counts: dict[Any, int] = dict((await session.execute(stmt)).all())
        return [int(counts.get(k, 0)) for k in keys]


async def child_connection(info: Info, cls: type[ChildPageLoader], parent_id: uuid.UUID | Any, *,
                           first: int | None, after: str | None, wrap: Callable[[Any], T],
                           args: tuple = ()) -> Connection[T]:
    """The connection of ``parent_id``'s children, batched with every other parent of the request."""
    ctx = info.context
    loader = ctx.loader(cls, first, after, *args)
    page: ChildPage = await loader.load(parent_id)
    sort_key, id_key = cls.sort_col.key, cls.id_col.key
    cursors = [encode_cursor(getattr(r, sort_key), getattr(r, id_key)) for r in page.rows]
    nodes = [wrap(r) for r in page.rows]

    async def count() -> int:
        return await ctx.loader(ChildCountLoader, cls, *args).load(parent_id)

    return Connection.of(nodes, cursors, has_next=page.has_next, after=after, count=count)
