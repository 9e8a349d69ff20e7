"""executePrompt, cancelExecution, submitFeedback."""
from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from app.db import models
from app.services import executions as service

from ..core.context import Info
from ..core.enums import Priority
from ..core.mutations import Payload, mutation, run
from ..core.relay import input_id
from ..models.types import ModelSettingsInput
from .types import Execution, Feedback


@strawberry.input(description="Choose the version in exactly one way: versionId; or promptId with environment "
                              "(resolved through the deployments); or promptId alone (the latest version).")
class ExecutePromptInput:
    variables: JSON
    version_id: strawberry.ID | None = None
    prompt_id: strawberry.ID | None = None
    environment: str | None = None
    subject_key: str | None = strawberry.field(default=None, description=(
        "Who the execution is for (an end user, a session): with environment it picks the traffic bucket, so the "
        "same subject keeps getting the same version; also recorded as the usage record's endUserId."))
    context: JSON | None = None
    priority: Priority | None = Priority.NORMAL
    model_settings: ModelSettingsInput | None = strawberry.field(default=None, description=(
        "Overrides of the version's model settings, key by key (extra merged key by key). The echo provider "
        "reads extra.chunkSize and extra.chunkDelayMs."))
    idempotency_key: str | None = strawberry.field(default=None, description=(
        "A repeated request with the same key returns the first execution instead of starting another."))


@strawberry.type
class ExecutionPayload(Payload):
    execution: Execution | None = None


@strawberry.input
class CancelExecutionInput:
    id: strawberry.ID


@strawberry.input
class SubmitFeedbackInput:
    execution_id: strawberry.ID
    rating: int = strawberry.field(description="1 to 5.")
    comment: str | None = None


@strawberry.type
class FeedbackPayload(Payload):
    feedback: Feedback | None = None


@strawberry.type
class ExecutionMutation:
    @mutation(
        "Queue a prompt for execution (WRITE_EXECUTIONS). The variables are checked first: missing, wrongly typed "
        "or unknown ones are user errors and nothing is queued. Follow it with the executionUpdated "
        "subscription. At most PROMPTSTUDIO_MAX_QUEUED_PER_PROJECT executions may be queued or running per "
        "project (LIMIT_EXCEEDED).")
    async def execute_prompt(self, info: Info, input: ExecutePromptInput) -> ExecutionPayload:
        req = service.ExecuteRequest(
            variables=input.variables, version_id=input_id(input.version_id, models.PromptVersion),
            prompt_id=input_id(input.prompt_id, models.Prompt), environment=input.environment,
            subject_key=input.subject_key, context=input.context,
            priority=(input.priority or Priority.NORMAL).value,
            model_settings=input.model_settings.to_dict() if input.model_settings is not None else None,
            idempotency_key=input.idempotency_key)
        return ExecutionPayload(execution=Execution.from_row(await run(info, service.execute_prompt, req=req)))

    @mutation(
        "Cancel a PENDING or RUNNING execution (WRITE_EXECUTIONS). A RUNNING one's provider stream is stopped by "
        "its worker; the mutation waits up to 3 seconds for that, so it usually returns it CANCELLED (else still "
        "RUNNING with cancelRequestedAt set). Finished executions: CONFLICT.")
    async def cancel_execution(self, info: Info, input: CancelExecutionInput) -> ExecutionPayload:
        row = await run(info, service.cancel_execution, execution_id=input_id(input.id, Execution))
        return ExecutionPayload(execution=Execution.from_row(row))

    @mutation(
        "Rate a finished execution from 1 to 5, with an optional comment. Anyone who may read the project's "
        "executions may rate them (READ_EXECUTIONS).")
    async def submit_feedback(self, info: Info, input: SubmitFeedbackInput) -> FeedbackPayload:
        row = await run(info, service.submit_feedback, execution_id=input_id(input.execution_id, Execution),
                        rating=input.rating, comment=input.comment)
        return FeedbackPayload(feedback=Feedback.from_row(row))
