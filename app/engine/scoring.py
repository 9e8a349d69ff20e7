"""The handler of "experiment_score" jobs: scoring one experiment run whose execution completed.

The run's output is scored by every evaluator of its experiment, side by side: the evaluators that
are rules (EXACT_MATCH, CONTAINS, REGEX, JSON_VALID, JSON_SCHEMA, JMESPATH, LEVENSHTEIN, LATENCY, COST)
in one sandbox task — their patterns, schemas and expressions are written by users; when that task runs
out of time or memory, each is applied on its own, so only the runaway one goes without a score — and each
LLM_JUDGE as a model call through the providers (the project's credential, retries as executions
have them). The judge answers JSON (``app.rules.evaluators.parse_judge_reply``); its call is a span
(LLM) of the run's execution's trace, written by ``write_spans`` with its usage, so its tokens and cost
are in ``llm_usage`` like any model call's, and its cost is on its score too.

Then, in one transaction that still holds the job: the judges' spans, the scores (and what could not be
scored, with why), the run COMPLETED, the job removed (``experiment_runs.record_scores``). A run told
to stop (its experiment cancelled) ends CANCELLED; a worker that stops hands the job back; a worker
whose lease was lost writes nothing.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import sandbox
from app.db.models import DatasetItem, Evaluator, Execution, ExperimentEvaluator, ExperimentRun, Job, Trace
from app.db.models.enums import ExecutionStatus, SpanKind, SpanStatus
from app.providers import (
    ProviderError,
    ProviderRequest,
    TextDelta,
    UsageReport,
    count_message_tokens,
    count_tokens,
    get_provider,
    stream_with_retries,
)
from app.rules.evaluators import (
    LLM_JUDGE,
    EvalInput,
    EvaluatorSpec,
    JudgeReplyError,
    ScoreData,
    judge_messages,
    judge_passed,
    parse_judge_reply,
)
from app.services import crypto, experiment_runs, jobs
from app.services.credentials import MissingCredential, credential_for
from app.services.execution_traces import trace_id_of
from app.services.experiment_runs import NewScore
from app.services.models import price_call
from app.services.traces import SpanRecord, SpanUsage, write_spans
from app.settings import Settings

from .running import STOP_LEASE_LOST, STOP_SHUTDOWN

log = logging.getLogger("promptstudio.engine")

#: Characters of the judge's input and reply kept in its span's attributes.
MAX_SPAN_VALUE = 32_768


@dataclass
class Subject:
    """What scoring a run needs, read once when its job is claimed."""

    run: ExperimentRun
    evaluators: list[Evaluator]
    expected: str | None
    execution_id: Any
    project_id: Any
    #: The span id of the root of the execution's trace (the judges' spans hang under it), when known.
    root_span_id: str | None


@dataclass
class Judged:
    score: NewScore | None
    error: str | None
    span: SpanRecord


class ScoringHandler:
    kind = experiment_runs.SCORE_JOB_KIND

    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]):
        self.settings = settings
        self.sessionmaker = sessionmaker

    async def load(self, job: Job) -> Subject | None:
        async with self.sessionmaker() as session:
            run = await session.get(ExperimentRun, job.subject_id)
            if run is None:
                return None
            evaluators = list((await session.execute(
                select(Evaluator).join(ExperimentEvaluator, ExperimentEvaluator.evaluator_id == Evaluator.id)
                .where(ExperimentEvaluator.experiment_id == run.experiment_id)
                .order_by(ExperimentEvaluator.position))).scalars())
            expected = (await session.execute(select(DatasetItem.expected_output)
                                              .where(DatasetItem.id == run.dataset_item_id))).scalar_one_or_none() \
                if run.dataset_item_id is not None else None
            execution = (await session.execute(select(Execution.id, Execution.project_id)
                                               .where(Execution.experiment_run_id == run.id))).first()
            execution_id = execution[0] if execution is not None else None
            root = None
            if execution is not None:
                root = (await session.execute(select(Trace.root_span_id).where(
                    Trace.project_id == execution[1], Trace.trace_id == trace_id_of(execution[0]))
                )).scalar_one_or_none()
        return Subject(run, evaluators, expected, execution_id, job.project_id, root)

    def start(self, job: Job, subject: Subject, worker_id: str) -> ScoringRun:
        return ScoringRun(self.settings, self.sessionmaker, worker_id, job, subject, self)

    # ------------------------------------------------------------------ queue hooks

    async def claimed(self, session: AsyncSession, job: Job) -> bool:
        status = (await session.execute(select(ExperimentRun.status).where(ExperimentRun.id == job.subject_id))
                  ).scalar_one_or_none()
        return status == ExecutionStatus.RUNNING.value  # gone, or cancelled meanwhile: nothing to score

    async def requeued(self, session: AsyncSession, job: Job, reason: str) -> None:
        log.info("scoring of run %s: %s", job.subject_id, reason)

    async def gave_up(self, session: AsyncSession, job: Job, message: str) -> None:
        log.warning("scoring of run %s %s", job.subject_id, message)
        await experiment_runs.scoring_stopped(session, job.subject_id, ExecutionStatus.COMPLETED.value,
                                              f"scoring {message}")

    async def cancelled(self, session: AsyncSession, job: Job, reason: str) -> None:
        await experiment_runs.scoring_stopped(session, job.subject_id, ExecutionStatus.CANCELLED.value,
                                              f"scoring stopped: {reason}")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SPAN_VALUE else text[:MAX_SPAN_VALUE] + f"… [cut: {len(text)} characters in all]"


@dataclass
class ScoringRun:
    """One attempt at scoring one run, by one worker holding its job."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    worker_id: str
    job: Job
    subject: Subject
    hooks: ScoringHandler
    stop_reason: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.wake.set()

    async def execute(self) -> None:
        try:
            await self._execute()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("scoring of run %s: unexpected error", self.subject.run.id)
            try:
                await self._stop(ExecutionStatus.COMPLETED.value,
                                 f"scoring hit an unexpected error: {type(exc).__name__}: {exc}")
            except Exception:
                log.exception("scoring of run %s: could not record the failure; its lease will expire",
                              self.subject.run.id)

    async def _execute(self) -> None:
        work = asyncio.ensure_future(self._score())
        stopped = asyncio.ensure_future(self._stopped())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, stopped):
                task.cancel()
            await asyncio.gather(work, stopped, return_exceptions=True)
        if self.stop_reason is not None or work.cancelled():
            await self._stopped_early()
            return
        error = work.exception()
        if error is not None:
            raise error
        scores, errors, spans = work.result()
        async with self.sessionmaker() as session, session.begin():
            if await jobs.lock_held(session, self.job.id, self.worker_id) is None:
                log.warning("scoring of run %s: lease lost before it could be recorded", self.subject.run.id)
                return
            if spans:
                await write_spans(session, self.subject.project_id, spans)
            await experiment_runs.record_scores(session, self.subject.run.id, scores, errors)
            await jobs.remove(session, self.job)

    async def _stopped_early(self) -> None:
        if self.stop_reason == STOP_LEASE_LOST:
            log.warning("scoring of run %s: lease lost; another worker has it now", self.subject.run.id)
        elif self.stop_reason == STOP_SHUTDOWN:
            await jobs.release(self.sessionmaker, self.job.id, self.worker_id, self.hooks, "the worker is stopping")
        else:
            await self._stop(ExecutionStatus.CANCELLED.value, "scoring stopped: cancelled as requested")

    async def _stop(self, status: str, message: str) -> None:
        async with self.sessionmaker() as session, session.begin():
            if await jobs.lock_held(session, self.job.id, self.worker_id) is None:
                return
            await experiment_runs.scoring_stopped(session, self.subject.run.id, status, message)
            await jobs.remove(session, self.job)

    async def _stopped(self) -> None:
        while self.stop_reason is None:
            self.wake.clear()
            await self.wake.wait()

    # ------------------------------------------------------------------ scoring

    async def _score(self) -> tuple[list[NewScore], list[dict[str, str]], list[SpanRecord]]:
        run = self.subject.run
        rules = [e for e in self.subject.evaluators if e.type != LLM_JUDGE]
        judges = [e for e in self.subject.evaluators if e.type == LLM_JUDGE]
        inp = EvalInput(output=run.output, expected=self.subject.expected, latency_ms=run.latency_ms,
                        cost_usd=float(run.cost_usd) if run.cost_usd is not None else None)
        ruling = asyncio.ensure_future(self._rules(rules, inp))
        try:
            judged_all: list[Judged] = list(await asyncio.gather(*(self._judge(e) for e in judges)))
            ruled = await ruling
        finally:
            ruling.cancel()
        by_name: dict[str, NewScore] = {}
        errors: dict[str, str] = {}
        for evaluator, data in zip(rules, ruled, strict=True):
            if data.error is not None or data.value is None:
                errors[evaluator.name] = data.error or "no score"
            else:
                by_name[evaluator.name] = NewScore(evaluator.name, data.value, data.passed, data.explanation,
                                                   evaluator_id=evaluator.id)
        spans = []
        for evaluator, judged in zip(judges, judged_all, strict=True):
            spans.append(judged.span)
            if judged.score is not None:
                by_name[evaluator.name] = judged.score
            else:
                errors[evaluator.name] = judged.error or "no score"
        order = [e.name for e in self.subject.evaluators]
        scores = [by_name[n] for n in order if n in by_name]
        return scores, [{"name": n, "message": errors[n]} for n in order if n in errors], spans

    async def _rules(self, rules: list[Evaluator], inp: EvalInput) -> list[ScoreData]:
        if not rules:
            return []
        specs = [EvaluatorSpec(e.name, e.type, e.config) for e in rules]
        try:
            return await sandbox.evaluate(self.settings, specs, inp)
        except sandbox.SandboxError as exc:
            if len(specs) == 1:
                return [ScoreData(specs[0].name, None, error=f"could not be applied: {exc.message}")]
        # One of them ran away (time, memory): each on its own, so that only that one goes without a score.
        return [r for one in await asyncio.gather(*(self._rules([e], inp) for e in rules)) for r in one]

    async def _judge(self, evaluator: Evaluator) -> Judged:
        """One LLM judge's grade of the run's output, and the span of its call."""
        config, run, subject = evaluator.config, self.subject.run, self.subject
        provider_name = (config.get("provider") or self.settings.default_provider).strip()
        model = config["model"]
        system, messages = judge_messages(config, output=run.output, variables=run.variables,
                                          expected=subject.expected)
        started_at, started = datetime.now(UTC), time.monotonic()
        parts: list[str] = []
        usage: UsageReport | None = None
        retries: list[dict[str, Any]] = []
        error: str | None = None
        request = ProviderRequest(
            model=model, messages=messages, system=system, temperature=float(config.get("temperature", 0)),
            max_tokens=int(config.get("maxTokens", 512)), timeout=self.settings.provider_timeout_seconds,
            extra={"response_format": {"type": "json_object"}} if provider_name == "openai" else None)
        try:
            provider = get_provider(provider_name)
            async with self.sessionmaker() as session:
                credential = await credential_for(session, self.settings, subject.project_id, provider_name)

            async def on_retry(e: ProviderError, number: int, delay: float) -> None:
                retries.append({"name": "retry", "time": datetime.now(UTC).isoformat(),
                                "attributes": {"error": e.message, "http.status_code": e.status,
                                               "retry.delay_seconds": delay}})

            events = stream_with_retries(provider, request, credential, retries=self.settings.provider_retries,
                                         backoff_max=self.settings.provider_backoff_max_seconds, on_retry=on_retry)
            async for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                elif isinstance(event, UsageReport):
                    usage = event
        except ProviderError as exc:
            error = f"the judge's call to {provider_name} failed: {exc.message}"
        except MissingCredential as exc:
            error = f"the judge cannot call {provider_name}: {exc}"
        except crypto.DecryptionError as exc:
            error = f"the stored {provider_name} credential cannot be decrypted: {exc}"
        latency = int((time.monotonic() - started) * 1000)
        reply = "".join(parts)
        score: NewScore | None = None
        span_usage: SpanUsage | None = None
        if usage is not None or reply:
            span_usage = await self._usage(provider_name, model, request, reply, usage, latency, started_at)
        if error is None:
            try:
                value, explanation = parse_judge_reply(reply, config)
                cost = span_usage.cost.total_usd if span_usage is not None and span_usage.cost is not None else None
                score = NewScore(evaluator.name, value, judge_passed(value, config), explanation,
                                 evaluator_id=evaluator.id, cost_usd=cost)
            except JudgeReplyError as exc:
                error = str(exc)
        attributes: dict[str, Any] = {
            "openinference.span.kind": SpanKind.LLM.value, "llm.provider": provider_name, "llm.model_name": model,
            "gen_ai.operation.name": "chat", "gen_ai.request.model": model, "gen_ai.provider.name": provider_name,
            "input.value": _cut(messages[0]["content"]), "output.value": _cut(reply),
            "promptstudio.latency_ms": latency, "promptstudio.evaluator.id": str(evaluator.id),
            "promptstudio.evaluator.name": evaluator.name, "promptstudio.experiment_run.id": str(run.id)}
        if score is not None:
            attributes["promptstudio.score"] = score.value
        if span_usage is not None:
            attributes |= {"llm.token_count.prompt": span_usage.input_tokens,
                           "llm.token_count.completion": span_usage.output_tokens,
                           "llm.token_count.total": span_usage.input_tokens + span_usage.output_tokens,
                           "promptstudio.tokens_reported": span_usage.reported}
        trace_id = trace_id_of(subject.execution_id if subject.execution_id is not None else run.id)
        span = SpanRecord(
            trace_id=trace_id, span_id=os.urandom(8).hex(), parent_span_id=subject.root_span_id,
            name=f"judge {evaluator.name}", kind=SpanKind.LLM.value,
            status=(SpanStatus.ERROR if error else SpanStatus.OK).value, error=error, start_time=started_at,
            end_time=started_at + timedelta(milliseconds=latency), attributes=attributes, events=retries or None,
            usage=span_usage)
        return Judged(score, error, span)

    async def _usage(self, provider: str, model: str, request: ProviderRequest, reply: str,
                     usage: UsageReport | None, latency: int, started_at: datetime) -> SpanUsage:
        """The judge's tokens (reported, or counted) priced at the prices in force when it was called."""
        if usage is not None and usage.reported:
            tokens, reported = (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens), True
        else:
            tokens = (count_message_tokens(request.messages, request.system), count_tokens(reply), 0)
            reported = False
        async with self.sessionmaker() as session:
            priced = await price_call(session, provider, model, *tokens, started_at)
        cost = priced.cost
        return SpanUsage(provider=provider, model=model, input_tokens=tokens[0], output_tokens=tokens[1],
                         cached_input_tokens=tokens[2], latency_ms=latency, reported=reported,
                         cost=cost, model_config_id=priced.config.id if priced.config is not None else None)


__all__ = ["ScoringHandler", "ScoringRun"]
