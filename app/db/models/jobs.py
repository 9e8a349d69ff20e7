"""The job queue: work that runs outside requests (executions, embeddings, the scoring of experiment runs).

A row is live work only: PENDING (waiting for a worker, not before ``run_after``) or RUNNING
(held by ``worker_id`` until ``lease_expires_at``). When the work ends, its handler records the
outcome on the row the job is about (``subject_id``: an execution, ...) and deletes the job in the
same transaction, so this table stays small and its partial indexes smaller.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, created_at, enum_check, updated_at, uuid_pk
from .enums import JobStatus


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = uuid_pk()
    #: Which handler runs it ("execution", ...).
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    #: The row the job is about, as its kind defines (for "execution": the execution's id).
    subject_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default=JobStatus.PENDING.value)
    #: Higher first (0..3), then the oldest.
    priority: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="1")
    #: Worker runs so far (a worker that died mid-run counts; a graceful hand-back does not).
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="3")
    #: Not claimed before this time (retries back off).
    run_after: Mapped[datetime] = mapped_column(nullable=False, server_default=text("now()"))
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    cancel_requested_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    started_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(enum_check("status", JobStatus.values()), name="status_known"),
        CheckConstraint("priority BETWEEN 0 AND 3", name="priority_range"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts_range"),
        CheckConstraint("status <> 'RUNNING' OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)",
                        name="running_is_held"),
        # One live job per subject and kind.
        Index("uq_jobs_kind_subject_id", "kind", "subject_id", unique=True),
        # The queue: PENDING rows by priority then age (partial, so it stays small).
        Index("ix_jobs_queue", text("priority DESC"), "created_at", postgresql_where=text("status = 'PENDING'")),
        # Expired leases of RUNNING rows.
        Index("ix_jobs_leases", "lease_expires_at", postgresql_where=text("status = 'RUNNING'")),
    )
