"""Trace, Span and TraceFilter.

A trace's figures (status, times, counts, usage totals) come from its summary row, kept up to date as
spans arrive (``app.services.traces.write_spans``), so listing traces never aggregates spans. Relations
are batched: Trace.spans is one LATERAL page per trace for all traces of a request, Span.parent /
children / usage one statement each for all spans asked for.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from app.db import models

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.enums import SpanKind, SpanStatus
from ..core.errors import BadRequest
from ..core.pagination import Connection, check_cursor_types
from ..core.relay import Node, global_id, node, related
from ..models.types import CostTotals, LlmUsage
from .loaders import RootSpan, SpanBySpanId, SpanChildren, SpansPage, TraceFilterSpec, UsageBySpan

if TYPE_CHECKING:
    from ..executions.types import Execution
    from ..projects.types import Project

ProjectRef = Annotated["Project", strawberry.lazy("app.api.projects.types")]
ExecutionRef = Annotated["Execution", strawberry.lazy("app.api.executions.types")]


def _duration_ms(start: datetime, end: datetime | None) -> int | None:
    return None if end is None else int((end - start).total_seconds() * 1000)


# ------------------------------------------------------------------ Span


@node(models.Span)
@strawberry.type(description="One operation of a trace (OpenTelemetry's span).")
class Span(Node):
    id: strawberry.ID
    span_id: str = strawberry.field(description="16 hex characters, as in OpenTelemetry.")
    parent_span_id: str | None = strawberry.field(description=(
        "The parent's span id; null for a root span. Set even when the parent has not arrived (yet), "
        "unlike `parent`."))
    name: str
    kind: SpanKind
    status: SpanStatus
    error: str | None = strawberry.field(description="The status message of an ERROR span.")
    start_time: datetime
    end_time: datetime | None
    duration_ms: int | None
    attributes: JSON | None = strawberry.field(description="The span's attributes, as they came.")
    events: JSON | None = strawberry.field(description="The span's events (name, time, attributes), as they came.")
    row: strawberry.Private[models.Span]

    @classmethod
    def from_row(cls, row: models.Span) -> Span:
        return cls(id=global_id(cls, row.id), span_id=row.span_id, parent_span_id=row.parent_span_id, name=row.name,
                   kind=SpanKind(row.kind), status=SpanStatus(row.status), error=row.error,
                   start_time=row.start_time, end_time=row.end_time,
                   duration_ms=_duration_ms(row.start_time, row.end_time), attributes=row.attributes,
                   events=row.events, row=row)

    trace: Trace = related(models.Trace, "trace_pk")

    @strawberry.field(description="The parent span; null for a root span, or while the parent has not arrived.")
    async def parent(self, info: Info) -> Span | None:
        if self.row.parent_span_id is None:
            return None
        row = await info.context.loader(SpanBySpanId).load((self.row.trace_pk, self.row.parent_span_id))
        return Span.from_row(row) if row is not None else None

    @strawberry.field(description="The spans whose parent this is, in start order.")
    async def children(self, info: Info) -> list[Span]:
        rows = await info.context.loader(SpanChildren).load((self.row.trace_pk, self.row.span_id))
        return [Span.from_row(r) for r in rows]

    @strawberry.field(description="The model call this span made (LLM spans that carry usage).")
    async def usage(self, info: Info) -> LlmUsage | None:
        # Whoever may read a span may read its usage (READ_TRACES is part of READ_USAGE).
        row = await info.context.loader(UsageBySpan).load(self.row.id)
        return LlmUsage.from_row(row) if row is not None else None


# ------------------------------------------------------------------ Trace


@node(models.Trace)
@strawberry.type(description=(
    "A trace: the spans of one operation (an agent run, a request, an execution), with a summary kept up to date "
    "as its spans arrive, in any order and in any number of batches."))
class Trace(Node):
    id: strawberry.ID
    trace_id: str = strawberry.field(description="32 hex characters, as in OpenTelemetry.")
    name: str | None = strawberry.field(description="The root span's name; null until the root arrives.")
    end_user_id: str | None
    session_id: str | None
    status: SpanStatus = strawberry.field(description="ERROR when any span errored; otherwise the root's status "
                                                      "(UNSET until it arrives).")
    error: str | None = strawberry.field(description="The first error message (the root's, else the earliest).")
    start_time: datetime = strawberry.field(description="The earliest start of its spans.")
    end_time: datetime | None = strawberry.field(description="The latest end of its spans.")
    duration_ms: int | None
    metadata: JSON | None = strawberry.field(description="From the root span.")
    tags: list[str]
    span_count: int
    error_count: int = strawberry.field(description="Spans with status ERROR.")
    updated_at: datetime = strawberry.field(description="When a span last changed it.")
    row: strawberry.Private[models.Trace]

    @classmethod
    def from_row(cls, row: models.Trace) -> Trace:
        return cls(id=global_id(cls, row.id), trace_id=row.trace_id, name=row.name, end_user_id=row.end_user_id,
                   session_id=row.session_id, status=SpanStatus(row.status), error=row.error,
                   start_time=row.start_time, end_time=row.end_time,
                   duration_ms=_duration_ms(row.start_time, row.end_time), metadata=row.metadata_,
                   tags=list(row.tags), span_count=row.span_count, error_count=row.error_count,
                   updated_at=row.updated_at, row=row)

    project: ProjectRef = related(models.Project, "project_id")
    execution: ExecutionRef | None = related(
        models.Execution, "execution_id",
        description="The execution this trace records (null for ingested traces, or when you may not read executions).")

    @strawberry.field(description="The root span (the one without a parent); null until it arrives.")
    async def root_span(self, info: Info) -> Span | None:
        if self.row.root_span_id is None:
            return None
        row = await info.context.loader(RootSpan).load((self.row.id, self.row.root_span_id))
        return Span.from_row(row) if row is not None else None

    @strawberry.field(description="Its spans in start order (start time, then id); keyset pagination, 100 a page "
                                  "by default and at most.")
    async def spans(self, info: Info, first: int | None = 100, after: str | None = None) -> Connection[Span]:
        check_cursor_types(after, datetime, uuid.UUID)
        return await child_connection(info, SpansPage, self.row.id, first=first, after=after, wrap=Span.from_row)

    @strawberry.field(description="Calls, tokens and cost of its LLM spans (from the summary: no spans are read).")
    def usage(self) -> CostTotals:
        r = self.row
        return CostTotals.of(r.llm_calls, r.input_tokens, r.output_tokens, r.cost_usd)


# ------------------------------------------------------------------ filter


@strawberry.input(description="All given conditions hold. Times are of the trace's start; without a zone they are UTC.")
class TraceFilter:
    from_: datetime | None = strawberry.field(name="from", default=None, description="Started at or after this time.")
    to: datetime | None = strawberry.field(default=None, description="Started before this time.")
    status: SpanStatus | None = None
    end_user_id: str | None = strawberry.field(default=None, description="Exactly this end user.")
    session_id: str | None = strawberry.field(default=None, description="Exactly this session.")
    name: str | None = strawberry.field(default=None, description=(
        "Exactly this name (the root span's; case-sensitive, no partial match — an index serves it)."))


def _utc(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def filter_spec(f: TraceFilter | None) -> TraceFilterSpec:
    """The filter as hashable loader arguments; BAD_USER_INPUT when `from` is after `to`."""
    if f is None:
        return TraceFilterSpec()
    start, end = _utc(f.from_), _utc(f.to)
    if start is not None and end is not None and start > end:
        raise BadRequest("filter.from is after filter.to")
    return TraceFilterSpec(start=start, end=end, status=f.status.value if f.status is not None else None,
                           end_user_id=f.end_user_id, session_id=f.session_id, name=f.name)
