"""Executions in GraphQL: Execution, ExecutionLog, ExecutionEvent, Feedback, TokenUsage, VersionStats;
Project.executions, Prompt.executions / splitReport and PromptVersion.stats (mixins).

Mutations (executePrompt, cancelExecution, submitFeedback) live in ``execution_mutations``; loaders
in ``execution_loaders``. The subscriptions module builds ``ExecutionEvent`` objects with
``ExecutionEvent.from_row`` / ``ExecutionEvent.snapshot``.
"""
from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from app.db import models
from app.db.models.enums import PRIORITY_RANK
from app.services.access import Action

from ..child_pages import child_connection
from ..pagination import Connection
from ..relay import Node, decode_gid_of, encode_gid, register_node
from .execution_loaders import (NO_ID, FeedbackByExecution, LogsPage, ProjectExecutionsPage, PromptExecutionsPage,
                                StatsLoader, VisibleExecutions, levels_from)

ProjectRef = Annotated["Project", strawberry.lazy("app.api.types.projects")]
PromptRef = Annotated["Prompt", strawberry.lazy("app.api.types.prompts")]
VersionRef = Annotated["PromptVersion", strawberry.lazy("app.api.types.prompts")]
DeploymentRef = Annotated["Deployment", strawberry.lazy("app.api.types.deployments")]
UserRef = Annotated["User", strawberry.lazy("app.api.types.identity")]
ApiKeyRef = Annotated["ApiKey", strawberry.lazy("app.api.types.identity")]
ModelSettingsRef = Annotated["ModelSettings", strawberry.lazy("app.api.types.prompt_content")]
ValidationResultRef = Annotated["ValidationResult", strawberry.lazy("app.api.types.validations")]
ValidationStatusRef = Annotated["ValidationStatus", strawberry.lazy("app.api.types.validations")]


@strawberry.enum
class ExecutionStatus(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.enum
class Priority(enum.Enum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


_PRIORITY_BY_RANK = {rank: Priority(p.value) for p, rank in PRIORITY_RANK.items()}


@strawberry.enum
class LogLevel(enum.Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


@strawberry.enum
class ExecutionEventType(enum.Enum):
    SNAPSHOT = strawberry.enum_value("SNAPSHOT", description="The state at the moment of subscribing; always the "
                                                             "first event.")
    QUEUED = strawberry.enum_value("QUEUED", description="Queued (again, when a worker stopped mid-run: the "
                                                         "output starts over).")
    STARTED = "STARTED"
    OUTPUT_DELTA = "OUTPUT_DELTA"
    LOG = "LOG"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.type
class TokenUsage:
    input_tokens: int
    output_tokens: int
    total_tokens: int


# ------------------------------------------------------------------ ExecutionLog, Feedback


@strawberry.type
class ExecutionLog(Node):
    id: strawberry.ID
    level: LogLevel
    message: str
    metadata: JSON | None
    timestamp: datetime
    row: strawberry.Private[models.ExecutionLog]

    @classmethod
    def from_row(cls, row: models.ExecutionLog) -> "ExecutionLog":
        return cls(id=strawberry.ID(encode_gid("ExecutionLog", row.id)), level=LogLevel(row.level),
                   message=row.message, metadata=row.metadata_, timestamp=row.timestamp, row=row)


@strawberry.type
class Feedback(Node):
    id: strawberry.ID
    rating: int = strawberry.field(description="1 to 5.")
    comment: str | None
    created_at: datetime
    row: strawberry.Private[models.Feedback]

    @classmethod
    def from_row(cls, row: models.Feedback) -> "Feedback":
        return cls(id=strawberry.ID(encode_gid("Feedback", row.id)), rating=row.rating, comment=row.comment,
                   created_at=row.created_at, row=row)

    @strawberry.field
    async def execution(self, info: Info) -> "Execution":
        row = await info.context.by_id(models.Execution).load(self.row.execution_id)
        return Execution.from_row(row)

    @strawberry.field(description="Who gave it (null when given with an API key, or the user was deleted).")
    async def user(self, info: Info) -> UserRef | None:
        from .identity import load_user

        return await load_user(info, self.row.user_id)


# ------------------------------------------------------------------ Execution


@strawberry.type
class Execution(Node):
    id: strawberry.ID
    row: strawberry.Private[models.Execution]
    environment: str | None
    status: ExecutionStatus
    priority: Priority
    variables: JSON
    context: JSON | None
    rendered_prompt: JSON | None = strawberry.field(description=(
        "What was sent to the model: {kind: TEXT, text, systemPrompt?} or {kind: CHAT, messages: [{role, "
        "content}], systemPrompt?}."))
    output: str | None = strawberry.field(description="The output so far (it grows while RUNNING).")
    validated_output: JSON | None = strawberry.field(
        description="The output parsed as JSON, when a JSON_SCHEMA or JMESPATH validation passed.")
    error: str | None
    provider: str | None
    model: str | None
    cost_usd: Decimal | None = strawberry.field(description=(
        "At the model's prices in force when the call started; null when the model has no price (see the WARN "
        "log) or no call was made."))
    latency_ms: int | None = strawberry.field(
        description="From the start of the provider call to the end of its stream (provider retries included).")
    time_to_first_token_ms: int | None
    attempts: int = strawberry.field(description="Worker runs so far (a worker that died mid-run counts).")
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    cancel_requested_at: datetime | None
    subject_key: str | None
    idempotency_key: str | None

    @classmethod
    def from_row(cls, row: models.Execution) -> "Execution":
        return cls(
            id=strawberry.ID(encode_gid("Execution", row.id)), row=row, environment=row.environment,
            status=ExecutionStatus(row.status), priority=_PRIORITY_BY_RANK[row.priority], variables=row.variables,
            context=row.context, rendered_prompt=row.rendered_prompt, output=row.output,
            validated_output=row.validated_output, error=row.error, provider=row.provider, model=row.model,
            cost_usd=row.cost_usd, latency_ms=row.latency_ms, time_to_first_token_ms=row.time_to_first_token_ms,
            attempts=row.attempts, max_attempts=row.max_attempts, created_at=row.created_at,
            started_at=row.started_at, completed_at=row.completed_at, cancel_requested_at=row.cancel_requested_at,
            subject_key=row.subject_key, idempotency_key=row.idempotency_key)

    @strawberry.field
    async def project(self, info: Info) -> ProjectRef:
        from .projects import load_project

        return await load_project(info, self.row.project_id)

    @strawberry.field
    async def prompt(self, info: Info) -> PromptRef:
        from .prompts import Prompt

        return Prompt.from_row(await info.context.by_id(models.Prompt).load(self.row.prompt_id))

    @strawberry.field
    async def version(self, info: Info) -> VersionRef:
        from .prompts import PromptVersion

        return PromptVersion.from_row(await info.context.by_id(models.PromptVersion).load(self.row.version_id))

    @strawberry.field(description="The deployment that chose the version, when it was chosen by environment.")
    async def deployment(self, info: Info) -> DeploymentRef | None:
        if self.row.deployment_id is None:
            return None
        from .deployments import Deployment

        row = await info.context.by_id(models.Deployment).load(self.row.deployment_id)
        return Deployment.from_row(row) if row is not None else None

    @strawberry.field(description="The version's model settings merged with the execution's overrides, provider "
                                  "and model resolved.")
    def model_settings(self) -> ModelSettingsRef | None:
        from .prompt_content import ModelSettings

        return ModelSettings.from_dict(self.row.model_settings)

    @strawberry.field(description="PENDING until the output is validated; SKIPPED without active validations and "
                                  "for executions that did not complete.")
    def validation_status(self) -> ValidationStatusRef:
        from .validations import ValidationStatus

        return ValidationStatus(self.row.validation_status)

    @strawberry.field
    def validation_results(self) -> list[ValidationResultRef]:
        from .validations import ValidationResult

        return [ValidationResult.from_data(item) for item in self.row.validation_results or []]

    @strawberry.field(description="Tokens of the call: reported by the provider, or counted when it reports none "
                                  "(a log says which).")
    def usage(self) -> TokenUsage | None:
        r = self.row
        if r.input_tokens is None and r.output_tokens is None:
            return None
        i, o = r.input_tokens or 0, r.output_tokens or 0
        return TokenUsage(input_tokens=i, output_tokens=o, total_tokens=i + o)

    @strawberry.field
    async def requested_by(self, info: Info) -> UserRef | None:
        from .identity import load_user

        return await load_user(info, self.row.requested_by_id)

    @strawberry.field(description="The API key it was submitted with; shown to project admins only.")
    async def api_key(self, info: Info) -> ApiKeyRef | None:
        if self.row.api_key_id is None or not await info.context.can(self.row.project_id, Action.ADMIN_PROJECT):
            return None
        from .identity import ApiKey

        row = await info.context.by_id(models.ApiKey).load(self.row.api_key_id)
        return ApiKey.from_row(row) if row is not None else None

    @strawberry.field(description="Oldest first; minLevel keeps that level and the ones above (DEBUG < INFO < "
                                  "WARN < ERROR).")
    async def logs(self, info: Info, first: int | None = 50, after: str | None = None,
                   min_level: LogLevel | None = None) -> Connection[ExecutionLog]:
        levels = levels_from(min_level.value if min_level is not None else None)
        return await child_connection(info, LogsPage, self.row.id, first=first, after=after,
                                      wrap=ExecutionLog.from_row, args=(levels,))

    @strawberry.field(description="Oldest first.")
    async def feedback(self, info: Info) -> list[Feedback]:
        rows = await info.context.loader(FeedbackByExecution).load(self.row.id)
        return [Feedback.from_row(r) for r in rows]


# ------------------------------------------------------------------ ExecutionEvent


@strawberry.type
class ExecutionEvent:
    type: ExecutionEventType
    sequence: int = strawberry.field(description="Increases by one per event of the execution; a gap means "
                                                 "events were missed.")
    at: datetime
    delta: str | None = strawberry.field(default=None, description="The new piece of output, for OUTPUT_DELTA.")
    execution_id: strawberry.Private[uuid.UUID] = None
    log_id: strawberry.Private[uuid.UUID | None] = None
    execution_row: strawberry.Private[models.Execution | None] = None
    log_row: strawberry.Private[models.ExecutionLog | None] = None

    @classmethod
    def from_row(cls, event: models.ExecutionEvent, execution: models.Execution | None = None,
                 log: models.ExecutionLog | None = None) -> "ExecutionEvent":
        """An event read from ``execution_events``; ``execution``/``log`` rows save a load when at hand."""
        return cls(type=ExecutionEventType(event.type), sequence=event.seq, at=event.at, delta=event.delta,
                   execution_id=event.execution_id, log_id=event.log_id, execution_row=execution, log_row=log)

    @classmethod
    def snapshot(cls, execution: models.Execution, at: datetime | None = None) -> "ExecutionEvent":
        """The SNAPSHOT of an execution row: its sequence is the last event's (later events follow it)."""
        return cls(type=ExecutionEventType.SNAPSHOT, sequence=execution.last_event_seq,
                   at=at or datetime.now(timezone.utc), execution_id=execution.id, execution_row=execution)

    @strawberry.field(description="The execution as it is now (as it was, for a SNAPSHOT).")
    async def execution(self, info: Info) -> Execution:
        row = self.execution_row
        if row is None:
            row = await info.context.by_id(models.Execution).load(self.execution_id)
        return Execution.from_row(row)

    @strawberry.field(description="The log entry, for LOG.")
    async def log(self, info: Info) -> ExecutionLog | None:
        row = self.log_row
        if row is None and self.log_id is not None:
            row = await info.context.by_id(models.ExecutionLog).load(self.log_id)
        return ExecutionLog.from_row(row) if row is not None else None


# ------------------------------------------------------------------ VersionStats


@strawberry.type(description="Figures of one version's executions in a window (by creation time). successRate = "
                             "completed / (completed + failed); validationPassRate = PASSED / (PASSED + FAILED); "
                             "latencies over COMPLETED executions; null when there is nothing to measure.")
class VersionStats:
    executions: int
    completed: int
    failed: int
    success_rate: float | None
    validation_pass_rate: float | None
    avg_latency_ms: float | None
    p95_latency_ms: float | None
    avg_input_tokens: float | None
    avg_output_tokens: float | None
    avg_cost_usd: Decimal | None
    total_cost_usd: Decimal
    avg_rating: float | None
    rating_count: int
    version_id: strawberry.Private[uuid.UUID]
    version_row: strawberry.Private[models.PromptVersion | None] = None

    @classmethod
    def from_data(cls, data, version_row: models.PromptVersion | None = None) -> "VersionStats":
        return cls(executions=data.executions, completed=data.completed, failed=data.failed,
                   success_rate=data.success_rate, validation_pass_rate=data.validation_pass_rate,
                   avg_latency_ms=data.avg_latency_ms, p95_latency_ms=data.p95_latency_ms,
                   avg_input_tokens=data.avg_input_tokens, avg_output_tokens=data.avg_output_tokens,
                   avg_cost_usd=data.avg_cost_usd, total_cost_usd=data.total_cost_usd, avg_rating=data.avg_rating,
                   rating_count=data.rating_count, version_id=data.version_id, version_row=version_row)

    @strawberry.field
    async def version(self, info: Info) -> VersionRef:
        from .prompts import PromptVersion

        row = self.version_row or await info.context.by_id(models.PromptVersion).load(self.version_id)
        return PromptVersion.from_row(row)


# ------------------------------------------------------------------ filters and mixins


@strawberry.input
class ExecutionFilter:
    status: list[ExecutionStatus] | None = None
    prompt_id: strawberry.ID | None = None
    version_id: strawberry.ID | None = None
    environment: str | None = None
    created_after: datetime | None = strawberry.field(default=None, description="At or after this time.")
    created_before: datetime | None = strawberry.field(default=None, description="Before this time.")


def filter_args(f: ExecutionFilter | None) -> tuple:
    """The hashable loader arguments of a filter (IDs that are not ours match nothing)."""
    f = f or ExecutionFilter()
    statuses = tuple(sorted(s.value for s in f.status)) if f.status is not None else None
    prompt_id = (decode_gid_of(f.prompt_id, "Prompt") or NO_ID) if f.prompt_id is not None else None
    version_id = (decode_gid_of(f.version_id, "PromptVersion") or NO_ID) if f.version_id is not None else None
    return (statuses, prompt_id, version_id, f.environment, f.created_after, f.created_before)


FromArg = Annotated[datetime | None, strawberry.argument(name="from", description="Executions created at or after.")]
ToArg = Annotated[datetime | None, strawberry.argument(name="to", description="Executions created before.")]


@strawberry.type
class ProjectExecutionFields:
    """Project.executions (mixed into Project)."""

    @strawberry.field(description="Newest first.")
    async def executions(self, info: Info, first: int | None = 20, after: str | None = None,
                         filter: ExecutionFilter | None = None) -> Connection[Execution]:
        project_id = self.row.id  # type: ignore[attr-defined]
        if not await info.context.can(project_id, Action.READ_EXECUTIONS):
            return Connection.empty()
        return await child_connection(info, ProjectExecutionsPage, project_id, first=first, after=after,
                                      wrap=Execution.from_row, args=filter_args(filter))


@strawberry.type
class PromptExecutionFields:
    """Prompt.executions / splitReport (mixed into Prompt)."""

    @strawberry.field(description="Newest first.")
    async def executions(self, info: Info, first: int | None = 20, after: str | None = None,
                         filter: ExecutionFilter | None = None) -> Connection[Execution]:
        row = self.row  # type: ignore[attr-defined]
        if not await info.context.can(row.project_id, Action.READ_EXECUTIONS):
            return Connection.empty()
        return await child_connection(info, PromptExecutionsPage, row.id, first=first, after=after,
                                      wrap=Execution.from_row, args=filter_args(filter))

    @strawberry.field(description=(
        "Side-by-side figures of the versions live in one environment's traffic split: the versions of the "
        "environment's active deployments now (in split order), each with the figures of its executions in that "
        "environment within the window. Empty when nothing is deployed there."))
    async def split_report(self, info: Info, environment: str, from_: FromArg = None,
                           to: ToArg = None) -> list[VersionStats]:
        from .deployments import ActiveDeploymentsByPrompt

        row = self.row  # type: ignore[attr-defined]
        if not await info.context.can(row.project_id, Action.READ_EXECUTIONS):
            return []
        deployments = [d for d in await info.context.loader(ActiveDeploymentsByPrompt).load(row.id)
                       if d.environment == environment]
        version_ids = list(dict.fromkeys(d.version_id for d in deployments))
        stats = await info.context.loader(StatsLoader, from_, to, environment).load_many(version_ids)
        return [VersionStats.from_data(s) for s in stats]


@strawberry.type
class VersionExecutionFields:
    """PromptVersion.stats (mixed into PromptVersion)."""

    @strawberry.field(description="Figures of this version's executions (all environments) in the window; zeros "
                                  "for viewers who may not read the project's executions.")
    async def stats(self, info: Info, from_: FromArg = None, to: ToArg = None) -> VersionStats:
        row = self.row  # type: ignore[attr-defined]
        from app.services.stats import VersionStatsData

        prompt = await info.context.by_id(models.Prompt).load(row.prompt_id)
        if prompt is None or not await info.context.can(prompt.project_id, Action.READ_EXECUTIONS):
            return VersionStats.from_data(VersionStatsData(version_id=row.id), row)
        data = await info.context.loader(StatsLoader, from_, to, None).load(row.id)
        return VersionStats.from_data(data, row)


# ------------------------------------------------------------------ nodes


async def _visible_by_execution(info: Info, rows: Sequence) -> list:
    """Keep rows (with .execution_id) whose execution the viewer may read."""
    executions = await info.context.loader(VisibleExecutions).load_many(
        [r.execution_id for r in rows if r is not None])
    readable = {e.id for e in executions if e is not None}
    return [r if r is not None and r.execution_id in readable else None for r in rows]


@register_node("Execution")
async def _execution_nodes(info: Info, ids: Sequence[uuid.UUID]) -> list[Execution | None]:
    rows = await info.context.loader(VisibleExecutions).load_many(list(ids))
    return [Execution.from_row(r) if r is not None else None for r in rows]


@register_node("ExecutionLog")
async def _log_nodes(info: Info, ids: Sequence[uuid.UUID]) -> list[ExecutionLog | None]:
    rows = await info.context.by_id(models.ExecutionLog).load_many(list(ids))
    return [ExecutionLog.from_row(r) if r is not None else None for r in await _visible_by_execution(info, rows)]


@register_node("Feedback")
async def _feedback_nodes(info: Info, ids: Sequence[uuid.UUID]) -> list[Feedback | None]:
    rows = await info.context.by_id(models.Feedback).load_many(list(ids))
    return [Feedback.from_row(r) if r is not None else None for r in await _visible_by_execution(info, rows)]


from .execution_mutations import ExecutionMutation  # noqa: E402  (it uses the types above)

QUERIES: list = []
MUTATIONS: list = [ExecutionMutation]
SUBSCRIPTIONS: list = []
EXTRA_TYPES: list = [ExecutionLog, Feedback, ExecutionEvent]
