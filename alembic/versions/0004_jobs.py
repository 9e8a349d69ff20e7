"""The generic job queue: ``jobs`` holds live work of every kind (executions today); executions keep
their own status, and no longer their queue bookkeeping (worker_id, lease_expires_at).

Executions PENDING or RUNNING at upgrade get their job, with the same priority, attempts, worker
and lease, so nothing queued or running is lost.

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("status", sa.String(length=16), server_default="PENDING", nullable=False),
        sa.Column("priority", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default="3", nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('PENDING', 'RUNNING')", name=op.f("ck_jobs_status_known")),
        sa.CheckConstraint("priority BETWEEN 0 AND 3", name=op.f("ck_jobs_priority_range")),
        sa.CheckConstraint("attempts >= 0 AND max_attempts >= 1", name=op.f("ck_jobs_attempts_range")),
        sa.CheckConstraint("status <> 'RUNNING' OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)",
                           name=op.f("ck_jobs_running_is_held")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_jobs_project_id_projects"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("uq_jobs_kind_subject_id", "jobs", ["kind", "subject_id"], unique=True)
    op.create_index("ix_jobs_queue", "jobs", [sa.text("priority DESC"), "created_at"], unique=False,
                    postgresql_where=sa.text("status = 'PENDING'"))
    op.create_index("ix_jobs_leases", "jobs", ["lease_expires_at"], unique=False,
                    postgresql_where=sa.text("status = 'RUNNING'"))
    op.execute("""
        INSERT INTO jobs (kind, subject_id, project_id, status, priority, attempts, max_attempts, worker_id,
                          lease_expires_at, cancel_requested_at, created_at, started_at)
        SELECT 'execution', id, project_id, status, priority, attempts, max_attempts,
               CASE WHEN status = 'RUNNING' THEN coalesce(worker_id, 'migrated') END,
               CASE WHEN status = 'RUNNING' THEN coalesce(lease_expires_at, now()) END,
               cancel_requested_at, created_at, started_at
        FROM executions WHERE status IN ('PENDING', 'RUNNING')
    """)
    op.drop_index("ix_executions_queue", table_name="executions", postgresql_where=sa.text("status = 'PENDING'"))
    op.drop_index("ix_executions_leases", table_name="executions", postgresql_where=sa.text("status = 'RUNNING'"))
    op.drop_column("executions", "worker_id")
    op.drop_column("executions", "lease_expires_at")
    op.create_index("ix_executions_project_id_live", "executions", ["project_id", "status"], unique=False,
                    postgresql_where=sa.text("status IN ('PENDING', 'RUNNING')"))


def downgrade() -> None:
    op.drop_index("ix_executions_project_id_live", table_name="executions",
                  postgresql_where=sa.text("status IN ('PENDING', 'RUNNING')"))
    op.add_column("executions", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("executions", sa.Column("worker_id", sa.String(length=128), nullable=True))
    op.execute("""
        UPDATE executions e SET worker_id = j.worker_id, lease_expires_at = j.lease_expires_at
        FROM jobs j WHERE j.kind = 'execution' AND j.subject_id = e.id
    """)
    op.create_index("ix_executions_leases", "executions", ["lease_expires_at"], unique=False,
                    postgresql_where=sa.text("status = 'RUNNING'"))
    op.create_index("ix_executions_queue", "executions", [sa.text("priority DESC"), "created_at"], unique=False,
                    postgresql_where=sa.text("status = 'PENDING'"))
    op.drop_index("ix_jobs_leases", table_name="jobs", postgresql_where=sa.text("status = 'RUNNING'"))
    op.drop_index("ix_jobs_queue", table_name="jobs", postgresql_where=sa.text("status = 'PENDING'"))
    op.drop_index("uq_jobs_kind_subject_id", table_name="jobs")
    op.drop_table("jobs")
