"""The job queue's rules, on a kind of job that is not an execution (any kind gets the same rules).

A tiny "probe" kind records what the queue told it; the queue itself (app.services.jobs) runs for
real on PostgreSQL.
"""
from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Job
from app.services import jobs


class Probe:
    """Hooks of a test kind: each state change is recorded; ``gone`` subjects have nothing to do."""

    kind = "probe"

    def __init__(self):
        self.calls: list[tuple[str, uuid.UUID, str]] = []
        self.gone: set[uuid.UUID] = set()

    async def claimed(self, session: AsyncSession, job: Job) -> bool:
        self.calls.append(("claimed", job.subject_id, f"attempt {job.attempts}"))
        return job.subject_id not in self.gone

    async def requeued(self, session: AsyncSession, job: Job, reason: str) -> None:
        self.calls.append(("requeued", job.subject_id, reason))

    async def gave_up(self, session: AsyncSession, job: Job, message: str) -> None:
        self.calls.append(("gave_up", job.subject_id, message))

    async def cancelled(self, session: AsyncSession, job: Job, reason: str) -> None:
        self.calls.append(("cancelled", job.subject_id, reason))


async def _enqueue(sessionmaker, subject: uuid.UUID, **kw) -> uuid.UUID:
    async with sessionmaker() as session, session.begin():
        return (await jobs.enqueue(session, "probe", subject, project_id=None, **kw)).id


async def _jobs(sessionmaker) -> list[Job]:
    async with sessionmaker() as session:
        return list((await session.execute(select(Job).order_by(Job.created_at))).scalars())


async def test_claims_run_after_retries_and_giving_up(app):
    sessionmaker = app.state.runtime.sessionmaker
    probe = Probe()
    hooks = {"probe": probe}
    first, second = uuid.uuid4(), uuid.uuid4()
    await _enqueue(sessionmaker, first, max_attempts=2)
    await _enqueue(sessionmaker, second, priority=3)

    job = await jobs.claim(sessionmaker, "w1", hooks, lease_seconds=30)
    assert job.subject_id == second and job.status == "RUNNING" and job.attempts == 1  # priority first
    assert job.worker_id == "w1" and job.lease_expires_at is not None
    async with sessionmaker() as session, session.begin():  # done: the job goes
        await jobs.remove(session, job)

    job = await jobs.claim(sessionmaker, "w1", hooks, lease_seconds=30)
    assert job.subject_id == first
    async with sessionmaker() as session, session.begin():  # a transient failure: try again in 0.3 s
        held = await jobs.lock_held(session, job.id, "w1")
        assert await jobs.retry_later(session, held, probe, 0.3, "the service is down")
    assert await jobs.claim(sessionmaker, "w1", hooks, lease_seconds=30) is None  # not before its time
    await asyncio.sleep(0.4)
    job = await jobs.claim(sessionmaker, "w2", hooks, lease_seconds=30)
    assert job.subject_id == first and job.attempts == 2 and job.worker_id == "w2"
    async with sessionmaker() as session, session.begin():  # fails again: the attempts are used up
        held = await jobs.lock_held(session, job.id, "w2")
        assert not await jobs.retry_later(session, held, probe, 0.3, "the service is still down")
    assert await _jobs(sessionmaker) == []
    assert [c[0] for c in probe.calls] == ["claimed", "claimed", "requeued", "claimed", "gave_up"]
    assert probe.calls[2][2] == "the service is down; retrying in 0.3 s (attempt 2 of 2)"
    assert probe.calls[-1][2] == "gave up after 2 attempts: the service is still down"


async def test_a_job_whose_subject_is_gone_is_dropped_at_claim(app):
    sessionmaker = app.state.runtime.sessionmaker
    probe = Probe()
    gone, live = uuid.uuid4(), uuid.uuid4()
    probe.gone.add(gone)
    await _enqueue(sessionmaker, gone, priority=3)
    await _enqueue(sessionmaker, live)
    job = await jobs.claim(sessionmaker, "w", {"probe": probe}, lease_seconds=30)
    assert job.subject_id == live  # the one with nothing to do was removed on the way
    assert [j.subject_id for j in await _jobs(sessionmaker)] == [live]


async def test_leases_heartbeats_expiry_release_and_cancel(app):
    sessionmaker = app.state.runtime.sessionmaker
    probe = Probe()
    hooks = {"probe": probe}
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for subject in (a, b, c):
        await _enqueue(sessionmaker, subject)
    ja, jb, jc = [await jobs.claim(sessionmaker, "w", hooks, lease_seconds=30) for _ in range(3)]
    assert [j.subject_id for j in (ja, jb, jc)] == [a, b, c]
    # a heartbeat extends what this worker holds; someone else's ids are reported as not held
    async with sessionmaker() as session, session.begin():
        await jobs.request_cancel(session, await jobs.lock_held(session, jc.id, "w"), ja.created_at)
    states = await jobs.extend_leases(sessionmaker, "w", [ja.id, jc.id, uuid.uuid4()], lease_seconds=30)
    assert [(s.held, s.cancel_requested) for s in states.values()] == [(True, False), (True, True), (False, False)]
    assert (await jobs.extend_leases(sessionmaker, "someone-else", [ja.id], 30))[ja.id].held is False
    # the worker of a and c dies: a goes back to the queue, c (cancel asked for) is cancelled
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE jobs SET lease_expires_at = now() - interval '1 second' "
                                   "WHERE id = ANY(:ids)"), {"ids": [ja.id, jc.id]})
    assert await jobs.reclaim_expired(sessionmaker, hooks) == 2
    assert ("cancelled", c, "the worker running it (w) stopped (lease expired); cancelled as requested") in probe.calls
    assert ("requeued", a, "the worker running it (w) stopped (lease expired); queued again for attempt 2 of 3") \
        in probe.calls
    # b is handed back by a worker that stops: the attempt is not counted
    assert await jobs.release(sessionmaker, jb.id, "w", probe, "the worker is stopping")
    assert not await jobs.release(sessionmaker, jb.id, "w", probe, "the worker is stopping")  # not held any more
    left = {j.subject_id: j for j in await _jobs(sessionmaker)}
    assert set(left) == {a, b}
    assert (left[a].status, left[a].attempts, left[b].status, left[b].attempts) == ("PENDING", 1, "PENDING", 0)
    assert left[a].worker_id is None and left[a].lease_expires_at is None


async def test_one_live_job_per_subject_and_kind(app):
    import pytest
    from sqlalchemy.exc import IntegrityError

    sessionmaker = app.state.runtime.sessionmaker
    subject = uuid.uuid4()
    await _enqueue(sessionmaker, subject)
    with pytest.raises(IntegrityError):
        await _enqueue(sessionmaker, subject)
    async with sessionmaker() as session, session.begin():  # another kind may work on the same subject
        await jobs.enqueue(session, "other", subject, project_id=None)


async def test_batch_claims_keep_queue_order_and_lease_rules(app):
    sessionmaker = app.state.runtime.sessionmaker
    probe = Probe()
    hooks = {"probe": probe}
    subjects = [uuid.uuid4() for _ in range(6)]
    for i, subject in enumerate(subjects):  # priorities 1, 3, 1, 3, 1, 2 (oldest first within a priority)
        await _enqueue(sessionmaker, subject, priority=(1, 3, 1, 3, 1, 2)[i])
    future = uuid.uuid4()
    async with sessionmaker() as session, session.begin():  # not due yet: never in a batch
        await jobs.enqueue(session, "probe", future, project_id=None, priority=3,
                           run_after=(await session.execute(text("SELECT now() + interval '1 hour'"))).scalar_one())
    probe.gone.add(subjects[3])  # its subject is gone: dropped at claim, not handed out

    batch = await jobs.claim_many(sessionmaker, "w1", hooks, lease_seconds=30, limit=4)
    # priority 3, 3 (subjects 1 and 3; 3 dropped), 2 (5), then 1 (0); order kept
    assert [j.subject_id for j in batch.jobs] == [subjects[1], subjects[5], subjects[0]]
    assert not batch.short
    for job in batch.jobs:
        assert job.status == "RUNNING" and job.attempts == 1 and job.worker_id == "w1"
        assert job.lease_expires_at > job.started_at
    # a second worker cannot take them, and gets the rest in order; the queue then comes up short
    rest = await jobs.claim_many(sessionmaker, "w2", hooks, lease_seconds=30, limit=5)
    assert [j.subject_id for j in rest.jobs] == [subjects[2], subjects[4]] and rest.short
    assert (await jobs.claim_many(sessionmaker, "w3", hooks, lease_seconds=30, limit=5)).jobs == []
    # leases: extended only by their holder; an expired one is reclaimed like any other
    states = await jobs.extend_leases(sessionmaker, "w2", [j.id for j in batch.jobs + rest.jobs], lease_seconds=30)
    assert [states[j.id].held for j in batch.jobs + rest.jobs] == [False, False, False, True, True]
    async with sessionmaker() as session, session.begin():
        await session.execute(text("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :id"),
                              {"id": batch.jobs[0].id})
    assert await jobs.reclaim_expired(sessionmaker, hooks) == 1
    again = await jobs.claim_many(sessionmaker, "w3", hooks, lease_seconds=30, limit=5)
    assert [(j.subject_id, j.attempts) for j in again.jobs] == [(subjects[1], 2)]
    assert sorted(j.subject_id for j in await _jobs(sessionmaker) if j.status == "PENDING") == [future]
