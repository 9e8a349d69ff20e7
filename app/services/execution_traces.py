"""Every execution is a trace, written in the transaction that ends the execution (whoever ends it: the
worker that ran it, the queue giving up on it, or a cancel before it started).

The trace id is the execution's id as 32 hex characters, so the trace of an execution is found from
its id (and ``Execution.trace``), and its spans are::

    execute <prompt> v<n>   CHAIN      created → completed; OK / ERROR (FAILED) / UNSET (CANCELLED)
    ├── render              INTERNAL   the rendering at submission (``executions.render_ms``)
    ├── queued              INTERNAL   from then until a worker first took it
    ├── chat <model>        LLM        the provider call: usage and cost (its ``llm_usage`` row), latency,
    │                                  time to first token; each retry an event
    └── validate            GUARDRAIL  the output's validations; ERROR when one failed

Attributes follow OpenInference (``openinference.span.kind``, ``input.value``, ``output.value``,
``llm.*``) with our own under ``promptstudio.*``; long values are cut to ``MAX_VALUE_CHARS``.
"""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Execution, Prompt, PromptVersion
from app.db.models.enums import ExecutionStatus, SpanKind, SpanStatus

from .traces import SpanRecord, SpanUsage, write_spans

#: Input and output values longer than this are cut (with a note) in span attributes.
MAX_VALUE_CHARS = 32_768


@dataclass
class Retry:
    """A provider call that failed and was tried again."""

    at: datetime
    message: str
    status: int | None
    delay_seconds: float


@dataclass
class CallRecord:
    """The provider call of an execution, as the worker saw it."""

    provider: str
    model: str
    started_at: datetime
    latency_ms: int
    time_to_first_token_ms: int | None = None
    usage: SpanUsage | None = None
    error: str | None = None
    retries: list[Retry] = field(default_factory=list)
    parameters: dict[str, Any] | None = None


@dataclass
class ValidationRecord:
    """The validations applied to an execution's output."""

    started_at: datetime
    ended_at: datetime
    status: str
    results: list[dict[str, Any]]


def trace_id_of(execution_id: Any) -> str:
    """The trace id of an execution's trace."""
    return execution_id.hex


def _span_id() -> str:
    return os.urandom(8).hex()


def _cut(value: str) -> str:
    if len(value) <= MAX_VALUE_CHARS:
        return value
    return value[:MAX_VALUE_CHARS] + f"… [cut: {len(value)} characters in all]"


async def write_execution_trace(session: AsyncSession, row: Execution, *, call: CallRecord | None = None,
                                validation: ValidationRecord | None = None,
                                names: tuple[str, int | None] | None = None) -> None:
    """Write the trace of ``row``, which has just ended (its status and times are final), in ``session``'s
    transaction; see the module docstring. ``names``: its prompt's name and version number, when the caller
    has read them already."""
    assert row.completed_at is not None, "an execution's trace is written when it ends"
    if names is None:
        found = (await session.execute(
            select(Prompt.name, PromptVersion.number).join(PromptVersion, PromptVersion.prompt_id == Prompt.id)
            .where(PromptVersion.id == row.version_id))).first()
        names = (found[0], found[1]) if found is not None else ("prompt", None)
    prompt_name, number = names
    await write_spans(session, row.project_id, _spans_of(row, prompt_name, number, call=call, validation=validation),
                      execution_id=row.id)


#: Executions whose traces one write_spans call stores, at most (bulk cancels of an experiment's runs).
TRACES_PER_BATCH = 500


async def write_execution_traces(session: AsyncSession, rows: list[Execution]) -> None:
    """The traces of many executions of one project that ended without a provider call (cancelled before
    they started): one query for their prompts' names, one ``write_spans`` per ``TRACES_PER_BATCH``."""
    if not rows:
        return
    found = (await session.execute(
        select(PromptVersion.id, Prompt.name, PromptVersion.number)
        .join(Prompt, Prompt.id == PromptVersion.prompt_id)
        .where(PromptVersion.id.in_({r.version_id for r in rows})))).all()
    names: dict[uuid.UUID, tuple[str, int | None]] = {v: (name, number) for v, name, number in found}
    for i in range(0, len(rows), TRACES_PER_BATCH):
        batch = rows[i:i + TRACES_PER_BATCH]
        spans = [span for r in batch
                 for span in _spans_of(r, *names.get(r.version_id, ("prompt", None)), call=None, validation=None)]
        await write_spans(session, batch[0].project_id, spans)
        # write_spans links the traces of one call to one execution; these are one trace per execution.
        await session.execute(
            text("UPDATE traces t SET execution_id = u.execution_id FROM unnest(CAST(:traces AS text[]), "
                 "CAST(:executions AS uuid[])) AS u(trace_id, execution_id) "
                 "WHERE t.project_id = :project AND t.trace_id = u.trace_id AND t.execution_id IS NULL"),
            {"traces": [trace_id_of(r.id) for r in batch], "executions": [r.id for r in batch],
             "project": batch[0].project_id})


def _spans_of(row: Execution, prompt_name: str, number: int | None, *, call: CallRecord | None,
              validation: ValidationRecord | None) -> list[SpanRecord]:
    assert row.completed_at is not None, "an execution's trace is written when it ends"
    trace_id, root_id = trace_id_of(row.id), _span_id()
    status = {ExecutionStatus.COMPLETED.value: SpanStatus.OK, ExecutionStatus.FAILED.value: SpanStatus.ERROR}.get(
        row.status, SpanStatus.UNSET)
    version = f" v{number}" if number is not None else ""
    ours = {"promptstudio.execution.id": str(row.id), "promptstudio.execution.status": row.status,
            "promptstudio.prompt.id": str(row.prompt_id), "promptstudio.prompt.version_id": str(row.version_id),
            "promptstudio.prompt.version": number, "promptstudio.environment": row.environment}
    root_attributes: dict[str, Any] = {
        "openinference.span.kind": SpanKind.CHAIN.value,
        "input.value": _cut(json.dumps(row.variables, ensure_ascii=False)), "input.mime_type": "application/json",
        **{k: v for k, v in ours.items() if v is not None}}
    if row.output is not None:
        root_attributes |= {"output.value": _cut(row.output), "output.mime_type": "text/plain"}
    if row.subject_key is not None:
        root_attributes["user.id"] = row.subject_key
    spans = [SpanRecord(
        trace_id=trace_id, span_id=root_id, name=f"execute {prompt_name}{version}", kind=SpanKind.CHAIN.value,
        status=status.value, error=row.error if status == SpanStatus.ERROR else None, start_time=row.created_at,
        end_time=row.completed_at, attributes=root_attributes, end_user_id=row.subject_key,
        metadata={"executionId": str(row.id), "prompt": prompt_name, "version": number,
                  "environment": row.environment},
        tags=["execution"] + ([row.environment] if row.environment else []))]

    rendered_at = row.created_at + timedelta(milliseconds=row.render_ms or 0)
    if row.render_ms is not None:
        spans.append(SpanRecord(
            trace_id=trace_id, span_id=_span_id(), parent_span_id=root_id, name="render",
            kind=SpanKind.INTERNAL.value, status=SpanStatus.OK.value, start_time=row.created_at, end_time=rendered_at,
            attributes={"promptstudio.prompt.kind": (row.rendered_prompt or {}).get("kind")}))
    if row.started_at is not None and row.attempts > 0:  # a worker took it (not cancelled while waiting)
        spans.append(SpanRecord(
            trace_id=trace_id, span_id=_span_id(), parent_span_id=root_id, name="queued",
            kind=SpanKind.INTERNAL.value, status=SpanStatus.OK.value, start_time=min(rendered_at, row.started_at),
            end_time=row.started_at, attributes={"promptstudio.priority": row.priority,
                                                 "promptstudio.attempts": row.attempts}))
    if call is not None:
        spans.append(_call_span(trace_id, root_id, call, row))
    if validation is not None and validation.status != "SKIPPED":
        failed = [r for r in validation.results if not r.get("passed")]
        spans.append(SpanRecord(
            trace_id=trace_id, span_id=_span_id(), parent_span_id=root_id, name="validate",
            kind=SpanKind.GUARDRAIL.value, status=(SpanStatus.ERROR if failed else SpanStatus.OK).value,
            error=(f"{len(failed)} of {len(validation.results)} validations failed: "
                   + "; ".join(f"{r.get('name')}: {r.get('message')}" for r in failed)) if failed else None,
            start_time=validation.started_at, end_time=max(validation.ended_at, validation.started_at),
            attributes={"openinference.span.kind": SpanKind.GUARDRAIL.value,
                        "promptstudio.validation.status": validation.status,
                        "promptstudio.validation.results": validation.results}))
    return spans


def _call_span(trace_id: str, parent: str, call: CallRecord, row: Execution) -> SpanRecord:
    attributes: dict[str, Any] = {
        "openinference.span.kind": SpanKind.LLM.value, "llm.provider": call.provider, "llm.model_name": call.model,
        "gen_ai.operation.name": "chat", "gen_ai.request.model": call.model, "gen_ai.provider.name": call.provider,
        "promptstudio.latency_ms": call.latency_ms}
    if call.parameters:
        attributes["llm.invocation_parameters"] = json.dumps(call.parameters, ensure_ascii=False, default=str)
    if call.time_to_first_token_ms is not None:
        attributes["promptstudio.time_to_first_token_ms"] = call.time_to_first_token_ms
    if call.usage is not None:
        u = call.usage
        attributes |= {"llm.token_count.prompt": u.input_tokens, "llm.token_count.completion": u.output_tokens,
                       "llm.token_count.total": u.input_tokens + u.output_tokens,
                       "promptstudio.tokens_reported": u.reported}
        if u.cached_input_tokens:
            attributes["llm.token_count.prompt_details.cache_read"] = u.cached_input_tokens
    if row.output is not None:
        attributes["output.value"] = _cut(row.output)
    events: list[dict[str, Any]] = [
        {"name": "retry", "time": r.at.isoformat(),
         "attributes": {"error": r.message, "http.status_code": r.status, "retry.delay_seconds": r.delay_seconds}}
        for r in call.retries]
    if call.time_to_first_token_ms is not None:
        events.append({"name": "first token",
                       "time": (call.started_at + timedelta(milliseconds=call.time_to_first_token_ms)).isoformat(),
                       "attributes": {}})
    return SpanRecord(
        trace_id=trace_id, span_id=_span_id(), parent_span_id=parent, name=f"chat {call.model}",
        kind=SpanKind.LLM.value, status=(SpanStatus.ERROR if call.error else SpanStatus.OK).value, error=call.error,
        start_time=call.started_at, end_time=call.started_at + timedelta(milliseconds=max(0, call.latency_ms)),
        attributes=attributes, events=events or None, end_user_id=row.subject_key, usage=call.usage)
