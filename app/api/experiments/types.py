"""Dataset, DatasetItem, Evaluator, Experiment, ExperimentVariant, ExperimentRun, and the statistics and progress
of experiments (``app.services.experiment_stats`` says how each figure is computed)."""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from app.db import models
from app.db.models.enums import EvaluatorType, ExperimentStatus, ExperimentType, ScoreSource
from app.services.experiment_stats import ScoreStatsData, VariantStatsData

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.enums import ExecutionStatus, graphql_enum
from ..core.loaders import Visible
from ..core.pagination import Connection
from ..core.relay import Node, decode_id, global_id, node, related, wrap
from ..models.types import ModelSettings
from .loaders import (
    EvaluatorsByExperiment,
    ExecutionByRun,
    ItemsPage,
    RunsPage,
    ScoresByRun,
    StatsLoader,
    VariantsByExperiment,
)

if TYPE_CHECKING:
    from ..executions.types import Execution
    from ..identity.types import User
    from ..projects.types import Project
    from ..prompts.types import PromptVersion

ProjectRef = Annotated["Project", strawberry.lazy("app.api.projects.types")]
VersionRef = Annotated["PromptVersion", strawberry.lazy("app.api.prompts.types")]
ExecutionRef = Annotated["Execution", strawberry.lazy("app.api.executions.types")]
UserRef = Annotated["User", strawberry.lazy("app.api.identity.types")]

graphql_enum(EvaluatorType, values={
    "EXACT_MATCH": 'config {"expected"?, "ignoreCase"?, "normalizeWhitespace"?}: 1 when the output equals the expected '
                   "output (config.expected, else the dataset item's), else 0.",
    "CONTAINS": 'config {"values"?: [...], "mode"?: "any" | "all", "ignoreCase"?}: 1 when the output contains any (or '
                "all) of the values (the expected output when left out).",
    "REGEX": 'config {"pattern", "flags"?}: 1 when the pattern matches (patterns prone to catastrophic backtracking '
             "are refused).",
    "JSON_VALID": "config {}: 1 when the output is JSON.",
    "JSON_SCHEMA": 'config {"schema"}: 1 when the output is JSON following the schema.',
    "JMESPATH": 'config {"expression"}: 1 when the expression is truthy on the output parsed as JSON.',
    "LEVENSHTEIN": 'config {"expected"?, "threshold"?: 0.8, "ignoreCase"?, "normalizeWhitespace"?}: the normalised '
                   "similarity 1 - edit distance / longer length (0 to 1); passes at the threshold or above.",
    "LLM_JUDGE": "A model grades the output against a rubric; config names the model and the rubric "
                 '({"model", "rubric", "provider"?, "scale"?: {"min", "max"}, "passThreshold"?}).',
    "LATENCY": 'config {"maxMs"}: the run\'s latency in ms; passes at the limit or under.',
    "COST": 'config {"maxUsd"}: the run\'s cost in USD; passes at the limit or under.',
})
graphql_enum(ExperimentType, values={
    "AB_TEST": "Two variants: a control and a challenger.",
    "MULTI_VARIANT": "Two or more variants against one control.",
    "EVALUATION": "One or more variants scored on a dataset.",
})
graphql_enum(ExperimentStatus)
graphql_enum(ScoreSource, values={
    "EVALUATOR": "One of the experiment's evaluators.",
    "HUMAN": "A person (scoreRun).",
    "FEEDBACK": "The mean of the submitFeedback ratings of a live run's execution (1 to 5).",
})


@node(models.Dataset)
@strawberry.type(description="Named items (variables, an expected output, metadata) that experiments run on.")
class Dataset(Node):
    id: strawberry.ID
    name: str
    description: str | None
    created_at: datetime
    item_count: int
    row: strawberry.Private[models.Dataset]

    @classmethod
    def from_row(cls, row: models.Dataset) -> Dataset:
        return cls(id=global_id(cls, row.id), name=row.name, description=row.description, created_at=row.created_at,
                   item_count=row.item_count, row=row)

    project: ProjectRef = related(models.Project, "project_id", seen_with_owner=True)

    @strawberry.field(description="In the order they were added; keyset pagination.")
    async def items(self, info: Info, first: int | None = 50, after: str | None = None) -> Connection[DatasetItem]:
        return await child_connection(info, ItemsPage, self.row.id, first=first, after=after,
                                      wrap=DatasetItem.from_row)


@node(models.DatasetItem)
@strawberry.type
class DatasetItem(Node):
    id: strawberry.ID
    variables: JSON
    expected_output: str | None
    metadata: JSON | None
    created_at: datetime
    row: strawberry.Private[models.DatasetItem]

    @classmethod
    def from_row(cls, row: models.DatasetItem) -> DatasetItem:
        return cls(id=global_id(cls, row.id), variables=JSON(row.variables), expected_output=row.expected_output,
                   metadata=JSON(row.metadata_) if row.metadata_ is not None else None, created_at=row.created_at,
                   row=row)

    dataset: Dataset = related(models.Dataset, "dataset_id", seen_with_owner=True)

    @strawberry.field(description="1, 2, ... in the order the items were added.")
    def position(self) -> int:
        return self.row.position


@node(models.Evaluator)
@strawberry.type(description="A reusable way to score an output (an evaluation template).")
class Evaluator(Node):
    id: strawberry.ID
    name: str
    description: str | None
    type: EvaluatorType
    config: JSON
    created_at: datetime
    row: strawberry.Private[models.Evaluator]

    @classmethod
    def from_row(cls, row: models.Evaluator) -> Evaluator:
        return cls(id=global_id(cls, row.id), name=row.name, description=row.description,
                   type=EvaluatorType(row.type), config=JSON(row.config), created_at=row.created_at, row=row)

    project: ProjectRef = related(models.Project, "project_id", seen_with_owner=True)


@strawberry.type
class ExperimentProgress:
    total: int
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int = strawberry.field(description="Runs that ended CANCELLED (the experiment was cancelled).")
    percent: float = strawberry.field(description="Runs ended (completed, failed or cancelled) per 100 runs.")

    @classmethod
    def of(cls, e: models.Experiment) -> ExperimentProgress:
        ended = e.runs_completed + e.runs_failed + e.runs_cancelled
        return cls(total=e.runs_total, pending=max(0, e.runs_total - ended - e.runs_running), running=e.runs_running,
                   completed=e.runs_completed, failed=e.runs_failed, cancelled=e.runs_cancelled,
                   percent=round(100.0 * ended / e.runs_total, 2) if e.runs_total else 0.0)


@strawberry.type(description="One score's figures for one variant, and the comparison with the control.")
class ScoreStats:
    name: str
    n: int
    mean: float | None
    stddev: float | None = strawberry.field(description="The sample standard deviation (n - 1).")
    ci95_low: float | None = strawberry.field(name="ci95Low")
    ci95_high: float | None = strawberry.field(name="ci95High")
    ci_method: str | None = strawberry.field(description=(
        "How the 95 % interval of the mean was computed: Wilson score interval (pass/fail scores), percentile "
        "bootstrap (few values, or a bounded score), or Student's t."))
    pass_rate: float | None = strawberry.field(description="Passed / scores that say passed or not.")
    pass_rate_ci95_low: float | None = strawberry.field(name="passRateCi95Low",
                                                        description="The Wilson 95 % interval of passRate.")
    pass_rate_ci95_high: float | None = strawberry.field(name="passRateCi95High")
    delta_vs_control: float | None = strawberry.field(description=(
        "This variant's mean minus the control's (paired: the mean of the paired differences); null for the "
        "control."))
    p_value_vs_control: float | None
    adjusted_p_value: float | None = strawberry.field(
        description="The p-value after correction for comparing several variants with the control.")
    method: str | None = strawberry.field(
        description="How the p-value was computed, e.g. paired t-test, Welch's t-test, McNemar's test.")
    significant: bool = strawberry.field(description="Adjusted p-value below 0.05.")
    pairs: int | None = strawberry.field(description="Paired tests: how many pairs of runs the test used.")

    @classmethod
    def from_data(cls, d: ScoreStatsData) -> ScoreStats:
        return cls(name=d.name, n=d.n, mean=d.mean, stddev=d.stddev, ci95_low=d.ci_low, ci95_high=d.ci_high,
                   ci_method=d.ci_method, pass_rate=d.pass_rate, pass_rate_ci95_low=d.pass_rate_low,
                   pass_rate_ci95_high=d.pass_rate_high, delta_vs_control=d.delta, p_value_vs_control=d.p_value,
                   adjusted_p_value=d.adjusted_p_value, method=d.method, significant=d.significant, pairs=d.pairs)


@strawberry.type(description="A variant's runs and scores. successRate = completed / (completed + failed); latency "
                             "over completed runs.")
class VariantStats:
    runs: int
    completed: int
    failed: int
    cancelled: int
    success_rate: float | None
    avg_latency_ms: float | None
    p95_latency_ms: float | None
    avg_cost_usd: Decimal | None
    total_cost_usd: Decimal
    scores: list[ScoreStats]

    @classmethod
    def from_data(cls, d: VariantStatsData) -> VariantStats:
        return cls(runs=d.runs, completed=d.completed, failed=d.failed, cancelled=d.cancelled,
                   success_rate=d.success_rate, avg_latency_ms=d.avg_latency_ms, p95_latency_ms=d.p95_latency_ms,
                   avg_cost_usd=d.avg_cost_usd, total_cost_usd=d.total_cost_usd,
                   scores=[ScoreStats.from_data(s) for s in d.scores])


@node(models.Experiment)
@strawberry.type
class Experiment(Node):
    id: strawberry.ID
    name: str
    description: str | None
    type: ExperimentType
    status: ExperimentStatus
    primary_score: str | None = strawberry.field(description="The evaluator name whose score decides the winner.")
    repetitions: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    metadata: JSON | None
    environment: str | None = strawberry.field(
        description="For an A/B test on live traffic: the environment whose traffic the variants split.")
    row: strawberry.Private[models.Experiment]

    @classmethod
    def from_row(cls, row: models.Experiment) -> Experiment:
        return cls(id=global_id(cls, row.id), name=row.name, description=row.description,
                   type=ExperimentType(row.type), status=ExperimentStatus(row.status),
                   primary_score=row.primary_score, repetitions=row.repetitions, created_at=row.created_at,
                   started_at=row.started_at, ended_at=row.ended_at,
                   metadata=JSON(row.metadata_) if row.metadata_ is not None else None,
                   environment=row.environment, row=row)

    project: ProjectRef = related(models.Project, "project_id", seen_with_owner=True)
    dataset: Dataset | None = related(models.Dataset, "dataset_id", seen_with_owner=True)
    created_by: UserRef | None = related(models.User, "created_by_id",
                                         description="Who created it; null for API keys and deleted users.")

    @strawberry.field
    async def evaluators(self, info: Info) -> list[Evaluator]:
        rows = await info.context.loader(EvaluatorsByExperiment).load(self.row.id)
        return [Evaluator.from_row(r) for r in rows]

    @strawberry.field
    async def variants(self, info: Info) -> list[ExperimentVariant]:
        rows = await info.context.loader(VariantsByExperiment).load(self.row.id)
        return [ExperimentVariant.from_row(r) for r in rows]

    @strawberry.field
    async def control(self, info: Info) -> ExperimentVariant | None:
        rows = await info.context.loader(VariantsByExperiment).load(self.row.id)
        return next((ExperimentVariant.from_row(r) for r in rows if r.is_control), None)

    @strawberry.field(description="The variant whose primary score beats the control's with statistical "
                                  "significance (adjusted p < 0.05), the largest improvement if several do; null "
                                  "otherwise — never a winner from noise.")
    async def winner(self, info: Info) -> ExperimentVariant | None:
        data = await info.context.loader(StatsLoader).load(self.row.id)
        if data is None or data.winner_id is None:
            return None
        rows = await info.context.loader(VariantsByExperiment).load(self.row.id)
        return next((ExperimentVariant.from_row(r) for r in rows if r.id == data.winner_id), None)

    @strawberry.field
    def progress(self) -> ExperimentProgress:
        return ExperimentProgress.of(self.row)

    @strawberry.field(description="In the order they were made (variant by variant within each item and "
                                  "repetition); keyset pagination.")
    async def runs(self, info: Info, first: int | None = 50, after: str | None = None,
                   variant_id: strawberry.ID | None = None) -> Connection[ExperimentRun]:
        variant: uuid.UUID | str | None = None
        if variant_id is not None:
            variant = decode_id(variant_id, models.ExperimentVariant) or "none"
            if variant == "none":
                return Connection.empty()
        return await child_connection(info, RunsPage, self.row.id, first=first, after=after,
                                      wrap=ExperimentRun.from_row, args=(variant,))


@node(models.ExperimentVariant)
@strawberry.type
class ExperimentVariant(Node):
    id: strawberry.ID
    name: str
    traffic_weight: int
    is_control: bool
    row: strawberry.Private[models.ExperimentVariant]

    @classmethod
    def from_row(cls, row: models.ExperimentVariant) -> ExperimentVariant:
        return cls(id=global_id(cls, row.id), name=row.name, traffic_weight=row.traffic_weight,
                   is_control=row.is_control, row=row)

    experiment: Experiment = related(models.Experiment, "experiment_id", seen_with_owner=True)
    version: VersionRef = related(models.PromptVersion, "version_id")

    @strawberry.field(description="Overrides of the version's model settings; null for none.")
    def model_settings(self) -> ModelSettings | None:
        return ModelSettings.from_dict(self.row.model_settings)

    @strawberry.field
    async def stats(self, info: Info) -> VariantStats:
        data = await info.context.loader(StatsLoader).load(self.row.experiment_id)
        found = data.variants.get(self.row.id) if data is not None else None
        return VariantStats.from_data(found or VariantStatsData(variant_id=self.row.id))


@strawberry.type
class Score:
    name: str
    value: float
    passed: bool | None
    explanation: str | None
    source: ScoreSource = strawberry.field(description="Who gave the score.")


@node(models.ExperimentRun)
@strawberry.type
class ExperimentRun(Node):
    id: strawberry.ID
    repetition: int
    status: ExecutionStatus = strawberry.field(description=(
        "PENDING, RUNNING (its execution runs, or it is being scored), COMPLETED (executed and scored), FAILED or "
        "CANCELLED."))
    variables: JSON
    output: str | None
    latency_ms: int | None
    cost_usd: Decimal | None
    error: str | None
    created_at: datetime
    row: strawberry.Private[models.ExperimentRun]

    @classmethod
    def from_row(cls, row: models.ExperimentRun) -> ExperimentRun:
        return cls(id=global_id(cls, row.id), repetition=row.repetition, status=ExecutionStatus(row.status),
                   variables=JSON(row.variables), output=row.output, latency_ms=row.latency_ms,
                   cost_usd=row.cost_usd, error=row.error, created_at=row.created_at, row=row)

    experiment: Experiment = related(models.Experiment, "experiment_id", seen_with_owner=True)
    variant: ExperimentVariant = related(models.ExperimentVariant, "variant_id", seen_with_owner=True)
    dataset_item: DatasetItem | None = related(models.DatasetItem, "dataset_item_id", seen_with_owner=True)

    @strawberry.field(description="The execution that produced the output; null when you may not read executions.")
    async def execution(self, info: Info) -> ExecutionRef | None:
        row = await info.context.loader(ExecutionByRun).load((self.row.id,))
        if row is None:
            return None
        return wrap(await info.context.loader(Visible, models.Execution).load(row.id))

    @strawberry.field
    async def scores(self, info: Info) -> list[Score]:
        rows = await info.context.loader(ScoresByRun).load(self.row.id)
        return [Score(name=s.name, value=s.value, passed=s.passed, explanation=s.explanation,
                      source=ScoreSource(s.source))
                for s in rows]

    @strawberry.field(description="Evaluators that could not score the output, and why.")
    def scoring_errors(self) -> list[str]:
        return [f"{e.get('name')}: {e.get('message')}" for e in self.row.scoring_errors or []]


@strawberry.type
class ExperimentProgressEvent:
    experiment: Experiment
    progress: ExperimentProgress
    run: ExperimentRun | None = strawberry.field(description="The run that just finished, if this event is about one.")
    finished_runs: int = strawberry.field(default=0, description=(
        "How many runs finished since the previous event (events are throttled when runs finish quickly)."))
