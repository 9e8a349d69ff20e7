"""Per-request dataloaders (aiodataloader): one class per relation, batched with one ``= ANY`` query.

Resolvers never query per row: they call ``ctx.loader(SomeLoader).load(key)`` (or
``ctx.by_id(Model).load(id)``), and all keys asked for in one tick of the event loop go to the
database as one statement. Each batch opens its own short session (sibling resolvers run
concurrently; one AsyncSession must never be shared between them).
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import select

if TYPE_CHECKING:
    from .context import Context

L = TypeVar("L", bound="BaseLoader")


class BaseLoader(DataLoader):
    """A DataLoader that knows the request context (session factory, principal)."""

    def __init__(self, ctx: "Context", **kwargs: Any):
        super().__init__(**kwargs)
        self.ctx = ctx


class ByIdLoader(BaseLoader):
    """Rows of one model by primary key (None for missing ones). Visibility is the caller's job."""

    model: Any = None

    def __init__(self, ctx: "Context", model: Any):
        super().__init__(ctx)
        self.model = model

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Any | None]:
        async with self.ctx.db() as session:
            rows = (await session.execute(select(self.model).where(self.model.id.in_(list(set(keys)))))).scalars()
            by_id = {r.id: r for r in rows}
        return [by_id.get(k) for k in keys]


class ManyByKeyLoader(BaseLoader):
    """Rows grouped by a foreign key, e.g. all validations of each prompt (a list per key).

    Subclass with ``model``, ``key_column`` (name), optional ``order_by`` (columns) and an optional
    ``where(stmt)`` hook for extra filters.
    """

    model: Any = None
    key_column: str = ""
    order_by: tuple = ()

    def where(self, stmt):
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


class VisibleViaPrompt(BaseLoader):
    """Rows of a model that belongs to a prompt (``model.prompt_id``: deployments, validations), by id;
    None unless the viewer may read prompts in that prompt's project. One query per batch."""

    def __init__(self, ctx: "Context", model: Any):
        super().__init__(ctx)
        self.model = model

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[Any | None]:
        from app.db.models import Prompt
        from app.services.access import Action

        async with self.ctx.db() as session:
            rows = (await session.execute(
                select(self.model, Prompt.project_id).join(Prompt, Prompt.id == self.model.prompt_id)
                .where(self.model.id.in_(list(set(keys)))))).all()
        allowed = await self.ctx.can_many([p for _, p in rows], Action.READ_PROMPTS) if rows else {}
        by_id = {r.id: r for r, p in rows if allowed.get(p)}
        return [by_id.get(k) for k in keys]


class Loaders:
    """The per-request registry of loader instances."""

    def __init__(self, ctx: "Context"):
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
