"""The audit log: one row per mutation attempt (success, failure or denied)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, created_at, enum_check, uuid_pk
from .enums import AuditResult


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[uuid.UUID] = uuid_pk()
    #: The project the action was about; null for account-level actions (sign-up, log-in).
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_type: Mapped[str | None] = mapped_column(String(64))
    resource_id: Mapped[uuid.UUID | None] = mapped_column()
    result: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at()

    __table_args__ = (
        CheckConstraint(enum_check("result", AuditResult.values()), name="result_known"),
        Index("ix_audit_events_project_id_created_at_id", "project_id", "created_at", "id"),
        Index("ix_audit_events_actor_id_created_at", "actor_id", "created_at"),
    )
