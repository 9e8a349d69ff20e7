"""Initial schema: identity, projects, prompts, deployments, validations, executions, usage, audit.

Hand-reviewed from autogenerate: extensions first, the prompts <-> prompt_versions cycle closed
with a separate foreign key.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 02:49:24.195428
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('CREATE EXTENSION IF NOT EXISTS vector')
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.create_table('model_configs',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('context_length', sa.Integer(), nullable=True),
    sa.Column('max_output_tokens', sa.Integer(), nullable=True),
    sa.Column('supports_streaming', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('supports_tools', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('input_price_per_million', sa.Numeric(precision=12, scale=6), nullable=False),
    sa.Column('output_price_per_million', sa.Numeric(precision=12, scale=6), nullable=False),
    sa.Column('cached_input_price_per_million', sa.Numeric(precision=12, scale=6), nullable=True),
    sa.Column('effective_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('input_price_per_million >= 0 AND output_price_per_million >= 0 AND (cached_input_price_per_million IS NULL OR cached_input_price_per_million >= 0)', name=op.f('ck_model_configs_prices_non_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_configs')),
    sa.UniqueConstraint('provider', 'model_id', 'effective_from', name=op.f('uq_model_configs_provider_model_id_effective_from'))
    )
    op.create_table('users',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=True),
    sa.Column('is_active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('is_superuser', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    op.create_index('ix_users_created_at_id', 'users', ['created_at', 'id'], unique=False)
    op.create_index('uq_users_email_lower', 'users', [sa.literal_column('lower(email)')], unique=True)
    op.create_index('uq_users_username_lower', 'users', [sa.literal_column('lower(username)')], unique=True)
    op.create_table('projects',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('environments', sa.ARRAY(sa.String(length=64)), nullable=False),
    sa.Column('default_environment', sa.String(length=64), nullable=False),
    sa.Column('trace_retention_days', sa.Integer(), nullable=True),
    sa.Column('execution_retention_days', sa.Integer(), nullable=True),
    sa.Column('created_by_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('cardinality(environments) >= 1', name=op.f('ck_projects_has_environments')),
    sa.CheckConstraint('default_environment = ANY(environments)', name=op.f('ck_projects_default_environment_listed')),
    sa.CheckConstraint('execution_retention_days IS NULL OR execution_retention_days >= 1', name=op.f('ck_projects_execution_retention_positive')),
    sa.CheckConstraint('trace_retention_days IS NULL OR trace_retention_days >= 1', name=op.f('ck_projects_trace_retention_positive')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_projects_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('slug', name=op.f('uq_projects_slug'))
    )
    op.create_index('ix_projects_created_at_id', 'projects', ['created_at', 'id'], unique=False)
    op.create_table('user_sessions',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=512), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_user_sessions_token_hash'))
    )
    op.create_index(op.f('ix_user_sessions_user_id'), 'user_sessions', ['user_id'], unique=False)
    op.create_table('api_keys',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('project_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.ARRAY(sa.String(length=32)), nullable=False),
    sa.Column('created_by_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("scopes <@ ARRAY['PROMPTS_READ', 'PROMPTS_WRITE', 'EXECUTIONS_READ', 'EXECUTIONS_WRITE', 'TRACES_READ', 'TRACES_WRITE', 'EXPERIMENTS_READ', 'EXPERIMENTS_WRITE', 'PROJECT_ADMIN']::varchar(32)[]", name=op.f('ck_api_keys_scopes_known')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_api_keys_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_api_keys_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('secret_hash', name=op.f('uq_api_keys_secret_hash'))
    )
    op.create_index('ix_api_keys_project_id_created_at_id', 'api_keys', ['project_id', 'created_at', 'id'], unique=False)
    op.create_table('project_members',
    sa.Column('project_id', sa.UUID(), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('added_by_id', sa.UUID(), nullable=True),
    sa.CheckConstraint("role IN ('OWNER', 'ADMIN', 'EDITOR', 'VIEWER')", name=op.f('ck_project_members_role_known')),
    sa.ForeignKeyConstraint(['added_by_id'], ['users.id'], name=op.f('fk_project_members_added_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_members_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_project_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'user_id', name=op.f('pk_project_members'))
    )
    op.create_index('ix_project_members_project_id_added_at_user_id', 'project_members', ['project_id', 'added_at', 'user_id'], unique=False)
    op.create_index(op.f('ix_project_members_user_id'), 'project_members', ['user_id'], unique=False)
    op.create_table('prompts',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('project_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('category', sa.String(length=100), nullable=True),
    sa.Column('tags', sa.ARRAY(sa.String(length=64)), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='DRAFT', nullable=False),
    sa.Column('latest_version', sa.Integer(), server_default='0', nullable=False),
    sa.Column('forked_from_version_id', sa.UUID(), nullable=True),
    sa.Column('created_by_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('search_vector', postgresql.TSVECTOR(), nullable=True),
    sa.Column('search_text', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('DRAFT', 'PUBLISHED', 'ARCHIVED')", name=op.f('ck_prompts_status_known')),
    sa.CheckConstraint('latest_version >= 0', name=op.f('ck_prompts_latest_version_non_negative')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_prompts_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_prompts_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompts')),
    sa.UniqueConstraint('project_id', 'name', name=op.f('uq_prompts_project_id_name'))
    )
    op.create_index('ix_prompts_name_trgm', 'prompts', ['name'], unique=False, postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
    op.create_index('ix_prompts_project_id_created_at_id', 'prompts', ['project_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_prompts_project_id_updated_at_id', 'prompts', ['project_id', 'updated_at', 'id'], unique=False)
    op.create_index('ix_prompts_search_vector', 'prompts', ['search_vector'], unique=False, postgresql_using='gin')
    op.create_index('ix_prompts_tags', 'prompts', ['tags'], unique=False, postgresql_using='gin')
    op.create_table('provider_credentials',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('project_id', sa.UUID(), nullable=False),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('base_url', sa.String(length=2048), nullable=True),
    sa.Column('encrypted_key', sa.LargeBinary(), nullable=False),
    sa.Column('key_hint', sa.String(length=8), nullable=False),
    sa.Column('created_by_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_provider_credentials_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_provider_credentials_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provider_credentials')),
    sa.UniqueConstraint('project_id', 'provider', name=op.f('uq_provider_credentials_project_id_provider'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('project_id', sa.UUID(), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=True),
    sa.Column('resource_id', sa.UUID(), nullable=True),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.UUID(), nullable=True),
    sa.Column('api_key_id', sa.UUID(), nullable=True),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=512), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("result IN ('SUCCESS', 'FAILURE', 'DENIED')", name=op.f('ck_audit_events_result_known')),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_events_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_audit_events_api_key_id_api_keys'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_audit_events_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    op.create_index('ix_audit_events_actor_id_created_at', 'audit_events', ['actor_id', 'created_at'], unique=False)
    op.create_index('ix_audit_events_project_id_created_at_id', 'audit_events', ['project_id', 'created_at', 'id'], unique=False)
    op.create_table('prompt_versions',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('prompt_id', sa.UUID(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('template', sa.Text(), nullable=True),
    sa.Column('messages', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('system_prompt', sa.Text(), nullable=True),
    sa.Column('variables', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('model_settings', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('output_schema', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('commit_message', sa.Text(), nullable=True),
    sa.Column('author_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('restored_from_id', sa.UUID(), nullable=True),
    sa.CheckConstraint("(kind = 'TEXT' AND template IS NOT NULL) OR (kind = 'CHAT' AND messages IS NOT NULL)", name=op.f('ck_prompt_versions_content_matches_kind')),
    sa.CheckConstraint("format IN ('MUSTACHE', 'JINJA2')", name=op.f('ck_prompt_versions_format_known')),
    sa.CheckConstraint("kind IN ('TEXT', 'CHAT')", name=op.f('ck_prompt_versions_kind_known')),
    sa.CheckConstraint('number >= 1', name=op.f('ck_prompt_versions_number_positive')),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_prompt_versions_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], name=op.f('fk_prompt_versions_prompt_id_prompts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['restored_from_id'], ['prompt_versions.id'], name=op.f('fk_prompt_versions_restored_from_id_prompt_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prompt_versions')),
    sa.UniqueConstraint('prompt_id', 'number', name=op.f('uq_prompt_versions_prompt_id_number'))
    )
    op.create_foreign_key(op.f('fk_prompts_forked_from_version_id_prompt_versions'), 'prompts', 'prompt_versions',
                          ['forked_from_version_id'], ['id'], ondelete='SET NULL')
    op.create_table('validations',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('prompt_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('created_by_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("type IN ('JSON_SCHEMA', 'REGEX', 'JMESPATH')", name=op.f('ck_validations_type_known')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_validations_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], name=op.f('fk_validations_prompt_id_prompts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_validations')),
    sa.UniqueConstraint('prompt_id', 'name', name=op.f('uq_validations_prompt_id_name'))
    )
    op.create_table('deployments',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('prompt_id', sa.UUID(), nullable=False),
    sa.Column('version_id', sa.UUID(), nullable=False),
    sa.Column('environment', sa.String(length=64), nullable=False),
    sa.Column('traffic_percentage', sa.Integer(), nullable=False),
    sa.Column('deployed_by_id', sa.UUID(), nullable=True),
    sa.Column('deployed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retired_by_id', sa.UUID(), nullable=True),
    sa.CheckConstraint('retired_at IS NULL OR retired_at >= deployed_at', name=op.f('ck_deployments_retired_after_deployed')),
    sa.CheckConstraint('traffic_percentage BETWEEN 1 AND 100', name=op.f('ck_deployments_traffic_percentage_range')),
    sa.ForeignKeyConstraint(['deployed_by_id'], ['users.id'], name=op.f('fk_deployments_deployed_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], name=op.f('fk_deployments_prompt_id_prompts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['retired_by_id'], ['users.id'], name=op.f('fk_deployments_retired_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['version_id'], ['prompt_versions.id'], name=op.f('fk_deployments_version_id_prompt_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployments'))
    )
    op.create_index('ix_deployments_active', 'deployments', ['prompt_id', 'environment'], unique=False, postgresql_where=sa.text('retired_at IS NULL'))
    op.create_index('ix_deployments_history', 'deployments', ['prompt_id', 'deployed_at', 'id'], unique=False)
    op.create_index(op.f('ix_deployments_version_id'), 'deployments', ['version_id'], unique=False)
    op.create_index('uq_deployments_active_version', 'deployments', ['prompt_id', 'environment', 'version_id'], unique=True, postgresql_where=sa.text('retired_at IS NULL'))
    op.create_table('executions',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('project_id', sa.UUID(), nullable=False),
    sa.Column('prompt_id', sa.UUID(), nullable=False),
    sa.Column('version_id', sa.UUID(), nullable=False),
    sa.Column('deployment_id', sa.UUID(), nullable=True),
    sa.Column('environment', sa.String(length=64), nullable=True),
    sa.Column('subject_key', sa.String(length=256), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='PENDING', nullable=False),
    sa.Column('priority', sa.SmallInteger(), server_default='1', nullable=False),
    sa.Column('variables', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('context', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('model_settings', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('rendered_prompt', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('validated_output', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('validation_status', sa.String(length=16), server_default='PENDING', nullable=False),
    sa.Column('validation_results', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('provider', sa.String(length=64), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('output_tokens', sa.Integer(), nullable=True),
    sa.Column('cost_usd', sa.Numeric(precision=12, scale=6), nullable=True),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('time_to_first_token_ms', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('max_attempts', sa.Integer(), server_default='3', nullable=False),
    sa.Column('idempotency_key', sa.String(length=256), nullable=True),
    sa.Column('requested_by_id', sa.UUID(), nullable=True),
    sa.Column('api_key_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('worker_id', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_event_seq', sa.Integer(), server_default='0', nullable=False),
    sa.CheckConstraint("status <> 'PENDING' OR started_at IS NULL", name=op.f('ck_executions_pending_not_started')),
    sa.CheckConstraint("status <> 'RUNNING' OR (started_at IS NOT NULL AND completed_at IS NULL)", name=op.f('ck_executions_running_started')),
    sa.CheckConstraint("status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')", name=op.f('ck_executions_status_known')),
    sa.CheckConstraint("status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED') OR (started_at IS NOT NULL AND completed_at IS NOT NULL)", name=op.f('ck_executions_finished_has_times')),
    sa.CheckConstraint("validation_status IN ('PENDING', 'PASSED', 'FAILED', 'SKIPPED')", name=op.f('ck_executions_validation_status_known')),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_executions_attempts_non_negative')),
    sa.CheckConstraint('completed_at IS NULL OR started_at IS NULL OR completed_at >= started_at', name=op.f('ck_executions_completed_after_started')),
    sa.CheckConstraint('cost_usd IS NULL OR cost_usd >= 0', name=op.f('ck_executions_cost_non_negative')),
    sa.CheckConstraint('input_tokens IS NULL OR input_tokens >= 0', name=op.f('ck_executions_input_tokens_non_negative')),
    sa.CheckConstraint('output_tokens IS NULL OR output_tokens >= 0', name=op.f('ck_executions_output_tokens_non_negative')),
    sa.CheckConstraint('priority BETWEEN 0 AND 3', name=op.f('ck_executions_priority_range')),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_executions_api_key_id_api_keys'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['deployment_id'], ['deployments.id'], name=op.f('fk_executions_deployment_id_deployments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_executions_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], name=op.f('fk_executions_prompt_id_prompts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'], name=op.f('fk_executions_requested_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['version_id'], ['prompt_versions.id'], name=op.f('fk_executions_version_id_prompt_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_executions')),
    sa.UniqueConstraint('project_id', 'idempotency_key', name=op.f('uq_executions_project_id_idempotency_key'))
    )
    op.create_index('ix_executions_leases', 'executions', ['lease_expires_at'], unique=False, postgresql_where=sa.text("status = 'RUNNING'"))
    op.create_index('ix_executions_project_id_created_at_id', 'executions', ['project_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_executions_prompt_id_created_at_id', 'executions', ['prompt_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_executions_queue', 'executions', [sa.literal_column('priority DESC'), 'created_at'], unique=False, postgresql_where=sa.text("status = 'PENDING'"))
    op.create_index('ix_executions_version_id_created_at', 'executions', ['version_id', 'created_at'], unique=False)
    op.create_table('execution_logs',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('execution_id', sa.UUID(), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('timestamp', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("level IN ('DEBUG', 'INFO', 'WARN', 'ERROR')", name=op.f('ck_execution_logs_level_known')),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], name=op.f('fk_execution_logs_execution_id_executions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_execution_logs'))
    )
    op.create_index('ix_execution_logs_execution_id_timestamp_id', 'execution_logs', ['execution_id', 'timestamp', 'id'], unique=False)
    op.create_table('feedback',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('execution_id', sa.UUID(), nullable=False),
    sa.Column('rating', sa.SmallInteger(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('user_id', sa.UUID(), nullable=True),
    sa.Column('api_key_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('rating BETWEEN 1 AND 5', name=op.f('ck_feedback_rating_range')),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_feedback_api_key_id_api_keys'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], name=op.f('fk_feedback_execution_id_executions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_feedback_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback'))
    )
    op.create_index(op.f('ix_feedback_execution_id'), 'feedback', ['execution_id'], unique=False)
    op.create_table('llm_usage',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('project_id', sa.UUID(), nullable=False),
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('input_cost_usd', sa.Numeric(precision=12, scale=6), nullable=False),
    sa.Column('output_cost_usd', sa.Numeric(precision=12, scale=6), nullable=False),
    sa.Column('total_cost_usd', sa.Numeric(precision=12, scale=6), nullable=False),
    sa.Column('tokens_reported', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('latency_ms', sa.Integer(), nullable=True),
    sa.Column('end_user_id', sa.String(length=256), nullable=True),
    sa.Column('prompt_id', sa.UUID(), nullable=True),
    sa.Column('version_id', sa.UUID(), nullable=True),
    sa.Column('execution_id', sa.UUID(), nullable=True),
    sa.Column('model_config_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('input_cost_usd >= 0 AND output_cost_usd >= 0 AND total_cost_usd >= 0', name=op.f('ck_llm_usage_cost_non_negative')),
    sa.CheckConstraint('input_tokens >= 0 AND output_tokens >= 0', name=op.f('ck_llm_usage_tokens_non_negative')),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], name=op.f('fk_llm_usage_execution_id_executions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['model_config_id'], ['model_configs.id'], name=op.f('fk_llm_usage_model_config_id_model_configs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_llm_usage_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], name=op.f('fk_llm_usage_prompt_id_prompts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['version_id'], ['prompt_versions.id'], name=op.f('fk_llm_usage_version_id_prompt_versions'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_llm_usage'))
    )
    op.create_index(op.f('ix_llm_usage_execution_id'), 'llm_usage', ['execution_id'], unique=False)
    op.create_index('ix_llm_usage_project_id_created_at', 'llm_usage', ['project_id', 'created_at'], unique=False)
    op.create_table('execution_events',
    sa.Column('execution_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('delta', sa.Text(), nullable=True),
    sa.Column('log_id', sa.UUID(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("type IN ('SNAPSHOT', 'QUEUED', 'STARTED', 'OUTPUT_DELTA', 'LOG', 'COMPLETED', 'FAILED', 'CANCELLED')", name=op.f('ck_execution_events_type_known')),
    sa.CheckConstraint('seq >= 1', name=op.f('ck_execution_events_seq_positive')),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], name=op.f('fk_execution_events_execution_id_executions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['log_id'], ['execution_logs.id'], name=op.f('fk_execution_events_log_id_execution_logs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('execution_id', 'seq', name=op.f('pk_execution_events'))
    )
    op.create_index('ix_execution_events_log_id', 'execution_events', ['log_id'], unique=False)


def downgrade() -> None:
    op.drop_constraint(op.f('fk_prompts_forked_from_version_id_prompt_versions'), 'prompts', type_='foreignkey')
    op.drop_index('ix_execution_events_log_id', table_name='execution_events')
    op.drop_table('execution_events')
    op.drop_index('ix_llm_usage_project_id_created_at', table_name='llm_usage')
    op.drop_index(op.f('ix_llm_usage_execution_id'), table_name='llm_usage')
    op.drop_table('llm_usage')
    op.drop_index(op.f('ix_feedback_execution_id'), table_name='feedback')
    op.drop_table('feedback')
    op.drop_index('ix_execution_logs_execution_id_timestamp_id', table_name='execution_logs')
    op.drop_table('execution_logs')
    op.drop_index('ix_executions_version_id_created_at', table_name='executions')
    op.drop_index('ix_executions_queue', table_name='executions', postgresql_where=sa.text("status = 'PENDING'"))
    op.drop_index('ix_executions_prompt_id_created_at_id', table_name='executions')
    op.drop_index('ix_executions_project_id_created_at_id', table_name='executions')
    op.drop_index('ix_executions_leases', table_name='executions', postgresql_where=sa.text("status = 'RUNNING'"))
    op.drop_table('executions')
    op.drop_index('uq_deployments_active_version', table_name='deployments', postgresql_where=sa.text('retired_at IS NULL'))
    op.drop_index(op.f('ix_deployments_version_id'), table_name='deployments')
    op.drop_index('ix_deployments_history', table_name='deployments')
    op.drop_index('ix_deployments_active', table_name='deployments', postgresql_where=sa.text('retired_at IS NULL'))
    op.drop_table('deployments')
    op.drop_table('validations')
    op.drop_table('prompt_versions')
    op.drop_index('ix_audit_events_project_id_created_at_id', table_name='audit_events')
    op.drop_index('ix_audit_events_actor_id_created_at', table_name='audit_events')
    op.drop_table('audit_events')
    op.drop_table('provider_credentials')
    op.drop_index('ix_prompts_tags', table_name='prompts', postgresql_using='gin')
    op.drop_index('ix_prompts_search_vector', table_name='prompts', postgresql_using='gin')
    op.drop_index('ix_prompts_project_id_updated_at_id', table_name='prompts')
    op.drop_index('ix_prompts_project_id_created_at_id', table_name='prompts')
    op.drop_index('ix_prompts_name_trgm', table_name='prompts', postgresql_using='gin', postgresql_ops={'name': 'gin_trgm_ops'})
    op.drop_table('prompts')
    op.drop_index(op.f('ix_project_members_user_id'), table_name='project_members')
    op.drop_index('ix_project_members_project_id_added_at_user_id', table_name='project_members')
    op.drop_table('project_members')
    op.drop_index('ix_api_keys_project_id_created_at_id', table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_index(op.f('ix_user_sessions_user_id'), table_name='user_sessions')
    op.drop_table('user_sessions')
    op.drop_index('ix_projects_created_at_id', table_name='projects')
    op.drop_table('projects')
    op.drop_index('uq_users_username_lower', table_name='users')
    op.drop_index('uq_users_email_lower', table_name='users')
    op.drop_index('ix_users_created_at_id', table_name='users')
    op.drop_table('users')
    op.drop_table('model_configs')
    # The extensions stay: other databases' objects may use them, and dropping needs ownership.
