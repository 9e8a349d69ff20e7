"""Hourly usage rollup for cost reports: ``llm_usage_hourly`` (per project, UTC hour, provider, model,
prompt and version: calls, tokens, cost, latency sum and count), kept exact by statement-level triggers
on ``llm_usage`` — whoever writes usage (executions, ingested spans, a bulk load) keeps it up to date.

- INSERT: the statement's new rows, summed per key, upserted in key order (concurrent writers lock
  rollup rows in the same order, so they never deadlock on them).
- UPDATE: only rows whose key or figures changed (a deleted prompt or version sets them null; a
  span or execution removed by retention changes nothing here) are moved: subtracted from their
  old key, added to their new one.
- DELETE: subtracted (an UPDATE of existing rollup rows only: when a whole project goes, its rollup
  rows go by their own cascade).
Rows that reach zero calls are removed. Existing usage is summed in at upgrade.

Revision ID: 0009
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None

KEY = "project_id, hour, provider, model, prompt_id, version_id"

# the figures of a set of llm_usage rows, summed per rollup key ({sign}: 1 adds them, -1 subtracts them)
_SUMS = """
    SELECT project_id, date_trunc('hour', created_at, 'UTC') AS hour, provider, model, prompt_id, version_id,
           {sign} * count(*) AS calls, {sign} * sum(input_tokens) AS input_tokens,
           {sign} * sum(output_tokens) AS output_tokens, {sign} * sum(total_cost_usd) AS cost_usd,
           {sign} * coalesce(sum(latency_ms), 0) AS latency_ms_sum, {sign} * count(latency_ms) AS latency_calls
    FROM {rows}
    GROUP BY 1, 2, 3, 4, 5, 6
"""

_ADD = f"""
    INSERT INTO llm_usage_hourly AS h ({KEY}, calls, input_tokens, output_tokens, cost_usd, latency_ms_sum,
                                       latency_calls)
    SELECT * FROM ({_SUMS.format(sign=1, rows="{rows}")}) AS s ORDER BY {KEY}
    ON CONFLICT ({KEY}) DO UPDATE SET
        calls = h.calls + excluded.calls, input_tokens = h.input_tokens + excluded.input_tokens,
        output_tokens = h.output_tokens + excluded.output_tokens, cost_usd = h.cost_usd + excluded.cost_usd,
        latency_ms_sum = h.latency_ms_sum + excluded.latency_ms_sum,
        latency_calls = h.latency_calls + excluded.latency_calls;
"""

_SUBTRACT = f"""
    UPDATE llm_usage_hourly AS h SET
        calls = h.calls - s.calls, input_tokens = h.input_tokens - s.input_tokens,
        output_tokens = h.output_tokens - s.output_tokens, cost_usd = h.cost_usd - s.cost_usd,
        latency_ms_sum = h.latency_ms_sum - s.latency_ms_sum, latency_calls = h.latency_calls - s.latency_calls
    FROM ({_SUMS.format(sign=1, rows="{rows}")}) AS s
    WHERE (h.project_id, h.hour, h.provider, h.model) = (s.project_id, s.hour, s.provider, s.model)
      AND h.prompt_id IS NOT DISTINCT FROM s.prompt_id AND h.version_id IS NOT DISTINCT FROM s.version_id;
    DELETE FROM llm_usage_hourly AS h USING (SELECT DISTINCT project_id, date_trunc('hour', created_at, 'UTC') AS hour
                                             FROM {{rows}}) AS s
    WHERE h.project_id = s.project_id AND h.hour = s.hour AND h.calls <= 0;
"""

# rows of an UPDATE whose rollup key or figures changed: (old, new) pairs
_CHANGED = """
    (SELECT {side}.* FROM old_rows o JOIN new_rows n ON n.id = o.id
     WHERE (o.project_id, o.created_at, o.provider, o.model, o.prompt_id, o.version_id, o.input_tokens,
            o.output_tokens, o.total_cost_usd, o.latency_ms)
           IS DISTINCT FROM (n.project_id, n.created_at, n.provider, n.model, n.prompt_id, n.version_id,
                             n.input_tokens, n.output_tokens, n.total_cost_usd, n.latency_ms)) AS {side}_changed
"""

FUNCTION = f"""
CREATE FUNCTION llm_usage_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_ADD.format(rows="new_rows")}
    ELSIF TG_OP = 'UPDATE' THEN
        {_SUBTRACT.format(rows=_CHANGED.format(side="o"))}
        {_ADD.format(rows=_CHANGED.format(side="n"))}
    ELSE
        {_SUBTRACT.format(rows="old_rows")}
    END IF;
    RETURN NULL;
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
    op.execute(_ADD.format(rows="llm_usage"))


def downgrade() -> None:
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER llm_usage_rollup_{event} ON llm_usage")
    op.execute("DROP FUNCTION llm_usage_rollup()")
    op.drop_index("uq_llm_usage_hourly_key", table_name="llm_usage_hourly")
    op.drop_table("llm_usage_hourly")
