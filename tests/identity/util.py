"""Small helpers for the identity tests."""
from __future__ import annotations

import base64
import uuid
from contextlib import asynccontextmanager

import asyncpg

ERR = "userErrors { code message field }"


def raw_uuid(gid: str) -> uuid.UUID:
    """The UUID inside a global ID (base64url of "Type:uuid")."""
    raw = base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode()
    return uuid.UUID(raw.partition(":")[2])


def gid(type_name: str, id_: uuid.UUID | str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{id_}".encode()).decode().rstrip("=")


def codes(payload: dict) -> list[tuple[str, list[str] | None]]:
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


@asynccontextmanager
async def sql(db_url: str):
    """A raw asyncpg connection to the test database (to look behind the API)."""
    conn = await asyncpg.connect(db_url)
    try:
        yield conn
    finally:
        await conn.close()
