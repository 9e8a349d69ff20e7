"""Executions: submit a prompt for execution, cancel it, rate its output.

Decisions documented here (and in the GraphQL descriptions):

- **Choosing the version**, exactly one way: ``versionId``; ``promptId`` + ``environment``
  (through the environment's active deployments and the subject's traffic bucket — the same rule
  as ``resolvePrompt``); or ``promptId`` alone (its latest version). Anything else is INVALID.
- **Variables** are checked by rendering at submission: missing, wrongly typed or unknown
  variables (and template errors) are INVALID and nothing is queued. The rendered prompt is
  stored on the execution; workers send exactly that.
- **Model settings**: the version's, overridden key by key by ``input.modelSettings`` (``extra``
  merged key by key too). Provider: the merged ``provider`` or the server's default
  (``PROMPTSTUDIO_DEFAULT_PROVIDER``, echo); model: the merged ``model`` or, for the default
  provider, ``PROMPTSTUDIO_DEFAULT_MODEL``.
- **Archived prompts** cannot be executed (CONFLICT).
- **Backpressure**: at most ``PROMPTSTUDIO_MAX_QUEUED_PER_PROJECT`` executions PENDING or RUNNING
  per project; more is LIMIT_EXCEEDED. Under concurrent submissions the cap may be overshot by
  at most the number of submissions racing each other. The executions an offline experiment queues
  do not count (the cap is for production traffic; an experiment's size has its own limit).
- **Live A/B tests**: an execution whose version was chosen by an environment whose traffic split a
  running experiment owns is a run of that experiment's variant (``experiment_runs.serve_live_run``).
- **Idempotency**: a repeated ``idempotencyKey`` (per project) returns the first execution, even
  when the repeated request differs; concurrent repeats are resolved by the unique index.
- **Queueing**: an execution is run by a job of kind ``execution`` (``app.services.jobs``; its
  worker side is ``app.engine.executions``), queued in the same transaction.
- **Cancelling** a PENDING execution ends it at once (CANCELLED, startedAt = completedAt = now; its
  job removed); a RUNNING one is marked and its worker told (NOTIFY ``ps_cancel``): the worker
  stops the provider stream and ends it CANCELLED. The mutation waits briefly (up to
  ``CANCEL_WAIT_SECONDS``) for that, so it usually returns the CANCELLED execution. Finished
  executions: CONFLICT.
- **Feedback** may be given by anyone who may read the project's executions (READ_EXECUTIONS:
  any member, or an API key with EXECUTIONS_READ/WRITE) — reviewers are often viewers — on a
  finished execution (COMPLETED, FAILED or CANCELLED); rating 1 to 5.
"""
from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import sandbox
from app.db.models import Execution, Feedback, Prompt, PromptVersion
from app.db.models.enums import (
    PRIORITY_RANK,
    TERMINAL_STATUSES,
    ExecutionEventType,
    ExecutionStatus,
    LogLevel,
    Priority,
    PromptStatus,
)
from app.db.models.executions import LIVE_COUNTED
from app.providers.registry import provider_names
from app.settings import Settings
from app.templating import RenderOutcome

from . import experiment_runs, jobs
from .access import Action, require
from .audit import AuditNote
from .deployments import active_deployments, bucket_for, choose
from .errors import ServiceError, conflict, invalid, limit_exceeded, many, not_found
from .execution_events import Events, emit_event, finish, write_log
from .execution_traces import write_execution_trace
from .principal import Principal
from .prompts import content_of
from .tx import Tx, service

#: The kind of the jobs that run executions.
JOB_KIND = "execution"
MAX_IDEMPOTENCY_KEY = 256
MAX_SUBJECT_KEY = 256
MAX_COMMENT = 10_000
#: How long cancelExecution waits for the worker to stop a RUNNING execution.
CANCEL_WAIT_SECONDS = 3.0
CHOOSE_ONE_WAY = ("Choose the version in exactly one way: versionId; or promptId with environment (resolved "
                  "through the deployments); or promptId alone (the latest version).")
_VARIABLE_IN_ERROR = re.compile(r'^variable "([^"]+)"')


@dataclass
class ExecuteRequest:
    """executePrompt's input, IDs decoded (an ID that is not ours is passed as ``uuid.UUID(int=0)``)."""

    variables: Any
    version_id: uuid.UUID | None = None
    prompt_id: uuid.UUID | None = None
    environment: str | None = None
    subject_key: str | None = None
    context: Any = None
    priority: str = Priority.NORMAL.value
    #: Given model settings only (camelCase keys; keys left out or null are not overrides).
    model_settings: dict | None = None
    idempotency_key: str | None = None


# ------------------------------------------------------------------ executePrompt


async def _choose(session: AsyncSession, principal: Principal, note: AuditNote, req: ExecuteRequest):
    """(project, prompt, version or None for "decide later", mode) after the permission check."""
    by_version = req.version_id is not None
    if by_version and req.prompt_id is not None:
        raise invalid(CHOOSE_ONE_WAY + " Both versionId and promptId were given.", ["input", "promptId"])
    if by_version and req.environment is not None:
        raise invalid(CHOOSE_ONE_WAY + " An environment only goes with promptId.", ["input", "environment"])
    if not by_version and req.prompt_id is None:
        raise invalid(CHOOSE_ONE_WAY + " Neither versionId nor promptId was given.", ["input", "promptId"])
    if by_version:
        field = ["input", "versionId"]
        version = await session.get(PromptVersion, req.version_id)
        prompt = await session.get(Prompt, version.prompt_id) if version is not None else None
        if prompt is None:
            raise not_found("No prompt version with this ID.", field)
        project = await require(session, principal, prompt.project_id, Action.WRITE_EXECUTIONS,
                                field=field, what="prompt version", note=note)
        return project, prompt, version
    field = ["input", "promptId"]
    prompt = await session.get(Prompt, req.prompt_id)
    if prompt is None:
        raise not_found("No prompt with this ID.", field)
    project = await require(session, principal, prompt.project_id, Action.WRITE_EXECUTIONS,
                            field=field, what="prompt", note=note)
    return project, prompt, None


async def _version_by_environment(session: AsyncSession, project, prompt: Prompt, environment: str,
                                  subject_key: str | None):
    if environment not in project.environments:
        raise invalid(f"Unknown environment {environment!r}; this project's environments are: "
                      f"{', '.join(project.environments)}.", ["input", "environment"])
    pairs = await active_deployments(session, prompt.id, environment)
    if not pairs:
        raise invalid(f'Nothing of prompt "{prompt.name}" is deployed in {environment}; deploy a version there, '
                      "or execute by versionId, or by promptId alone (the latest version).",
                      ["input", "environment"])
    chosen = choose([d for d, _ in pairs], bucket_for(prompt.id, environment, subject_key))
    version = next(v for d, v in pairs if d is chosen)
    return version, chosen


async def _latest_version(session: AsyncSession, prompt: Prompt) -> PromptVersion:
    version = (await session.execute(
        select(PromptVersion).where(PromptVersion.prompt_id == prompt.id)
        .order_by(PromptVersion.number.desc()).limit(1))).scalar_one_or_none()
    if version is None:
        raise conflict(f'Prompt "{prompt.name}" has no versions yet.', ["input", "promptId"])
    return version


async def _render(settings: Settings, version: PromptVersion, variables: Any) -> dict:
    """The rendered prompt as stored on the execution; INVALID errors when the variables do not fit."""
    if not isinstance(variables, dict):
        raise invalid("variables must be a JSON object of variable names and values, e.g. {\"name\": \"Ada\"}.",
                      ["input", "variables"])
    content = content_of(version)
    outcome = await sandbox.render(settings, content, variables)
    declared = [v.name for v in content.variables] if content.variables else None
    errors: list[ServiceError] = []
    for name in outcome.missing_variables:
        errors.append(invalid(f'variable "{name}" is required but was not given.', ["input", "variables", name]))
    for name in outcome.unknown_variables:
        allowed = ", ".join(declared) if declared else "(none)"
        errors.append(invalid(f'variable "{name}" is not a variable of version {version.number}; its variables '
                              f"are: {allowed}.", ["input", "variables", name]))
    for message in outcome.errors:
        m = _VARIABLE_IN_ERROR.match(message)
        errors.append(invalid(message if message.endswith(".") else message + ".",
                              ["input", "variables", m.group(1)] if m else ["input", "variables"]))
    if errors:
        raise many(errors)
    return rendered_prompt(version, outcome)


def rendered_prompt(version: PromptVersion, outcome: RenderOutcome) -> dict[str, Any]:
    """The rendered prompt as stored on an execution (what the worker sends), from a render without errors."""
    rendered: dict[str, Any] = {"kind": version.kind}
    if outcome.system_prompt:
        rendered["systemPrompt"] = outcome.system_prompt
    if version.kind == "CHAT":
        rendered["messages"] = [{"role": m.role, "content": m.content} for m in outcome.messages or []]
    else:
        rendered["text"] = outcome.text
    return rendered


def merge_model_settings(version: PromptVersion, given: dict | None, settings: Settings,
                         field: list[str] | None = None) -> dict:
    """The version's model settings overridden key by key by ``given`` (``extra`` merged key by key), checked;
    provider and model resolved. Problems are INVALID at ``field`` (``["input", "modelSettings"]``)."""
    base = dict(version.model_settings or {})
    over = {k: v for k, v in (given or {}).items() if v is not None}
    merged = {**base, **over}
    if isinstance(base.get("extra"), dict) and isinstance(over.get("extra"), dict):
        merged["extra"] = {**base["extra"], **over["extra"]}
    errors: list[ServiceError] = []
    field = field or ["input", "modelSettings"]
    temperature, top_p, max_tokens = merged.get("temperature"), merged.get("topP"), merged.get("maxTokens")
    if temperature is not None and not 0 <= temperature <= 2:
        errors.append(invalid(f"temperature must be from 0 to 2; got {temperature}.", [*field, "temperature"]))
    if top_p is not None and not 0 < top_p <= 1:
        errors.append(invalid(f"topP must be above 0 and at most 1; got {top_p}.", [*field, "topP"]))
    if max_tokens is not None and max_tokens < 1:
        errors.append(invalid(f"maxTokens must be 1 or more; got {max_tokens}.", [*field, "maxTokens"]))
    if merged.get("extra") is not None and not isinstance(merged["extra"], dict):
        errors.append(invalid("extra must be a JSON object of provider-specific parameters.", [*field, "extra"]))
    provider = merged.get("provider") or settings.default_provider
    if provider not in provider_names():
        errors.append(invalid(f"Unknown provider {provider!r}; the providers are: {', '.join(provider_names())}.",
                              [*field, "provider"]))
    model = merged.get("model") or (settings.default_model if provider == settings.default_provider else None)
    if not model:
        errors.append(invalid(f"Name the model to call with provider {provider} (modelSettings.model); the "
                              "version names none.", [*field, "model"]))
    if errors:
        raise many(errors)
    merged["provider"], merged["model"] = provider, model
    return merged


async def queued_count(session: AsyncSession, project_id: uuid.UUID) -> int:
    """PENDING + RUNNING executions of a project, less the ones an offline experiment queued (one count on the
    small partial index of live ones)."""
    return int((await session.execute(
        select(func.count()).select_from(Execution)
        .where(Execution.project_id == project_id, text(LIVE_COUNTED)))).scalar_one())


async def _by_idempotency_key(session: AsyncSession, project_id: uuid.UUID, key: str) -> Execution | None:
    return (await session.execute(select(Execution).where(Execution.project_id == project_id,
                                                          Execution.idempotency_key == key))).scalar_one_or_none()


def _check_keys(req: ExecuteRequest) -> None:
    errors = []
    if req.idempotency_key is not None and not 1 <= len(req.idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        errors.append(invalid(f"idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY} characters.",
                              ["input", "idempotencyKey"]))
    if req.subject_key is not None and not 1 <= len(req.subject_key) <= MAX_SUBJECT_KEY:
        errors.append(invalid(f"subjectKey must be 1 to {MAX_SUBJECT_KEY} characters.", ["input", "subjectKey"]))
    if req.priority not in PRIORITY_RANK:
        errors.append(invalid(f"priority must be one of {', '.join(PRIORITY_RANK)}.", ["input", "priority"]))
    if errors:
        raise many(errors)


@service("execution.create")
async def execute_prompt(tx: Tx, *, req: ExecuteRequest) -> Execution:
    """Queue an execution (PENDING) and wake the workers; see the module docstring for the rules."""
    session, note, principal, settings = tx.session, tx.note, tx.principal, tx.settings
    note.about(Execution)
    project, prompt, version = await _choose(session, principal, note, req)
    _check_keys(req)
    if req.idempotency_key is not None:
        first = await _by_idempotency_key(session, project.id, req.idempotency_key)
        if first is not None:
            note.resource_id = first.id
            note.details = {"idempotencyKey": req.idempotency_key, "replayed": True}
            return first
    if prompt.status == PromptStatus.ARCHIVED.value:
        raise conflict(f'Prompt "{prompt.name}" is archived; set it back to DRAFT or PUBLISHED to execute it.',
                       ["input", "versionId" if req.version_id is not None else "promptId"])
    deployment = None
    if version is None and req.environment is not None:
        version, deployment = await _version_by_environment(session, project, prompt, req.environment,
                                                            req.subject_key)
    elif version is None:
        version = await _latest_version(session, prompt)
    render_started = time.monotonic()
    rendered = await _render(settings, version, req.variables)
    render_ms = int((time.monotonic() - render_started) * 1000)
    model_settings = merge_model_settings(version, req.model_settings, settings)
    row = Execution(
        project_id=project.id, prompt_id=prompt.id, version_id=version.id,
        deployment_id=deployment.id if deployment is not None else None,
        environment=req.environment if req.version_id is None else None, subject_key=req.subject_key,
        status=ExecutionStatus.PENDING.value, priority=PRIORITY_RANK[Priority(req.priority)],
        variables=req.variables, model_settings=model_settings, rendered_prompt=rendered, render_ms=render_ms,
        provider=model_settings["provider"], model=model_settings["model"],
        max_attempts=settings.max_attempts, idempotency_key=req.idempotency_key,
        requested_by_id=principal.user_id, api_key_id=principal.api_key_id,
    )
    if req.context is not None:
        row.context = req.context
    if req.idempotency_key is not None:
        try:
            async with session.begin_nested():
                session.add(row)
                await session.flush()
        except IntegrityError:
            first = await _by_idempotency_key(session, project.id, req.idempotency_key)
            if first is None:
                raise
            note.resource_id = first.id
            note.details = {"idempotencyKey": req.idempotency_key, "replayed": True}
            return first
    else:
        session.add(row)
        await session.flush()
    await experiment_runs.serve_live_run(session, row)
    events = Events()
    events.event(row, ExecutionEventType.QUEUED.value)
    events.log(row, LogLevel.DEBUG,
               f"queued: version {version.number} of \"{prompt.name}\""
               + (f" (deployed in {req.environment})" if deployment is not None else "")
               + f", {row.provider}/{row.model}, priority {req.priority}",
               {"versionNumber": version.number, "environment": row.environment,
                "deploymentId": str(deployment.id) if deployment is not None else None})
    await events.record(session)
    await jobs.enqueue(session, JOB_KIND, row.id, project_id=project.id, priority=row.priority,
                       max_attempts=row.max_attempts)
    # The cap, checked last so that the per-project lock that serialises racing requests (held to commit, so
    # they cannot overshoot it) is held for this count, the audit row and the commit only. The count includes
    # this execution.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                          {"key": f"execution-cap:{project.id}"})
    if await queued_count(session, project.id) > settings.max_queued_per_project:
        raise limit_exceeded(
            f"This project already has {settings.max_queued_per_project} executions queued or running, the "
            "most allowed (PROMPTSTUDIO_MAX_QUEUED_PER_PROJECT); try again when some have finished.")
    note.resource_id = row.id
    note.details = {"promptId": str(prompt.id), "versionId": str(version.id), "environment": row.environment,
                    "provider": row.provider, "model": row.model, "priority": req.priority}
    if req.idempotency_key is not None:
        note.details["idempotencyKey"] = req.idempotency_key
    return row


# ------------------------------------------------------------------ cancelExecution


async def _visible_execution(session: AsyncSession, principal: Principal, note: AuditNote,
                             execution_id: uuid.UUID | None, action: Action, field: list[str],
                             *, lock: bool = False) -> Execution:
    stmt = select(Execution).where(Execution.id == execution_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).scalar_one_or_none() if execution_id is not None else None
    if row is None:
        raise not_found("No execution with this ID.", field)
    await require(session, principal, row.project_id, action, field=field, what="execution", note=note)
    return row


@service("execution.cancel")
async def cancel_execution(tx: Tx, *, execution_id: uuid.UUID | None,
                           wait_seconds: float = CANCEL_WAIT_SECONDS) -> Execution:
    """Cancel a PENDING or RUNNING execution (WRITE_EXECUTIONS); see the module docstring."""
    session, note, principal = tx.session, tx.note, tx.principal
    note.about(Execution, execution_id)
    row = await _visible_execution(session, principal, note, execution_id, Action.WRITE_EXECUTIONS,
                                   ["input", "id"], lock=True)
    note.details = {"status": row.status}
    if row.status in {s.value for s in TERMINAL_STATUSES}:
        raise conflict(f"This execution has already finished ({row.status}); only PENDING or RUNNING "
                       "executions can be cancelled.", ["input", "id"])
    now = (await session.execute(select(func.now()))).scalar_one()
    row.updated_at = now
    if row.cancel_requested_at is None:
        row.cancel_requested_at = now
    job = await jobs.find(session, JOB_KIND, row.id, lock=True)
    if row.status == ExecutionStatus.PENDING.value:
        finish(row, ExecutionStatus.CANCELLED, now)
        await session.flush()
        if job is not None:
            await jobs.remove(session, job)
        await write_log(session, row, LogLevel.INFO, "cancelled before it started")
        await emit_event(session, row, ExecutionEventType.CANCELLED.value)
        await write_execution_trace(session, row)
        await experiment_runs.execution_ended(session, row, tx.settings)
    else:
        await session.flush()
        await write_log(session, row, LogLevel.INFO, "cancel requested; telling the worker to stop")
        if job is not None:
            await jobs.request_cancel(session, job, now)
    tx.after_commit(lambda row: _wait_stopped(tx.sessionmaker, row, wait_seconds))
    return row


async def _wait_stopped(sessionmaker: async_sessionmaker[AsyncSession], row: Execution,
                        wait_seconds: float) -> Execution:
    """After a cancel of a RUNNING execution: wait (a while) for its worker to stop it."""
    if row.status != ExecutionStatus.RUNNING.value or wait_seconds <= 0:
        return row
    deadline = asyncio.get_running_loop().time() + wait_seconds
    fresh: Execution | None = row
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        async with sessionmaker() as session:
            fresh = await session.get(Execution, row.id)
        if fresh is None or fresh.status != ExecutionStatus.RUNNING.value:
            return fresh or row
    return fresh or row


# ------------------------------------------------------------------ submitFeedback


@service("feedback.create")
async def submit_feedback(tx: Tx, *, execution_id: uuid.UUID | None, rating: int,
                          comment: str | None) -> Feedback:
    """Rate a finished execution 1 to 5, with an optional comment (READ_EXECUTIONS)."""
    session, note, principal = tx.session, tx.note, tx.principal
    note.about(Feedback)
    row = await _visible_execution(session, principal, note, execution_id, Action.READ_EXECUTIONS,
                                   ["input", "executionId"])
    errors = []
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        errors.append(invalid(f"rating must be a whole number from 1 to 5; got {rating}.", ["input", "rating"]))
    text = comment.strip() if isinstance(comment, str) else None
    if text is not None and len(text) > MAX_COMMENT:
        errors.append(invalid(f"comment is too long ({len(text)} characters; at most {MAX_COMMENT}).",
                              ["input", "comment"]))
    if errors:
        raise many(errors)
    if row.status not in {s.value for s in TERMINAL_STATUSES}:
        raise conflict(f"This execution is {row.status}; feedback is for finished executions.",
                       ["input", "executionId"])
    feedback = Feedback(execution_id=row.id, rating=rating, comment=text or None, user_id=principal.user_id,
                        api_key_id=principal.api_key_id)
    session.add(feedback)
    await session.flush()
    await experiment_runs.feedback_given(session, row)
    await session.refresh(feedback)
    note.resource_id = feedback.id
    note.details = {"executionId": str(row.id), "rating": rating}
    return feedback


__all__ = ["ExecuteRequest", "cancel_execution", "execute_prompt", "queued_count", "submit_feedback"]


