"""The async engine and session factory (SQLAlchemy 2 + asyncpg)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from app.settings import Settings


def async_url(url: str) -> str:
    """postgresql://... (as users and libpq write it) -> postgresql+asyncpg://..."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


def plain_url(url: str) -> str:
    """postgresql+asyncpg://... -> postgresql://... (for asyncpg.connect and libpq tools)."""
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, settings: Settings | None = None) -> AsyncEngine:
    pool_size = settings.db_pool_size if settings else 5
    overflow = settings.db_max_overflow if settings else 5
    echo = settings.db_echo if settings else False
    pre_ping = settings.db_pre_ping if settings else False
    recycle = settings.db_pool_recycle_seconds if settings else 1800
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=overflow,
        pool_pre_ping=pre_ping,
        pool_recycle=recycle,
        echo=echo,
        json_serializer=lambda obj: json.dumps(obj, ensure_ascii=False, separators=(",", ":")),
        connect_args={"server_settings": {"application_name": "promptstudio", "timezone": "UTC"}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def create_engine_and_sessionmaker(url: str, settings: Settings | None = None):
    engine = create_engine(url, settings)
    return engine, create_sessionmaker(engine)
