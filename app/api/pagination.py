"""Keyset pagination: cursor = (sort value, id), `first` default 20 / max 100, totalCount only when asked."""
from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import strawberry
from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute
from strawberry.types import Info

from .relay import DEFAULT_PAGE, PageInfo, PaginationError, clamp_first

T = TypeVar("T")


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    nodes: list[T]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]] | None] = None

    @strawberry.field(description="Computed only when asked for.")
    async def total_count(self) -> int:
        if self._count is None:
            return len(self.nodes)
        return await self._count()

    @classmethod
    def empty(cls) -> "Connection":
        return cls(edges=[], nodes=[], page_info=PageInfo(has_next_page=False, has_previous_page=False,
                                                          start_cursor=None, end_cursor=None),
                   _count=None)


def _enc_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return {"t": v.isoformat()}
    if isinstance(v, uuid.UUID):
        return {"u": str(v)}
    if isinstance(v, Decimal):
        return {"d": str(v)}
    return v


def _dec_value(v: Any) -> Any:
    if isinstance(v, dict):
        if "t" in v:
            return datetime.fromisoformat(v["t"])
        if "u" in v:
            return uuid.UUID(v["u"])
        if "d" in v:
            return Decimal(v["d"])
    return v


def encode_cursor(sort_value: Any, id_: Any) -> str:
    raw = json.dumps([_enc_value(sort_value), _enc_value(id_)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, Any]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        sort_value, id_ = json.loads(raw)
        return _dec_value(sort_value), _dec_value(id_)
    except Exception:
        raise PaginationError("`after` is not a cursor from this connection") from None


async def keyset_connection(
    info: Info,
    stmt: Select,
    *,
    sort_col: InstrumentedAttribute | Any,
    id_col: InstrumentedAttribute | Any,
    first: int | None,
    after: str | None,
    wrap: Callable[[Any], T],
    descending: bool = False,
    default_first: int = DEFAULT_PAGE,
    sort_key: Callable[[Any], Any] | None = None,
    id_key: Callable[[Any], Any] | None = None,
    scalars: bool = True,
) -> Connection[T]:
    """Run ``stmt`` (already filtered) as one page ordered by (sort_col, id_col).

    ``wrap`` turns a row into the GraphQL object; ``sort_key``/``id_key`` read the cursor values
    from a row (default: the attributes named like the columns). A bad `after` or a negative
    `first` raise PaginationError, which the API reports as a GraphQL error.
    """
    limit = clamp_first(first, default_first)
    base = stmt
    if after:
        sort_value, id_value = decode_cursor(after)
        cmp = tuple_(sort_col, id_col)
        stmt = stmt.where(cmp < tuple_(sort_value, id_value) if descending else cmp > tuple_(sort_value, id_value))
    order = (sort_col.desc(), id_col.desc()) if descending else (sort_col.asc(), id_col.asc())
    stmt = stmt.order_by(*order).limit(limit + 1)
    ctx = info.context
    async with ctx.db() as session:
        result = await session.execute(stmt)
        rows = list(result.scalars().all() if scalars else result.all())
    has_next = len(rows) > limit
    rows = rows[:limit]
    sk = sort_key or (lambda r: getattr(r, sort_col.key))
    ik = id_key or (lambda r: getattr(r, id_col.key))
    cursors = [encode_cursor(sk(r), ik(r)) for r in rows]
    nodes = [wrap(r) for r in rows]

    async def count() -> int:
        count_stmt = select(func.count()).select_from(base.order_by(None).subquery())
        async with ctx.db() as session:
            return int((await session.execute(count_stmt)).scalar_one())

    return Connection(
        edges=[Edge(cursor=c, node=n) for c, n in zip(cursors, nodes)],
        nodes=nodes,
        page_info=PageInfo(has_next_page=has_next, has_previous_page=after is not None,
                           start_cursor=cursors[0] if cursors else None,
                           end_cursor=cursors[-1] if cursors else None),
        _count=count,
    )
