"""Running one claimed execution: call the provider with streaming, record output, usage, cost,
validations and logs, and finish it COMPLETED, FAILED or CANCELLED (and its job removed).

Two coroutines cooperate. The *producer* only reads the provider's stream into memory (so it can
be cancelled at any moment — that is how a cancel stops a stream promptly). The *pump* (the run
itself) is the only one that writes: it flushes the text gathered so far as one OUTPUT_DELTA
every ``FLUSH_SECONDS`` or ``FLUSH_CHARS`` characters (output column and event in one
transaction), and writes the final state. Every write is conditional on this worker still
holding the execution's job (``jobs.held_by``): a worker whose lease was taken away stops
without writing.

Measurements: ``latencyMs`` runs from the start of the first provider call to the end of the
stream (provider retries and their back-off included: it is what the caller waited);
``timeToFirstTokenMs`` from the same start to the first piece of text.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import sandbox
from app.db.models import Execution, Job, Prompt, PromptVersion, Validation
from app.db.models.enums import ExecutionEventType, ExecutionStatus, JobStatus, LogLevel
from app.providers import (
    Credential,
    ProviderError,
    ProviderRequest,
    TextDelta,
    UsageReport,
    count_message_tokens,
    count_tokens,
    get_provider,
    stream_with_retries,
)
from app.rules.validation import ValidationOutcome, ValidationResultData, ValidationSpec
from app.services import crypto, experiment_runs, jobs
from app.services.credentials import MissingCredential, credential_for
from app.services.execution_events import Events, finish
from app.services.execution_traces import CallRecord, Retry, ValidationRecord, write_execution_trace
from app.services.models import price_call
from app.services.traces import SpanUsage
from app.settings import Settings

from .running import STOP_CANCEL, STOP_LEASE_LOST, STOP_SHUTDOWN

log = logging.getLogger("promptstudio.engine")

FLUSH_SECONDS = 0.05
FLUSH_CHARS = 256



class _Fail(Exception):
    """The execution cannot run (bad settings, missing credential): FAILED with this message."""


@dataclass
class Plan:
    provider: Any
    provider_name: str
    model: str
    request: ProviderRequest
    credential: Credential


def _parameters(request: ProviderRequest) -> dict[str, Any]:
    """The request's settings, for the call's span (not its messages: they are the trace's input)."""
    given = {"model": request.model, "temperature": request.temperature, "max_tokens": request.max_tokens,
             "top_p": request.top_p, "stop": request.stop}
    return {k: v for k, v in given.items() if v is not None}


def build_request(execution: Execution, settings: Settings) -> ProviderRequest:
    """The provider request of an execution: its rendered prompt and merged model settings.

    A TEXT prompt goes as one user message (its rendered text), a CHAT prompt as its rendered
    messages; the rendered system prompt goes as ``system``.
    """
    rendered = execution.rendered_prompt or {}
    ms = execution.model_settings or {}
    if rendered.get("kind") == "CHAT":
        messages = [{"role": m["role"], "content": m["content"]} for m in rendered.get("messages") or []]
    else:
        messages = [{"role": "user", "content": rendered.get("text") or ""}]
    return ProviderRequest(
        model=execution.model or ms.get("model") or settings.default_model,
        messages=messages,
        system=rendered.get("systemPrompt"),
        temperature=ms.get("temperature"),
        max_tokens=ms.get("maxTokens"),
        top_p=ms.get("topP"),
        stop=ms.get("stop"),
        extra=ms.get("extra"),
        timeout=settings.provider_timeout_seconds,
    )


@dataclass
class Run:
    """One attempt at one execution, by one worker holding its job."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    worker_id: str
    execution: Execution
    job: Job
    #: The execution kind's hooks (to hand the job back when the worker stops).
    hooks: jobs.JobHooks
    stop_reason: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # stream state (written by the producer, read by the pump)
    pending: list[str] = field(default_factory=list)
    pending_chars: int = 0
    pending_since: float | None = None
    pending_logs: list[tuple[str, str, dict | None]] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    usage: UsageReport | None = None
    retries: int = 0
    retry_events: list[Retry] = field(default_factory=list)
    validation_record: ValidationRecord | None = None
    call_started: float = 0.0
    call_started_at: datetime | None = None
    first_token: float | None = None
    first_token_logged: bool = False
    ended: float | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.execution.id

    def request_stop(self, reason: str) -> None:
        """Ask the run to stop (cancel requested, lease lost, worker stopping); the first reason wins."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.wake.set()

    def _log(self, level: str, message: str, metadata: dict | None) -> None:
        """A log for the next write (a flush, or the final state): like text, it waits up to FLUSH_SECONDS, so a
        fast call's logs go out with its final state in one transaction."""
        self.pending_logs.append((level, message, metadata))
        if self.pending_since is None:
            self.pending_since = time.monotonic()

    # ------------------------------------------------------------------ the run

    async def execute(self) -> None:
        try:
            await self._execute()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, or the database went away: record what we can
            log.exception("execution %s: unexpected error in the worker", self.id)
            try:
                await self._finish_failed(f"the worker hit an unexpected error: {type(exc).__name__}: {exc}")
            except Exception:
                log.exception("execution %s: could not record the failure; its lease will expire", self.id)

    async def _execute(self) -> None:
        row = self.execution
        try:
            plan = await self._plan()
        except _Fail as exc:
            await self._finish_failed(str(exc))
            return
        self._log(LogLevel.INFO.value, f"calling {plan.provider_name} model {plan.model} (streaming)",
                  {"provider": plan.provider_name, "model": plan.model, "baseUrl": plan.credential.base_url})
        self.call_started = time.monotonic()
        self.call_started_at = datetime.now(UTC)
        producer = asyncio.create_task(self._produce(plan), name=f"stream {row.id}")
        stream_ended = False
        try:
            await self._pump(producer)
            stream_ended = producer.done()
        finally:
            if not producer.done():
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
        error = None if producer.cancelled() else producer.exception()
        self.ended = self.ended or time.monotonic()
        if self.stop_reason == STOP_LEASE_LOST:
            log.warning("execution %s: lease lost; another worker has it now", row.id)
            return
        if not stream_ended:  # stopped mid-stream (a stream that had ended is finished normally)
            if self.stop_reason == STOP_SHUTDOWN:
                await jobs.release(self.sessionmaker, self.job.id, self.worker_id, self.hooks, "the worker is stopping")
            else:
                await self._finish(ExecutionStatus.CANCELLED, plan, error=None)
            return
        if error is None:
            await self._finish(ExecutionStatus.COMPLETED, plan, error=None)
        elif isinstance(error, ProviderError):
            message = error.message
            if error.retryable and self.parts:
                message += " (not retried: part of the output had already streamed)"
            elif error.retryable and self.retries:
                message += f" (gave up after {self.retries} retr{'ies' if self.retries != 1 else 'y'})"
            await self._finish(ExecutionStatus.FAILED, plan, error=message)
        else:
            raise error

    async def _plan(self) -> Plan:
        row = self.execution
        name = row.provider or self.settings.default_provider
        try:
            provider = get_provider(name)
        except ProviderError as exc:
            raise _Fail(exc.message) from None
        request = build_request(row, self.settings)
        async with self.sessionmaker() as session:
            try:
                credential = await credential_for(session, self.settings, row.project_id, name)
            except crypto.DecryptionError as exc:
                raise _Fail(f"the stored {name} credential cannot be decrypted: {exc}") from None
            except MissingCredential as exc:
                raise _Fail(str(exc)) from None
        kind = (row.rendered_prompt or {}).get("kind", "TEXT")
        self._log(LogLevel.DEBUG.value,
                  f"prepared the {kind} prompt rendered at submission: {len(request.messages)} "
                  f"message{'s' if len(request.messages) != 1 else ''}"
                  + (" and a system prompt" if request.system else ""), None)
        return Plan(provider, name, request.model, request, credential)

    async def _produce(self, plan: Plan) -> None:
        async def on_retry(error: ProviderError, number: int, delay: float) -> None:
            self.retries = number
            self.retry_events.append(Retry(datetime.now(UTC), error.message, error.status, delay))
            self._log(LogLevel.WARN.value,
                      f"{plan.provider_name} call failed: {error.message}; retry {number} of "
                      f"{self.settings.provider_retries} in {delay:.1f} s",
                      {"status": error.status, "retryAfter": error.retry_after})
            self.wake.set()

        events = stream_with_retries(plan.provider, plan.request, plan.credential,
                                     retries=self.settings.provider_retries,
                                     backoff_max=self.settings.provider_backoff_max_seconds, on_retry=on_retry)
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    if not event.text:
                        continue
                    now = time.monotonic()
                    if self.first_token is None:
                        self.first_token = now
                    if self.pending_since is None:
                        self.pending_since = now
                    self.pending.append(event.text)
                    self.parts.append(event.text)
                    self.pending_chars += len(event.text)
                    self.wake.set()
                elif isinstance(event, UsageReport):
                    self.usage = event
        finally:
            await events.aclose()
            self.ended = time.monotonic()
            self.wake.set()

    async def _pump(self, producer: asyncio.Task) -> None:
        """Flush gathered text and logs until the stream ends or the run is told to stop."""
        while True:
            self.wake.clear()
            if self.stop_reason is not None:
                return
            done = producer.done()
            if done:
                return  # what is still pending goes out with the final state
            since = self.pending_since
            waiting = bool(self.pending or self.pending_logs) and since is not None
            due = waiting and since is not None and (
                self.pending_chars >= FLUSH_CHARS or time.monotonic() - since >= FLUSH_SECONDS)
            if due:
                await self._flush()
                continue
            timeout = None
            if waiting and since is not None:
                timeout = max(0.0, since + FLUSH_SECONDS - time.monotonic())
            waiter = asyncio.ensure_future(self.wake.wait())
            try:
                await asyncio.wait({producer, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()

    def _take_pending(self) -> tuple[str, list[tuple[str, str, dict | None]]]:
        delta = "".join(self.pending)
        logs = self.pending_logs
        self.pending, self.pending_chars, self.pending_since, self.pending_logs = [], 0, None, []
        return delta, logs

    def _ttft_ms(self) -> int | None:
        return None if self.first_token is None else int((self.first_token - self.call_started) * 1000)

    def _write_pending(self, events: Events, delta: str, logs) -> None:
        for level, message, meta in logs:
            events.log(self.id, level, message, meta)
        if delta and not self.first_token_logged:
            self.first_token_logged = True
            events.log(self.id, LogLevel.DEBUG, f"first token after {self._ttft_ms()} ms")
        if delta:
            events.event(self.id, ExecutionEventType.OUTPUT_DELTA.value, delta=delta)

    async def _flush(self) -> None:
        delta, logs = self._take_pending()
        values: dict[str, Any] = {"updated_at": func.now()}
        if delta:
            values["output"] = func.coalesce(Execution.output, "") + delta
            if not self.first_token_logged:
                values["time_to_first_token_ms"] = self._ttft_ms()
        async with self.sessionmaker() as session, session.begin():
            held = (await session.execute(
                update(Execution)
                .where(Execution.id == self.id, Execution.status == ExecutionStatus.RUNNING.value,
                       jobs.held_by(self.job.id, self.worker_id))
                .values(**values).returning(Execution.cancel_requested_at)
                .execution_options(synchronize_session=False))).first()
            if held is None:
                self.request_stop(STOP_LEASE_LOST)
                return
            events = Events()
            self._write_pending(events, delta, logs)
            await events.record(session)
        if held[0] is not None:
            self.request_stop(STOP_CANCEL)

    # ------------------------------------------------------------------ the end

    async def _locked_row(self, session: AsyncSession) -> tuple[Execution, datetime, tuple[str, int]] | None:
        """The execution, locked, while this worker still holds its job (which is locked too), with the
        transaction's now() and its prompt's name and version number (for its trace); else None. One statement."""
        found = (await session.execute(
            select(Execution, func.now(), Prompt.name, PromptVersion.number)
            .join(Job, (Job.subject_id == Execution.id) & (Job.id == self.job.id))
            .join(PromptVersion, PromptVersion.id == Execution.version_id)
            .join(Prompt, Prompt.id == PromptVersion.prompt_id)
            .where(Execution.id == self.id, Execution.status == ExecutionStatus.RUNNING.value,
                   Job.worker_id == self.worker_id, Job.status == JobStatus.RUNNING.value)
            .with_for_update(of=[Execution.__table__, Job.__table__])
            .execution_options(populate_existing=True))).first()
        if found is None:
            return None
        return found[0], found[1], (found[2], found[3])

    async def _end(self, session: AsyncSession, row: Execution, status: ExecutionStatus, now: datetime) -> None:
        """The execution's final state, and its job removed, in one transaction."""
        finish(row, status, now)
        row.updated_at = now
        await session.flush()
        await jobs.remove(session, self.job)

    async def _finish_failed(self, message: str) -> None:
        """FAILED before any provider call (nothing was streamed)."""
        delta, logs = self._take_pending()
        async with self.sessionmaker() as session, session.begin():
            locked = await self._locked_row(session)
            if locked is None:
                return
            row, now, names = locked
            events = Events()
            self._write_pending(events, delta, logs)
            row.error = message
            await self._end(session, row, ExecutionStatus.FAILED, now)
            events.log(row, LogLevel.ERROR, message)
            events.event(row, ExecutionEventType.FAILED.value)
            await events.record(session)
            await write_execution_trace(session, row, names=names)
            await experiment_runs.execution_ended(session, row, self.settings)

    async def _finish(self, status: ExecutionStatus, plan: Plan, *, error: str | None) -> None:
        output = "".join(self.parts)
        outcome = None
        validations: list[Validation] = []
        if status == ExecutionStatus.COMPLETED:
            async with self.sessionmaker() as session:
                validations = list((await session.execute(
                    select(Validation).where(Validation.prompt_id == self.execution.prompt_id,
                                             Validation.is_active.is_(True))
                    .order_by(Validation.created_at, Validation.id))).scalars())
            specs = [ValidationSpec(id=v.id, name=v.name, type=v.type, config=v.config) for v in validations]
            outcome = await self._validate(output, specs)
            if outcome is None:  # told to stop while the output was being checked
                if self.stop_reason == STOP_LEASE_LOST:
                    return
                if self.stop_reason == STOP_SHUTDOWN:
                    await jobs.release(self.sessionmaker, self.job.id, self.worker_id, self.hooks,
                                       "the worker is stopping")
                    return
                status = ExecutionStatus.CANCELLED
        delta, logs = self._take_pending()
        async with self.sessionmaker() as session, session.begin():
            locked = await self._locked_row(session)
            if locked is None:
                log.warning("execution %s: lease lost before it could be finished", self.id)
                return
            # Everything below is one flush of the row, one statement for the events and logs, the job's
            # removal, the price lookup and the trace: the whole end in a handful of round trips.
            row, now, names = locked
            events = Events()
            if delta:
                row.output = (row.output or "") + delta
                if row.time_to_first_token_ms is None:
                    row.time_to_first_token_ms = self._ttft_ms()
            self._write_pending(events, delta, logs)
            latency = int(((self.ended or time.monotonic()) - self.call_started) * 1000)
            usage = await self._record_usage(session, events, row, plan, output, latency, status)
            if outcome is not None:
                self._record_validations(events, row, outcome)
            if status == ExecutionStatus.COMPLETED and row.output is None:
                row.output = ""  # the model answered with nothing
            row.latency_ms = latency
            row.error = error
            await self._end(session, row, status, now)
            if status == ExecutionStatus.COMPLETED:
                events.log(row, LogLevel.INFO, f"completed in {latency} ms",
                           {"latencyMs": latency, "timeToFirstTokenMs": row.time_to_first_token_ms})
                events.event(row, ExecutionEventType.COMPLETED.value)
            elif status == ExecutionStatus.CANCELLED:
                events.log(row, LogLevel.INFO, "cancelled as requested; the provider stream was stopped")
                events.event(row, ExecutionEventType.CANCELLED.value)
            else:
                events.log(row, LogLevel.ERROR, error or "failed")
                events.event(row, ExecutionEventType.FAILED.value)
            await events.record(session)
            call = CallRecord(provider=plan.provider_name, model=plan.model,
                              started_at=self.call_started_at or now, latency_ms=latency,
                              time_to_first_token_ms=row.time_to_first_token_ms, usage=usage, error=error,
                              retries=self.retry_events, parameters=_parameters(plan.request))
            await write_execution_trace(session, row, call=call, validation=self.validation_record, names=names)
            await experiment_runs.execution_ended(session, row, self.settings)

    async def _validate(self, output: str, specs: list[ValidationSpec]) -> ValidationOutcome | None:
        """The validations applied to the output, in the sandbox; None when the run was told to stop
        meanwhile (a cancel interrupts a slow check: its sandbox worker is killed)."""
        if not specs:
            return ValidationOutcome("SKIPPED", [], None)
        started = datetime.now(UTC)
        outcome = await self._apply_rules(output, specs)
        if outcome is not None:
            self.validation_record = ValidationRecord(
                started, datetime.now(UTC), outcome.status,
                [{"name": r.name, "passed": r.passed, "message": r.message} for r in outcome.results])
        return outcome

    async def _apply_rules(self, output: str, specs: list[ValidationSpec]) -> ValidationOutcome | None:
        check = asyncio.ensure_future(sandbox.apply_rules(self.settings, output, specs))
        stopped = asyncio.ensure_future(self._stopped())
        try:
            await asyncio.wait({check, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (check, stopped):
                task.cancel()
            await asyncio.gather(check, stopped, return_exceptions=True)
        if not check.cancelled() and check.exception() is None:
            return check.result()
        if self.stop_reason is not None:
            return None
        error = check.exception()
        if not isinstance(error, sandbox.SandboxError):
            raise error if error is not None else RuntimeError("the validations were cancelled")
        # The check itself could not finish (too slow, too hungry): every validation fails, saying why.
        return ValidationOutcome("FAILED", [ValidationResultData(s.id, s.name, False, f"could not be applied: "
                                                                                      f"{error.message}")
                                            for s in specs], None)

    async def _stopped(self) -> None:
        while self.stop_reason is None:
            self.wake.clear()
            await self.wake.wait()

    async def _record_usage(self, session: AsyncSession, events: Events, row: Execution, plan: Plan, output: str,
                            latency: int, status: ExecutionStatus) -> SpanUsage | None:
        """Tokens (reported or counted) and cost at the prices in force, on the execution and in its logs;
        returned for the call's span, which records them (its ``llm_usage`` row).

        A call that failed or was cancelled before any text reached us has no usage: the provider
        bills nothing for it.
        """
        usage = self.usage
        if usage is None and not output:
            return None
        if usage is not None and usage.reported:
            how = f"reported by {plan.provider_name}"
            input_tokens, output_tokens, cached, reported = (usage.input_tokens, usage.output_tokens,
                                                             usage.cached_input_tokens, True)
        else:
            if usage is not None:
                input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
            else:
                input_tokens = count_message_tokens(plan.request.messages, plan.request.system)
                output_tokens = count_tokens(output)
            cached, reported = 0, False
            why = "it reports none" if status == ExecutionStatus.COMPLETED else "the call did not finish"
            how = f"counted by Prompt Studio ({plan.provider_name} usage unavailable: {why})"
            if plan.provider_name == "echo":
                how = "counted by Prompt Studio (echo has no tokenizer)"
        row.input_tokens, row.output_tokens = input_tokens, output_tokens
        events.log(row, LogLevel.INFO, f"usage: {input_tokens} input + {output_tokens} output tokens, {how}",
                   {"inputTokens": input_tokens, "outputTokens": output_tokens, "cachedInputTokens": cached,
                    "reported": reported})
        priced = await price_call(session, plan.provider_name, plan.model, input_tokens, output_tokens, cached,
                                  self.call_started_at or datetime.now(UTC))
        config, cost = priced.config, priced.cost
        span_usage = SpanUsage(provider=plan.provider_name, model=plan.model, input_tokens=input_tokens,
                               output_tokens=output_tokens, cached_input_tokens=cached, latency_ms=latency,
                               reported=reported, cost=cost, model_config_id=config.id if config else None,
                               prompt_id=row.prompt_id, version_id=row.version_id, execution_id=row.id)
        if config is None or cost is None:
            row.cost_usd = None
            events.log(row, LogLevel.WARN,
                       f"no price for {plan.provider_name}/{plan.model}: cost left empty (a superuser can add "
                       "one with upsertModelConfig)", {"provider": plan.provider_name, "model": plan.model})
            return span_usage
        row.cost_usd = cost.total_usd
        events.log(row, LogLevel.INFO,
                   f"cost ${cost.total_usd} at {config.provider}/{config.model_id} prices effective from "
                   f"{config.effective_from.date().isoformat()}",
                   {"inputCostUsd": str(cost.input_usd), "outputCostUsd": str(cost.output_usd),
                    "totalCostUsd": str(cost.total_usd), "modelConfigId": str(config.id)})
        return span_usage

    def _record_validations(self, events: Events, row: Execution, outcome) -> None:
        row.validation_status = outcome.status
        row.validation_results = [
            {"validationId": str(r.validation_id) if r.validation_id is not None else None, "name": r.name,
             "passed": r.passed, "message": r.message} for r in outcome.results]
        if outcome.validated_output is not None:
            row.validated_output = outcome.validated_output
        if outcome.status == "SKIPPED":
            events.log(row, LogLevel.DEBUG, "no active validations")
            return
        for r in outcome.results:
            if r.passed:
                events.log(row, LogLevel.INFO, f"validation {r.name!r} passed", {"validationId": str(r.validation_id)})
            else:
                events.log(row, LogLevel.WARN, f"validation {r.name!r} failed: {r.message}",
                           {"validationId": str(r.validation_id)})
        passed = sum(r.passed for r in outcome.results)
        events.log(row, LogLevel.INFO if outcome.status == "PASSED" else LogLevel.WARN,
                   f"validation {outcome.status}: {passed} of {len(outcome.results)} passed")
