"""Model pricing and the record of every model call's tokens and cost."""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Money, created_at, uuid_pk


class ModelConfig(Base):
    """A model's prices from ``effective_from`` on; a price change is a new row, so past costs stay."""

    __tablename__ = "model_configs"

    id: Mapped[uuid.UUID] = uuid_pk()
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    model_id: Mapped[str] = mapped_column(String(200), nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    context_length: Mapped[int | None] = mapped_column(Integer)
    max_output_tokens: Mapped[int | None] = mapped_column(Integer)
    supports_streaming: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    supports_tools: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    input_price_per_million: Mapped[Decimal] = mapped_column(Money, nullable=False)
    output_price_per_million: Mapped[Decimal] = mapped_column(Money, nullable=False)
    cached_input_price_per_million: Mapped[Decimal | None] = mapped_column(Money)
    effective_from: Mapped[datetime] = mapped_column(nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    created_at: Mapped[datetime] = created_at()

    __table_args__ = (
        UniqueConstraint("provider", "model_id", "effective_from"),
        CheckConstraint("input_price_per_million >= 0 AND output_price_per_million >= 0 AND "
                        "(cached_input_price_per_million IS NULL OR cached_input_price_per_million >= 0)",
                        name="prices_non_negative"),
    )


class LlmUsage(Base):
    """One row per model call: tokens, cost at the prices in force, and what it was for."""

    __tablename__ = "llm_usage"

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    #: Of the input tokens, how many were served from the provider's prompt cache (priced apart).
    cached_input_tokens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    input_cost_usd: Mapped[Decimal] = mapped_column(Money, nullable=False)
    output_cost_usd: Mapped[Decimal] = mapped_column(Money, nullable=False)
    total_cost_usd: Mapped[Decimal] = mapped_column(Money, nullable=False)
    #: False when the provider reported no usage and the tokens were counted by us.
    tokens_reported: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    end_user_id: Mapped[str | None] = mapped_column(String(256))
    prompt_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("prompts.id", ondelete="SET NULL"))
    version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("prompt_versions.id", ondelete="SET NULL"))
    execution_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("executions.id", ondelete="SET NULL"),
                                                           index=True)
    model_config_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_configs.id", ondelete="SET NULL"))
    #: The span of the call (ingested spans with usage, and executions' provider calls).
    span_pk: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("spans.id", ondelete="SET NULL"))
    #: When the call happened: the span's time for ingested spans, the time of recording otherwise.
    created_at: Mapped[datetime] = created_at()

    __table_args__ = (
        CheckConstraint("input_tokens >= 0 AND output_tokens >= 0", name="tokens_non_negative"),
        CheckConstraint("cached_input_tokens >= 0 AND cached_input_tokens <= input_tokens", name="cached_within_input"),
        Index("uq_llm_usage_span_pk", "span_pk", unique=True, postgresql_where=text("span_pk IS NOT NULL")),
        CheckConstraint("input_cost_usd >= 0 AND output_cost_usd >= 0 AND total_cost_usd >= 0",
                        name="cost_non_negative"),
        Index("ix_llm_usage_project_id_created_at", "project_id", "created_at"),
    )


class UsageHourly(Base):
    """``llm_usage`` summed per project, UTC hour, provider, model, prompt and version: what cost reports read.

    Maintained by the database, not by the writers: statement-level triggers on ``llm_usage`` (migration
    0009) add each statement's new rows (one upsert per statement, in key order), and move rows whose
    figures or keys change (a deleted prompt sets ``prompt_id`` null) or that are deleted. So every writer
    of ``llm_usage`` (``write_spans``, a bulk load, and any later one) keeps it exact by construction.
    No end user (that would make it nearly as big as ``llm_usage``) and no percentiles (they do not add up):
    reports grouped by end user or asking for p95 read ``llm_usage`` itself.
    """

    __tablename__ = "llm_usage_hourly"

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    #: The start of the hour (UTC).
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    #: No foreign keys: the triggers follow llm_usage's own SET NULL when a prompt is deleted.
    prompt_id: Mapped[uuid.UUID | None] = mapped_column()
    version_id: Mapped[uuid.UUID | None] = mapped_column()
    calls: Mapped[int] = mapped_column(BigInteger, nullable=False)
    input_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    output_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(18, 6), nullable=False)
    #: Average latency = latency_ms_sum / latency_calls (calls without a latency are left out).
    latency_ms_sum: Mapped[int] = mapped_column(BigInteger, nullable=False)
    latency_calls: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (
        Index("uq_llm_usage_hourly_key", "project_id", "hour", "provider", "model", "prompt_id", "version_id",
              unique=True, postgresql_nulls_not_distinct=True),
    )
