"""Prompts, their immutable versions, deployments and validations."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, created_at, enum_check, updated_at, uuid_pk
from .enums import PromptKind, PromptStatus, TemplateFormat, ValidationType


class Prompt(Base):
    __tablename__ = "prompts"

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(64)), nullable=False, server_default=text("'{}'"))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default=PromptStatus.DRAFT.value)
    #: The number of the latest version; versions are numbered by locking this row and incrementing.
    latest_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    forked_from_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("prompt_versions.id", ondelete="SET NULL", use_alter=True))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    published_at: Mapped[datetime | None] = mapped_column()
    #: Weighted english + simple tsvector of name (A), tags (B), description (C), latest template (D).
    #: Deferred (not loaded with the row): only SQL reads these two.
    search_vector: Mapped[Any | None] = mapped_column(TSVECTOR, deferred=True)
    #: The plain text the vector was built from, for snippets (ts_headline).
    search_text: Mapped[str | None] = mapped_column(Text, deferred=True)

    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint(enum_check("status", PromptStatus.values()), name="status_known"),
        CheckConstraint("latest_version >= 0", name="latest_version_non_negative"),
        Index("ix_prompts_project_id_created_at_id", "project_id", "created_at", "id"),
        Index("ix_prompts_project_id_updated_at_id", "project_id", "updated_at", "id"),
        Index("ix_prompts_tags", "tags", postgresql_using="gin"),
        Index("ix_prompts_search_vector", "search_vector", postgresql_using="gin"),
        Index("ix_prompts_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    )


class PromptVersion(Base):
    """Immutable: no code path updates a version's content."""

    __tablename__ = "prompt_versions"

    id: Mapped[uuid.UUID] = uuid_pk()
    prompt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    template: Mapped[str | None] = mapped_column(Text)
    messages: Mapped[list | None] = mapped_column(JSONB)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    variables: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    model_settings: Mapped[dict | None] = mapped_column(JSONB)
    output_schema: Mapped[Any | None] = mapped_column(JSONB)
    commit_message: Mapped[str | None] = mapped_column(Text)
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    restored_from_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("prompt_versions.id", ondelete="SET NULL"))

    __table_args__ = (
        UniqueConstraint("prompt_id", "number"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint(enum_check("kind", PromptKind.values()), name="kind_known"),
        CheckConstraint(enum_check("format", TemplateFormat.values()), name="format_known"),
        CheckConstraint("(kind = 'TEXT' AND template IS NOT NULL) OR (kind = 'CHAT' AND messages IS NOT NULL)",
                        name="content_matches_kind"),
    )


class Deployment(Base):
    """One version serving a share of one environment's traffic. Kept as history: changes set retired_at."""

    __tablename__ = "deployments"

    id: Mapped[uuid.UUID] = uuid_pk()
    prompt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False)
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompt_versions.id", ondelete="CASCADE"),
                                                  nullable=False, index=True)
    environment: Mapped[str] = mapped_column(String(64), nullable=False)
    traffic_percentage: Mapped[int] = mapped_column(Integer, nullable=False)
    deployed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    deployed_at: Mapped[datetime] = created_at()
    retired_at: Mapped[datetime | None] = mapped_column()
    retired_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    __table_args__ = (
        CheckConstraint("traffic_percentage BETWEEN 1 AND 100", name="traffic_percentage_range"),
        CheckConstraint("retired_at IS NULL OR retired_at >= deployed_at", name="retired_after_deployed"),
        # One active row per version and environment; also the index of the hot path (resolvePrompt
        # reads the active rows of one prompt and environment: its leading columns).
        Index("uq_deployments_active_version", "prompt_id", "environment", "version_id", unique=True,
              postgresql_where=text("retired_at IS NULL")),
        Index("ix_deployments_history", "prompt_id", "deployed_at", "id"),
    )


class Validation(Base):
    __tablename__ = "validations"

    id: Mapped[uuid.UUID] = uuid_pk()
    prompt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    config: Mapped[dict] = mapped_column(JSONB, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        UniqueConstraint("prompt_id", "name"),
        CheckConstraint(enum_check("type", ValidationType.values()), name="type_known"),
    )
