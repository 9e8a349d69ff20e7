"""The per-request context: settings, session factory, principal, loaders, request metadata.

Resolvers take ``info: Info`` (``strawberry.Info`` typed with this Context) and reach it as
``info.context``.
"""
from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models.enums import ProjectRole
from app.services import access
from app.services.principal import Principal

from .errors import Unauthenticated
from .loaders import BaseLoader, ByIdLoader, Loaders, RoleLoader

if TYPE_CHECKING:
    from app.runtime import Runtime
    from app.settings import Settings

L = TypeVar("L", bound=BaseLoader)

#: Per session factory, its autocommit twin (same engine and pool) for ``Context.db``.
_AUTOCOMMIT: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], async_sessionmaker[AsyncSession]] = (
    weakref.WeakKeyDictionary())


def autocommit_sessionmaker(maker: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Sessions of ``maker``'s engine whose statements run without BEGIN/ROLLBACK around them (each is
    its own snapshot): for reads, which is all a loader batch does."""
    reader = _AUTOCOMMIT.get(maker)
    if reader is None:
        bind = maker.kw.get("bind")
        if bind is None:
            return maker
        reader = async_sessionmaker(bind.execution_options(isolation_level="AUTOCOMMIT"),
                                    expire_on_commit=False, autoflush=False)
        _AUTOCOMMIT[maker] = reader
    return reader


@dataclass
class Context:
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    principal: Principal
    request: Any = None
    response: Any = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    #: Why the credential given was refused (unknown, revoked or expired token; a malformed
    #: Authorization header); None when there was none or it was accepted. Every operation of such a
    #: request fails with UNAUTHENTICATED.
    auth_error: str | None = None
    #: graphql-ws / graphql-transport-ws connection_init payload (set by Strawberry).
    connection_params: Any = None
    #: What the process shares across requests (event bus, workers, ...), set by the app.
    services: Runtime | None = None
    #: "query", "mutation" or "subscription", once the operation is known (set by MaskInternalErrors).
    operation_type: str | None = None
    #: Set when the database failed the operation: "lost" (a connection died under a statement: a
    #: query is worth one more try) or "unreachable" (no connection could be had). The view answers
    #: 503 with Retry-After.
    database_error: str | None = None
    loaders: Loaders = field(init=False)
    #: Loader batches reading now (app/api/core/loaders.py).
    batches: set[asyncio.Task[Any]] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self)

    def cancel_batches(self) -> None:
        """Cancel the loader batches still reading: the request they read for was cancelled."""
        for task in list(self.batches):
            task.cancel()

    def refresh_loaders(self) -> None:
        """Forget cached rows and roles (subscriptions: their context lives as long as the socket)."""
        self.loaders = Loaders(self)

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        """A short session for reading (loaders, resolvers), in autocommit: no BEGIN/ROLLBACK round
        trips per loader batch, each statement its own snapshot. Never write with it; statements
        that must share a transaction (``set_config(..., true)``) take ``db_transaction``."""
        async with autocommit_sessionmaker(self.sessionmaker)() as session:
            yield session

    @asynccontextmanager
    async def db_transaction(self) -> AsyncIterator[AsyncSession]:
        """A short session whose statements share one transaction (``session.begin()`` sends BEGIN)."""
        async with self.sessionmaker() as session:
            yield session

    def loader(self, cls: type[L], *args: Any) -> L:
        return self.loaders.get(cls, *args)

    def by_id(self, model: Any) -> ByIdLoader:
        return self.loaders.by_id(model)

    def require_auth(self) -> Principal:
        """The principal, signed in; UNAUTHENTICATED otherwise."""
        if self.auth_error:
            raise Unauthenticated(self.auth_error)
        if not self.principal.is_authenticated:
            raise Unauthenticated()
        return self.principal

    # --- what readers ask before they show anything (the decisions are app.services.access's)

    async def role(self, project_id: uuid.UUID) -> ProjectRole | None:
        return await self.loader(RoleLoader).load(project_id)

    async def can(self, project_id: uuid.UUID, action: access.Action) -> bool:
        return access.permits(self.principal, await self.role(project_id), project_id, action)

    async def can_many(self, project_ids: Sequence[uuid.UUID], action: access.Action) -> dict[uuid.UUID, bool]:
        ids = list(dict.fromkeys(project_ids))
        roles = await self.loader(RoleLoader).load_many(ids)
        return {p: access.permits(self.principal, r, p, action) for p, r in zip(ids, roles, strict=True)}


Info: TypeAlias = strawberry.Info[Context, None]
