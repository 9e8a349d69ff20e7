"""Writing spans: the one path by which spans reach the database (OTLP ingest, ``ingestSpans`` and the
engine's execution traces all call :func:`write_spans`).

A batch is written in three statements in the caller's transaction, however many spans it holds:

1. the traces it touches are upserted (``INSERT … ON CONFLICT DO UPDATE``, in trace id order so that
   concurrent batches sharing traces lock them in the same order and never deadlock), which also
   locks their summary rows until the commit;
2. one statement inserts the spans — given as one JSON document of their fields plus two text arrays
   of their attributes and events (``ON CONFLICT DO NOTHING`` on (trace, span id): a span sent again
   is stored once) —, inserts an ``llm_usage`` row for each new
   span that carries usage, and folds the new spans into their traces' summaries (counts, times,
   status, root name, usage totals) — only the spans actually inserted count, so a batch sent twice
   changes nothing;
3. the subscribers of the project's traces are told which traces changed (``NOTIFY``, at commit).

Usage is priced here, in Python, with :func:`app.services.models.compute_cost` at the prices in force
at the span's start (one query per batch for the models it names), unless the span carries its cost.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.ids import uuid7s
from app.db.models.enums import SpanKind, SpanStatus
from app.events import topics
from app.events.publish import publish

from .models import Cost, PriceBook, compute_cost

#: Trace ids per change notice (a notice must stay under NOTIFY's 8000 bytes).
NOTICE_TRACES = 150


@dataclass(slots=True)
class SpanUsage:
    """A model call's usage carried by a span (from its attributes, or given directly)."""

    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    latency_ms: int | None = None
    #: False when the provider reported no usage and the tokens were counted by us.
    reported: bool = True
    #: The call's total cost when the span says it; otherwise it is computed from the model's prices …
    cost_usd: Decimal | None = None
    #: … unless the caller priced it already (the engine does, to log it): the cost and its price row.
    cost: Cost | None = None
    model_config_id: uuid.UUID | None = None
    prompt_id: uuid.UUID | None = None
    version_id: uuid.UUID | None = None
    execution_id: uuid.UUID | None = None


@dataclass(slots=True)
class SpanRecord:
    """One valid span, ready to store (ids are lowercase hex; the caller has checked every field)."""

    trace_id: str
    span_id: str
    name: str
    start_time: datetime
    parent_span_id: str | None = None
    kind: str = SpanKind.INTERNAL.value
    status: str = SpanStatus.UNSET.value
    error: str | None = None
    end_time: datetime | None = None
    attributes: dict[str, Any] | None = None
    events: list[Any] | None = None
    end_user_id: str | None = None
    session_id: str | None = None
    #: Trace-level metadata and tags (taken from the root span when it arrives).
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    usage: SpanUsage | None = None


@dataclass
class WriteResult:
    """What :func:`write_spans` stored: new spans, spans it already had, and the traces that changed."""

    accepted: int = 0
    duplicates: int = 0
    traces: dict[str, uuid.UUID] = field(default_factory=dict)  # trace id -> its row's id


_UPSERT_TRACES = """
INSERT INTO traces (id, project_id, trace_id, start_time, execution_id)
SELECT u.id, $1, u.trace_id, u.start_time, u.execution_id
FROM unnest($2::uuid[], $3::text[], $4::timestamptz[], $5::uuid[]) AS u(id, trace_id, start_time, execution_id)
ORDER BY u.trace_id
ON CONFLICT (project_id, trace_id) DO UPDATE SET updated_at = now(),
    execution_id = coalesce(traces.execution_id, excluded.execution_id)
RETURNING id, trace_id
"""

# $1 project; $2 the spans but their attributes and events: a JSON array of one array per span — id, trace
# row, span id, parent, name, kind, status, error, start, end, end user, session, metadata, tags, and its
# usage when it has one: provider, model, input, output, cached input, input cost, output cost, total cost,
# model config, latency, prompt, version, execution, tokens reported (false when we counted them) — ; $3
# attributes and $4 events (JSON text), in the same order. One JSON document instead of an array per
# column: asyncpg encodes arrays element by element (with abstract-class checks on each), which cost the
# ingest benchmark more than the whole JSON encoding.
_INSERT_SPANS = """
WITH input AS MATERIALIZED (
    SELECT (r->>0)::uuid AS id, (r->>1)::uuid AS trace_pk, r->>2 AS span_id, r->>3 AS parent_span_id, r->>4 AS name,
           r->>5 AS kind, r->>6 AS status, r->>7 AS error, (r->>8)::timestamptz AS start_time,
           (r->>9)::timestamptz AS end_time, r->>10 AS end_user_id, r->>11 AS session_id,
           nullif(r->12, 'null') AS metadata, nullif(r->13, 'null') AS tags,
           r->>14 AS provider, r->>15 AS model, (r->>16)::int AS input_tokens, (r->>17)::int AS output_tokens,
           (r->>18)::int AS cached_input_tokens, (r->>19)::numeric AS input_cost, (r->>20)::numeric AS output_cost,
           (r->>21)::numeric AS total_cost, (r->>22)::uuid AS model_config_id, (r->>23)::int AS latency_ms,
           (r->>24)::uuid AS prompt_id, (r->>25)::uuid AS version_id, (r->>26)::uuid AS execution_id,
           (r->>27)::bool AS tokens_reported, n
    FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(r, n)
), inserted AS (
    INSERT INTO spans (id, trace_pk, project_id, span_id, parent_span_id, name, kind, status, error, start_time,
                       end_time, attributes, events)
    SELECT i.id, i.trace_pk, $1, i.span_id, i.parent_span_id, i.name, i.kind, i.status, i.error, i.start_time,
           i.end_time, a.attributes::jsonb, a.events::jsonb
    FROM input i JOIN unnest($3::text[], $4::text[]) WITH ORDINALITY AS a(attributes, events, n) USING (n)
    ON CONFLICT (trace_pk, span_id) DO NOTHING
    RETURNING id
), new AS (
    SELECT * FROM input WHERE id IN (SELECT id FROM inserted)
), usage AS (
    INSERT INTO llm_usage (project_id, provider, model, input_tokens, output_tokens, cached_input_tokens,
                           input_cost_usd, output_cost_usd, total_cost_usd, tokens_reported, latency_ms,
                           end_user_id, prompt_id, version_id, execution_id, model_config_id, span_pk, created_at)
    SELECT $1, provider, model, input_tokens, output_tokens, cached_input_tokens, input_cost, output_cost,
           total_cost, tokens_reported, latency_ms, end_user_id, prompt_id, version_id, execution_id,
           model_config_id, id, coalesce(end_time, start_time)
    FROM new WHERE provider IS NOT NULL
    RETURNING span_pk
), summary AS (
    SELECT trace_pk,
           count(*) AS spans,
           count(*) FILTER (WHERE status = 'ERROR') AS errors,
           min(start_time) AS start_time,
           max(end_time) AS end_time,
           (array_agg(span_id) FILTER (WHERE parent_span_id IS NULL))[1] AS root_span_id,
           (array_agg(name) FILTER (WHERE parent_span_id IS NULL))[1] AS root_name,
           (array_agg(status) FILTER (WHERE parent_span_id IS NULL))[1] AS root_status,
           (array_agg(error ORDER BY parent_span_id IS NOT NULL, start_time)
                FILTER (WHERE status = 'ERROR' AND error IS NOT NULL))[1] AS error,
           (array_agg(end_user_id ORDER BY parent_span_id IS NOT NULL, start_time)
                FILTER (WHERE end_user_id IS NOT NULL))[1] AS end_user_id,
           (array_agg(session_id ORDER BY parent_span_id IS NOT NULL, start_time)
                FILTER (WHERE session_id IS NOT NULL))[1] AS session_id,
           (array_agg(metadata ORDER BY parent_span_id IS NOT NULL, start_time)
                FILTER (WHERE metadata IS NOT NULL))[1] AS metadata,
           (array_agg(tags ORDER BY parent_span_id IS NOT NULL, start_time)
                FILTER (WHERE tags IS NOT NULL))[1] AS tags,
           count(*) FILTER (WHERE provider IS NOT NULL) AS calls,
           coalesce(sum(input_tokens), 0) AS input_tokens,
           coalesce(sum(output_tokens), 0) AS output_tokens,
           coalesce(sum(total_cost), 0) AS cost
    FROM new GROUP BY trace_pk
)
UPDATE traces t SET
    span_count = t.span_count + s.spans,
    error_count = t.error_count + s.errors,
    start_time = least(t.start_time, s.start_time),
    end_time = greatest(t.end_time, s.end_time),
    root_span_id = coalesce(t.root_span_id, s.root_span_id),
    name = coalesce(t.name, s.root_name),
    status = CASE WHEN t.error_count + s.errors > 0 THEN 'ERROR'
                  WHEN t.root_span_id IS NULL AND s.root_status IS NOT NULL THEN s.root_status
                  ELSE t.status END,
    error = coalesce(t.error, s.error),
    end_user_id = coalesce(t.end_user_id, s.end_user_id),
    session_id = coalesce(t.session_id, s.session_id),
    metadata = coalesce(t.metadata, s.metadata),
    tags = CASE WHEN t.tags = '{}' AND s.tags IS NOT NULL
                THEN ARRAY(SELECT jsonb_array_elements_text(s.tags)) ELSE t.tags END,
    llm_calls = t.llm_calls + s.calls,
    input_tokens = t.input_tokens + s.input_tokens,
    output_tokens = t.output_tokens + s.output_tokens,
    cost_usd = t.cost_usd + s.cost,
    updated_at = now()
FROM summary s
WHERE t.id = s.trace_pk
RETURNING s.spans
"""


def _json(value: Any) -> str | None:
    """JSON text for a jsonb column: orjson (several times faster than the standard library on the
    attributes of a batch), the standard library for what orjson refuses (integers past 64 bits,
    keys that are not strings)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


async def write_spans(session: AsyncSession, project_id: uuid.UUID, spans: Sequence[SpanRecord], *,
                      execution_id: uuid.UUID | None = None) -> WriteResult:
    """Store ``spans`` (valid, of one project) in the caller's transaction; see the module docstring.

    ``execution_id`` links the traces written to the execution they record (the engine's traces).
    """
    result = WriteResult()
    if not spans:
        return result
    connection = await session.connection()
    conn = (await connection.get_raw_connection()).driver_connection
    assert conn is not None
    if not conn.is_in_transaction():
        # SQLAlchemy sends BEGIN lazily, with its first statement: without this, the statements below,
        # sent on the driver's connection, would each commit on their own (a failed batch would leave
        # its traces behind, and the traces' row locks would not be held until the commit, so that
        # concurrent batches of the same traces could deadlock)
        await connection.exec_driver_sql("SELECT 1")

    # 1. the traces, in trace id order; each starts at its earliest span of this batch
    first: dict[str, datetime] = {}
    for s in spans:
        known = first.get(s.trace_id)
        if known is None or s.start_time < known:
            first[s.trace_id] = s.start_time
    trace_ids = sorted(first)
    upserted = await conn.fetch(_UPSERT_TRACES, project_id, uuid7s(len(trace_ids)), trace_ids,
                            [first[t] for t in trace_ids], [execution_id] * len(trace_ids))
    result.traces = {r["trace_id"]: r["id"] for r in upserted}

    # 2. the spans, their usage and the traces' summaries
    book = await PriceBook.load(session, {(s.usage.provider, s.usage.model) for s in spans if s.usage is not None
                                          and s.usage.cost_usd is None and s.usage.cost is None})
    rows: list[tuple[Any, ...]] = []
    attributes: list[str | None] = []
    events: list[str | None] = []
    traces = result.traces
    no_usage = (None,) * 14
    for span_pk, s in zip(uuid7s(len(spans)), spans, strict=True):
        u = s.usage
        attributes.append(_json(s.attributes))
        events.append(_json(s.events))
        head = (span_pk, traces[s.trace_id], s.span_id, s.parent_span_id, s.name, s.kind, s.status, s.error,
                s.start_time, s.end_time, s.end_user_id, s.session_id, s.metadata, s.tags)
        if u is None:
            rows.append(head + no_usage)
        else:
            input_cost, output_cost, total, config_id = _price(book, u, s.start_time)
            rows.append((*head, u.provider, u.model, u.input_tokens, u.output_tokens,
                         max(0, min(u.cached_input_tokens, u.input_tokens)), input_cost, output_cost, total,
                         config_id, u.latency_ms, u.prompt_id, u.version_id, u.execution_id, u.reported))
    counted = await conn.fetch(_INSERT_SPANS, project_id, _json(rows), attributes, events)
    result.accepted = sum(r["spans"] for r in counted)
    result.duplicates = len(spans) - result.accepted

    # 3. tell the project's live feeds which traces changed
    if result.accepted:
        changed = [str(pk) for pk in result.traces.values()]
        for i in range(0, len(changed), NOTICE_TRACES):
            await publish(session, [topics.project_traces(project_id)], {"traces": changed[i:i + NOTICE_TRACES]})
    return result


def _price(book: PriceBook, u: SpanUsage, at: datetime) -> tuple[Decimal, Decimal, Decimal, uuid.UUID | None]:
    """(input, output, total cost, price row) of a call: as the span says, or at the prices in force at ``at``
    (0 with no price row when the model has none)."""
    if u.cost is not None:
        return u.cost.input_usd, u.cost.output_usd, u.cost.total_usd, u.model_config_id
    if u.cost_usd is not None:
        return Decimal(0), Decimal(0), u.cost_usd, None
    config = book.at(u.provider, u.model, at)
    if config is None:
        return Decimal(0), Decimal(0), Decimal(0), None
    cost = compute_cost(config, u.input_tokens, u.output_tokens, u.cached_input_tokens)
    return cost.input_usd, cost.output_usd, cost.total_usd, config.id
