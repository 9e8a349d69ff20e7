"""Ingest: spans sent to us (OTLP/HTTP at ``/v1/traces``, the ``ingestSpans`` mutation) checked, mapped
and stored — through :func:`app.services.traces.write_spans`, the one write path.

Both ways in share what is here:

* :func:`finish_span` turns a span's checked fields into a :class:`SpanRecord`, reading the semantic
  conventions of its attributes (``app.services.semconv``); a span that cannot be stored raises
  :class:`Reject` with its reason and is left out alone, while the rest of the batch is stored.
* :class:`Cleaner`: PostgreSQL cannot store U+0000 in text or jsonb, so NUL characters are removed
  from every string; string values longer than ``PROMPTSTUDIO_INGEST_MAX_ATTRIBUTE_CHARS`` are cut
  to it and the span's ``promptstudio.truncated`` attribute lists what was cut.
* :class:`WriteGate`: at most ``PROMPTSTUDIO_INGEST_CONCURRENCY`` requests read, decode and write
  spans at once per process, at most ``PROMPTSTUDIO_INGEST_QUEUE`` wait for a turn, none longer than
  ``PROMPTSTUDIO_INGEST_QUEUE_TIMEOUT_SECONDS``; past that the caller is told to come back later
  (:class:`Busy`, with a Retry-After estimate). Memory stays bounded: a waiting request's body has
  not been read yet.
* :class:`AuditSummaries`: ingest writes one audit event per principal and project per
  ``PROMPTSTUDIO_INGEST_AUDIT_INTERVAL_SECONDS`` summing up what it stored, in the transaction of
  the spans that close the interval — not one per request (a SimpleSpanProcessor sends one span a
  request: an event per request would double the writes).

Spans are committed before anyone is told they were accepted: :func:`store` returns after COMMIT.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Project
from app.db.models.enums import AuditResult, SpanKind, SpanStatus
from app.settings import Settings

from . import access, semconv
from .audit import AuditNote, event, record_apart
from .errors import ServiceError, invalid, limit_exceeded, many
from .principal import Principal
from .traces import SpanRecord, SpanUsage, write_spans
from .tx import Tx, service

log = logging.getLogger("promptstudio.ingest")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: 9999-12-31, the last instant Python's datetime holds, in nanoseconds since the epoch.
MAX_NANOS = 253_402_300_799 * 10**9
MAX_INT4 = 2**31 - 1
#: Attribute keys are cut to this many characters.
MAX_KEY_CHARS = 1024
#: Deepest nesting of arrays and objects kept in an attribute value (deeper: the span is rejected).
MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")
#: The attribute that lists what was cut to the size limit.
TRUNCATED = "promptstudio.truncated"
#: Rejection reasons quoted in one answer (the count covers all of them).
REASONS_SHOWN = 20
AUDIT_ACTION = "traces.ingest"


class Reject(ValueError):  # a span's verdict, raised to leave it out
    """This span cannot be stored; the message says why."""

    def __init__(self, reason: str, field: Sequence[str | int] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.field = list(field) if field is not None else None


@dataclass(slots=True)
class Rejection:
    """A span left out: its place in the request (0-based, in the order sent) and why."""

    index: int
    reason: str
    #: Where in a GraphQL input (["spans", 3, "traceId"]); None for OTLP.
    field: list[str | int] | None = None
    span_id: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_spans: int
    max_attribute_chars: int
    max_body_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(max_spans=settings.ingest_max_spans, max_attribute_chars=settings.ingest_max_attribute_chars,
                   max_body_bytes=settings.ingest_max_body_bytes)


def too_many_spans(count: int, limits: Limits) -> str:
    return (f"The request holds {count} spans; at most {limits.max_spans} are accepted at once "
            f"(PROMPTSTUDIO_INGEST_MAX_SPANS). Send smaller batches (e.g. the BatchSpanProcessor's "
            f"max_export_batch_size).")


# --------------------------------------------------------------------------- cleaning


class Cleaner:
    """Strings as PostgreSQL can store them and within the size limit, noting what was cut."""

    __slots__ = ("limit", "truncated")

    def __init__(self, limit: int):
        self.limit = limit
        self.truncated: list[str] = []

    def text(self, s: str, where: str) -> str:
        """``s`` without NUL characters and cut to the limit (callers test ``len(s) > limit or
        "\\x00" in s`` first: this is the slow path)."""
        if "\x00" in s:
            s = s.replace("\x00", "")
        if len(s) > self.limit:
            s = s[: self.limit]
            self.truncated.append(where)
        return s

    def key(self, k: str) -> str:
        if "\x00" in k:
            k = k.replace("\x00", "")
        if not k.isascii():
            k = _utf8(k)
        return k[:MAX_KEY_CHARS] if len(k) > MAX_KEY_CHARS else k

    def value(self, v: Any, where: str, depth: int = 0) -> Any:
        """A JSON value (from a GraphQL input or OTLP/JSON: parsed JSON may hold lone surrogates,
        which UTF-8 cannot encode) cleaned all through; non-finite numbers, which JSON cannot hold,
        become the strings "NaN", "Infinity", "-Infinity". Raises :class:`Reject` past
        ``MAX_DEPTH`` levels of nesting."""
        if isinstance(v, str):
            if len(v) > self.limit or "\x00" in v:
                v = self.text(v, where)
            return v if v.isascii() else _utf8(v)
        if isinstance(v, (dict, list)):
            if depth >= MAX_DEPTH:
                raise Reject(f"{where} is nested more than {MAX_DEPTH} levels deep")
            if isinstance(v, dict):
                return {self.key(str(k)): self.value(x, f"{where}.{k}", depth + 1) for k, x in v.items()}
            return [self.value(x, where, depth + 1) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return non_finite(v)
        return v


def _utf8(s: str) -> str:
    """``s`` with lone surrogates (from JSON escapes like \\ud800) replaced by U+FFFD, so that it encodes as
    UTF-8."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", s)


def non_finite(d: float) -> str:
    return "NaN" if math.isnan(d) else ("Infinity" if d > 0 else "-Infinity")


def nanos_to_datetime(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


# --------------------------------------------------------------------------- one span


def finish_span(*, trace_id: str, span_id: str, parent_span_id: str | None, name: str, start: datetime,
                end: datetime | None, status: str, error: str | None, attributes: dict[str, Any] | None,
                events: list[Any] | None, cleaner: Cleaner, kind: str | None = None,
                usage: SpanUsage | None = None, end_user_id: str | None = None,
                session_id: str | None = None, latency_ms: int | None = None) -> SpanRecord:
    """The record of a span whose ids and times are checked and whose strings are clean: the semantic
    conventions of its attributes fill in what its sender did not say (kind, usage, end user, session,
    metadata, tags). ``latency_ms``: the duration, when the caller has it at hand (else computed).
    Raises :class:`Reject` when a mapped attribute cannot be stored."""
    if latency_ms is None and end is not None:
        latency_ms = min(int((end - start) / timedelta(milliseconds=1)), MAX_INT4)
    try:
        conv = semconv.read(attributes or {}, kind=kind, latency_ms=latency_ms, usage=usage is None)
    except semconv.BadAttribute as exc:
        raise Reject(str(exc), ["attributes"]) from None
    metadata = conv.metadata
    if metadata is not None and conv.metadata_unclean:
        metadata = cleaner.value(metadata, "metadata")
    if cleaner.truncated:
        attributes = dict(attributes or {})
        attributes[TRUNCATED] = cleaner.truncated
    u = usage or conv.usage
    if u is not None and u.latency_ms is None:
        u.latency_ms = latency_ms
    return SpanRecord(
        trace_id=trace_id, span_id=span_id, parent_span_id=parent_span_id, name=name, start_time=start,
        kind=conv.kind or SpanKind.INTERNAL.value, status=status, error=error, end_time=end,
        attributes=attributes or None, events=events or None,
        end_user_id=end_user_id or conv.end_user_id, session_id=session_id or conv.session_id,
        metadata=metadata, tags=conv.tags, usage=u)


def describe(rejected: Sequence[Rejection], total: int) -> str:
    """One message for an OTLP partial success: how many spans were rejected and why."""
    head = f"{len(rejected)} of {total} spans rejected"
    shown = [f"span {r.index}" + (f" ({r.span_id})" if r.span_id else "") + f": {r.reason}"
             for r in rejected[:REASONS_SHOWN]]
    more = f"; and {len(rejected) - REASONS_SHOWN} more" if len(rejected) > REASONS_SHOWN else ""
    return head + ": " + "; ".join(shown) + more + "."


# --------------------------------------------------------------------------- storing


@dataclass
class Outcome:
    """What happened to a request's spans: stored now, already stored, rejected."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    traces: int = 0


async def store(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, project_id: uuid.UUID,
                spans: Sequence[SpanRecord], rejected: list[Rejection], summaries: AuditSummaries,
                *, via: str = "otlp") -> Outcome:
    """Write ``spans`` of ``project_id`` in one transaction and return once it has committed (the OTLP
    path; the caller has checked that ``principal`` may write there). The audit summary goes in
    the same transaction when it is due."""
    outcome = Outcome(rejected=rejected)
    closing: Closing | None = None
    committed = False
    try:
        async with sessionmaker() as session, session.begin():
            if spans:
                result = await write_spans(session, project_id, spans)
                outcome.accepted, outcome.duplicates = result.accepted, result.duplicates
                outcome.traces = len(result.traces)
            closing = summaries.begin(principal, project_id, outcome, via)
            if closing is not None:
                session.add(closing.event(principal))
        committed = True
    finally:
        summaries.end(principal, project_id, outcome, via, closing, committed=committed)
    return outcome


# --------------------------------------------------------------------------- ingestSpans


@dataclass(slots=True)
class UsageData:
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    latency_ms: int | None = None
    cost_usd: Decimal | None = None


@dataclass(slots=True)
class SpanData:
    """One span of an ``ingestSpans`` input, as the API layer passes it."""

    trace_id: str
    span_id: str
    name: str
    start_time: datetime
    parent_span_id: str | None = None
    kind: str = SpanKind.INTERNAL.value
    status: str = SpanStatus.UNSET.value
    error: str | None = None
    end_time: datetime | None = None
    attributes: Any = None
    events: Any = None
    end_user_id: str | None = None
    session_id: str | None = None
    usage: UsageData | None = None


@dataclass
class IngestResult:
    accepted: int
    rejected: list[Rejection]


def _hex_id(value: str | None, chars: int, what: str, field: str) -> str:
    text = (value or "").strip().lower()
    if len(text) != chars or not all(c in "0123456789abcdef" for c in text):
        raise Reject(f"{what} must be {chars} hexadecimal characters; got {value!r:.60}", [field])
    if text == "0" * chars:
        raise Reject(f"{what} must not be all zeros", [field])
    return text


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def span_from_input(s: SpanData, limits: Limits) -> SpanRecord:
    """Check one ``SpanInput`` and make its record (raises :class:`Reject`, with the input field)."""
    c = Cleaner(limits.max_attribute_chars)
    trace_id = _hex_id(s.trace_id, 32, "traceId", "traceId")
    span_id = _hex_id(s.span_id, 16, "spanId", "spanId")
    parent = None
    if s.parent_span_id:
        parent = _hex_id(s.parent_span_id, 16, "parentSpanId", "parentSpanId")
        if parent == span_id:
            raise Reject("parentSpanId is the span's own spanId", ["parentSpanId"])
    start, end = _utc(s.start_time), _utc(s.end_time) if s.end_time is not None else None
    if end is not None and end < start:
        raise Reject(f"endTime ({end.isoformat()}) is before startTime ({start.isoformat()})", ["endTime"])
    if s.attributes is not None and not isinstance(s.attributes, dict):
        raise Reject("attributes must be a JSON object of attribute name -> value", ["attributes"])
    if s.events is not None and not isinstance(s.events, list):
        raise Reject("events must be a JSON array (of {name, time, attributes} objects)", ["events"])
    attributes = c.value(s.attributes, "attributes") if s.attributes else None
    events = c.value(s.events, "events") if s.events else None
    name = c.value(s.name, "name")
    error = c.value(s.error, "error") if s.error else None
    usage = None
    if s.usage is not None:
        usage = _usage_from_input(s.usage, attributes or {})
    kind = s.kind if s.kind != SpanKind.INTERNAL.value else None
    end_user = c.value(s.end_user_id, "endUserId")[: semconv.ID_CHARS] if s.end_user_id else None
    session_id = c.value(s.session_id, "sessionId")[: semconv.ID_CHARS] if s.session_id else None
    return finish_span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, start=start,
                       end=end, status=s.status, error=error, attributes=attributes, events=events, cleaner=c,
                       kind=kind, usage=usage, end_user_id=end_user, session_id=session_id)


def _usage_from_input(u: UsageData, attributes: dict[str, Any]) -> SpanUsage:
    provider, model = u.provider.strip().lower(), u.model.strip()
    if not provider or "\x00" in provider or len(provider) > semconv.PROVIDER_CHARS:
        raise Reject(f"usage.provider must be 1 to {semconv.PROVIDER_CHARS} characters", ["usage", "provider"])
    if not model or "\x00" in model or len(model) > semconv.MODEL_CHARS:
        raise Reject(f"usage.model must be 1 to {semconv.MODEL_CHARS} characters", ["usage", "model"])
    for name, value in (("inputTokens", u.input_tokens), ("outputTokens", u.output_tokens)):
        if value < 0:
            raise Reject(f"usage.{name} is {value}; token counts are 0 or more", ["usage", name])
    if u.latency_ms is not None and u.latency_ms < 0:
        raise Reject(f"usage.latencyMs is {u.latency_ms}; it must be 0 or more", ["usage", "latencyMs"])
    cost = None
    if u.cost_usd is not None:
        try:
            cost = semconv.cost_usd(u.cost_usd, "usage.costUsd")
        except semconv.BadAttribute as exc:
            raise Reject(str(exc), ["usage", "costUsd"]) from None
    try:
        cached = semconv.tokens(attributes, semconv.CACHED_TOKEN_KEYS) or 0
    except semconv.BadAttribute as exc:
        raise Reject(str(exc), ["attributes"]) from None
    return SpanUsage(provider=provider, model=model, input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                     cached_input_tokens=min(cached, u.input_tokens), latency_ms=u.latency_ms, cost_usd=cost)


@service(AUDIT_ACTION)
async def ingest_spans(tx: Tx, *, project_id: uuid.UUID | None, spans: Sequence[SpanData]) -> IngestResult:
    """Store the valid spans of an ``ingestSpans`` call; each invalid one is rejected alone, with its reason.

    Audited like every mutation: one event per call (with the counts), not per span."""
    project = await access.require(tx.session, tx.principal, project_id, access.Action.WRITE_TRACES,
                                   field=["input", "projectId"], note=tx.note)
    limits = Limits.of(tx.settings)
    if len(spans) > limits.max_spans:
        raise limit_exceeded(too_many_spans(len(spans), limits), ["input", "spans"])
    records: list[SpanRecord] = []
    rejected: list[Rejection] = []
    for i, s in enumerate(spans):
        try:
            records.append(span_from_input(s, limits))
        except Reject as r:
            rejected.append(Rejection(i, r.reason, ["input", "spans", i, *(r.field or [])], s.span_id))
    result = await write_spans(tx.session, project.id, records) if records else None
    tx.note.details = {"via": "graphql", "spans": len(records), "stored": result.accepted if result else 0,
                       "duplicates": result.duplicates if result else 0, "rejected": len(rejected),
                       "traces": len(result.traces) if result else 0}
    return IngestResult(accepted=len(records), rejected=rejected)


def many_rejections(rejected: Sequence[Rejection]) -> ServiceError:
    """The rejected spans of an ingestSpans call, as one error with a UserError per span."""
    return many([invalid(f"Span {r.index} rejected: {r.reason}.", [str(p) for p in (r.field or [])])
                 for r in rejected])


def busy_error(busy: Busy) -> ServiceError:
    return limit_exceeded(busy.message)


# --------------------------------------------------------------------------- backpressure


class Busy(Exception):  # the gate's answer, not a fault
    """No turn to write now: come back after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class WriteGate:
    """A bounded number of requests writing spans at once, a bounded queue of waiting ones (see the
    module docstring). One per process."""

    def __init__(self, concurrency: int, queue: int, timeout: float):
        self.concurrency = concurrency
        self.queue = queue
        self.timeout = timeout
        self.active = 0
        self.waiting = 0
        self.refused = 0
        self._sem = asyncio.Semaphore(concurrency)
        #: Smoothed seconds a turn lasts (the Retry-After estimate).
        self._turn = 0.2

    @classmethod
    def of(cls, settings: Settings) -> WriteGate:
        return cls(settings.ingest_concurrency, settings.ingest_queue, settings.ingest_queue_timeout_seconds)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained (1 to 60)."""
        rounds = (self.waiting + self.active) / self.concurrency + 1
        return max(1, min(60, math.ceil(rounds * self._turn)))

    def _busy(self, why: str) -> Busy:
        self.refused += 1
        after = self.retry_after()
        return Busy(f"The server is busy writing spans ({why}); retry in {after} s.", after)

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a turn (raises :class:`Busy` when the queue is full or the wait too long)."""
        if self._sem.locked() or self.waiting:
            if self.waiting >= self.queue:
                raise self._busy(f"{self.active} requests writing and {self.waiting} waiting")
            self.waiting += 1
            try:
                async with asyncio.timeout(self.timeout):
                    await self._sem.acquire()
            except TimeoutError:
                raise self._busy(f"no turn within {self.timeout:g} s") from None
            finally:
                self.waiting -= 1
        else:
            await self._sem.acquire()
        self.active += 1
        began = time.monotonic()
        try:
            yield
        finally:
            self.active -= 1
            self._sem.release()
            self._turn = 0.8 * self._turn + 0.2 * (time.monotonic() - began)


# --------------------------------------------------------------------------- audit summaries


@dataclass
class _Tally:
    requests: int = 0
    spans: int = 0
    duplicates: int = 0
    rejected: int = 0
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    via: set[str] = field(default_factory=set)

    def add(self, outcome: Outcome, via: str) -> None:
        self.requests += 1
        self.spans += outcome.accepted
        self.duplicates += outcome.duplicates
        self.rejected += len(outcome.rejected)
        self.via.add(via)

    def merge(self, other: _Tally) -> None:
        self.requests += other.requests
        self.spans += other.spans
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.since = min(self.since, other.since)
        self.via |= other.via


_Key = tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None]


@dataclass
class Closing:
    """An audit summary being written: the requests since the last one, and this one."""

    key: _Key
    earlier: _Tally
    outcome: Outcome
    via: str

    def event(self, principal: Principal) -> Any:
        t = _Tally(since=self.earlier.since)
        t.merge(self.earlier)
        t.add(self.outcome, self.via)
        note = AuditNote(action=AUDIT_ACTION, project_id=self.key[0], details={
            "summary": True, "via": sorted(t.via), "requests": t.requests, "spans": t.spans,
            "duplicates": t.duplicates, "rejected": t.rejected, "from": t.since.isoformat(),
            "to": datetime.now(UTC).isoformat()})
        return event(principal, note, AuditResult.SUCCESS)


class AuditSummaries:
    """One audit event per (project, API key or user) and interval, summing up the ingest requests
    since the last one (written in the transaction of the request that closes the interval, so it
    counts only what committed); refused attempts (403) likewise, as DENIED events. Per process:
    several server processes each write their own. A process killed loses the tally of its last
    interval (the spans themselves are committed)."""

    def __init__(self, interval: float):
        self.interval = interval
        self._tallies: dict[tuple[Any, ...], _Tally] = {}
        self._last: dict[tuple[Any, ...], float] = {}
        self._closing: set[tuple[Any, ...]] = set()

    @staticmethod
    def _key(principal: Principal, project_id: uuid.UUID) -> _Key:
        return project_id, principal.api_key_id, principal.user_id

    def _due(self, key: tuple[Any, ...]) -> bool:
        last = self._last.get(key)
        return key not in self._closing and (last is None or time.monotonic() - last >= self.interval)

    def begin(self, principal: Principal, project_id: uuid.UUID, outcome: Outcome, via: str) -> Closing | None:
        """The summary to write in this request's transaction, when one is due."""
        key = self._key(principal, project_id)
        if not self._due(key):
            return None
        self._closing.add(key)
        return Closing(key, self._tallies.pop(key, _Tally()), outcome, via)

    def end(self, principal: Principal, project_id: uuid.UUID, outcome: Outcome, via: str,
            closing: Closing | None, *, committed: bool) -> None:
        """After the transaction: count the request (when it committed and no summary counted it)."""
        key = self._key(principal, project_id)
        if closing is None:
            if committed:
                self._tallies.setdefault(key, _Tally()).add(outcome, via)
            return
        self._closing.discard(key)
        if committed:
            self._last[key] = time.monotonic()
        else:  # the earlier requests did commit: they wait for the next summary
            self._tallies.setdefault(key, _Tally()).merge(closing.earlier)

    async def denied(self, sessionmaker: async_sessionmaker[AsyncSession], principal: Principal,
                     project_id: uuid.UUID, message: str) -> None:
        """A refused attempt (a key without TRACES_WRITE, a VIEWER): a DENIED event at most once per
        interval per principal and project, counting the attempts since the last one."""
        key = ("denied", *self._key(principal, project_id))
        tally = self._tallies.setdefault(key, _Tally())
        tally.requests += 1
        if not self._due(key):
            return
        del self._tallies[key]
        self._last[key] = time.monotonic()
        note = AuditNote(action=AUDIT_ACTION, project_id=project_id,
                         details={"summary": True, "requests": tally.requests, "from": tally.since.isoformat(),
                                  "to": datetime.now(UTC).isoformat()})
        await record_apart(sessionmaker, principal, note, AuditResult.DENIED,
                           {"error": {"code": "FORBIDDEN", "message": message}})


# --------------------------------------------------------------------------- who may send


@dataclass
class Permit:
    """The answer to "may this principal send spans, and to which project"."""

    project_id: uuid.UUID | None = None
    #: HTTP status and message when it may not (401, 403, 404, 400).
    status: int = 200
    message: str = ""


async def permit(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, project_ref: str | None,
                 summaries: AuditSummaries) -> Permit:
    """Which project the principal's spans go to, and whether it may write there (WRITE_TRACES).

    An API key writes to its own project (``project_ref``, when given, must name it). A user's
    session token names the project in ``project_ref`` (its global ID, UUID or slug) and needs
    EDITOR there. Refusals in a visible project are audited (as a summary, see :class:`AuditSummaries`).
    """
    async with sessionmaker() as session:
        named = await resolve_project(session, project_ref) if project_ref else None
        if principal.kind == "api_key":
            project_id = principal.api_key_project_id
            if project_ref and named != project_id:
                return Permit(status=403, message="This API key belongs to another project than X-Project-Id "
                                                  "names; leave the header out, or use a key of that project.")
        elif principal.kind == "user":
            if not project_ref:
                return Permit(status=400, message="Name the project to send spans to: X-Project-Id: <its ID or "
                                                  "slug> (or authenticate with one of its API keys, which need no "
                                                  "header).")
            project_id = named
        else:
            return Permit(status=401, message=NO_CREDENTIAL)
        try:
            project = await access.require(session, principal, project_id, access.Action.WRITE_TRACES)
        except ServiceError as exc:
            if exc.code == "FORBIDDEN" and project_id is not None:
                await summaries.denied(sessionmaker, principal, project_id, exc.message)
                return Permit(status=403, message=exc.message)
            return Permit(status=404, message="No project with this ID or slug." if principal.kind == "user"
                          else "This API key's project no longer exists.")
    return Permit(project_id=project.id)


NO_CREDENTIAL = ("Send an API key of the project with the TRACES_WRITE scope: Authorization: Bearer <key> "
                 "(OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer <key>\").")


async def resolve_project(session: AsyncSession, ref: str) -> uuid.UUID | None:
    """A project named by its global ID (as GraphQL shows it), its UUID or its slug (None: no such project)."""
    ref = ref.strip()
    candidate: uuid.UUID | None = None
    try:
        candidate = uuid.UUID(ref)
    except ValueError:
        try:
            raw = base64.urlsafe_b64decode((ref + "=" * (-len(ref) % 4)).encode()).decode()
            kind, _, rest = raw.partition(":")
            if kind == "Project":
                candidate = uuid.UUID(rest)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            candidate = None
    if candidate is not None:
        return candidate
    if len(ref) > 64:
        return None
    found = await session.execute(select(Project.id).where(Project.slug == ref))
    return found.scalar_one_or_none()


@dataclass
class Ingest:
    """A process's ingest state: its write gate and audit summaries, and the limits."""

    gate: WriteGate
    summaries: AuditSummaries
    limits: Limits

    @classmethod
    def of(cls, settings: Settings) -> Ingest:
        return cls(WriteGate.of(settings), AuditSummaries(settings.ingest_audit_interval_seconds),
                   Limits.of(settings))


def for_runtime(runtime: Any) -> Ingest:
    """The ingest state of a process (``Runtime.extras``), made on first use."""
    state = runtime.extras.get("ingest")
    if state is None:
        state = runtime.extras["ingest"] = Ingest.of(runtime.settings)
    return state
