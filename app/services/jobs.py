"""The job queue: work of any kind, in the ``jobs`` table, claimed by workers under one set of rules.

The rules, whatever the kind (executions, embeddings, the scoring of experiment runs):

* **Enqueue** (:func:`enqueue`): a PENDING row, one per kind and subject, in the caller's transaction;
  ``NOTIFY ps_queue`` wakes idle workers when it commits.
* **Claim** (:func:`claim`, :func:`claim_many` for a batch in one transaction and one UPDATE): the
  highest-priority, oldest PENDING job(s) whose ``run_after`` has come, among the kinds the worker runs,
  ``FOR UPDATE SKIP LOCKED`` (index ``ix_jobs_queue``); each becomes RUNNING with a lease and one more
  attempt, and its kind's hooks do their part in the same transaction (``claimed``: the execution
  becomes RUNNING) — or say there is nothing left to do, and the job is removed.
* **Heartbeat** (:func:`extend_leases`): one statement extends the leases of every job a worker
  holds and reports the ones taken away and the ones whose cancel was asked for.
* **Expired leases** (:func:`reclaim_expired`): the worker died. A cancel asked for: ``cancelled``;
  attempts used up: ``gave_up``; otherwise PENDING again (``requeued``).
* **Release** (:func:`release`): a worker that stops gracefully hands its jobs back; the attempt is
  not counted.
* **Retry later** (:func:`retry_later`): PENDING again after a delay, or ``gave_up`` once the
  attempts are used up.
* **Done**: the handler records the outcome on its subject and :func:`remove`\\ s the job in the same
  transaction: the table holds live work only.
* **Cancel** (:func:`request_cancel`): marks a RUNNING job and ``NOTIFY ps_cancel`` (payload: the job
  id) reaches the worker running it; a PENDING job is just removed by its kind's service.

Every hook runs in the transaction of the change, so a job's state and its subject's never
disagree after a commit.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Job
from app.db.models.enums import JobStatus

QUEUE_CHANNEL = "ps_queue"
CANCEL_CHANNEL = "ps_cancel"
#: Expired leases handled per sweep transaction.
RECLAIM_BATCH = 100


class JobHooks(Protocol):
    """What a kind does to its subject when its job changes state (each in that change's transaction)."""

    async def claimed(self, session: AsyncSession, job: Job) -> bool:
        """The job was claimed: start the subject (e.g. RUNNING). False: nothing to do, remove the job."""

    async def requeued(self, session: AsyncSession, job: Job, reason: str) -> None:
        """The job is PENDING again (its worker died, stopped, or asked to retry later)."""

    async def gave_up(self, session: AsyncSession, job: Job, message: str) -> None:
        """The attempts are used up: record the failure on the subject (the job is removed)."""

    async def cancelled(self, session: AsyncSession, job: Job, reason: str) -> None:
        """A cancel was asked for and the job's worker is gone or stopping (the job is removed)."""


# ------------------------------------------------------------------ producers


async def notify_queue(session: AsyncSession) -> None:
    """Wake idle workers (delivered when the caller's transaction commits)."""
    await session.execute(text("SELECT pg_notify(:c, '')"), {"c": QUEUE_CHANNEL})


async def enqueue(session: AsyncSession, kind: str, subject_id: uuid.UUID, *, project_id: uuid.UUID | None,
                  priority: int = 1, max_attempts: int = 3, payload: dict[str, Any] | None = None,
                  run_after: datetime | None = None) -> Job:
    """Queue a job in the caller's transaction (workers hear of it on commit)."""
    job = Job(kind=kind, subject_id=subject_id, project_id=project_id, priority=priority,
              max_attempts=max_attempts, payload=payload or {})
    if run_after is not None:
        job.run_after = run_after
    session.add(job)
    await session.flush()
    await notify_queue(session)
    return job


async def find(session: AsyncSession, kind: str, subject_id: uuid.UUID, *, lock: bool = False) -> Job | None:
    stmt = select(Job).where(Job.kind == kind, Job.subject_id == subject_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def remove(session: AsyncSession, job: Job | uuid.UUID) -> None:
    """The work is over (done, failed, cancelled): the job goes, in the transaction recording the outcome."""
    job_id = job if isinstance(job, uuid.UUID) else job.id
    await session.execute(delete(Job).where(Job.id == job_id).execution_options(synchronize_session=False))


async def request_cancel(session: AsyncSession, job: Job, now: datetime) -> None:
    """Mark a RUNNING job and tell its worker to stop it (delivered on commit)."""
    if job.cancel_requested_at is None:
        job.cancel_requested_at = now
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CANCEL_CHANNEL, "p": str(job.id)})


# ------------------------------------------------------------------ workers


async def _now(session: AsyncSession) -> datetime:
    return (await session.execute(select(func.now()))).scalar_one()


async def claim(sessionmaker: async_sessionmaker[AsyncSession], worker_id: str, hooks: Mapping[str, JobHooks],
                lease_seconds: float) -> Job | None:
    """Claim the next job of the kinds in ``hooks`` for ``worker_id``; None when there is none to run now."""
    batch = await claim_many(sessionmaker, worker_id, hooks, lease_seconds, 1)
    return batch.jobs[0] if batch.jobs else None


@dataclass
class Batch:
    """What :func:`claim_many` claimed, in queue order; ``short``: the queue had fewer due jobs than asked for."""

    jobs: list[Job]
    short: bool


def _order(job: Job) -> tuple[int, datetime, str]:
    return (-job.priority, job.created_at, str(job.id))


async def claim_many(sessionmaker: async_sessionmaker[AsyncSession], worker_id: str, hooks: Mapping[str, JobHooks],
                     lease_seconds: float, limit: int) -> Batch:
    """Claim up to ``limit`` jobs at once (one transaction; the same order and lease rules as one at a time:
    the highest-priority, oldest PENDING ones that are due, ``SKIP LOCKED``), in that order; none when there is
    none to run now. Jobs whose ``claimed`` hook says there is nothing to do are removed (and, when none of the
    batch is left, more are looked for)."""
    kinds = list(hooks)
    while True:
        async with sessionmaker() as session, session.begin():
            due = (select(Job.id).where(Job.status == JobStatus.PENDING.value, Job.kind.in_(kinds),
                                        Job.run_after <= func.now())
                   .order_by(Job.priority.desc(), Job.created_at, Job.id)
                   .limit(limit).with_for_update(skip_locked=True))
            stmt = (update(Job).where(Job.id.in_(due.scalar_subquery()))
                    .values(status=JobStatus.RUNNING.value, attempts=Job.attempts + 1, worker_id=worker_id,
                            lease_expires_at=func.now() + timedelta(seconds=lease_seconds), started_at=func.now(),
                            updated_at=func.now())
                    .returning(Job))
            found = sorted((await session.execute(select(Job).from_statement(stmt)
                                                  .execution_options(populate_existing=True))).scalars(),
                           key=_order)
            if not found:
                return Batch([], True)
            claimed = []
            for job in found:
                if await hooks[job.kind].claimed(session, job):
                    claimed.append(job)
                else:
                    await remove(session, job)  # its subject is gone or finished
        if claimed:
            return Batch(claimed, len(found) < limit)


@dataclass
class LeaseState:
    """What a heartbeat learns about one job a worker holds."""

    held: bool
    cancel_requested: bool = False


async def extend_leases(sessionmaker: async_sessionmaker[AsyncSession], worker_id: str,
                        job_ids: Sequence[uuid.UUID], lease_seconds: float) -> dict[uuid.UUID, LeaseState]:
    """Extend the leases ``worker_id`` holds on ``job_ids`` (one statement).

    A job missing from the held ones was taken away (its lease expired and it was reclaimed, or it
    ended): its run must stop without writing.
    """
    if not job_ids:
        return {}
    async with sessionmaker() as session, session.begin():
        rows = (await session.execute(
            update(Job)
            .where(Job.id.in_(list(job_ids)), Job.worker_id == worker_id, Job.status == JobStatus.RUNNING.value)
            .values(lease_expires_at=func.now() + timedelta(seconds=lease_seconds))
            .returning(Job.id, Job.cancel_requested_at)
            .execution_options(synchronize_session=False))).all()
    found = {r[0]: LeaseState(held=True, cancel_requested=r[1] is not None) for r in rows}
    return {i: found.get(i, LeaseState(held=False)) for i in job_ids}


def held_by(job_id: uuid.UUID, worker_id: str) -> Any:
    """A condition for a worker's writes: the job is still RUNNING and held by this worker."""
    return (select(Job.id).where(Job.id == job_id, Job.worker_id == worker_id,
                                 Job.status == JobStatus.RUNNING.value).exists())


async def lock_held(session: AsyncSession, job_id: uuid.UUID, worker_id: str) -> Job | None:
    """The job, locked, if this worker still holds it (else None: it was taken away)."""
    return (await session.execute(
        select(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JobStatus.RUNNING.value)
        .with_for_update())).scalar_one_or_none()


def gave_up_message(attempts: int) -> str:
    return (f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}: the worker running it stopped "
            "(lease expired)")


async def reclaim_expired(sessionmaker: async_sessionmaker[AsyncSession], hooks: Mapping[str, JobHooks]) -> int:
    """Handle RUNNING jobs (of the kinds in ``hooks``) whose lease expired; returns how many were handled."""
    handled = 0
    while True:
        async with sessionmaker() as session, session.begin():
            jobs = (await session.execute(
                select(Job)
                .where(Job.status == JobStatus.RUNNING.value, Job.lease_expires_at < func.now(),
                       Job.kind.in_(list(hooks)))
                .order_by(Job.lease_expires_at).limit(RECLAIM_BATCH)
                .with_for_update(skip_locked=True))).scalars().all()
            if not jobs:
                return handled
            requeued = False
            for job in jobs:
                requeued |= await _reclaim_one(session, job, hooks[job.kind])
            if requeued:
                await notify_queue(session)
        handled += len(jobs)
        if len(jobs) < RECLAIM_BATCH:
            return handled


async def _reclaim_one(session: AsyncSession, job: Job, hooks: JobHooks) -> bool:
    """Requeue, give up or cancel one job whose worker died. True when it went back to the queue."""
    worker = job.worker_id
    if job.cancel_requested_at is not None:
        await hooks.cancelled(session, job, f"the worker running it ({worker}) stopped (lease expired); cancelled as "
                                            "requested")
        await remove(session, job)
        return False
    if job.attempts >= job.max_attempts:
        await hooks.gave_up(session, job, gave_up_message(job.attempts))
        await remove(session, job)
        return False
    await _back_to_queue(session, job)
    await hooks.requeued(session, job, f"the worker running it ({worker}) stopped (lease expired); queued again "
                                       f"for attempt {job.attempts + 1} of {job.max_attempts}")
    return True


async def _back_to_queue(session: AsyncSession, job: Job, run_after: datetime | None = None) -> None:
    job.status = JobStatus.PENDING.value
    job.worker_id = None
    job.lease_expires_at = None
    job.started_at = None
    job.updated_at = await _now(session)
    job.run_after = run_after or job.updated_at
    await session.flush()


async def release(sessionmaker: async_sessionmaker[AsyncSession], job_id: uuid.UUID, worker_id: str,
                  hooks: JobHooks, reason: str) -> bool:
    """Give a job back to the queue (its worker is stopping); the attempt is not counted. A job whose
    cancel was asked for is cancelled instead."""
    async with sessionmaker() as session, session.begin():
        job = await lock_held(session, job_id, worker_id)
        if job is None:
            return False
        if job.cancel_requested_at is not None:
            await hooks.cancelled(session, job, "cancelled as requested")
            await remove(session, job)
            return True
        job.attempts = max(job.attempts - 1, 0)
        await _back_to_queue(session, job)
        await hooks.requeued(session, job, f"{reason}; handed back to the queue (this attempt is not counted)")
        await notify_queue(session)
    return True


async def retry_later(session: AsyncSession, job: Job, hooks: JobHooks, delay_seconds: float, why: str) -> bool:
    """In the worker's transaction: run the job again after ``delay_seconds``, or give up once its attempts
    are used up. True when it was requeued."""
    if job.attempts >= job.max_attempts:
        await hooks.gave_up(session, job, f"gave up after {job.attempts} attempts: {why}")
        await remove(session, job)
        return False
    await _back_to_queue(session, job, run_after=await _now(session) + timedelta(seconds=delay_seconds))
    job.last_error = why
    await hooks.requeued(session, job, f"{why}; retrying in {delay_seconds:g} s (attempt {job.attempts + 1} of "
                                       f"{job.max_attempts})")
    await notify_queue(session)
    return True
