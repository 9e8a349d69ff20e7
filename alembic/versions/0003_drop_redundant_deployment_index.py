"""Drop ix_deployments_active: uq_deployments_active_version has the same condition and the same
leading columns (prompt_id, environment), so it serves resolvePrompt as well, and PostgreSQL
already chose it; the second index only cost a write on every deployment change.

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_deployments_active", table_name="deployments", postgresql_where=sa.text("retired_at IS NULL"))


def downgrade() -> None:
    op.create_index("ix_deployments_active", "deployments", ["prompt_id", "environment"], unique=False,
                    postgresql_where=sa.text("retired_at IS NULL"))
