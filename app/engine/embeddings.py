"""The handler of "embedding" jobs: embed one prompt version and store its vector.

The subject is a version (``version_embeddings.version_id``). Claimed: nothing to do when the row
is gone or already READY with the configured model (the job is removed). The run builds the
version's document, asks the model (built-in models in their worker process, remote ones over
HTTP), and writes the vector READY and removes the job in one transaction, if this worker still
holds it. A provider that is down or rate limited: PENDING again after a back-off
(``retry_later``, the error kept on the row), FAILED once the attempts are used up. A text the
model refuses: FAILED at once with the provider's message.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import embeddings
from app.db.models import Job, VersionEmbedding
from app.db.models.enums import EmbeddingStatus
from app.embeddings import EmbeddingError
from app.services import embeddings as service
from app.services import jobs
from app.settings import Settings

from .running import STOP_CANCEL, STOP_SHUTDOWN

log = logging.getLogger("promptstudio.engine")

#: Back-off of a retry: this many seconds times 2**(attempt - 1), at most RETRY_MAX_SECONDS.
RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 300.0


async def _locked(session: AsyncSession, job: Job) -> VersionEmbedding | None:
    return (await session.execute(
        select(VersionEmbedding).where(VersionEmbedding.version_id == job.subject_id).with_for_update()
        .execution_options(populate_existing=True))).scalar_one_or_none()


class EmbeddingHandler:
    kind = service.JOB_KIND

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]):
        self.settings = settings
        self.sessionmaker = sessionmaker

    async def load(self, job: Job) -> service.Document | None:
        async with self.sessionmaker() as session:
            return await service.load_document(session, job.subject_id)

    def start(self, job: Job, subject: service.Document, worker_id: str) -> EmbeddingRun:
        return EmbeddingRun(handler=self, job=job, document=subject, worker_id=worker_id)

    # ------------------------------------------------------------------ queue hooks

    async def claimed(self, session: AsyncSession, job: Job) -> bool:
        row = await _locked(session, job)
        if row is None:
            return False  # the version was deleted
        return not (row.status == EmbeddingStatus.READY.value and row.model == embeddings.model_tag(self.settings))

    async def requeued(self, session: AsyncSession, job: Job, reason: str) -> None:
        log.info("embedding of version %s: %s", job.subject_id, reason)

    async def gave_up(self, session: AsyncSession, job: Job, message: str) -> None:
        await service.mark_failed(session, job.subject_id, message)
        log.warning("embedding of version %s failed: %s", job.subject_id, message)

    async def cancelled(self, session: AsyncSession, job: Job, reason: str) -> None:
        await service.mark_failed(session, job.subject_id, reason)


@dataclass
class EmbeddingRun:
    handler: EmbeddingHandler
    job: Job
    document: service.Document
    worker_id: str
    stop_reason: str | None = None
    _task: asyncio.Task | None = field(default=None, repr=False)

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            if self._task is not None:
                self._task.cancel()

    async def execute(self) -> None:
        h = self.handler
        try:
            async with h.sessionmaker() as session:
                embedder = await service.embedder_for(session, h.settings, self.document.project_id)
            self._task = asyncio.ensure_future(embedder.embed([self.document.text], "document"))
            if self.stop_reason is not None:
                self._task.cancel()
            [vector] = await self._task
        except asyncio.CancelledError:
            if self.stop_reason is None:
                raise  # the pool itself is being cancelled
            await self._stopped()
            return
        except EmbeddingError as exc:
            await self._failed(exc)
            return
        await service.ensure_index(h.sessionmaker, len(vector))
        async with h.sessionmaker() as session, session.begin():
            job = await jobs.lock_held(session, self.job.id, self.worker_id)
            if job is None:
                return  # taken away meanwhile (lease lost): its new holder writes
            await service.store_vectors(session, embedder.model, {self.document.version_id: vector})
            await jobs.remove(session, job)

    async def _stopped(self) -> None:
        h = self.handler
        if self.stop_reason in (STOP_SHUTDOWN, STOP_CANCEL):
            await jobs.release(h.sessionmaker, self.job.id, self.worker_id, h, "the worker is stopping")
        # STOP_LEASE_LOST: the job is someone else's now; write nothing.

    async def _failed(self, exc: EmbeddingError) -> None:
        h = self.handler
        async with h.sessionmaker() as session, session.begin():
            job = await jobs.lock_held(session, self.job.id, self.worker_id)
            if job is None:
                return
            if exc.retryable:
                delay = min(RETRY_BASE_SECONDS * 2 ** max(job.attempts - 1, 0), RETRY_MAX_SECONDS)
                await service.note_error(session, job.subject_id, exc.message)
                await jobs.retry_later(session, job, h, delay, exc.message)
            else:
                await service.mark_failed(session, job.subject_id, exc.message)
                await jobs.remove(session, job)
                log.warning("embedding of version %s failed: %s", job.subject_id, exc.message)
