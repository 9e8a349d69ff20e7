"""The per-request context: settings, session factory, principal, loaders, request metadata."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models.enums import ProjectRole
from app.services import access
from app.services.principal import Principal

from .errors import Unauthenticated
from .loaders import ByIdLoader, Loaders

if TYPE_CHECKING:
    from app.settings import Settings


@dataclass
class Context:
    settings: "Settings"
    sessionmaker: async_sessionmaker[AsyncSession]
    principal: Principal
    request: Any = None
    response: Any = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    #: Why an Authorization header was refused (bad or expired token); None when there was none.
    auth_error: str | None = None
    #: graphql-ws / graphql-transport-ws connection_init payload (set by Strawberry).
    connection_params: Any = None
    #: Application services shared by the process (event bus, ...), set by the app.
    services: Any = None
    loaders: Loaders = field(init=False)
    _roles: dict[uuid.UUID, ProjectRole | None] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self)

    def refresh_loaders(self) -> None:
        """Forget cached rows (used by subscriptions, whose context lives as long as the socket)."""
        self.loaders = Loaders(self)
        self._roles = {}

    @asynccontextmanager
    async def db(self):
        """A short session for reading (loaders, resolvers)."""
        async with self.sessionmaker() as session:
            yield session

    def loader(self, cls, *args):
        return self.loaders.get(cls, *args)

    def by_id(self, model) -> ByIdLoader:
        return self.loaders.by_id(model)

    def require_auth(self) -> Principal:
        if not self.principal.is_authenticated:
            raise Unauthenticated(self.auth_error or "Sign in (Authorization: Bearer <token>) to do this.")
        return self.principal

    # --- access checks for readers, with the principal's roles cached for the request

    async def roles(self, project_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ProjectRole | None]:
        missing = [p for p in set(project_ids) if p not in self._roles]
        if missing:
            async with self.db() as session:
                found = await access.roles_in(session, self.principal, missing)
            for p in missing:
                self._roles[p] = found.get(p)
        return {p: self._roles[p] for p in project_ids}

    async def can(self, project_id: uuid.UUID, action: access.Action) -> bool:
        role = (await self.roles([project_id]))[project_id]
        return access.visible(self.principal, role, project_id) and access.allowed(
            self.principal, role, project_id, action)

    async def can_many(self, project_ids: Sequence[uuid.UUID], action: access.Action) -> dict[uuid.UUID, bool]:
        roles = await self.roles(project_ids)
        return {p: access.visible(self.principal, r, p) and access.allowed(self.principal, r, p, action)
                for p, r in roles.items()}
