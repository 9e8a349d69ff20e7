"""Projects (the tenant boundary), their members and their provider credentials."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, created_at, enum_check, updated_at, uuid_pk
from .enums import ProjectRole

DEFAULT_ENVIRONMENTS = ["development", "staging", "production"]
DEFAULT_ENVIRONMENT = "production"


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = uuid_pk()
    slug: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    environments: Mapped[list[str]] = mapped_column(ARRAY(String(64)), nullable=False)
    default_environment: Mapped[str] = mapped_column(String(64), nullable=False)
    trace_retention_days: Mapped[int | None] = mapped_column(Integer)
    execution_retention_days: Mapped[int | None] = mapped_column(Integer)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint("default_environment = ANY(environments)", name="default_environment_listed"),
        CheckConstraint("cardinality(environments) >= 1", name="has_environments"),
        CheckConstraint("trace_retention_days IS NULL OR trace_retention_days >= 1", name="trace_retention_positive"),
        CheckConstraint("execution_retention_days IS NULL OR execution_retention_days >= 1",
                        name="execution_retention_positive"),
        Index("ix_projects_created_at_id", "created_at", "id"),
    )


class ProjectMember(Base):
    __tablename__ = "project_members"

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                               index=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    added_at: Mapped[datetime] = created_at()
    added_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    __table_args__ = (
        CheckConstraint(enum_check("role", ProjectRole.values()), name="role_known"),
        Index("ix_project_members_project_id_added_at_user_id", "project_id", "added_at", "user_id"),
    )


class ProviderCredential(Base):
    """A project's key for one provider, encrypted with Fernet; only a hint is ever shown."""

    __tablename__ = "provider_credentials"

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    base_url: Mapped[str | None] = mapped_column(String(2048))
    encrypted_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    key_hint: Mapped[str] = mapped_column(String(8), nullable=False)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (UniqueConstraint("project_id", "provider"),)
