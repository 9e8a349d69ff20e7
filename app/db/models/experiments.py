"""Datasets, evaluators and experiments (offline on a dataset, or A/B tests on live traffic).

An experiment's variants are prompt versions (with optional model-settings overrides); each run is
one variant on one dataset item and repetition (offline), or one execution served by a live traffic
split (``environment``). A run's execution is an ordinary execution (``executions.experiment_run_id``
points back at the run); its scores are rows of ``experiment_scores``, which carry the run's
experiment, variant and pairing key so that statistics read one table by one index.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Money, created_at, enum_check, updated_at, uuid_pk
from .enums import EvaluatorType, ExecutionStatus, ExperimentStatus, ExperimentType, ScoreSource


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    #: Items so far; also the position of the last one (items are numbered 1, 2, ... as they are added).
    item_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint("item_count >= 0", name="item_count_non_negative"),
        Index("ix_datasets_project_id_created_at_id", "project_id", "created_at", "id"),
    )


class DatasetItem(Base):
    __tablename__ = "dataset_items"

    id: Mapped[uuid.UUID] = uuid_pk()
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False)
    #: 1, 2, ... in the order the items were added (the order of Dataset.items, and how runs are paired).
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    variables: Mapped[dict] = mapped_column(JSONB, nullable=False)
    expected_output: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[Any | None] = mapped_column("metadata", JSONB)
    created_at: Mapped[datetime] = created_at()

    __table_args__ = (
        UniqueConstraint("dataset_id", "position"),
        CheckConstraint("position >= 1", name="position_positive"),
    )


class Evaluator(Base):
    __tablename__ = "evaluators"

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    #: Also the name of the scores it gives.
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    config: Mapped[dict] = mapped_column(JSONB, nullable=False)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint(enum_check("type", EvaluatorType.values()), name="type_known"),
        Index("ix_evaluators_project_id_created_at_id", "project_id", "created_at", "id"),
    )


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[uuid.UUID] = uuid_pk()
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default=ExperimentStatus.DRAFT.value)
    #: Offline experiments run on a dataset; live A/B tests have an environment instead.
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    environment: Mapped[str | None] = mapped_column(String(64))
    #: Live A/B tests: the prompt whose traffic split in ``environment`` the variants take over.
    prompt_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("prompts.id", ondelete="SET NULL"))
    #: Live A/B tests: the split that the experiment replaced ([{versionId, percentage}], [] for none),
    #: restored when it ends.
    replaced_split: Mapped[list | None] = mapped_column(JSONB)
    primary_score: Mapped[str | None] = mapped_column(String(100))
    repetitions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    metadata_: Mapped[Any | None] = mapped_column("metadata", JSONB)
    #: Progress, kept by the transactions that move runs (pending = total - the others).
    runs_total: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    runs_running: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    runs_completed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    runs_failed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    runs_cancelled: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(enum_check("status", ExperimentStatus.values()), name="status_known"),
        CheckConstraint(enum_check("type", ExperimentType.values()), name="type_known"),
        CheckConstraint("repetitions BETWEEN 1 AND 100", name="repetitions_range"),
        CheckConstraint("runs_total >= 0 AND runs_running >= 0 AND runs_completed >= 0 AND runs_failed >= 0 "
                        "AND runs_cancelled >= 0 AND runs_running + runs_completed + runs_failed + runs_cancelled "
                        "<= runs_total", name="runs_consistent"),
        CheckConstraint("(dataset_id IS NULL) OR (environment IS NULL)", name="dataset_or_environment"),
        Index("ix_experiments_project_id_created_at_id", "project_id", "created_at", "id"),
        # One running experiment owns a traffic split (a prompt in an environment) at a time.
        Index("uq_experiments_running_split", "prompt_id", "environment", unique=True,
              postgresql_where=text("status = 'RUNNING' AND environment IS NOT NULL")),
    )


class ExperimentEvaluator(Base):
    __tablename__ = "experiment_evaluators"

    experiment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                                     primary_key=True)
    evaluator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("evaluators.id", ondelete="CASCADE"),
                                                    primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)


class ExperimentVariant(Base):
    __tablename__ = "experiment_variants"

    id: Mapped[uuid.UUID] = uuid_pk()
    experiment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                                     nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompt_versions.id", ondelete="CASCADE"),
                                                  nullable=False, index=True)
    #: Overrides of the version's model settings (camelCase keys, as executions take them); None: none.
    model_settings: Mapped[dict | None] = mapped_column(JSONB)
    traffic_weight: Mapped[int] = mapped_column(Integer, nullable=False, server_default="50")
    is_control: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    position: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (
        UniqueConstraint("experiment_id", "name"),
        CheckConstraint("traffic_weight BETWEEN 0 AND 100", name="traffic_weight_range"),
    )


class ExperimentRun(Base):
    __tablename__ = "experiment_runs"

    id: Mapped[uuid.UUID] = uuid_pk()
    experiment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                                     nullable=False)
    variant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiment_variants.id", ondelete="CASCADE"),
                                                  nullable=False)
    dataset_item_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("dataset_items.id", ondelete="SET NULL"),
                                                              index=True)
    #: 1, 2, ... per experiment in the order runs were made (the order of Experiment.runs).
    ordinal: Mapped[int] = mapped_column(Integer, nullable=False)
    #: The dataset item's position (offline runs): runs of two variants on the same item and repetition pair up.
    item_position: Mapped[int | None] = mapped_column(Integer)
    repetition: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    #: PENDING, RUNNING (its execution runs, or it is being scored), COMPLETED (executed and scored),
    #: FAILED or CANCELLED.
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default=ExecutionStatus.PENDING.value)
    variables: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    output: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[Decimal | None] = mapped_column(Money)
    error: Mapped[str | None] = mapped_column(Text)
    #: Evaluators that could not score the output: [{"name": ..., "message": ...}].
    scoring_errors: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = created_at()
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        CheckConstraint(enum_check("status", ExecutionStatus.values()), name="status_known"),
        CheckConstraint("repetition >= 1", name="repetition_positive"),
        UniqueConstraint("experiment_id", "ordinal"),
        Index("ix_experiment_runs_experiment_id_variant_id_ordinal", "experiment_id", "variant_id", "ordinal"),
    )


class ExperimentScore(Base):
    """One score of one run (by name: an evaluator's, a person's, or ``feedback``)."""

    __tablename__ = "experiment_scores"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiment_runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: The run's experiment, variant and pairing key (item position x 128 + repetition; None for live runs),
    #: copied so that statistics read this table alone.
    experiment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"),
                                                     nullable=False)
    variant_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    pair_key: Mapped[int | None] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Double, nullable=False)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    explanation: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    evaluator_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("evaluators.id", ondelete="SET NULL"))
    #: What scoring cost (an LLM judge's call), when it cost anything.
    cost_usd: Mapped[Decimal | None] = mapped_column(Money)
    scored_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()

    __table_args__ = (
        CheckConstraint(enum_check("source", ScoreSource.values()), name="source_known"),
        CheckConstraint("value = value AND value NOT IN ('Infinity', '-Infinity')", name="value_finite"),
        Index("ix_experiment_scores_experiment_id_variant_id_name", "experiment_id", "variant_id", "name"),
    )
