"""Traces and spans (OpenTelemetry's model), from OTLP ingest, ``ingestSpans`` and executions.

Built for volume (see docs/architecture.md, "Traces"):

* ``spans`` is the big table. Rows are written in batches by ``app.services.traces.write_spans``;
  their ids are time-ordered UUIDs (``app.db.ids``), so the primary key index grows at its right
  edge like the BRIN-indexed ``start_time``. A span is stored once per (trace, span id): a span sent
  again is ignored. ``project_id`` is denormalised from the trace (isolation checks and retention
  need no join) and has no foreign key of its own: the trace's cascades cover it.
* ``traces`` holds one summary row per trace, kept up to date as spans arrive (counts, times,
  status, usage totals), so listing traces never aggregates spans.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, Numeric, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, created_at, enum_check, updated_at, uuid_pk
from .enums import SpanKind, SpanStatus

#: Usage totals of a trace: dollars with six decimals, wider than one call's Money.
TotalMoney = Numeric(16, 6)


class Trace(Base):
    __tablename__ = "traces"

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    #: 32 lowercase hex characters, as in OpenTelemetry.
    trace_id: Mapped[str] = mapped_column(String(32), nullable=False)
    #: The root span's name (null until the root arrives).
    name: Mapped[str | None] = mapped_column(Text)
    root_span_id: Mapped[str | None] = mapped_column(String(16))
    end_user_id: Mapped[str | None] = mapped_column(String(256))
    session_id: Mapped[str | None] = mapped_column(String(256))
    #: ERROR when any span errored; otherwise the root's status (UNSET until it arrives).
    status: Mapped[str] = mapped_column(String(8), nullable=False, server_default=SpanStatus.UNSET.value)
    error: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[datetime] = mapped_column(nullable=False)
    end_time: Mapped[datetime | None] = mapped_column()
    span_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    error_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    #: Usage totals over the trace's spans that carry usage (LLM calls).
    llm_calls: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    input_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    output_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(TotalMoney, nullable=False, server_default="0")
    metadata_: Mapped[Any | None] = mapped_column("metadata", JSONB)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{}'::text[]"))
    #: The execution this trace records, for traces the engine writes.
    execution_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("executions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    #: When a span last changed the summary (live feeds and "what changed since").
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("trace_id ~ '^[0-9a-f]{32}$'", name="trace_id_hex"),
        CheckConstraint(enum_check("status", SpanStatus.values()), name="status_known"),
        CheckConstraint("span_count >= 0 AND error_count >= 0 AND llm_calls >= 0", name="counts_non_negative"),
        Index("uq_traces_project_id_trace_id", "project_id", "trace_id", unique=True),
        # Project.traces: newest first, keyset on (start_time, id); the filters' own orderings
        Index("ix_traces_project_id_start_time", "project_id", text("start_time DESC"), text("id DESC")),
        Index("ix_traces_project_id_end_user_id", "project_id", "end_user_id", text("start_time DESC"),
              postgresql_where=text("end_user_id IS NOT NULL")),
        Index("ix_traces_project_id_session_id", "project_id", "session_id", text("start_time DESC"),
              postgresql_where=text("session_id IS NOT NULL")),
        Index("ix_traces_project_id_name", "project_id", "name", text("start_time DESC")),
        Index("ix_traces_project_id_errors", "project_id", text("start_time DESC"),
              postgresql_where=text("status = 'ERROR'")),
        Index("uq_traces_execution_id", "execution_id", unique=True, postgresql_where=text("execution_id IS NOT NULL")),
    )


class Span(Base):
    __tablename__ = "spans"

    id: Mapped[uuid.UUID] = uuid_pk()
    trace_pk: Mapped[uuid.UUID] = mapped_column(ForeignKey("traces.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    #: 16 lowercase hex characters, as in OpenTelemetry.
    span_id: Mapped[str] = mapped_column(String(16), nullable=False)
    parent_span_id: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, server_default=SpanKind.INTERNAL.value)
    status: Mapped[str] = mapped_column(String(8), nullable=False, server_default=SpanStatus.UNSET.value)
    error: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[datetime] = mapped_column(nullable=False)
    end_time: Mapped[datetime | None] = mapped_column()
    attributes: Mapped[Any | None] = mapped_column(JSONB)
    events: Mapped[Any | None] = mapped_column(JSONB)

    __table_args__ = (
        CheckConstraint("span_id ~ '^[0-9a-f]{16}$' AND (parent_span_id IS NULL OR parent_span_id ~ '^[0-9a-f]{16}$')",
                        name="span_ids_hex"),
        CheckConstraint(enum_check("kind", SpanKind.values()), name="kind_known"),
        CheckConstraint(enum_check("status", SpanStatus.values()), name="status_known"),
        CheckConstraint("end_time IS NULL OR end_time >= start_time", name="ends_after_start"),
        # stored once per (trace, span id); Span.parent looks up by it
        Index("uq_spans_trace_pk_span_id", "trace_pk", "span_id", unique=True),
        # Trace.spans in start order (keyset on (start_time, id)); Span.children filter it by parent
        Index("ix_spans_trace_pk_start_time", "trace_pk", "start_time", "id"),
        Index("ix_spans_start_time_brin", "start_time", postgresql_using="brin"),
        # attributes of a few kB stay inline, uncompressed: pglz on every span cost a fifth of the
        # database's CPU per span written (migration 0010)
        {"postgresql_with": {"toast_tuple_target": 8160}},
    )
