"""Per-request dataloaders (aiodataloader): one class per relation, batched with one ``= ANY`` query.

Resolvers never query per row: they call ``ctx.loader(SomeLoader).load(key)`` (or
``ctx.by_id(Model).load(id)``), and all keys asked for in one tick of the event loop go to the
database as one statement. Each batch opens its own short session (sibling resolvers run
concurrently; one AsyncSession must never be shared between them).

Shared here: rows by id (``ByIdLoader``), rows grouped by a foreign key (``ManyByKeyLoader``),
the caller's role per project (``RoleLoader``) and rows the caller may see (``Visible``). The
decisions are ``app.services.access``'s; these loaders only batch the reads they need.

Cancellation: a value may be awaited by several resolvers, of one operation or (on a WebSocket,
whose context outlives its operations) of several, so a resolver that is cancelled stops waiting
without cancelling the value others wait for (``load`` hands out shielded futures). A batch still
reading when its whole request is cancelled (an HTTP client went away) is cancelled with it
(``Context.cancel_batches``, called by the view).
"""
from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import Select, select, tuple_

from app.db.models.enums import ProjectRole
from app.services import access

if TYPE_CHECKING:
    from .context import Context

L = TypeVar("L", bound="BaseLoader")


class BaseLoader(DataLoader):
    """A DataLoader that knows the request context (session factory, principal)."""

    def __init__(self, ctx: Context, **kwargs: Any):
        super().__init__(**kwargs)
        self.ctx = ctx
        batch = self.batch_load_fn

        async def tracked(keys: list[Any]) -> Any:
            task = asyncio.current_task()
            if task is not None:
                ctx.batches.add(task)
            try:
                return await batch(keys)
            finally:
                ctx.batches.discard(task)

        self.batch_load_fn = tracked

    def load(self, key: Any) -> asyncio.Future[Any]:
        """The value for ``key`` (batched with the other keys of this tick), shielded: the loader hands
        one cached future to every caller of a key, and a caller cancelled while waiting (a stopped
        subscription on a shared WebSocket context, say) would otherwise cancel it for all of them —
        and for every later caller, since the cancelled future stays cached."""
        return asyncio.shield(super().load(key))

    def load_many(self, keys: Any) -> asyncio.Future[list[Any]]:
        """The values for ``keys``, shielded as a whole (one shield, not one per key: a batch that
        reads the rows of 150 ids through another loader spent a tenth of its time in shields)."""
        return asyncio.shield(asyncio.gather(*[DataLoader.load(self, key) for key in keys]))


class ByIdLoader(BaseLoader):
    """Rows of one model by primary key (None for missing ones). Visibility is the caller's job."""

    def __init__(self, ctx: Context, model: Any):
        super().__init__(ctx)
        self.model = model

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Any | None]:
        async with self.ctx.db() as session:
            rows = (await session.execute(select(self.model).where(self.model.id.in_(list(set(keys)))))).scalars()
            by_id = {r.id: r for r in rows}
        return [by_id.get(k) for k in keys]


class ByKeyLoader(BaseLoader):
    """Rows of a model by a unique key of several columns, e.g. a version by (prompt id, number);
    None for missing ones. Subclass with ``model`` and ``columns`` (attribute names)."""

    model: Any = None
    columns: tuple[str, ...] = ()

    async def batch_load_fn(self, keys: Sequence[tuple[Any, ...]]) -> list[Any | None]:
        cols = [getattr(self.model, c) for c in self.columns]
        async with self.ctx.db() as session:
            rows = (await session.execute(
                select(self.model).where(tuple_(*cols).in_(list(set(keys)))))).scalars().all()
        by_key = {tuple(getattr(r, c) for c in self.columns): r for r in rows}
        return [by_key.get(tuple(k)) for k in keys]


class ManyByKeyLoader(BaseLoader):
    """Rows grouped by a foreign key, e.g. all validations of each prompt (a list per key).

    Subclass with ``model``, ``key_column`` (name), optional ``order_by`` (columns) and an optional
    ``where(stmt)`` hook for extra filters.
    """

    model: Any = None
    key_column: str = ""
    order_by: tuple[Any, ...] = ()

    def where(self, stmt: Select[Any]) -> Select[Any]:
        return stmt

    async def batch_load_fn(self, keys: Sequence[Any]) -> list[list[Any]]:
        col = getattr(self.model, self.key_column)
        stmt = self.where(select(self.model).where(col.in_(list(set(keys)))))
        if self.order_by:
            stmt = stmt.order_by(*self.order_by)
        async with self.ctx.db() as session:
            rows = (await session.execute(stmt)).scalars().all()
        grouped: dict[Any, list[Any]] = defaultdict(list)
        for r in rows:
            grouped[getattr(r, self.key_column)].append(r)
        return [grouped.get(k, []) for k in keys]


class RoleLoader(BaseLoader):
    """Key project id -> the caller's role there (None: not a member; no query for API keys)."""

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[ProjectRole | None]:
        if not access.has_roles(self.ctx.principal):
            return [None] * len(keys)
        async with self.ctx.db() as session:
            found = await access.roles_in(session, self.ctx.principal, keys)
        return [found.get(k) for k in keys]


class Visible(BaseLoader):
    """Key id -> the row of ``model``, or None when it is missing or the caller may not see it.

    What seeing a row needs is ``access.READ_RULES[model]``: a permission in the row's project (one
    statement for the rows, one for the caller's roles — both shared with the rest of the
    request), the visibility of a parent row (Prompt for a PromptVersion: the same loader, one
    level up), nothing (public), or the rule of users.
    """

    def __init__(self, ctx: Context, model: type):
        super().__init__(ctx)
        self.model = model
        self.rule = access.read_rule(model)

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Any | None]:
        rows = await self.ctx.by_id(self.model).load_many(list(keys))
        present = [r for r in rows if r is not None]
        rule = self.rule
        if rule.public or not present:
            return rows
        if rule.users:
            async with self.ctx.db() as session:
                seen = await access.visible_user_ids(session, self.ctx.principal, [r.id for r in present])
            return [r if r is not None and r.id in seen else None for r in rows]
        if rule.parent is not None:
            parent_model, attr = rule.parent
            parents = await self.ctx.loader(Visible, parent_model).load_many(
                list({getattr(r, attr) for r in present}))
            seen = {p.id for p in parents if p is not None}
            return [r if r is not None and getattr(r, attr) in seen else None for r in rows]
        known = list({p for p in (access.project_of(r, rule) for r in present) if p is not None})
        roles = dict(zip(known, await self.ctx.loader(RoleLoader).load_many(known), strict=True))
        principal = self.ctx.principal
        out: list[Any | None] = []
        for r in rows:
            project_id = access.project_of(r, rule) if r is not None else None
            ok = r is not None and access.may_read(principal, roles.get(project_id) if project_id else None,
                                                   project_id, rule)
            out.append(r if ok else None)
        return out


class Loaders:
    """The per-request registry of loader instances (one per class and arguments)."""

    def __init__(self, ctx: Context):
        self._ctx = ctx
        self._by_class: dict[Any, DataLoader] = {}

    def get(self, cls: type[L], *args: Any) -> L:
        key = (cls, *args)
        loader = self._by_class.get(key)
        if loader is None:
            loader = cls(self._ctx, *args)
            self._by_class[key] = loader
        return loader  # type: ignore[return-value]

    def by_id(self, model: Any) -> ByIdLoader:
        return self.get(ByIdLoader, model)
