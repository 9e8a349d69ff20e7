"""Cache invalidation notices: triggers that NOTIFY (topic ``caches``) in the transaction of every change
that can alter a cached token, role or resolvePrompt answer (``app.services.hot``).

Row triggers on projects, prompts, prompt_versions, deployments (the resolve cache, per project),
project_members (roles), users, user_sessions and api_keys (credentials: only the columns that decide
whether a token holds, so the batched lastUsedAt writes notify nobody). Being triggers, they also catch
cascaded deletes and every code path that changes these tables. Identical notices of one transaction are
folded into one by PostgreSQL.

Revision ID: 0013
Revises: 0011
"""
from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE FUNCTION ps_cache_notice() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
  d jsonb;
  p uuid;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  IF TG_TABLE_NAME = 'projects' THEN
    d := jsonb_build_object('r', r.id);
  ELSIF TG_TABLE_NAME = 'prompts' THEN
    d := jsonb_build_object('r', r.project_id);
  ELSIF TG_TABLE_NAME IN ('prompt_versions', 'deployments') THEN
    SELECT project_id INTO p FROM prompts WHERE id = r.prompt_id;
    -- the prompt is gone (a cascaded delete; its own notice names the project): forget every answer
    d := jsonb_build_object('r', COALESCE(p::text, '*'));
  ELSIF TG_TABLE_NAME = 'project_members' THEN
    d := jsonb_build_object('m', jsonb_build_array(r.user_id, r.project_id));
  ELSIF TG_TABLE_NAME = 'users' THEN
    d := jsonb_build_object('u', r.id);
  ELSIF TG_TABLE_NAME = 'user_sessions' THEN
    d := jsonb_build_object('s', r.id);
  ELSIF TG_TABLE_NAME = 'api_keys' THEN
    d := jsonb_build_object('a', r.id);
  END IF;
  PERFORM pg_notify('ps_events', '{"k":["caches"],"d":' || d::text || '}');
  RETURN NULL;
END
$$;
"""

#: (table, events): which changes notify.
TRIGGERS = [
    ("projects", "UPDATE OR DELETE"),
    ("prompts", "INSERT OR UPDATE OR DELETE"),
    ("prompt_versions", "INSERT OR UPDATE OR DELETE"),
    ("deployments", "INSERT OR UPDATE OR DELETE"),
    ("project_members", "INSERT OR UPDATE OR DELETE"),
    ("users", "UPDATE OF is_active, is_superuser OR DELETE"),
    ("user_sessions", "UPDATE OF revoked_at, expires_at, user_id, token_hash OR DELETE"),
    ("api_keys", "UPDATE OF revoked_at, expires_at, scopes, project_id, secret_hash OR DELETE"),
]


def upgrade() -> None:
    op.execute(FUNCTION)
    for table, events in TRIGGERS:
        op.execute(f"CREATE TRIGGER ps_cache_notice AFTER {events} ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION ps_cache_notice()")


def downgrade() -> None:
    for table, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS ps_cache_notice ON {table}")
    op.execute("DROP FUNCTION IF EXISTS ps_cache_notice()")
