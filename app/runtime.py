"""What one server process shares across requests: settings, engine, session factory, event bus, workers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    #: app.events bus (LISTEN/NOTIFY fan-out), once started.
    bus: Any = None
    #: app.services.hot: the hot path's caches (HotCaches) and lastUsedAt written behind (LastUsed).
    caches: Any = None
    last_used: Any = None
    #: app.engine worker pool, once started.
    workers: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
