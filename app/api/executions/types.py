"""Execution, ExecutionLog, ExecutionEvent, Feedback, TokenUsage, VersionStats and ExecutionFilter.

The subscriptions build ``ExecutionEvent`` objects with ``ExecutionEvent.from_row`` /
``ExecutionEvent.snapshot``.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.db import models
from app.db.models.enums import PRIORITY_RANK
from app.services.access import Action
from app.services.stats import VersionStatsData

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.enums import ExecutionEventType, ExecutionStatus, LogLevel, Priority, ValidationStatus
from ..core.pagination import Connection
from ..core.relay import Node, global_id, input_id, load_related, node, related, wrap
from ..models.types import ModelSettings
from ..traces import resolvers as traces
from ..traces.types import Trace
from ..validations.types import ValidationResult
from .loaders import FeedbackByExecution, LogsPage, levels_from

if TYPE_CHECKING:
    from ..deployments.types import Deployment
    from ..identity.types import ApiKey, User
    from ..projects.types import Project
    from ..prompts.types import Prompt, PromptVersion

ProjectRef = Annotated["Project", strawberry.lazy("app.api.projects.types")]
PromptRef = Annotated["Prompt", strawberry.lazy("app.api.prompts.types")]
VersionRef = Annotated["PromptVersion", strawberry.lazy("app.api.prompts.types")]
DeploymentRef = Annotated["Deployment", strawberry.lazy("app.api.deployments.types")]
UserRef = Annotated["User", strawberry.lazy("app.api.identity.types")]
ApiKeyRef = Annotated["ApiKey", strawberry.lazy("app.api.identity.types")]

_PRIORITY_BY_RANK = {rank: priority for priority, rank in PRIORITY_RANK.items()}


@strawberry.type
class TokenUsage:
    input_tokens: int
    output_tokens: int
    total_tokens: int


# ------------------------------------------------------------------ ExecutionLog, Feedback


@node(models.ExecutionLog)
@strawberry.type
class ExecutionLog(Node):
    id: strawberry.ID
    level: LogLevel
    message: str
    metadata: JSON | None
    timestamp: datetime
    row: strawberry.Private[models.ExecutionLog]

    @classmethod
    def from_row(cls, row: models.ExecutionLog) -> ExecutionLog:
        return cls(id=global_id(cls, row.id), level=LogLevel(row.level),
                   message=row.message, metadata=row.metadata_, timestamp=row.timestamp, row=row)


@node(models.Feedback)
@strawberry.type
class Feedback(Node):
    id: strawberry.ID
    rating: int = strawberry.field(description="1 to 5.")
    comment: str | None
    created_at: datetime
    row: strawberry.Private[models.Feedback]

    @classmethod
    def from_row(cls, row: models.Feedback) -> Feedback:
        return cls(id=global_id(cls, row.id), rating=row.rating, comment=row.comment,
                   created_at=row.created_at, row=row)

    execution: Execution = related(models.Execution, "execution_id")
    user: UserRef | None = related(
        models.User, "user_id",
        description="Who gave it (null when given with an API key, or the user was deleted).")


# ------------------------------------------------------------------ Execution


@node(models.Execution)
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
    def from_row(cls, row: models.Execution) -> Execution:
        return cls(
            id=global_id(cls, row.id), row=row, environment=row.environment,
            status=ExecutionStatus(row.status), priority=_PRIORITY_BY_RANK[row.priority], variables=JSON(row.variables),
            context=row.context, rendered_prompt=row.rendered_prompt, output=row.output,
            validated_output=row.validated_output, error=row.error, provider=row.provider, model=row.model,
            cost_usd=row.cost_usd, latency_ms=row.latency_ms, time_to_first_token_ms=row.time_to_first_token_ms,
            attempts=row.attempts, max_attempts=row.max_attempts, created_at=row.created_at,
            started_at=row.started_at, completed_at=row.completed_at, cancel_requested_at=row.cancel_requested_at,
            subject_key=row.subject_key, idempotency_key=row.idempotency_key)

    project: ProjectRef = related(models.Project, "project_id")
    prompt: PromptRef = related(models.Prompt, "prompt_id")
    version: VersionRef = related(models.PromptVersion, "version_id")
    deployment: DeploymentRef | None = related(
        models.Deployment, "deployment_id",
        description="The deployment that chose the version, when it was chosen by environment.")

    @strawberry.field(description="The version's model settings merged with the execution's overrides, provider "
                                  "and model resolved.")
    def model_settings(self) -> ModelSettings | None:
        return ModelSettings.from_dict(self.row.model_settings)

    @strawberry.field(description="PENDING until the output is validated; SKIPPED without active validations and "
                                  "for executions that did not complete.")
    def validation_status(self) -> ValidationStatus:
        return ValidationStatus(self.row.validation_status)

    @strawberry.field
    def validation_results(self) -> list[ValidationResult]:
        return [ValidationResult.from_data(item) for item in self.row.validation_results or []]

    @strawberry.field(description="Tokens of the call: reported by the provider, or counted when it reports none "
                                  "(a log says which).")
    def usage(self) -> TokenUsage | None:
        r = self.row
        if r.input_tokens is None and r.output_tokens is None:
            return None
        i, o = r.input_tokens or 0, r.output_tokens or 0
        return TokenUsage(input_tokens=i, output_tokens=o, total_tokens=i + o)

    requested_by: UserRef | None = related(models.User, "requested_by_id")

    @strawberry.field(description="The API key it was submitted with; shown to project admins only.")
    async def api_key(self, info: Info) -> ApiKeyRef | None:
        if self.row.api_key_id is None or not await info.context.can(self.row.project_id, Action.ADMIN_PROJECT):
            return None
        return await load_related(info, models.ApiKey, self.row.api_key_id)

    @strawberry.field(description="Oldest first; minLevel keeps that level and the ones above (DEBUG < INFO < "
                                  "WARN < ERROR).")
    async def logs(self, info: Info, first: int | None = 50, after: str | None = None,
                   min_level: LogLevel | None = None) -> Connection[ExecutionLog]:
        levels = levels_from(min_level.value if min_level is not None else None)
        return await child_connection(info, LogsPage, self.row.id, first=first, after=after,
                                      wrap=ExecutionLog.from_row, args=(levels,))

    @strawberry.field(description="The trace recording this execution; null until it is written, or when you may "
                                  "not read traces.")
    async def trace(self, info: Info) -> Trace | None:
        return await traces.execution_trace(info, self.row)

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
    execution_id: strawberry.Private[uuid.UUID]
    delta: str | None = strawberry.field(default=None, description="The new piece of output, for OUTPUT_DELTA.")
    log_id: strawberry.Private[uuid.UUID | None] = None
    execution_row: strawberry.Private[models.Execution | None] = None
    log_row: strawberry.Private[models.ExecutionLog | None] = None
    #: Set when one event object goes to many subscribers (a shared feed): their results, shared by
    #: selection, variables and principal (``app.api.core.live.SharedEventExecutor``).
    shared_results: strawberry.Private[dict[Any, Any] | None] = None

    @classmethod
    def from_row(cls, event: models.ExecutionEvent, execution: models.Execution | None = None,
                 log: models.ExecutionLog | None = None, *, shared: bool = False) -> ExecutionEvent:
        """An event read from ``execution_events``; ``execution``/``log`` rows save a load when at hand.
        ``shared``: this one object goes to many subscribers, which share their results."""
        return cls(type=ExecutionEventType(event.type), sequence=event.seq, at=event.at, delta=event.delta,
                   execution_id=event.execution_id, log_id=event.log_id, execution_row=execution, log_row=log,
                   shared_results={} if shared else None)

    @classmethod
    def snapshot(cls, execution: models.Execution, at: datetime | None = None) -> ExecutionEvent:
        """The SNAPSHOT of an execution row: its sequence is the last event's (later events follow it)."""
        return cls(type=ExecutionEventType.SNAPSHOT, sequence=execution.last_event_seq,
                   at=at or datetime.now(UTC), execution_id=execution.id, execution_row=execution)

    # Plain (not async) resolvers: with the rows at hand, as in a live feed, the event's whole selection
    # resolves without a coroutine (a thousand subscribers' worth of them per event); without, they
    # return the loader's awaitable, which graphql-core awaits.
    @strawberry.field(description="The execution as it is now (as it was, for a SNAPSHOT).")
    def execution(self, info: Info) -> Execution:
        if self.execution_row is not None:
            return Execution.from_row(self.execution_row)
        return load_related(info, models.Execution, self.execution_id)  # type: ignore[return-value]

    @strawberry.field(description="The log entry, for LOG.")
    def log(self, info: Info) -> ExecutionLog | None:
        if self.log_row is not None:
            return ExecutionLog.from_row(self.log_row)
        if self.log_id is None:
            return None
        return load_related(info, models.ExecutionLog, self.log_id)  # type: ignore[return-value]


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
    def from_data(cls, data: VersionStatsData, version_row: models.PromptVersion | None = None) -> VersionStats:
        return cls(executions=data.executions, completed=data.completed, failed=data.failed,
                   success_rate=data.success_rate, validation_pass_rate=data.validation_pass_rate,
                   avg_latency_ms=data.avg_latency_ms, p95_latency_ms=data.p95_latency_ms,
                   avg_input_tokens=data.avg_input_tokens, avg_output_tokens=data.avg_output_tokens,
                   avg_cost_usd=data.avg_cost_usd, total_cost_usd=data.total_cost_usd, avg_rating=data.avg_rating,
                   rating_count=data.rating_count, version_id=data.version_id, version_row=version_row)

    @strawberry.field
    async def version(self, info: Info) -> VersionRef:
        if self.version_row is not None:
            return wrap(self.version_row)
        return await load_related(info, models.PromptVersion, self.version_id)


# ------------------------------------------------------------------ filters


@strawberry.input
class ExecutionFilter:
    status: list[ExecutionStatus] | None = None
    prompt_id: strawberry.ID | None = None
    version_id: strawberry.ID | None = None
    environment: str | None = None
    created_after: datetime | None = strawberry.field(default=None, description="At or after this time.")
    created_before: datetime | None = strawberry.field(default=None, description="Before this time.")


def filter_args(f: ExecutionFilter | None) -> tuple[Any, ...]:
    """The hashable loader arguments of a filter (IDs that are not ours match nothing)."""
    f = f or ExecutionFilter()
    statuses = tuple(sorted(s.value for s in f.status)) if f.status is not None else None
    return (statuses, input_id(f.prompt_id, models.Prompt), input_id(f.version_id, models.PromptVersion),
            f.environment, f.created_after, f.created_before)


FromArg = Annotated[datetime | None, strawberry.argument(name="from", description="Executions created at or after.")]
ToArg = Annotated[datetime | None, strawberry.argument(name="to", description="Executions created before.")]
