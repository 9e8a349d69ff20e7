"""ingestSpans: spans from clients that speak GraphQL (OTLP exporters use POST /v1/traces)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from app.db.models import Project
from app.services import ingest

from ..core.context import Info
from ..core.enums import SpanKind, SpanStatus
from ..core.errors import UserError, user_errors
from ..core.mutations import Payload, mutation, run
from ..core.relay import input_id


@strawberry.input
class LlmUsageInput:
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: int | None = None
    cost_usd: Decimal | None = strawberry.field(
        default=None, description="When left out, the cost is computed from the model's pricing.")


@strawberry.input
class SpanInput:
    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    kind: SpanKind | None = SpanKind.INTERNAL
    status: SpanStatus | None = SpanStatus.UNSET
    error: str | None = None
    start_time: datetime
    end_time: datetime | None = None
    attributes: JSON | None = None
    events: JSON | None = None
    end_user_id: str | None = None
    session_id: str | None = None
    usage: LlmUsageInput | None = None


@strawberry.input
class IngestSpansInput:
    project_id: strawberry.ID
    spans: list[SpanInput]


@strawberry.type
class IngestSpansPayload(Payload):
    accepted: int = strawberry.field(default=0, description=(
        "Spans stored by this call or already stored (a span sent again is stored once)."))
    rejected: int = strawberry.field(default=0, description="Spans left out; a userError says why for each.")


def _span(s: SpanInput) -> ingest.SpanData:
    u = s.usage
    return ingest.SpanData(
        trace_id=s.trace_id, span_id=s.span_id, name=s.name, start_time=s.start_time, parent_span_id=s.parent_span_id,
        kind=(s.kind or SpanKind.INTERNAL).value, status=(s.status or SpanStatus.UNSET).value, error=s.error,
        end_time=s.end_time, attributes=s.attributes, events=s.events, end_user_id=s.end_user_id,
        session_id=s.session_id,
        usage=None if u is None else ingest.UsageData(provider=u.provider, model=u.model, input_tokens=u.input_tokens,
                                                      output_tokens=u.output_tokens, latency_ms=u.latency_ms,
                                                      cost_usd=u.cost_usd))


@strawberry.type
class TraceMutation:
    @mutation(
        "Store spans of a project (API keys need TRACES_WRITE; users EDITOR). Each span is checked on its own: an "
        "invalid one is rejected with a userError naming it (field [\"input\", \"spans\", i, ...]) while the others "
        "are stored, all in one transaction. A span sent again (same traceId and spanId) is stored once; accepted "
        "counts it. Semantic conventions in attributes (OpenInference, OpenTelemetry GenAI) fill in what the span "
        "does not say: the kind when it is INTERNAL, usage, endUserId, sessionId. Usage without costUsd is priced "
        "at the model's prices in force at startTime.")
    async def ingest_spans(self, info: Info, input: IngestSpansInput) -> IngestSpansPayload:
        info.context.require_auth()
        runtime = info.context.services
        gate = ingest.for_runtime(runtime).gate if runtime is not None else None
        spans = [_span(s) for s in input.spans]
        project_id = input_id(input.project_id, Project)
        if gate is None:
            result = await run(info, ingest.ingest_spans, project_id=project_id, spans=spans)
        else:
            try:
                async with gate.turn():
                    result = await run(info, ingest.ingest_spans, project_id=project_id, spans=spans)
            except ingest.Busy as busy:
                raise ingest.busy_error(busy) from None
        errors: list[UserError] = []
        if result.rejected:
            errors = user_errors(ingest.many_rejections(result.rejected))
        return IngestSpansPayload(accepted=result.accepted, rejected=len(result.rejected), user_errors=errors)
