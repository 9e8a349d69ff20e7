"""Spans keep attributes and events of up to about 8 kB inline and uncompressed.

A span's attributes (OpenInference: input and output messages, invocation parameters) are typically
2-4 kB of JSON, past PostgreSQL's default TOAST threshold (about 2 kB), so every span written was
compressed with pglz (this server has no lz4) — about a fifth of the database's CPU per span in the
ingest benchmark (bench/otlp_ingest.py). With toast_tuple_target at its maximum, rows up to about
8 kB stay in the heap page as they are; larger ones are compressed and moved out of line as before.
The cost is disk: spans take about twice the space they took compressed.

Revision ID: 0010
Revises: 0009
"""
from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE spans SET (toast_tuple_target = 8160)")


def downgrade() -> None:
    op.execute("ALTER TABLE spans RESET (toast_tuple_target)")
