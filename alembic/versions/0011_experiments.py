"""Experiments: datasets and their items, evaluators, experiments with their variants, runs and scores;
``executions.experiment_run_id`` (the run an execution is), and the per-project cap no longer counts the
executions an offline experiment queued.

Revision ID: 0011
Revises: 0010
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

EVALUATOR_TYPES = ("'EXACT_MATCH', 'CONTAINS', 'REGEX', 'JSON_VALID', 'JSON_SCHEMA', 'JMESPATH', 'LEVENSHTEIN', "
                   "'LLM_JUDGE', 'LATENCY', 'COST'")
EXPERIMENT_STATUSES = "'DRAFT', 'RUNNING', 'COMPLETED', 'CANCELLED', 'ARCHIVED'"
EXPERIMENT_TYPES = "'AB_TEST', 'MULTI_VARIANT', 'EVALUATION'"
RUN_STATUSES = "'PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'"
SCORE_SOURCES = "'EVALUATOR', 'HUMAN', 'FEEDBACK'"
LIVE_COUNTED = "status IN ('PENDING', 'RUNNING') AND (experiment_run_id IS NULL OR environment IS NOT NULL)"


def _uuid_pk() -> sa.Column:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _time(name: str, nullable: bool = False) -> sa.Column:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "datasets",
        _uuid_pk(),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("item_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_by_id", sa.UUID(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.CheckConstraint("item_count >= 0", name=op.f("ck_datasets_item_count_non_negative")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_datasets_project_id_projects"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_datasets_created_by_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_datasets_project_id_name")),
    )
    op.create_index("ix_datasets_project_id_created_at_id", "datasets", ["project_id", "created_at", "id"])

    op.create_table(
        "dataset_items",
        _uuid_pk(),
        sa.Column("dataset_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("variables", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("expected_output", sa.Text(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        _time("created_at"),
        sa.CheckConstraint("position >= 1", name=op.f("ck_dataset_items_position_positive")),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_items_dataset_id_datasets"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_items")),
        sa.UniqueConstraint("dataset_id", "position", name=op.f("uq_dataset_items_dataset_id_position")),
    )

    op.create_table(
        "evaluators",
        _uuid_pk(),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by_id", sa.UUID(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.CheckConstraint(f"type IN ({EVALUATOR_TYPES})", name=op.f("ck_evaluators_type_known")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_evaluators_project_id_projects"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_evaluators_created_by_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluators")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_evaluators_project_id_name")),
    )
    op.create_index("ix_evaluators_project_id_created_at_id", "evaluators", ["project_id", "created_at", "id"])

    op.create_table(
        "experiments",
        _uuid_pk(),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="DRAFT", nullable=False),
        sa.Column("dataset_id", sa.UUID(), nullable=True),
        sa.Column("environment", sa.String(length=64), nullable=True),
        sa.Column("prompt_id", sa.UUID(), nullable=True),
        sa.Column("replaced_split", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("primary_score", sa.String(length=100), nullable=True),
        sa.Column("repetitions", sa.Integer(), server_default="1", nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("runs_total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("runs_running", sa.Integer(), server_default="0", nullable=False),
        sa.Column("runs_completed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("runs_failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("runs_cancelled", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_by_id", sa.UUID(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        _time("started_at", nullable=True),
        _time("ended_at", nullable=True),
        sa.CheckConstraint(f"status IN ({EXPERIMENT_STATUSES})", name=op.f("ck_experiments_status_known")),
        sa.CheckConstraint(f"type IN ({EXPERIMENT_TYPES})", name=op.f("ck_experiments_type_known")),
        sa.CheckConstraint("repetitions BETWEEN 1 AND 100", name=op.f("ck_experiments_repetitions_range")),
        sa.CheckConstraint("runs_total >= 0 AND runs_running >= 0 AND runs_completed >= 0 AND runs_failed >= 0 "
                           "AND runs_cancelled >= 0 AND runs_running + runs_completed + runs_failed + runs_cancelled "
                           "<= runs_total", name=op.f("ck_experiments_runs_consistent")),
        sa.CheckConstraint("(dataset_id IS NULL) OR (environment IS NULL)",
                           name=op.f("ck_experiments_dataset_or_environment")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_experiments_project_id_projects"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_experiments_dataset_id_datasets"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], name=op.f("fk_experiments_prompt_id_prompts"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_experiments_created_by_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
    )
    op.create_index("ix_experiments_project_id_created_at_id", "experiments", ["project_id", "created_at", "id"])
    op.create_index("uq_experiments_running_split", "experiments", ["prompt_id", "environment"], unique=True,
                    postgresql_where=sa.text("status = 'RUNNING' AND environment IS NOT NULL"))

    op.create_table(
        "experiment_evaluators",
        sa.Column("experiment_id", sa.UUID(), nullable=False),
        sa.Column("evaluator_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_experiment_evaluators_experiment_id_experiments"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["evaluator_id"], ["evaluators.id"],
                                name=op.f("fk_experiment_evaluators_evaluator_id_evaluators"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("experiment_id", "evaluator_id", name=op.f("pk_experiment_evaluators")),
    )
    op.create_index("ix_experiment_evaluators_evaluator_id", "experiment_evaluators", ["evaluator_id"])

    op.create_table(
        "experiment_variants",
        _uuid_pk(),
        sa.Column("experiment_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version_id", sa.UUID(), nullable=False),
        sa.Column("model_settings", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("traffic_weight", sa.Integer(), server_default="50", nullable=False),
        sa.Column("is_control", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint("traffic_weight BETWEEN 0 AND 100", name=op.f("ck_experiment_variants_traffic_weight_range")),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_experiment_variants_experiment_id_experiments"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["version_id"], ["prompt_versions.id"],
                                name=op.f("fk_experiment_variants_version_id_prompt_versions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_variants")),
        sa.UniqueConstraint("experiment_id", "name", name=op.f("uq_experiment_variants_experiment_id_name")),
    )
    op.create_index("ix_experiment_variants_version_id", "experiment_variants", ["version_id"])

    op.create_table(
        "experiment_runs",
        _uuid_pk(),
        sa.Column("experiment_id", sa.UUID(), nullable=False),
        sa.Column("variant_id", sa.UUID(), nullable=False),
        sa.Column("dataset_item_id", sa.UUID(), nullable=True),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("item_position", sa.Integer(), nullable=True),
        sa.Column("repetition", sa.Integer(), server_default="1", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="PENDING", nullable=False),
        sa.Column("variables", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("scoring_errors", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        _time("created_at"),
        _time("started_at", nullable=True),
        _time("ended_at", nullable=True),
        sa.CheckConstraint(f"status IN ({RUN_STATUSES})", name=op.f("ck_experiment_runs_status_known")),
        sa.CheckConstraint("repetition >= 1", name=op.f("ck_experiment_runs_repetition_positive")),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_experiment_runs_experiment_id_experiments"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["variant_id"], ["experiment_variants.id"],
                                name=op.f("fk_experiment_runs_variant_id_experiment_variants"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["dataset_item_id"], ["dataset_items.id"],
                                name=op.f("fk_experiment_runs_dataset_item_id_dataset_items"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_runs")),
        sa.UniqueConstraint("experiment_id", "ordinal", name=op.f("uq_experiment_runs_experiment_id_ordinal")),
    )
    op.create_index("ix_experiment_runs_experiment_id_variant_id_ordinal", "experiment_runs",
                    ["experiment_id", "variant_id", "ordinal"])
    op.create_index("ix_experiment_runs_dataset_item_id", "experiment_runs", ["dataset_item_id"])

    op.create_table(
        "experiment_scores",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("experiment_id", sa.UUID(), nullable=False),
        sa.Column("variant_id", sa.UUID(), nullable=False),
        sa.Column("pair_key", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("evaluator_id", sa.UUID(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("scored_by_id", sa.UUID(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.CheckConstraint(f"source IN ({SCORE_SOURCES})", name=op.f("ck_experiment_scores_source_known")),
        sa.CheckConstraint("value = value AND value NOT IN ('Infinity', '-Infinity')",
                           name=op.f("ck_experiment_scores_value_finite")),
        sa.ForeignKeyConstraint(["run_id"], ["experiment_runs.id"], name=op.f("fk_experiment_scores_run_id_experiment_runs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"],
                                name=op.f("fk_experiment_scores_experiment_id_experiments"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["evaluator_id"], ["evaluators.id"],
                                name=op.f("fk_experiment_scores_evaluator_id_evaluators"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["scored_by_id"], ["users.id"], name=op.f("fk_experiment_scores_scored_by_id_users"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("run_id", "name", name=op.f("pk_experiment_scores")),
    )
    op.create_index("ix_experiment_scores_experiment_id_variant_id_name", "experiment_scores",
                    ["experiment_id", "variant_id", "name"])

    op.add_column("executions", sa.Column("experiment_run_id", sa.UUID(), nullable=True))
    op.create_foreign_key(op.f("fk_executions_experiment_run_id_experiment_runs"), "executions", "experiment_runs",
                          ["experiment_run_id"], ["id"], ondelete="SET NULL")
    op.create_index("uq_executions_experiment_run_id", "executions", ["experiment_run_id"], unique=True,
                    postgresql_where=sa.text("experiment_run_id IS NOT NULL"))
    op.drop_index("ix_executions_project_id_live", table_name="executions",
                  postgresql_where=sa.text("status IN ('PENDING', 'RUNNING')"))
    op.create_index("ix_executions_project_id_live", "executions", ["project_id", "status"],
                    postgresql_where=sa.text(LIVE_COUNTED))


def downgrade() -> None:
    op.drop_index("ix_executions_project_id_live", table_name="executions", postgresql_where=sa.text(LIVE_COUNTED))
    op.create_index("ix_executions_project_id_live", "executions", ["project_id", "status"],
                    postgresql_where=sa.text("status IN ('PENDING', 'RUNNING')"))
    op.drop_index("uq_executions_experiment_run_id", table_name="executions")
    op.drop_constraint(op.f("fk_executions_experiment_run_id_experiment_runs"), "executions", type_="foreignkey")
    op.drop_column("executions", "experiment_run_id")
    op.drop_table("experiment_scores")
    op.drop_table("experiment_runs")
    op.drop_table("experiment_variants")
    op.drop_table("experiment_evaluators")
    op.drop_table("experiments")
    op.drop_table("evaluators")
    op.drop_table("dataset_items")
    op.drop_table("datasets")
