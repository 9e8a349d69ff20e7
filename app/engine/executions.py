"""The handler of "execution" jobs: what the queue's state changes mean for an execution, and running one.

The hooks run in the transaction of the queue's change, so the execution and its job never
disagree after a commit: claimed -> RUNNING (STARTED), requeued -> PENDING again with its output
cleared (QUEUED), gave up -> FAILED, cancelled -> CANCELLED — and an experiment run's execution moves its
run along (``app.services.experiment_runs``). ``start`` makes the ``Run`` that calls the provider
(``runner``).
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Execution, Job
from app.db.models.enums import ExecutionEventType, ExecutionStatus, LogLevel
from app.services import experiment_runs
from app.services.execution_events import Events, emit_event, finish, write_log
from app.services.execution_traces import write_execution_trace
from app.services.executions import JOB_KIND
from app.settings import Settings

from .runner import Run

log = logging.getLogger("promptstudio.engine")


async def _locked(session: AsyncSession, job: Job) -> Execution | None:
    return (await session.execute(
        select(Execution).where(Execution.id == job.subject_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one_or_none()


async def _now(session: AsyncSession) -> datetime:
    return (await session.execute(select(func.now()))).scalar_one()


class ExecutionHandler:
    kind = JOB_KIND

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]):
        self.settings = settings
        self.sessionmaker = sessionmaker
        #: Executions this process claimed, by job id, until ``load`` hands them to their run.
        self._claimed: dict[uuid.UUID, Execution] = {}

    def start(self, job: Job, execution: Execution, worker_id: str) -> Run:
        return Run(settings=self.settings, sessionmaker=self.sessionmaker, worker_id=worker_id, execution=execution,
                   job=job, hooks=self)

    async def load(self, job: Job) -> Execution | None:
        """The execution a claimed job is about (as ``claimed`` left it: no query when it was this process)."""
        row = self._claimed.pop(job.id, None)
        if row is not None:
            return row
        async with self.sessionmaker() as session:
            return await session.get(Execution, job.subject_id)

    # ------------------------------------------------------------------ queue hooks

    async def claimed(self, session: AsyncSession, job: Job) -> bool:
        # One statement: RUNNING if still PENDING (the row lock is taken by the update), read back whole.
        stmt = (update(Execution)
                .where(Execution.id == job.subject_id, Execution.status == ExecutionStatus.PENDING.value)
                .values(status=ExecutionStatus.RUNNING.value, started_at=job.started_at, attempts=job.attempts,
                        max_attempts=job.max_attempts, updated_at=job.started_at)
                .returning(Execution))
        row = (await session.execute(select(Execution).from_statement(stmt)
                                     .execution_options(populate_existing=True))).scalar_one_or_none()
        if row is None:
            return False  # deleted, or finished meanwhile: nothing to run
        events = Events()
        events.event(row, ExecutionEventType.STARTED.value)
        events.log(row, LogLevel.DEBUG, f"claimed by worker {job.worker_id} (attempt {job.attempts} of "
                                        f"{job.max_attempts})",
                   {"worker": job.worker_id, "attempt": job.attempts, "maxAttempts": job.max_attempts})
        await events.record(session)
        await experiment_runs.execution_started(session, row)
        self._claimed[job.id] = row
        return True

    async def requeued(self, session: AsyncSession, job: Job, reason: str) -> None:
        row = await _locked(session, job)
        if row is None:
            return
        # PENDING again: the next attempt starts from scratch (output and measurements cleared).
        row.status = ExecutionStatus.PENDING.value
        row.attempts = job.attempts
        row.started_at = row.completed_at = None
        row.output = None
        row.time_to_first_token_ms = row.latency_ms = None
        row.input_tokens = row.output_tokens = None
        row.cost_usd = None
        row.updated_at = await _now(session)
        await session.flush()
        await write_log(session, row, LogLevel.WARN, reason, {"attempt": job.attempts, "maxAttempts": job.max_attempts})
        await emit_event(session, row, ExecutionEventType.QUEUED.value)
        await experiment_runs.execution_requeued(session, row)
        log.info("execution %s: %s", row.id, reason)

    async def gave_up(self, session: AsyncSession, job: Job, message: str) -> None:
        row = await self._end(session, job, ExecutionStatus.FAILED, LogLevel.ERROR, message)
        if row is not None:
            log.warning("execution %s failed: %s", row.id, message)

    async def cancelled(self, session: AsyncSession, job: Job, reason: str) -> None:
        await self._end(session, job, ExecutionStatus.CANCELLED, LogLevel.INFO, reason)

    async def _end(self, session: AsyncSession, job: Job, status: ExecutionStatus, level: LogLevel,
                   message: str) -> Execution | None:
        """The execution's final state (FAILED with ``message`` as its error, or CANCELLED), its log and event."""
        row = await _locked(session, job)
        if row is None:
            return None
        now = await _now(session)
        finish(row, status, now)
        if status == ExecutionStatus.FAILED:
            row.error = message
        row.updated_at = now
        await session.flush()
        await write_log(session, row, level, message,
                        {"worker": job.worker_id, "attempt": job.attempts, "maxAttempts": job.max_attempts})
        await emit_event(session, row, status.value)  # the event is named as the final status
        await write_execution_trace(session, row)
        await experiment_runs.execution_ended(session, row, self.settings)
        return row
