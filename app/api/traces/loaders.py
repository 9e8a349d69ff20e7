"""Per-request loaders of traces and spans: one statement per relation and request shape, never per row.

Pages of traces and of spans are LATERAL (``ChildPageLoader.lateral``): a project may hold millions of
traces and a trace thousands of spans, and each page is an index scan that stops after ``first + 1`` rows.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select, tuple_

from app.db import models

from ..core.child_pages import ChildPageLoader
from ..core.loaders import BaseLoader, ByKeyLoader


@dataclass(frozen=True)
class TraceFilterSpec:
    """A TraceFilter as loader arguments (hashable). Times are UTC-aware."""

    start: datetime | None = None
    end: datetime | None = None
    status: str | None = None
    end_user_id: str | None = None
    session_id: str | None = None
    name: str | None = None


def trace_conditions(f: TraceFilterSpec) -> list[ColumnElement[bool]]:
    """The filter as conditions on ``traces`` (each one served by an index of the table with project_id)."""
    t = models.Trace
    out: list[ColumnElement[bool]] = []
    if f.start is not None:
        out.append(t.start_time >= f.start)
    if f.end is not None:
        out.append(t.start_time < f.end)
    if f.status is not None:
        out.append(t.status == f.status)
    if f.end_user_id is not None:
        out.append(t.end_user_id == f.end_user_id)
    if f.session_id is not None:
        out.append(t.session_id == f.session_id)
    if f.name is not None:
        out.append(t.name == f.name)
    return out


class TracesPage(ChildPageLoader):
    """Project.traces: newest first (start time, then id). args = (TraceFilterSpec,)."""

    model = models.Trace
    parent_col = models.Trace.project_id
    sort_col = models.Trace.start_time
    id_col = models.Trace.id
    descending = True
    lateral = True

    def base(self) -> Select[Any]:
        (spec,) = self.args
        return select(models.Trace).where(*trace_conditions(spec))


class SpansPage(ChildPageLoader):
    """Trace.spans: in start order (start time, then id)."""

    model = models.Span
    parent_col = models.Span.trace_pk
    sort_col = models.Span.start_time
    id_col = models.Span.id
    lateral = True


class TraceByTraceId(ByKeyLoader):
    """Key (project id, trace id) -> the trace or None (visibility is the caller's job)."""

    model = models.Trace
    columns = ("project_id", "trace_id")


class TraceByExecution(BaseLoader):
    """Key execution id -> the trace recording it, or None."""

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[models.Trace | None]:
        async with self.ctx.db() as session:
            rows = (await session.execute(
                select(models.Trace).where(models.Trace.execution_id.in_(list(set(keys)))))).scalars().all()
        by_execution = {r.execution_id: r for r in rows}
        return [by_execution.get(k) for k in keys]


class SpanBySpanId(ByKeyLoader):
    """Key (trace row id, span id) -> the span or None: Span.parent and Trace.rootSpan."""

    model = models.Span
    columns = ("trace_pk", "span_id")


class RootSpan(SpanBySpanId):
    """Trace.rootSpan: the same lookup as Span.parent, batched apart (so the statements of a request do not depend
    on which loads happen to share a tick)."""


class SpanChildren(BaseLoader):
    """Key (trace row id, span id) -> the spans whose parent it is, in start order."""

    async def batch_load_fn(self, keys: Sequence[tuple[uuid.UUID, str]]) -> list[list[models.Span]]:
        s = models.Span
        stmt = (select(s).where(tuple_(s.trace_pk, s.parent_span_id).in_(list(set(keys))))
                .order_by(s.trace_pk, s.start_time, s.id))
        async with self.ctx.db() as session:
            rows = (await session.execute(stmt)).scalars().all()
        grouped: dict[tuple[uuid.UUID, str], list[models.Span]] = defaultdict(list)
        for r in rows:
            assert r.parent_span_id is not None
            grouped[(r.trace_pk, r.parent_span_id)].append(r)
        return [grouped.get((k[0], k[1]), []) for k in keys]


class UsageBySpan(BaseLoader):
    """Key span row id -> its LlmUsage row, or None."""

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[models.LlmUsage | None]:
        u = models.LlmUsage
        async with self.ctx.db() as session:
            rows = (await session.execute(select(u).where(u.span_pk.in_(list(set(keys)))))).scalars().all()
        by_span = {r.span_pk: r for r in rows}
        return [by_span.get(k) for k in keys]
