"""The one write path of spans (``app.services.traces.write_spans``), against real PostgreSQL: any order,
any batching, a span sent twice stored once, summaries kept up to date, usage priced and linked."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from app.db.models import LlmUsage, Project, Span, Trace
from app.services.traces import SpanRecord, SpanUsage, write_spans

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TRACE = "0af7651916cd43dd8448eb211c80319c"


def span(sid: int, parent: int | None, *, start: float, end: float | None, trace: str = TRACE, **kw) -> SpanRecord:
    return SpanRecord(trace_id=trace, span_id=f"{sid:016x}", parent_span_id=None if parent is None else f"{parent:016x}",
                      name=kw.pop("name", f"span {sid}"), start_time=T0 + timedelta(seconds=start),
                      end_time=None if end is None else T0 + timedelta(seconds=end), **kw)


@pytest.fixture
async def project(app):
    sessionmaker = app.state.runtime.sessionmaker
    async with sessionmaker() as session, session.begin():
        p = Project(slug="t", name="T", environments=["production"], default_environment="production")
        session.add(p)
        await session.flush()
        return p.id


async def _write(app, project_id, spans, **kw):
    async with app.state.runtime.sessionmaker() as session, session.begin():
        return await write_spans(session, project_id, spans, **kw)


async def _trace(app, project_id, trace_id=TRACE) -> Trace:
    async with app.state.runtime.sessionmaker() as session:
        return (await session.execute(select(Trace).where(Trace.project_id == project_id,
                                                          Trace.trace_id == trace_id))).scalar_one()


async def test_children_first_across_batches_then_the_root_then_again(app, project):
    llm = SpanUsage(provider="openai", model="gpt-4o", input_tokens=1000, output_tokens=500)
    child = span(2, 1, start=1, end=3, kind="LLM", usage=llm, end_user_id="u-1")
    grandchild = span(3, 2, start=1.5, end=2, status="ERROR", error="tool failed")
    root = span(1, None, start=0, end=5, name="agent run", status="OK", session_id="s-9",
                metadata={"env": "prod"}, tags=["a", "b"])

    r1 = await _write(app, project, [grandchild, child])
    assert (r1.accepted, r1.duplicates) == (2, 0)
    t = await _trace(app, project)
    assert (t.span_count, t.error_count, t.status, t.name, t.root_span_id) == (2, 1, "ERROR", None, None)
    assert t.start_time == T0 + timedelta(seconds=1) and t.end_time == T0 + timedelta(seconds=3)
    assert t.error == "tool failed" and t.end_user_id == "u-1"
    assert (t.llm_calls, t.input_tokens, t.output_tokens) == (1, 1000, 500)
    assert t.cost_usd == Decimal("0.007500")  # gpt-4o: $2.50 in, $10 out per million

    r2 = await _write(app, project, [root])
    assert r2.accepted == 1 and r2.traces == {TRACE: t.id}
    t = await _trace(app, project)
    assert (t.span_count, t.status, t.name, t.root_span_id) == (3, "ERROR", "agent run", f"{1:016x}")
    assert t.start_time == T0 and t.end_time == T0 + timedelta(seconds=5)
    assert (t.session_id, t.metadata_, t.tags) == ("s-9", {"env": "prod"}, ["a", "b"])

    # the whole trace again, in one batch with a span twice: nothing changes
    r3 = await _write(app, project, [root, child, grandchild, child])
    assert (r3.accepted, r3.duplicates) == (0, 4)
    again = await _trace(app, project)
    assert (again.span_count, again.llm_calls, again.cost_usd) == (3, 1, t.cost_usd)

    async with app.state.runtime.sessionmaker() as session:
        usage = (await session.execute(select(LlmUsage))).scalars().all()
        spans = (await session.execute(select(Span).order_by(Span.start_time))).scalars().all()
    assert len(usage) == 1 and len(spans) == 3
    (u,) = usage
    assert u.span_pk == spans[1].id and u.created_at == child.end_time and u.model_config_id is not None
    assert (u.input_cost_usd, u.output_cost_usd, u.total_cost_usd) == (Decimal("0.0025"), Decimal("0.005"),
                                                                       Decimal("0.0075"))
    assert [s.id.version for s in spans] == [7, 7, 7]


async def test_a_root_that_is_ok_makes_the_trace_ok_and_a_given_cost_is_kept(app, project):
    priced = SpanUsage(provider="acme", model="unpriced-model", input_tokens=10, output_tokens=5,
                       cost_usd=Decimal("0.123"))
    unpriced = SpanUsage(provider="acme", model="unpriced-model", input_tokens=10, output_tokens=5)
    await _write(app, project, [span(1, None, start=0, end=1, status="OK"), span(2, 1, start=0.1, end=0.2, usage=priced),
                                span(3, 1, start=0.3, end=0.4, usage=unpriced)])
    t = await _trace(app, project)
    assert (t.status, t.error_count, t.llm_calls, t.cost_usd) == ("OK", 0, 2, Decimal("0.123"))


async def test_concurrent_batches_of_the_same_traces_neither_deadlock_nor_double_count(app, project):
    import asyncio

    traces = [f"{i:032x}" for i in range(1, 41)]
    batches = [[span(j * 100 + k, None if k == 0 else j * 100, start=k, end=k + 1, trace=t)
                for t in (traces if j % 2 else list(reversed(traces))) for k in range(3)]
               for j in range(1, 7)]
    # every batch twice, concurrently
    results = await asyncio.gather(*[_write(app, project, b) for b in batches + batches])
    assert sum(r.accepted for r in results) == 6 * 40 * 3
    async with app.state.runtime.sessionmaker() as session:
        counts = (await session.execute(text("SELECT sum(span_count), count(*) FROM traces"))).one()
    assert tuple(counts) == (720, 40)


async def test_a_trace_written_for_an_execution_links_to_it(app, project):
    r = await _write(app, project, [span(1, None, start=0, end=1)], execution_id=None)
    t = await _trace(app, project)
    assert t.execution_id is None and r.traces[TRACE] == t.id
    other = uuid.uuid4().hex
    # an execution id that does not exist is refused by the foreign key
    with pytest.raises(Exception):
        await _write(app, project, [span(1, None, start=0, end=1, trace=other)], execution_id=uuid.uuid4())


async def test_a_batch_that_fails_leaves_nothing_behind_not_even_its_traces(app, project):
    """The batch's statements run in the caller's transaction (SQLAlchemy begins it lazily: write_spans
    makes sure it has begun before it uses the driver's connection)."""
    import asyncpg

    bad = span(2, None, start=5, end=1, trace="1" * 32)  # write_spans trusts its input: the database refuses it
    with pytest.raises(asyncpg.CheckViolationError):
        await _write(app, project, [span(1, None, start=0, end=1, trace="2" * 32), bad])
    async with app.state.runtime.sessionmaker() as session:
        assert (await session.execute(text("SELECT count(*) FROM traces"))).scalar() == 0
