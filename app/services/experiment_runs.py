"""Runs of experiments: how a run moves with its execution, its scores, and its experiment's progress.

A run is one variant on one dataset item and repetition (offline), or one execution served by a
live A/B test's traffic split. Its execution is an ordinary execution whose ``experiment_run_id``
points at it; the run follows it in the transactions that move the execution, whoever moves it:

    execution queued            run PENDING
    claimed by a worker         run RUNNING                  (execution_started)
    requeued (worker died)      run PENDING again            (execution_requeued)
    COMPLETED                   run RUNNING, and a scoring job is queued (kind ``experiment_score``,
                                handler ``app.engine.scoring``; at its execution's priority and place
                                in the queue) — or COMPLETED at once when the experiment has no
                                evaluators                                            (execution_ended)
    FAILED / CANCELLED          run FAILED / CANCELLED                               (execution_ended)
    scored                      run COMPLETED with its scores                         (record_scores)

So a run is COMPLETED once its execution completed *and* its scores are in. The experiment's
progress counters (``runs_*``) change in the same transactions, under the experiment's row lock;
an offline experiment becomes COMPLETED in the transaction that finishes its last run. Every run
that finishes is announced on the experiment's topic (``app.events.topics.experiment``) for
``experimentProgress``.

Locks are always taken in the order job -> execution -> run -> experiment (the order the queue's
claim takes them), so the engine and a bulk cancel never wait on each other in a circle. Runs and
experiments are locked FOR NO KEY UPDATE: the KEY SHARE locks that inserting a score or an execution
takes on the rows they reference do not conflict with it (with FOR UPDATE, two transactions that each
inserted a score and then locked the experiment would deadlock upgrading their locks).

Offline runs are queued in bulk (``queue_offline_runs``): runs, executions, their QUEUED events and
logs, and their jobs, a few statements per 2,000 runs. Their QUEUED events are stored but not
announced one by one (nobody can be subscribed to executions that did not exist; a project monitor
would be flooded): monitors see them from STARTED on. A bulk cancel (``cancel_runs``) announces each
cancelled execution on its own topic, not on its project's.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    DatasetItem,
    Execution,
    Experiment,
    ExperimentEvaluator,
    ExperimentRun,
    ExperimentScore,
    ExperimentVariant,
    Feedback,
    Job,
    Prompt,
    PromptVersion,
)
from app.db.models.enums import (
    PRIORITY_RANK,
    ExecutionEventType,
    ExecutionStatus,
    ExperimentStatus,
    JobStatus,
    LogLevel,
    Priority,
    ScoreSource,
)
from app.events import topics
from app.events.publish import encode, publish
from app.settings import Settings

from . import jobs
from .execution_events import log_clock
from .execution_traces import write_execution_traces
from .principal import Principal

#: The kind of the jobs that score a run.
SCORE_JOB_KIND = "experiment_score"
#: The name of the feedback ratings' score (live A/B tests).
FEEDBACK_SCORE = "feedback"
#: Runs per batch of the bulk writes.
BATCH = 2000

PENDING, RUNNING = ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value
COMPLETED, FAILED, CANCELLED = (ExecutionStatus.COMPLETED.value, ExecutionStatus.FAILED.value,
                                ExecutionStatus.CANCELLED.value)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
_COUNTER = {RUNNING: "runs_running", COMPLETED: "runs_completed", FAILED: "runs_failed", CANCELLED: "runs_cancelled"}


def pair_key(item_position: int | None, repetition: int) -> int | None:
    """What pairs two variants' runs: the same dataset item and repetition (None for live runs)."""
    return None if item_position is None else item_position * 128 + repetition


def experiment_priority(settings: Settings) -> int:
    return PRIORITY_RANK[Priority(settings.experiment_priority)]


async def _now(session: AsyncSession) -> datetime:
    return (await session.execute(select(func.now()))).scalar_one()


async def _lock_run(session: AsyncSession, run_id: uuid.UUID) -> ExperimentRun | None:
    return (await session.execute(
        select(ExperimentRun).where(ExperimentRun.id == run_id).with_for_update(key_share=True)
        .execution_options(populate_existing=True))).scalar_one_or_none()


async def lock_experiment(session: AsyncSession, experiment_id: uuid.UUID) -> Experiment | None:
    return (await session.execute(
        select(Experiment).where(Experiment.id == experiment_id).with_for_update(key_share=True)
        .execution_options(populate_existing=True))).scalar_one_or_none()


def finished(e: Experiment) -> int:
    return e.runs_completed + e.runs_failed + e.runs_cancelled


async def _count(session: AsyncSession, experiment_id: uuid.UUID, deltas: dict[str, int]) -> tuple[Experiment, bool]:
    """Apply counter changes under the experiment's row lock; an offline experiment whose runs have all
    finished becomes COMPLETED. Returns (experiment, whether it completed just now)."""
    e = await lock_experiment(session, experiment_id)
    assert e is not None
    for column, delta in deltas.items():
        setattr(e, column, getattr(e, column) + delta)
    e.updated_at = await _now(session)
    completed = (e.status == ExperimentStatus.RUNNING.value and e.environment is None
                 and finished(e) == e.runs_total)
    if completed:
        e.status = ExperimentStatus.COMPLETED.value
        e.ended_at = e.updated_at
    await session.flush()
    return e, completed


async def move(session: AsyncSession, run: ExperimentRun, status: str) -> Experiment:
    """Move a (locked) run to ``status``: its counters, and the notice of a run that finished."""
    old = run.status
    run.status = status
    deltas: dict[str, int] = {}
    if old in _COUNTER:
        deltas[_COUNTER[old]] = deltas.get(_COUNTER[old], 0) - 1
    if status in _COUNTER:
        deltas[_COUNTER[status]] = deltas.get(_COUNTER[status], 0) + 1
    if status in TERMINAL and run.ended_at is None:
        run.ended_at = await _now(session)
    await session.flush()
    experiment, completed = await _count(session, run.experiment_id, deltas)
    if status in TERMINAL:
        data: dict[str, Any] = {"r": str(run.id), "st": status}
        if completed:
            data["x"] = experiment.status
        await publish(session, [topics.experiment(run.experiment_id)], data)
    return experiment


async def publish_end(session: AsyncSession, experiment: Experiment) -> None:
    """Announce that the experiment ended (COMPLETED or CANCELLED by a caller)."""
    await publish(session, [topics.experiment(experiment.id)], {"x": experiment.status})


# ------------------------------------------------------------------ following executions


async def execution_started(session: AsyncSession, execution: Execution) -> None:
    """A worker claimed the execution (in the claim's transaction): its run is RUNNING."""
    if execution.experiment_run_id is None:
        return
    run = await _lock_run(session, execution.experiment_run_id)
    if run is None or run.status != PENDING:
        return
    run.started_at = run.started_at or execution.started_at
    await move(session, run, RUNNING)


async def execution_requeued(session: AsyncSession, execution: Execution) -> None:
    """The execution went back to the queue (its worker stopped): its run is PENDING again."""
    if execution.experiment_run_id is None:
        return
    run = await _lock_run(session, execution.experiment_run_id)
    if run is None or run.status != RUNNING:
        return
    await move(session, run, PENDING)


async def execution_ended(session: AsyncSession, execution: Execution, settings: Settings) -> None:
    """The execution ended (in the transaction that ends it, whoever ends it): see the module docstring."""
    if execution.experiment_run_id is None:
        return
    run = await _lock_run(session, execution.experiment_run_id)
    if run is None or run.status in TERMINAL:
        return
    run.output = execution.output
    run.latency_ms = execution.latency_ms
    run.cost_usd = execution.cost_usd
    run.error = execution.error
    run.started_at = run.started_at or execution.started_at
    status = (await session.execute(select(Experiment.status).where(Experiment.id == run.experiment_id))).scalar_one()
    if execution.status != COMPLETED:
        await move(session, run, execution.status)
        return
    if status != ExperimentStatus.RUNNING.value:
        run.error = f"the experiment had ended ({status}) when its execution completed; it was not scored"
        await move(session, run, CANCELLED)
        return
    evaluators = (await session.execute(
        select(func.count()).select_from(ExperimentEvaluator)
        .where(ExperimentEvaluator.experiment_id == run.experiment_id))).scalar_one()
    if not evaluators:
        await move(session, run, COMPLETED)
        return
    if run.status != RUNNING:
        await move(session, run, RUNNING)
    job = await jobs.enqueue(session, SCORE_JOB_KIND, run.id, project_id=execution.project_id,
                             priority=execution.priority, max_attempts=settings.max_attempts)
    # The scoring job takes its execution's place in the queue (a millisecond ahead of it, so ahead of the
    # executions queued with it): an experiment's runs are scored as they go, not after all of them ran.
    job.created_at = execution.created_at - timedelta(milliseconds=1)
    await session.flush()


# ------------------------------------------------------------------ scores


@dataclass(frozen=True)
class NewScore:
    name: str
    value: float
    passed: bool | None = None
    explanation: str | None = None
    source: str = ScoreSource.EVALUATOR.value
    evaluator_id: uuid.UUID | None = None
    cost_usd: Decimal | None = None
    scored_by_id: uuid.UUID | None = None


async def upsert_scores(session: AsyncSession, run: ExperimentRun, scores: Sequence[NewScore]) -> None:
    """Insert or replace scores of ``run`` (by name)."""
    if not scores:
        return
    key = pair_key(run.item_position, run.repetition)
    rows = [{"run_id": run.id, "name": s.name, "experiment_id": run.experiment_id, "variant_id": run.variant_id,
             "pair_key": key, "value": s.value, "passed": s.passed, "explanation": s.explanation,
             "source": s.source, "evaluator_id": s.evaluator_id, "cost_usd": s.cost_usd,
             "scored_by_id": s.scored_by_id} for s in scores]
    stmt = pg_insert(ExperimentScore).values(rows)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[ExperimentScore.run_id, ExperimentScore.name],
        set_={"value": stmt.excluded.value, "passed": stmt.excluded.passed,
              "explanation": stmt.excluded.explanation, "source": stmt.excluded.source,
              "evaluator_id": stmt.excluded.evaluator_id, "cost_usd": stmt.excluded.cost_usd,
              "scored_by_id": stmt.excluded.scored_by_id, "updated_at": func.now()}))


async def record_scores(session: AsyncSession, run_id: uuid.UUID, scores: Sequence[NewScore],
                        errors: list[dict[str, str]]) -> ExperimentRun | None:
    """The scoring job's outcome (in its final transaction): the scores, what could not be scored, and the run
    COMPLETED. None when the run is no longer being scored (cancelled meanwhile)."""
    run = await _lock_run(session, run_id)
    if run is None or run.status != RUNNING:
        return None
    await upsert_scores(session, run, scores)
    run.scoring_errors = errors
    await move(session, run, COMPLETED)
    return run


async def scoring_stopped(session: AsyncSession, run_id: uuid.UUID, status: str, message: str) -> None:
    """The scoring job gave up (COMPLETED without scores, saying why) or was cancelled (CANCELLED)."""
    run = await _lock_run(session, run_id)
    if run is None or run.status != RUNNING:
        return
    if status == COMPLETED:
        run.scoring_errors = [{"name": "*", "message": message}]
    else:
        run.error = message
    await move(session, run, status)


async def feedback_given(session: AsyncSession, execution: Execution) -> None:
    """A rating of a live run's execution (submitFeedback, in its transaction): the run's ``feedback`` score is
    the mean of its execution's ratings."""
    if execution.experiment_run_id is None or execution.status != COMPLETED:
        return
    run = await _lock_run(session, execution.experiment_run_id)
    if run is None or run.status not in (RUNNING, COMPLETED):
        return
    mean, count = (await session.execute(
        select(func.avg(Feedback.rating), func.count()).where(Feedback.execution_id == execution.id))).one()
    await upsert_scores(session, run, [NewScore(
        FEEDBACK_SCORE, float(mean), None, f"mean of {count} rating{'s' if count != 1 else ''} from 1 to 5",
        source=ScoreSource.FEEDBACK.value)])


# ------------------------------------------------------------------ live A/B tests


async def serve_live_run(session: AsyncSession, execution: Execution) -> None:
    """In executePrompt's transaction, for an execution whose version a deployment chose: when a running
    experiment owns that traffic split, the execution is a run of the variant serving its version."""
    if execution.deployment_id is None or execution.environment is None:
        return
    found = (await session.execute(
        select(Experiment.id, ExperimentVariant.id)
        .join(ExperimentVariant, ExperimentVariant.experiment_id == Experiment.id)
        .where(Experiment.prompt_id == execution.prompt_id, Experiment.environment == execution.environment,
               Experiment.status == ExperimentStatus.RUNNING.value,
               ExperimentVariant.version_id == execution.version_id))).first()
    if found is None:
        return
    experiment_id, variant_id = found
    experiment, _ = await _count(session, experiment_id, {"runs_total": 1})
    run = ExperimentRun(id=uuid.uuid4(), experiment_id=experiment_id, variant_id=variant_id,
                        ordinal=experiment.runs_total, repetition=1, status=PENDING, variables=execution.variables)
    session.add(run)
    await session.flush()
    execution.experiment_run_id = run.id
    await session.flush()


# ------------------------------------------------------------------ offline runs, in bulk


@dataclass
class PlannedVariant:
    """A variant ready to run: its version, prompt, merged model settings, and the prompt rendered for each
    dataset item (aligned with the items)."""

    variant: ExperimentVariant
    version: PromptVersion
    prompt: Prompt
    model_settings: dict
    rendered: list[dict]
    render_ms: int


_INSERT_RUNS = """
INSERT INTO experiment_runs (id, experiment_id, variant_id, dataset_item_id, ordinal, item_position, repetition,
                             status, variables)
SELECT u.id, $1, u.variant_id, u.item_id, u.ordinal, u.position, u.repetition, 'PENDING', u.variables::jsonb
FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::int[], $6::int[], $7::int[], $8::text[])
    AS u(id, variant_id, item_id, ordinal, position, repetition, variables)
"""
_INSERT_EXECUTIONS = """
INSERT INTO executions (id, project_id, prompt_id, version_id, status, priority, variables, model_settings,
                        rendered_prompt, render_ms, provider, model, max_attempts, requested_by_id, api_key_id,
                        experiment_run_id, last_event_seq)
SELECT u.id, $1, u.prompt_id, u.version_id, 'PENDING', $2, u.variables::jsonb, u.model_settings::jsonb,
       u.rendered::jsonb, u.render_ms, u.provider, u.model, $3, $4, $5, u.run_id, 2
FROM unnest($6::uuid[], $7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::text[], $12::int[], $13::text[],
            $14::text[], $15::uuid[])
    AS u(id, prompt_id, version_id, variables, model_settings, rendered, render_ms, provider, model, run_id)
"""
_INSERT_LOGS = """
INSERT INTO execution_logs (id, execution_id, level, message, metadata, timestamp)
SELECT u.id, u.execution_id, $1, u.message, u.metadata::jsonb, u.at
FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[]) AS u(id, execution_id, message,
                                                                                     metadata, at)
"""
_INSERT_EVENTS = """
INSERT INTO execution_events (execution_id, seq, type, log_id)
SELECT u.execution_id, u.seq, u.type, u.log_id
FROM unnest($1::uuid[], $2::int[], $3::text[], $4::uuid[]) AS u(execution_id, seq, type, log_id)
"""
_INSERT_JOBS = """
INSERT INTO jobs (kind, subject_id, project_id, priority, max_attempts)
SELECT $1, s, $2, $3, $4 FROM unnest($5::uuid[]) AS s
"""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def _driver(session: AsyncSession) -> Any:
    conn = (await (await session.connection()).get_raw_connection()).driver_connection
    assert conn is not None
    return conn


async def queue_offline_runs(session: AsyncSession, settings: Settings, principal: Principal,
                             experiment: Experiment, planned: Sequence[PlannedVariant],
                             items: Sequence[DatasetItem]) -> int:
    """Queue every variant x item x repetition as a run and its execution (PENDING, with their jobs), in bulk.
    The experiment's ``runs_total`` is set here; returns it."""
    conn = await _driver(session)
    priority = experiment_priority(settings)
    priority_name = settings.experiment_priority
    plan = [(rep, i, v) for rep in range(1, experiment.repetitions + 1) for i in range(len(items))
            for v in range(len(planned))]
    for start in range(0, len(plan), BATCH):
        chunk = plan[start:start + BATCH]
        runs = [uuid.uuid4() for _ in chunk]
        executions = [uuid.uuid4() for _ in chunk]
        logs = [uuid.uuid4() for _ in chunk]
        await conn.execute(
            _INSERT_RUNS, experiment.id, runs, [planned[v].variant.id for _, _, v in chunk],
            [items[i].id for _, i, _ in chunk], list(range(start + 1, start + len(chunk) + 1)),
            [items[i].position for _, i, _ in chunk], [rep for rep, _, _ in chunk],
            [_json(items[i].variables) for _, i, _ in chunk])
        await conn.execute(
            _INSERT_EXECUTIONS, experiment.project_id, priority, settings.max_attempts, principal.user_id,
            principal.api_key_id, executions, [planned[v].prompt.id for _, _, v in chunk],
            [planned[v].version.id for _, _, v in chunk], [_json(items[i].variables) for _, i, _ in chunk],
            [_json(planned[v].model_settings) for _, _, v in chunk],
            [_json(planned[v].rendered[i]) for _, i, v in chunk], [planned[v].render_ms for _, _, v in chunk],
            [planned[v].model_settings["provider"] for _, _, v in chunk],
            [planned[v].model_settings["model"] for _, _, v in chunk], runs)
        messages, metadata = [], []
        for rep, i, v in chunk:
            p = planned[v]
            messages.append(
                f'queued by experiment "{experiment.name}" (variant "{p.variant.name}", dataset item '
                f"{items[i].position}, repetition {rep}): version {p.version.number} of \"{p.prompt.name}\", "
                f"{p.model_settings['provider']}/{p.model_settings['model']}, priority {priority_name}")
            metadata.append(_json({"experimentId": str(experiment.id), "variant": p.variant.name,
                                   "datasetItemId": str(items[i].id), "repetition": rep,
                                   "versionNumber": p.version.number}))
        await conn.execute(_INSERT_LOGS, LogLevel.DEBUG.value, logs, executions, messages, metadata,
                           [log_clock() for _ in chunk])
        await conn.execute(_INSERT_EVENTS, executions + executions, [1] * len(chunk) + [2] * len(chunk),
                           [ExecutionEventType.QUEUED.value] * len(chunk) + [ExecutionEventType.LOG.value] * len(chunk),
                           [None] * len(chunk) + logs)
        await conn.execute(_INSERT_JOBS, "execution", experiment.project_id, priority, settings.max_attempts,
                           executions)
    experiment.runs_total = len(plan)
    await session.flush()
    await jobs.notify_queue(session)
    return len(plan)


# ------------------------------------------------------------------ ending an experiment early

_NOTIFY_MANY = "SELECT count(pg_notify('ps_events', p)) FROM unnest($1::text[]) AS p"


async def cancel_runs(session: AsyncSession, experiment: Experiment, reason: str, *,
                      cancel_executions: bool) -> dict[str, int]:
    """Stop what is left of an experiment's runs (before its status changes, in the same transaction).

    ``cancel_executions`` (offline experiments): PENDING executions end CANCELLED at once, RUNNING ones are
    told to stop (their workers end them, and their runs end CANCELLED). Live A/B tests keep their
    executions (they are production traffic); their runs still in flight end CANCELLED when they finish.
    Either way, scoring not yet started is dropped and scoring under way is told to stop. Returns what
    was done, for the audit log.
    """
    conn = await _driver(session)
    run_ids = select(ExperimentRun.id).where(ExperimentRun.experiment_id == experiment.id).scalar_subquery()
    done = {"executionsCancelled": 0, "executionsStopping": 0, "scoringDropped": 0, "scoringStopping": 0}
    now = await _now(session)
    if cancel_executions:
        exec_jobs = (await session.execute(
            select(Job).join(Execution, Execution.id == Job.subject_id)
            .where(Job.kind == "execution", Execution.experiment_run_id.in_(run_ids))
            .order_by(Job.id).with_for_update(of=Job).execution_options(populate_existing=True))).scalars().all()
        pending = [j for j in exec_jobs if j.status == JobStatus.PENDING.value]
        running = [j for j in exec_jobs if j.status == JobStatus.RUNNING.value]
        for i in range(0, len(pending), BATCH):
            await _cancel_pending(session, conn, [j.subject_id for j in pending[i:i + BATCH]], reason)
        if pending:
            await session.execute(delete(Job).where(Job.id.in_([j.id for j in pending]))
                                  .execution_options(synchronize_session=False))
        for job in running:
            await jobs.request_cancel(session, job, now)
        if running:
            await session.execute(
                update(Execution).where(Execution.id.in_([j.subject_id for j in running]),
                                        Execution.cancel_requested_at.is_(None))
                .values(cancel_requested_at=now).execution_options(synchronize_session=False))
        done["executionsCancelled"], done["executionsStopping"] = len(pending), len(running)
    score_jobs = (await session.execute(
        select(Job).where(Job.kind == SCORE_JOB_KIND, Job.subject_id.in_(run_ids))
        .order_by(Job.id).with_for_update().execution_options(populate_existing=True))).scalars().all()
    dropped = [j for j in score_jobs if j.status == JobStatus.PENDING.value]
    for job in score_jobs:
        if job.status == JobStatus.RUNNING.value:
            await jobs.request_cancel(session, job, now)
    if dropped:
        await session.execute(delete(Job).where(Job.id.in_([j.id for j in dropped]))
                              .execution_options(synchronize_session=False))
    done["scoringDropped"] = len(dropped)
    done["scoringStopping"] = len(score_jobs) - len(dropped)
    await session.execute(
        update(ExperimentRun)
        .where(ExperimentRun.experiment_id == experiment.id,
               (ExperimentRun.status == PENDING) | ExperimentRun.id.in_([j.subject_id for j in dropped]))
        .values(status=CANCELLED, ended_at=now, error=func.coalesce(ExperimentRun.error, reason))
        .execution_options(synchronize_session=False))
    return done


async def recount(session: AsyncSession, experiment_id: uuid.UUID) -> Experiment:
    """Lock the experiment and set its counters from its runs (after a bulk change of them)."""
    experiment = await lock_experiment(session, experiment_id)
    assert experiment is not None
    r = ExperimentRun
    counts = (await session.execute(
        select(func.count(), func.count().filter(r.status == RUNNING), func.count().filter(r.status == COMPLETED),
               func.count().filter(r.status == FAILED), func.count().filter(r.status == CANCELLED))
        .where(r.experiment_id == experiment_id))).one()
    (experiment.runs_total, experiment.runs_running, experiment.runs_completed, experiment.runs_failed,
     experiment.runs_cancelled) = counts
    await session.flush()
    return experiment


async def _cancel_pending(session: AsyncSession, conn: Any, execution_ids: list[uuid.UUID], reason: str) -> None:
    """End PENDING executions CANCELLED (their logs, events, notices and traces), in bulk."""
    e = Execution
    rows = list((await session.execute(
        update(e).where(e.id.in_(execution_ids), e.status == PENDING)
        .values(status=CANCELLED, started_at=func.coalesce(e.started_at, func.now()), completed_at=func.now(),
                cancel_requested_at=func.coalesce(e.cancel_requested_at, func.now()), updated_at=func.now(),
                validation_status=case((e.validation_status == "PENDING", "SKIPPED"), else_=e.validation_status),
                last_event_seq=e.last_event_seq + 2)
        .returning(e).execution_options(synchronize_session=False, populate_existing=True))).scalars().all())
    if not rows:
        return
    logs = [uuid.uuid4() for _ in rows]
    message = f"cancelled before it started: {reason}"
    await conn.execute(_INSERT_LOGS, LogLevel.INFO.value, logs, [r.id for r in rows], [message] * len(rows),
                       [None] * len(rows), [log_clock() for _ in rows])
    await conn.execute(_INSERT_EVENTS, [r.id for r in rows] * 2,
                       [r.last_event_seq - 1 for r in rows] + [r.last_event_seq for r in rows],
                       [ExecutionEventType.LOG.value] * len(rows) + [ExecutionEventType.CANCELLED.value] * len(rows),
                       logs + [None] * len(rows))
    notices = [encode([topics.execution(r.id)], {"e": str(r.id), "p": str(r.project_id), "s": r.last_event_seq,
                                                 "t": ExecutionEventType.CANCELLED.value, "st": CANCELLED})
               for r in rows]
    await conn.fetchval(_NOTIFY_MANY, notices)
    await write_execution_traces(session, rows)
