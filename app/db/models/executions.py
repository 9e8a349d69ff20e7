"""Executions, their logs and events, and feedback. (Queued work itself is a row of ``jobs``.)"""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, SmallInteger, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Money, created_at, enum_check, updated_at, uuid_pk
from .enums import ExecutionEventType, ExecutionStatus, LogLevel, ValidationStatus

#: The executions the per-project cap counts (see ``ix_executions_project_id_live``).
LIVE_COUNTED = ("status IN ('PENDING', 'RUNNING') AND (experiment_run_id IS NULL OR environment IS NOT NULL)")


class Execution(Base):
    __tablename__ = "executions"

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    prompt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False)
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompt_versions.id", ondelete="CASCADE"),
                                                  nullable=False)
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("deployments.id", ondelete="SET NULL"))
    environment: Mapped[str | None] = mapped_column(String(64))
    subject_key: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default=ExecutionStatus.PENDING.value)
    #: 0 LOW, 1 NORMAL, 2 HIGH, 3 CRITICAL — given to its job: workers take the highest first, then the oldest.
    priority: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="1")
    variables: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    context: Mapped[Any | None] = mapped_column(JSONB)
    #: Per-execution model settings merged over the version's.
    model_settings: Mapped[dict | None] = mapped_column(JSONB)
    rendered_prompt: Mapped[Any | None] = mapped_column(JSONB)
    output: Mapped[str | None] = mapped_column(Text)
    validated_output: Mapped[Any | None] = mapped_column(JSONB)
    validation_status: Mapped[str] = mapped_column(String(16), nullable=False,
                                                   server_default=ValidationStatus.PENDING.value)
    validation_results: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[Decimal | None] = mapped_column(Money)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    time_to_first_token_ms: Mapped[int | None] = mapped_column(Integer)
    #: How long rendering took at submission (the render span of the execution's trace).
    render_ms: Mapped[int | None] = mapped_column(Integer)
    #: Worker runs so far, as its job counted them (the job goes when the execution ends; this stays).
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="3")
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    #: The experiment run this execution is (an offline experiment queued it, or a live A/B test's split
    #: served it); None for everything else.
    experiment_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("experiment_runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    #: When a cancel was asked for (the worker running it stops; its job carries the request too).
    cancel_requested_at: Mapped[datetime | None] = mapped_column()
    #: Sequence number of the last event emitted for this execution (events are gapless from 1).
    last_event_seq: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")

    __table_args__ = (
        CheckConstraint(enum_check("status", ExecutionStatus.values()), name="status_known"),
        CheckConstraint(enum_check("validation_status", ValidationStatus.values()), name="validation_status_known"),
        CheckConstraint("priority BETWEEN 0 AND 3", name="priority_range"),
        CheckConstraint("cost_usd IS NULL OR cost_usd >= 0", name="cost_non_negative"),
        CheckConstraint("input_tokens IS NULL OR input_tokens >= 0", name="input_tokens_non_negative"),
        CheckConstraint("output_tokens IS NULL OR output_tokens >= 0", name="output_tokens_non_negative"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint("status <> 'PENDING' OR started_at IS NULL", name="pending_not_started"),
        CheckConstraint("status <> 'RUNNING' OR (started_at IS NOT NULL AND completed_at IS NULL)",
                        name="running_started"),
        # Terminal states have both timestamps (a PENDING execution cancelled before it ran gets
        # started_at = completed_at = the moment of cancellation).
        CheckConstraint("status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED') OR "
                        "(started_at IS NOT NULL AND completed_at IS NOT NULL)", name="finished_has_times"),
        CheckConstraint("completed_at IS NULL OR started_at IS NULL OR completed_at >= started_at",
                        name="completed_after_started"),
        UniqueConstraint("project_id", "idempotency_key"),
        # What the per-project cap counts: PENDING and RUNNING executions (partial, so it stays small), less
        # the ones an offline experiment queued (no environment): the cap is for production traffic.
        Index("ix_executions_project_id_live", "project_id", "status",
              postgresql_where=text(LIVE_COUNTED)),
        Index("uq_executions_experiment_run_id", "experiment_run_id", unique=True,
              postgresql_where=text("experiment_run_id IS NOT NULL")),
        Index("ix_executions_project_id_created_at_id", "project_id", "created_at", "id"),
        Index("ix_executions_prompt_id_created_at_id", "prompt_id", "created_at", "id"),
        Index("ix_executions_version_id_created_at", "version_id", "created_at"),
    )


class ExecutionLog(Base):
    __tablename__ = "execution_logs"

    id: Mapped[uuid.UUID] = uuid_pk()
    execution_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False)
    level: Mapped[str] = mapped_column(String(8), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    metadata_: Mapped[Any | None] = mapped_column("metadata", JSONB)
    timestamp: Mapped[datetime] = created_at()

    __table_args__ = (
        CheckConstraint(enum_check("level", LogLevel.values()), name="level_known"),
        Index("ix_execution_logs_execution_id_timestamp_id", "execution_id", "timestamp", "id"),
    )


class ExecutionEvent(Base):
    """Every event of an execution, numbered without gaps; subscribers catch up from here."""

    __tablename__ = "execution_events"

    execution_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"),
                                                    primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    delta: Mapped[str | None] = mapped_column(Text)
    log_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("execution_logs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = created_at()

    __table_args__ = (
        CheckConstraint(enum_check("type", ExecutionEventType.values()), name="type_known"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        Index("ix_execution_events_log_id", "log_id"),
    )


class Feedback(Base):
    __tablename__ = "feedback"

    id: Mapped[uuid.UUID] = uuid_pk()
    execution_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"), nullable=False,
                                                    index=True)
    rating: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()

    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),)
