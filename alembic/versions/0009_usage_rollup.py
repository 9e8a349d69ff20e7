"""Hourly usage rollup for cost reports: ``llm_usage_hourly`` (per project, UTC hour, provider, model,
prompt and version: calls, tokens, cost, latency sum and count), kept exact by statement-level triggers
on ``llm_usage`` — whoever writes usage (executions, ingested spans, a bulk load) keeps it up to date.

- INSERT adds the statement's new rows, UPDATE takes the old versions away and adds the new ones
  (a deleted prompt or version sets them null; a span or execution removed by retention changes
  nothing here, so its deltas cancel out and nothing is written), DELETE takes them away.
- The deltas are summed per key and upserted in key order (concurrent writers lock rollup rows in
  the same order, so they never deadlock on them); rows left without calls are removed; a project
  being deleted is skipped (its rollup rows go by their own cascade).
Existing usage is summed in at upgrade.

Revision ID: 0009
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None

KEY = "project_id, hour, provider, model, prompt_id, version_id"

# each row of a set of llm_usage rows as a rollup delta: {sign} 1 adds it, -1 takes it away
_SIDE = """
    SELECT project_id, date_trunc('hour', created_at, 'UTC') AS hour, provider, model, prompt_id, version_id,
           {sign}::bigint AS calls, {sign} * input_tokens::bigint AS input_tokens,
           {sign} * output_tokens::bigint AS output_tokens, {sign} * total_cost_usd AS cost_usd,
           {sign} * coalesce(latency_ms, 0)::bigint AS latency_ms_sum,
           {sign} * (latency_ms IS NOT NULL)::int::bigint AS latency_calls
    FROM {rows}
"""

# Applies the net deltas per key (keys whose deltas cancel out are left alone), in key order, to projects that
# still exist (a project being deleted takes its rollup rows by cascade), then removes rows left without calls.
# Deltas, not (old, new) pairs: a row updated twice by one statement (a deleted prompt sets prompt_id and
# version_id null through two cascades) appears in the transition tables once per update, and the sum telescopes.
_APPLY = f"""
    WITH changed AS (
        INSERT INTO llm_usage_hourly AS h ({KEY}, calls, input_tokens, output_tokens, cost_usd, latency_ms_sum,
                                           latency_calls)
        SELECT {KEY}, sum(calls), sum(input_tokens), sum(output_tokens), sum(cost_usd), sum(latency_ms_sum),
               sum(latency_calls)
        FROM ({{sides}}) AS d
        WHERE EXISTS (SELECT FROM projects p WHERE p.id = d.project_id)
        GROUP BY {KEY}
        HAVING sum(calls) <> 0 OR sum(input_tokens) <> 0 OR sum(output_tokens) <> 0 OR sum(cost_usd) <> 0
            OR sum(latency_ms_sum) <> 0 OR sum(latency_calls) <> 0
        ORDER BY {KEY}
        ON CONFLICT ({KEY}) DO UPDATE SET
            calls = h.calls + excluded.calls, input_tokens = h.input_tokens + excluded.input_tokens,
            output_tokens = h.output_tokens + excluded.output_tokens, cost_usd = h.cost_usd + excluded.cost_usd,
            latency_ms_sum = h.latency_ms_sum + excluded.latency_ms_sum,
            latency_calls = h.latency_calls + excluded.latency_calls
        RETURNING h.id, h.calls
    )
    SELECT array_agg(id) FILTER (WHERE calls <= 0) INTO emptied FROM changed;
    IF emptied IS NOT NULL THEN
        DELETE FROM llm_usage_hourly WHERE id = ANY(emptied);
    END IF;
"""


def apply(*sides: str) -> str:
    """The statements applying these sides' deltas (plpgsql, with ``emptied uuid[]`` declared)."""
    return _APPLY.format(sides=" UNION ALL ".join(sides))


PLUS_NEW = _SIDE.format(sign=1, rows="new_rows")
MINUS_OLD = _SIDE.format(sign=-1, rows="old_rows")

FUNCTION = f"""
CREATE FUNCTION llm_usage_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    emptied uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        {apply(PLUS_NEW)}
    ELSIF TG_OP = 'UPDATE' THEN
        {apply(MINUS_OLD, PLUS_NEW)}
    ELSE
        {apply(MINUS_OLD)}
    END IF;
    RETURN NULL;
END
$$;
"""

#: The usage already there, summed in at upgrade.
BACKFILL = f"""
DO $$
DECLARE
    emptied uuid[];
BEGIN
    {apply(_SIDE.format(sign=1, rows="llm_usage"))}
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "llm_usage_hourly",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("prompt_id", sa.UUID(), nullable=True),
        sa.Column("version_id", sa.UUID(), nullable=True),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("latency_ms_sum", sa.BigInteger(), nullable=False),
        sa.Column("latency_calls", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_llm_usage_hourly_project_id_projects"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_usage_hourly")),
    )
    op.create_index("uq_llm_usage_hourly_key", "llm_usage_hourly",
                    ["project_id", "hour", "provider", "model", "prompt_id", "version_id"], unique=True,
                    postgresql_nulls_not_distinct=True)
    op.execute(FUNCTION)
    op.execute("CREATE TRIGGER llm_usage_rollup_insert AFTER INSERT ON llm_usage REFERENCING NEW TABLE AS new_rows "
               "FOR EACH STATEMENT EXECUTE FUNCTION llm_usage_rollup()")
    op.execute("CREATE TRIGGER llm_usage_rollup_update AFTER UPDATE ON llm_usage "
               "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
               "EXECUTE FUNCTION llm_usage_rollup()")
    op.execute("CREATE TRIGGER llm_usage_rollup_delete AFTER DELETE ON llm_usage REFERENCING OLD TABLE AS old_rows "
               "FOR EACH STATEMENT EXECUTE FUNCTION llm_usage_rollup()")
    op.execute(BACKFILL)


def downgrade() -> None:
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER llm_usage_rollup_{event} ON llm_usage")
    op.execute("DROP FUNCTION llm_usage_rollup()")
    op.drop_index("uq_llm_usage_hourly_key", table_name="llm_usage_hourly")
    op.drop_table("llm_usage_hourly")
