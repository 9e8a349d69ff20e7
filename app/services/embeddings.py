"""Embeddings of prompt versions: queued with each new version, made by jobs, re-made by reindex.

* **Queue** (:func:`queue_versions`): the transaction that creates versions also writes their
  PENDING ``version_embeddings`` rows and one "embedding" job each (priority 0: executions go
  first). Nothing is embedded in the request; versions are immutable, so each is embedded once.
* **The document** (:func:`document_text`): the prompt's name (``/ _ . -`` read as spaces) and
  description, then the version's system prompt and its template or message contents.
* **The model** (:func:`embedder_for`): the configured provider (``app.embeddings``); for the
  openai provider the endpoint comes from ``PROMPTSTUDIO_EMBEDDING_BASE_URL``/``_API_KEY`` when
  set, else from the project's stored ``openai`` credential, else from ``OPENAI_BASE_URL``/
  ``OPENAI_API_KEY``.
* **Store** (:func:`store_vectors`): READY with the vector, its model and its length; the HNSW
  index of that length is made first if it does not exist yet (:func:`ensure_index`).
* **Reindex** (:func:`reindex`): embeds, in batches, every version whose vector is missing, failed
  or made by another model (or every version, ``force``), reporting progress.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, Text, and_, bindparam, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import embeddings
from app.db.models import Job, Prompt, PromptVersion, VersionEmbedding
from app.db.models.enums import EmbeddingStatus
from app.embeddings import Embedder, EmbeddingError, Endpoint
from app.settings import Settings

from . import jobs
from .credentials import decrypt_credential

log = logging.getLogger("promptstudio.embeddings")

JOB_KIND = "embedding"
#: Below executions (1 by default): a burst of new versions never delays a run.
JOB_PRIORITY = 0
JOB_MAX_ATTEMPTS = 5
#: HNSW indexes of pgvector's ``vector`` type hold at most this many dimensions; longer vectors are
#: searched exactly (a sequential scan of the project's vectors).
HNSW_MAX_DIMENSIONS = 2000


# ------------------------------------------------------------------ the document


def document_text(name: str, description: str | None, system_prompt: str | None, template: str | None,
                  messages: Any) -> str:
    """What is embedded for a version: name, description, system prompt, template or message contents."""
    parts = [name.translate(str.maketrans("/_.-", "    ")).strip(), description or "", system_prompt or "",
             template or ""]
    if isinstance(messages, list):
        parts += [str(m.get("content") or "") for m in messages if isinstance(m, dict)]
    return "\n".join(p.strip() for p in parts if p and p.strip())


def _document_columns():
    return (VersionEmbedding.version_id, VersionEmbedding.project_id, Prompt.name, Prompt.description,
            PromptVersion.system_prompt, PromptVersion.template, PromptVersion.messages)


def _document_select():
    return (select(*_document_columns()).select_from(VersionEmbedding)
            .join(PromptVersion, PromptVersion.id == VersionEmbedding.version_id)
            .join(Prompt, Prompt.id == VersionEmbedding.prompt_id))


@dataclass
class Document:
    version_id: uuid.UUID
    project_id: uuid.UUID
    text: str


def _document(row: Any) -> Document:
    return Document(version_id=row.version_id, project_id=row.project_id,
                    text=document_text(row.name, row.description, row.system_prompt, row.template, row.messages))


async def load_document(session: AsyncSession, version_id: uuid.UUID) -> Document | None:
    row = (await session.execute(_document_select().where(VersionEmbedding.version_id == version_id))).first()
    return _document(row) if row is not None else None


# ------------------------------------------------------------------ queueing


async def queue_versions(session: AsyncSession, versions: Sequence[PromptVersion], project_id: uuid.UUID) -> None:
    """In the transaction that created ``versions`` (flushed): their PENDING rows and jobs."""
    if not versions:
        return
    await session.execute(insert(VersionEmbedding).values([
        {"version_id": v.id, "prompt_id": v.prompt_id, "project_id": project_id} for v in versions
    ]).on_conflict_do_nothing())
    await session.execute(insert(Job).values([
        {"kind": JOB_KIND, "subject_id": v.id, "project_id": project_id, "priority": JOB_PRIORITY,
         "max_attempts": JOB_MAX_ATTEMPTS} for v in versions
    ]).on_conflict_do_nothing())
    await jobs.notify_queue(session)


# ------------------------------------------------------------------ the model


async def endpoint_for(session: AsyncSession, settings: Settings, project_id: uuid.UUID | None) -> Endpoint | None:
    """Where the remote provider is called for this project (None for the built-in models)."""
    if settings.embedding_provider not in embeddings.REMOTE:
        return None
    if settings.embedding_base_url:
        return Endpoint(settings.embedding_base_url, settings.embedding_api_key or settings.openai_api_key)
    if project_id is not None:
        stored = await decrypt_credential(session, project_id, "openai", settings)
        if stored is not None:
            api_key, base_url = stored
            return Endpoint(base_url or settings.openai_base_url, api_key)
    return Endpoint(settings.openai_base_url, settings.embedding_api_key or settings.openai_api_key)


async def embedder_for(session: AsyncSession, settings: Settings, project_id: uuid.UUID | None) -> Embedder:
    """The configured model, set up for this project. Raises EmbeddingError when it cannot be."""
    try:
        endpoint = await endpoint_for(session, settings, project_id)
    except Exception as exc:  # a stored key the secret key cannot decrypt
        raise EmbeddingError(f"the project's openai credential cannot be used: {exc}") from exc
    return embeddings.build(settings, endpoint)


# ------------------------------------------------------------------ storing

#: (database, length) pairs whose index is known to exist.
_known_indexes: set[tuple[str, int]] = set()


def index_name(dimensions: int) -> str:
    return f"ix_version_embeddings_hnsw_{int(dimensions)}"


async def ensure_index(sessionmaker: async_sessionmaker[AsyncSession], dimensions: int) -> None:
    """The HNSW index of vectors of this length, made (CONCURRENTLY: writes go on) if it is missing."""
    dimensions = int(dimensions)
    bind = sessionmaker.kw.get("bind")
    known = (bind.url.render_as_string(hide_password=True) if bind is not None else "", dimensions)
    if known in _known_indexes:
        return
    if dimensions > HNSW_MAX_DIMENSIONS:
        log.warning("vectors of %d dimensions cannot have an HNSW index (pgvector's limit is %d): semantic search "
                    "scans them exactly; choose a smaller PROMPTSTUDIO_EMBEDDING_DIMENSIONS if the model allows it",
                    dimensions, HNSW_MAX_DIMENSIONS)
        _known_indexes.add(known)
        return
    name = index_name(dimensions)
    async with sessionmaker() as session:
        exists = (await session.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name})).scalar_one()
    if not exists:
        async with sessionmaker() as session:
            conn = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            log.info("creating the HNSW index %s for vectors of %d dimensions", name, dimensions)
            await conn.execute(text(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON version_embeddings "
                f"USING hnsw ((embedding::vector({dimensions})) vector_cosine_ops) WHERE dimensions = {dimensions}"))
    _known_indexes.add(known)


_STORE = text("""
UPDATE version_embeddings AS e
SET status = 'READY', model = :model, dimensions = vector_dims(d.v::vector), embedding = d.v::vector, error = NULL,
    updated_at = now()
FROM unnest(:ids, :vectors) AS d(id, v)
WHERE e.version_id = d.id
""").bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))), bindparam("vectors", type_=ARRAY(Text)))


def vector_literal(vector: Sequence[float]) -> str:
    """pgvector's text form of a vector: ``[0.1,0.2,...]``."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


async def store_vectors(session: AsyncSession, model: str, vectors: dict[uuid.UUID, list[float]]) -> None:
    """Make these versions' rows READY with their vectors (one statement)."""
    if not vectors:
        return
    ids = list(vectors)
    await session.execute(_STORE, {"model": model, "ids": ids, "vectors": [vector_literal(vectors[i]) for i in ids]})


async def mark_failed(session: AsyncSession, version_id: uuid.UUID, message: str) -> None:
    await session.execute(update(VersionEmbedding).where(VersionEmbedding.version_id == version_id)
                          .values(status=EmbeddingStatus.FAILED.value, error=message[:2000], updated_at=func.now()))


async def note_error(session: AsyncSession, version_id: uuid.UUID, message: str) -> None:
    """A transient failure: the row stays PENDING and says why (the job retries later)."""
    await session.execute(update(VersionEmbedding).where(VersionEmbedding.version_id == version_id)
                          .values(error=message[:2000], updated_at=func.now()))


# ------------------------------------------------------------------ readiness and reindex


@dataclass
class Readiness:
    ready: int
    pending: int
    failed: int
    other_model: int

    @property
    def total(self) -> int:
        return self.ready + self.pending + self.failed + self.other_model


async def readiness(session: AsyncSession, project_id: uuid.UUID, model: str) -> Readiness:
    """How many of the project's versions have a vector of ``model`` (one index-served query)."""
    E = VersionEmbedding
    row = (await session.execute(select(
        func.count().filter(and_(E.status == EmbeddingStatus.READY.value, E.model == model)),
        func.count().filter(E.status == EmbeddingStatus.PENDING.value),
        func.count().filter(E.status == EmbeddingStatus.FAILED.value),
        func.count().filter(and_(E.status == EmbeddingStatus.READY.value, E.model != model)),
    ).where(E.project_id == project_id))).one()
    return Readiness(*(int(x) for x in row))


def _needs_work(model: str, force: bool):
    E = VersionEmbedding
    if force:
        return True
    return or_(E.status != EmbeddingStatus.READY.value, E.model.is_distinct_from(model))


Progress = Callable[[int, int], Awaitable[None] | None]


@dataclass
class ReindexResult:
    embedded: int
    failed: int
    model: str
    dimensions: int | None
    seconds: float


async def reindex(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *,
                  project_id: uuid.UUID | None = None, force: bool = False,
                  progress: Progress | None = None) -> ReindexResult:
    """Embed every version that has no vector of the configured model (all of them with ``force``),
    in batches of ``settings.embedding_batch_size``; ``progress(done, total)`` after each batch.

    A version whose text the model refuses is marked FAILED and the rest go on; a provider that is
    down stops the reindex with its error (what was done stays done: run it again to go on).
    """
    import time

    model = embeddings.model_tag(settings)
    E = VersionEmbedding
    scope = [E.project_id == project_id] if project_id is not None else []
    async with sessionmaker() as session, session.begin():
        # Every version gets a row first (versions made before the embeddings existed get theirs in migration 0006).
        missing = (select(PromptVersion.id, PromptVersion.prompt_id, Prompt.project_id)
                   .join(Prompt, Prompt.id == PromptVersion.prompt_id)
                   .where(~select(E.version_id).where(E.version_id == PromptVersion.id).exists()))
        if project_id is not None:
            missing = missing.where(Prompt.project_id == project_id)
        await session.execute(insert(E).from_select(["version_id", "prompt_id", "project_id"], missing)
                              .on_conflict_do_nothing())
        total = (await session.execute(select(func.count()).select_from(E)
                                       .where(_needs_work(model, force), *scope))).scalar_one()
    started = time.monotonic()
    done = failed = 0
    dims: int | None = None
    after: uuid.UUID | None = None
    embedders: dict[uuid.UUID, Embedder] = {}
    if progress is not None:
        await _call(progress, 0, total)
    while done < total:
        async with sessionmaker() as session:
            # The next batch's ids first (walking the primary key), then their documents: a join
            # ordered and limited as one statement is planned as a sort of every row.
            batch = select(E.version_id).where(_needs_work(model, force), *scope)
            if after is not None:
                batch = batch.where(E.version_id > after)
            batch = batch.order_by(E.version_id).limit(settings.embedding_batch_size)
            rows = (await session.execute(_document_select().where(E.version_id.in_(batch.scalar_subquery()))
                                          .order_by(E.version_id))).all()
            if not rows:
                break
            docs = [_document(r) for r in rows]
            by_project: dict[uuid.UUID, list[Document]] = {}
            for d in docs:
                by_project.setdefault(d.project_id, []).append(d)
            for pid in by_project:
                if pid not in embedders:
                    embedders[pid] = await embedder_for(session, settings, pid)
        after = docs[-1].version_id
        vectors: dict[uuid.UUID, list[float]] = {}
        refused: dict[uuid.UUID, str] = {}
        for pid, group in by_project.items():
            embedder = embedders[pid]
            try:
                got = await embedder.embed([d.text for d in group], "document")
            except EmbeddingError as exc:
                if exc.retryable:
                    raise
                for d in group:  # one by one, to find the text(s) the model refuses
                    try:
                        vectors[d.version_id] = (await embedder.embed([d.text], "document"))[0]
                    except EmbeddingError as one:
                        if one.retryable:
                            raise
                        refused[d.version_id] = one.message
                continue
            vectors.update({d.version_id: v for d, v in zip(group, got, strict=True)})
        for length in {len(v) for v in vectors.values()}:
            await ensure_index(sessionmaker, length)
            dims = length
        async with sessionmaker() as session, session.begin():
            await store_vectors(session, model, vectors)
            for version_id, message in refused.items():
                await mark_failed(session, version_id, message)
            # Their jobs have nothing left to do.
            await session.execute(delete(Job).where(Job.kind == JOB_KIND, Job.status == "PENDING",
                                                    Job.subject_id.in_([d.version_id for d in docs])))
        done += len(docs)
        failed += len(refused)
        if progress is not None:
            await _call(progress, min(done, total), total)
    return ReindexResult(embedded=done - failed, failed=failed, model=model, dimensions=dims,
                         seconds=time.monotonic() - started)


async def _call(progress: Progress, done: int, total: int) -> None:
    result = progress(done, total)
    if result is not None:
        await result
