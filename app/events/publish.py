"""Announce a change to every process's subscribers: ``publish`` in the transaction that makes it.

``publish(session, topics, data)`` calls ``pg_notify`` on the one channel ``ps_events`` inside the
caller's transaction, so subscribers hear of a change only once it has committed. ``data`` is a
small JSON object (ids, numbers, a type): a notice is a hint that something new can be read, never
the thing itself, so the 8000-byte limit of NOTIFY payloads is never near. ``topics`` say whom it
concerns (``app.events.topics``); each process's bus hands the notice to the subscribers of those
topics.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

#: The channel every notice goes on (payload: {"k": [topics], "d": data}).
CHANNEL = "ps_events"
#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD = 7900

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


def encode(topics: Sequence[str], data: Mapping[str, Any]) -> str:
    payload = json.dumps({"k": list(topics), "d": dict(data)}, separators=(",", ":"), default=str)
    if len(payload.encode()) > MAX_PAYLOAD:
        raise ValueError(f"a notice of {len(payload.encode())} bytes is too big for NOTIFY; publish ids, not data")
    return payload


async def publish(session: AsyncSession, topics: Sequence[str], data: Mapping[str, Any]) -> None:
    """Announce ``data`` to the subscribers of ``topics`` once the caller's transaction commits."""
    await session.execute(_NOTIFY, {"channel": CHANNEL, "payload": encode(topics, data)})
