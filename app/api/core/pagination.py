"""Connections with keyset pagination: cursor = (sort value, id), ``first`` 20 by default and at most
100, ``totalCount`` computed only when selected.

``keyset_connection`` pages a root list (one statement); nested lists (a connection per parent)
use ``child_pages.child_connection``, which pages every parent of a request in one statement.
"""
from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import strawberry
from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from .context import Info
from .errors import BadRequest

T = TypeVar("T")

DEFAULT_PAGE = 20
MAX_PAGE = 100


class PaginationError(BadRequest):
    """A bad ``first`` or ``after``: a top-level BAD_USER_INPUT error."""


def clamp_first(first: int | None, default: int = DEFAULT_PAGE) -> int:
    """`first` defaults to 20 and is capped at 100; negative is an error."""
    if first is None:
        return default
    if first < 0:
        raise PaginationError("`first` must not be negative")
    return min(first, MAX_PAGE)


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


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
    def empty(cls) -> Connection[Any]:
        return cls(edges=[], nodes=[], page_info=PageInfo(has_next_page=False, has_previous_page=False,
                                                          start_cursor=None, end_cursor=None))

    @classmethod
    def of(cls, nodes: Sequence[Any], cursors: Sequence[str], *, has_next: bool, after: str | None,
           count: Callable[[], Awaitable[int]] | None) -> Connection[Any]:
        """A page: its nodes with their cursors; ``count`` computes totalCount when it is selected."""
        return cls(edges=[Edge(cursor=c, node=n) for c, n in zip(cursors, nodes, strict=True)], nodes=list(nodes),
                   page_info=PageInfo(has_next_page=has_next, has_previous_page=after is not None,
                                      start_cursor=cursors[0] if cursors else None,
                                      end_cursor=cursors[-1] if cursors else None),
                   _count=count)


# ------------------------------------------------------------------ cursors


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
    if type(sort_value) is int and type(id_) is uuid.UUID:
        # The common case (a version number and an id), written as json.dumps would write it, without
        # its cost: a page of 10,000 versions spent 8% of its time here.
        raw = f'[{sort_value},{{"u":"{id_}"}}]'
    else:
        raw = json.dumps([_enc_value(sort_value), _enc_value(id_)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, Any]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        sort_value, id_ = json.loads(raw)
        return _dec_value(sort_value), _dec_value(id_)
    except Exception:
        raise PaginationError("`after` is not a cursor from this connection") from None


def check_cursor_types(after: str | None, value_type: type | tuple[type, ...], id_type: type) -> None:
    """Refuse a cursor whose values are not of the connection's sort and id types (another connection's)."""
    if not after:
        return
    value, id_ = decode_cursor(after)
    if not isinstance(id_, id_type) or not isinstance(value, value_type) or isinstance(value, bool):
        raise PaginationError("`after` is not a cursor from this connection (or its order changed)")


# ------------------------------------------------------------------ a root list


async def keyset_connection(
    info: Info,
    stmt: Select[Any],
    *,
    sort_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    first: int | None,
    after: str | None,
    wrap: Callable[[Any], T],
    descending: bool = False,
    default_first: int = DEFAULT_PAGE,
) -> Connection[T]:
    """Run ``stmt`` (already filtered) as one page ordered by (sort_col, id_col).

    ``wrap`` turns a row into the GraphQL object. A bad `after` or a negative `first` raise
    PaginationError, which the API reports as a GraphQL error.
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
        rows = list((await session.execute(stmt)).scalars().all())
    has_next = len(rows) > limit
    rows = rows[:limit]
    cursors = [encode_cursor(getattr(r, sort_col.key), getattr(r, id_col.key)) for r in rows]

    async def count() -> int:
        count_stmt = select(func.count()).select_from(base.order_by(None).subquery())
        async with ctx.db() as session:
            return int((await session.execute(count_stmt)).scalar_one())

    return Connection.of([wrap(r) for r in rows], cursors, has_next=has_next, after=after, count=count)
