"""Traces and spans: ``traces`` (one summary row per trace, kept up to date on write) and ``spans``
(the big table: BRIN on start_time, stored once per trace and span id); ``llm_usage`` links a call to
its span and records cached input tokens; ``executions.render_ms`` (the render span of an execution's
trace).

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SPAN_KINDS = "'LLM', 'CHAIN', 'AGENT', 'TOOL', 'RETRIEVER', 'EMBEDDING', 'RERANKER', 'GUARDRAIL', 'HTTP', " \
             "'DATABASE', 'INTERNAL'"
SPAN_STATUSES = "'UNSET', 'OK', 'ERROR'"


def upgrade() -> None:
    op.create_table(
        "traces",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("root_span_id", sa.String(length=16), nullable=True),
        sa.Column("end_user_id", sa.String(length=256), nullable=True),
        sa.Column("session_id", sa.String(length=256), nullable=True),
        sa.Column("status", sa.String(length=8), server_default="UNSET", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("span_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("llm_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=16, scale=6), server_default="0", nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("execution_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("trace_id ~ '^[0-9a-f]{32}$'", name=op.f("ck_traces_trace_id_hex")),
        sa.CheckConstraint(f"status IN ({SPAN_STATUSES})", name=op.f("ck_traces_status_known")),
        sa.CheckConstraint("span_count >= 0 AND error_count >= 0 AND llm_calls >= 0",
                           name=op.f("ck_traces_counts_non_negative")),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], name=op.f("fk_traces_execution_id_executions"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_traces_project_id_projects"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_traces")),
    )
    op.create_index("uq_traces_project_id_trace_id", "traces", ["project_id", "trace_id"], unique=True)
    op.create_index("ix_traces_project_id_start_time", "traces",
                    ["project_id", sa.text("start_time DESC"), sa.text("id DESC")])
    op.create_index("ix_traces_project_id_end_user_id", "traces", ["project_id", "end_user_id", sa.text("start_time DESC")],
                    postgresql_where=sa.text("end_user_id IS NOT NULL"))
    op.create_index("ix_traces_project_id_session_id", "traces", ["project_id", "session_id", sa.text("start_time DESC")],
                    postgresql_where=sa.text("session_id IS NOT NULL"))
    op.create_index("ix_traces_project_id_name", "traces", ["project_id", "name", sa.text("start_time DESC")])
    op.create_index("ix_traces_project_id_errors", "traces", ["project_id", sa.text("start_time DESC")],
                    postgresql_where=sa.text("status = 'ERROR'"))
    op.create_index("uq_traces_execution_id", "traces", ["execution_id"], unique=True,
                    postgresql_where=sa.text("execution_id IS NOT NULL"))

    op.create_table(
        "spans",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("trace_pk", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=False),
        sa.Column("parent_span_id", sa.String(length=16), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), server_default="INTERNAL", nullable=False),
        sa.Column("status", sa.String(length=8), server_default="UNSET", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("events", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint("span_id ~ '^[0-9a-f]{16}$' AND (parent_span_id IS NULL OR parent_span_id ~ '^[0-9a-f]{16}$')",
                           name=op.f("ck_spans_span_ids_hex")),
        sa.CheckConstraint(f"kind IN ({SPAN_KINDS})", name=op.f("ck_spans_kind_known")),
        sa.CheckConstraint(f"status IN ({SPAN_STATUSES})", name=op.f("ck_spans_status_known")),
        sa.CheckConstraint("end_time IS NULL OR end_time >= start_time", name=op.f("ck_spans_ends_after_start")),
        sa.ForeignKeyConstraint(["trace_pk"], ["traces.id"], name=op.f("fk_spans_trace_pk_traces"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spans")),
    )
    op.create_index("uq_spans_trace_pk_span_id", "spans", ["trace_pk", "span_id"], unique=True)
    op.create_index("ix_spans_trace_pk_start_time", "spans", ["trace_pk", "start_time", "id"])
    op.create_index("ix_spans_start_time_brin", "spans", ["start_time"], postgresql_using="brin")

    op.add_column("executions", sa.Column("render_ms", sa.Integer(), nullable=True))
    op.add_column("llm_usage", sa.Column("cached_input_tokens", sa.Integer(), server_default="0", nullable=False))
    op.add_column("llm_usage", sa.Column("span_pk", sa.UUID(), nullable=True))
    op.create_foreign_key(op.f("fk_llm_usage_span_pk_spans"), "llm_usage", "spans", ["span_pk"], ["id"],
                          ondelete="SET NULL")
    op.create_check_constraint(op.f("ck_llm_usage_cached_within_input"), "llm_usage",
                               "cached_input_tokens >= 0 AND cached_input_tokens <= input_tokens")
    op.create_index("uq_llm_usage_span_pk", "llm_usage", ["span_pk"], unique=True,
                    postgresql_where=sa.text("span_pk IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("uq_llm_usage_span_pk", table_name="llm_usage")
    op.drop_constraint(op.f("ck_llm_usage_cached_within_input"), "llm_usage", type_="check")
    op.drop_constraint(op.f("fk_llm_usage_span_pk_spans"), "llm_usage", type_="foreignkey")
    op.drop_column("llm_usage", "span_pk")
    op.drop_column("llm_usage", "cached_input_tokens")
    op.drop_column("executions", "render_ms")
    op.drop_table("spans")
    op.drop_table("traces")
