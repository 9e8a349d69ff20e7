"""Helpers of the trace tests: spans stored through the one write path (``write_spans``), as ingest and the
engine store them, on a database the API under test reads."""
from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app.services.traces import SpanRecord, SpanUsage, WriteResult, write_spans

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

TRACE_FIELDS = """id traceId name endUserId sessionId status error startTime endTime durationMs metadata tags
  spanCount errorCount updatedAt usage { calls inputTokens outputTokens totalTokens costUsd }"""
SPAN_FIELDS = """id spanId parentSpanId name kind status error startTime endTime durationMs attributes events"""


def raw_uuid(gid: str) -> uuid.UUID:
    raw = base64.urlsafe_b64decode(gid + "=" * (-len(gid) % 4)).decode()
    return uuid.UUID(raw.partition(":")[2])


def gid(type_name: str, id_: uuid.UUID | str) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{id_}".encode()).decode().rstrip("=")


def trace_id(n: int) -> str:
    return f"{n:032x}"


def span(trace: int | str, sid: int, parent: int | None, *, start: float, end: float | None = None,
         **kw: Any) -> SpanRecord:
    """A span of trace ``trace`` (a number or a 32-hex id), ``start``/``end`` in seconds after ``t0`` (T0)."""
    t0 = kw.pop("t0", T0)
    return SpanRecord(trace_id=trace if isinstance(trace, str) else trace_id(trace), span_id=f"{sid:016x}",
                      parent_span_id=None if parent is None else f"{parent:016x}",
                      name=kw.pop("name", f"span {sid}"), start_time=t0 + timedelta(seconds=start),
                      end_time=None if end is None else t0 + timedelta(seconds=end), **kw)


def llm(input_tokens: int = 1000, output_tokens: int = 500, *, model: str = "gpt-4o", provider: str = "openai",
        **kw: Any) -> SpanUsage:
    return SpanUsage(provider=provider, model=model, input_tokens=input_tokens, output_tokens=output_tokens, **kw)


def agent_trace(n: int, *, children: int = 3, start: float = 0.0, **root_kw: Any) -> list[SpanRecord]:
    """A root "agent run" span with ``children`` LLM children, each with one TOOL grandchild."""
    sid = n * 1000
    spans = [span(n, sid, None, start=start, end=start + 10, name=root_kw.pop("name", "agent run"), kind="AGENT",
                  status=root_kw.pop("status", "OK"), **root_kw)]
    for c in range(children):
        child = sid + 1 + 2 * c
        spans.append(span(n, child, sid, start=start + 1 + c, end=start + 1.5 + c, name=f"llm {c}", kind="LLM",
                          usage=llm(100 * (c + 1), 10 * (c + 1)), attributes={"llm.model_name": "gpt-4o", "i": c}))
        spans.append(span(n, child + 1, child, start=start + 1.1 + c, end=start + 1.2 + c, name=f"tool {c}",
                          kind="TOOL", events=[{"name": "called", "attributes": {"c": c}}]))
    return spans


class Writer:
    """Writes spans to the test database in their own transaction (as an ingest request would)."""

    def __init__(self, sessionmaker):
        self.sessionmaker = sessionmaker

    async def __call__(self, project_id: uuid.UUID | str, spans: list[SpanRecord], **kw: Any) -> WriteResult:
        pid = raw_uuid(project_id) if isinstance(project_id, str) else project_id
        async with self.sessionmaker() as session, session.begin():
            return await write_spans(session, pid, spans, **kw)


