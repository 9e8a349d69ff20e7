"""Experiments: compare prompt versions (variants) on a dataset, or as an A/B test on live traffic.

Lifecycle: DRAFT (``create_experiment``) -> RUNNING (``start_experiment``) -> COMPLETED (by itself when
an offline experiment's last run is done; ``complete_experiment`` for a live A/B test) or CANCELLED
(``cancel_experiment``, from DRAFT or RUNNING). Everything needs WRITE_EXPERIMENTS (EDITOR, or an API
key with EXPERIMENTS_WRITE); starting and ending a live A/B test changes a traffic split, so it needs
WRITE_PROMPTS too. Every mutation is audited.

Creating (every problem with the input is reported at once where it can be):

- ``type``: AB_TEST has exactly 2 variants, MULTI_VARIANT 2 to ``MAX_VARIANTS``, EVALUATION 1 to
  ``MAX_VARIANTS``. With two variants or more exactly one is the control; a lone variant is its own.
- Offline: ``datasetId`` (a dataset of the project) and ``repetitions`` (1 to 100). Live: ``environment``
  (one of the project's) and no dataset; the variants are distinct versions of one prompt, their
  weights (1 to 100) add up to 100 (they become the split), one repetition, no model-settings
  overrides (a deployment serves a version as it is).
- Variants: versions of the project's prompts (not archived), with optional model-settings overrides
  checked as executePrompt checks them.
- Evaluators of the project (at most ``MAX_EVALUATORS``); ``primaryScore`` names one of them (or
  ``feedback``, the ratings of a live test); by default the first evaluator (or ``feedback`` for a
  live test without evaluators).

Starting an offline experiment renders every variant for every dataset item in the sandbox (in
batches; a variable missing for an item is INVALID, nothing is queued; variables of an item that a variant does
not use are ignored: one dataset serves variants whose templates differ) and queues every variant x
item x repetition as a run and its execution, at ``PROMPTSTUDIO_EXPERIMENT_PRIORITY`` (LOW by
default: production traffic first), at most ``PROMPTSTUDIO_EXPERIMENT_MAX_RUNS`` runs
(``experiment_runs.queue_offline_runs``). Starting a live A/B test remembers the prompt's split in
the environment and replaces it by the variants' weights; one running experiment per split.

Ending: ``cancel_experiment`` cancels the PENDING executions of an offline experiment and stops the
RUNNING ones (``experiment_runs.cancel_runs``); a live test's executions are production traffic and
go on, only the test stops. A live test's end restores the split it replaced, unless
``complete_experiment`` is asked to promote the winner (a significant winner is needed: CONFLICT
otherwise): then the winner's version serves 100 %.

``score_run`` adds (or replaces) a person's score of a COMPLETED run under a name that is not an
evaluator's of the experiment (nor ``feedback``).
"""
from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import sandbox
from app.db.models import (
    Dataset,
    DatasetItem,
    Evaluator,
    Experiment,
    ExperimentEvaluator,
    ExperimentRun,
    ExperimentVariant,
    Project,
    Prompt,
    PromptVersion,
)
from app.db.models.enums import ExecutionStatus, ExperimentStatus, ExperimentType, PromptStatus, ScoreSource
from app.settings import Settings

from . import deployments, experiment_runs
from .access import Action, require
from .datasets import check_description, check_name
from .errors import ServiceError, conflict, invalid, limit_exceeded, many, not_found
from .executions import merge_model_settings, rendered_prompt
from .experiment_stats import experiment_stats
from .prompts import content_of
from .tx import Tx, service

MAX_VARIANTS = 20
MAX_EVALUATORS = 20
MAX_REPETITIONS = 100
MAX_VARIANT_NAME = 100
MAX_EXPLANATION = 10_000
#: Dataset items rendered per sandbox task when an experiment starts.
RENDER_BATCH = 100
#: Problems reported at most when an experiment cannot start.
MAX_REPORTED = 20


@dataclass(frozen=True)
class VariantData:
    """A variant as given to createExperiment (``version_id`` None: an ID that is not a version's)."""

    name: str
    version_id: uuid.UUID | None
    model_settings: dict | None = None
    traffic_weight: int = 50
    is_control: bool = False


# ------------------------------------------------------------------ helpers


async def _experiment_for(tx: Tx, experiment_id: uuid.UUID | None, *, lock: bool = False) -> Experiment:
    """The experiment, after the WRITE_EXPERIMENTS check (NOT_FOUND when the caller may not even read it)."""
    field = ["input", "id"]
    stmt = select(Experiment).where(Experiment.id == experiment_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    row = (await tx.session.execute(stmt)).scalar_one_or_none() if experiment_id is not None else None
    if row is None:
        raise not_found("No experiment with this ID.", field)
    tx.note.about(Experiment, row.id)
    await require(tx.session, tx.principal, row.project_id, Action.WRITE_EXPERIMENTS, field=field,
                  what="experiment", note=tx.note, conceal_unless=Action.READ_EXPERIMENTS)
    tx.note.details.setdefault("name", row.name)
    return row


async def _variants(session: AsyncSession, experiment_id: uuid.UUID
                    ) -> list[tuple[ExperimentVariant, PromptVersion, Prompt]]:
    rows = (await session.execute(
        select(ExperimentVariant, PromptVersion, Prompt)
        .join(PromptVersion, PromptVersion.id == ExperimentVariant.version_id)
        .join(Prompt, Prompt.id == PromptVersion.prompt_id)
        .where(ExperimentVariant.experiment_id == experiment_id).order_by(ExperimentVariant.position))).all()
    return [(v, pv, p) for v, pv, p in rows]


async def _now(session: AsyncSession) -> datetime:
    return (await session.execute(select(func.now()))).scalar_one()


# ------------------------------------------------------------------ createExperiment


def _check_type(type_: str, count: int, errors: list[ServiceError]) -> None:
    field = ["input", "variants"]
    if type_ == ExperimentType.AB_TEST.value and count != 2:
        errors.append(invalid(f"An AB_TEST compares exactly 2 variants (a control and a challenger); {count} given.",
                              field))
    elif type_ == ExperimentType.MULTI_VARIANT.value and not 2 <= count <= MAX_VARIANTS:
        errors.append(invalid(f"A MULTI_VARIANT experiment has 2 to {MAX_VARIANTS} variants; {count} given.", field))
    elif type_ == ExperimentType.EVALUATION.value and not 1 <= count <= MAX_VARIANTS:
        errors.append(invalid(f"An EVALUATION has 1 to {MAX_VARIANTS} variants; {count} given.", field))


async def _check_variants(session: AsyncSession, settings: Settings, project_id: uuid.UUID,
                          variants: Sequence[VariantData], live: bool,
                          errors: list[ServiceError]) -> dict[uuid.UUID, tuple[PromptVersion, Prompt]]:
    ids = [v.version_id for v in variants if v.version_id is not None]
    found = {pv.id: (pv, p) for pv, p in (await session.execute(
        select(PromptVersion, Prompt).join(Prompt, Prompt.id == PromptVersion.prompt_id)
        .where(PromptVersion.id.in_(ids), Prompt.project_id == project_id))).all()} if ids else {}
    names: dict[str, int] = {}
    versions: dict[uuid.UUID, int] = {}
    controls = [i for i, v in enumerate(variants) if v.is_control]
    for i, v in enumerate(variants):
        at = ["input", "variants", str(i)]
        name = v.name.strip() if isinstance(v.name, str) else ""
        if not name or len(name) > MAX_VARIANT_NAME:
            errors.append(invalid(f"A variant's name is 1 to {MAX_VARIANT_NAME} characters.", [*at, "name"]))
        elif name in names:
            errors.append(invalid(f"Two variants are named {name!r} (variants {names[name]} and {i}); names are "
                                  "unique.", [*at, "name"]))
        else:
            names[name] = i
        if not 0 <= v.traffic_weight <= 100:
            errors.append(invalid(f"trafficWeight is a percentage from 0 to 100; got {v.traffic_weight}.",
                                  [*at, "trafficWeight"]))
        if v.version_id is None or v.version_id not in found:
            errors.append(not_found("No prompt version with this ID in this project.", [*at, "versionId"]))
            continue
        version, prompt = found[v.version_id]
        if prompt.status == PromptStatus.ARCHIVED.value:
            errors.append(conflict(f"Prompt {prompt.name!r} is archived, and archived prompts are not executed; "
                                   "restore it first (updatePrompt).", [*at, "versionId"]))
        if live:
            if v.version_id in versions:
                errors.append(invalid(f"Version {version.number} of {prompt.name!r} is in variants "
                                      f"{versions[v.version_id]} and {i}; a traffic split serves each version once.",
                                      [*at, "versionId"]))
            versions[v.version_id] = i
            if v.model_settings:
                errors.append(invalid("An A/B test on live traffic splits traffic between versions as they are "
                                      "deployed: model-settings overrides cannot apply there. Make a version with "
                                      "these settings instead.", [*at, "modelSettings"]))
            if not 1 <= v.traffic_weight <= 100:
                errors.append(invalid("In an A/B test on live traffic each variant's trafficWeight is its share of "
                                      "the traffic, 1 to 100.", [*at, "trafficWeight"]))
        else:
            try:
                merge_model_settings(version, v.model_settings, settings, [*at, "modelSettings"])
            except ServiceError as exc:
                errors.extend(exc.errors)
    if len(variants) > 1 and len(controls) != 1:
        errors.append(invalid(f"Mark exactly one variant as the control (isControl: true); {len(controls)} are.",
                              ["input", "variants"]))
    if live and found:
        prompts = {found[v.version_id][1].id for v in variants if v.version_id in found}
        if len(prompts) > 1:
            errors.append(invalid("In an A/B test on live traffic the variants are versions of one prompt (the one "
                                  "whose traffic split they take over).", ["input", "variants"]))
        total = sum(v.traffic_weight for v in variants)
        if total != 100:
            errors.append(invalid(f"The variants' trafficWeights add up to {total}; in an A/B test on live traffic "
                                  "they are the split and must add up to 100.", ["input", "variants"]))
    return found


@service("experiment.create")
async def create_experiment(tx: Tx, *, project_id: uuid.UUID | None, name: str, description: str | None, type: str,
                            dataset_id: uuid.UUID | None, evaluator_ids: Sequence[uuid.UUID | None],
                            primary_score: str | None, repetitions: int | None, variants: Sequence[VariantData],
                            metadata: Any, environment: str | None) -> Experiment:
    """A DRAFT experiment (see the module docstring for the rules)."""
    session, note, settings = tx.session, tx.note, tx.settings
    note.about(Experiment)
    project = await require(session, tx.principal, project_id, Action.WRITE_EXPERIMENTS,
                            field=["input", "projectId"], note=note)
    name = check_name(name, ["input", "name"])
    note.details = {"name": name, "type": type}
    description = check_description(description, ["input", "description"])
    errors: list[ServiceError] = []
    if type not in ExperimentType.values():
        errors.append(invalid(f"Unknown experiment type {type!r}; the types are: {', '.join(ExperimentType.values())}.",
                              ["input", "type"]))
    live = environment is not None
    if dataset_id is not None and live:
        errors.append(invalid("Give either datasetId (an experiment on a dataset) or environment (an A/B test on live "
                              "traffic), not both.", ["input", "environment"]))
    elif dataset_id is None and not live:
        errors.append(invalid("Give datasetId (an experiment on a dataset) or environment (an A/B test on live "
                              "traffic).", ["input", "datasetId"]))
    dataset = None
    if dataset_id is not None:
        dataset = (await session.execute(select(Dataset).where(Dataset.id == dataset_id,
                                                                Dataset.project_id == project.id))).scalar_one_or_none()
        if dataset is None:
            errors.append(not_found("No dataset with this ID in this project.", ["input", "datasetId"]))
    if live and environment not in project.environments:
        errors.append(invalid(f"Unknown environment {environment!r}; this project's environments are: "
                              f"{', '.join(project.environments)}.", ["input", "environment"]))
    reps = 1 if repetitions is None else repetitions
    if not 1 <= reps <= MAX_REPETITIONS:
        errors.append(invalid(f"repetitions is 1 to {MAX_REPETITIONS}; got {reps}.", ["input", "repetitions"]))
    elif live and reps != 1:
        errors.append(invalid("An A/B test on live traffic has one run per execution served: repetitions is 1.",
                              ["input", "repetitions"]))
    if metadata is not None and not isinstance(metadata, dict):
        errors.append(invalid("metadata must be a JSON object (or null).", ["input", "metadata"]))
    _check_type(type, len(variants), errors)
    if len(variants) > MAX_VARIANTS:
        raise many(errors or [invalid(f"At most {MAX_VARIANTS} variants.", ["input", "variants"])])
    found = await _check_variants(session, settings, project.id, variants, live, errors)

    evaluators: list[Evaluator] = []
    if len(evaluator_ids) > MAX_EVALUATORS:
        errors.append(invalid(f"At most {MAX_EVALUATORS} evaluators; {len(evaluator_ids)} given.",
                              ["input", "evaluatorIds"]))
    else:
        wanted = [e for e in evaluator_ids if e is not None]
        rows = {e.id: e for e in (await session.execute(
            select(Evaluator).where(Evaluator.id.in_(wanted), Evaluator.project_id == project.id))).scalars()} \
            if wanted else {}
        seen: set[uuid.UUID] = set()
        for i, evaluator_id in enumerate(evaluator_ids):
            at = ["input", "evaluatorIds", str(i)]
            if evaluator_id is None or evaluator_id not in rows:
                errors.append(not_found("No evaluator with this ID in this project.", at))
            elif evaluator_id in seen:
                errors.append(invalid("This evaluator is listed twice.", at))
            else:
                seen.add(evaluator_id)
                evaluators.append(rows[evaluator_id])
    names = [e.name for e in evaluators]
    allowed = names + ([experiment_runs.FEEDBACK_SCORE] if live else [])
    if primary_score is None:
        primary_score = allowed[0] if allowed else None
    elif primary_score not in allowed:
        errors.append(invalid(f"primaryScore {primary_score!r} is not a score of this experiment; it is one of: "
                              f"{', '.join(allowed) or '(none: add an evaluator)'}.", ["input", "primaryScore"]))
    if errors:
        raise many(errors)

    row = Experiment(project_id=project.id, name=name, description=description, type=type,
                     status=ExperimentStatus.DRAFT.value, dataset_id=dataset.id if dataset else None,
                     environment=environment, primary_score=primary_score, repetitions=reps, metadata_=metadata,
                     created_by_id=tx.principal.user_id)
    if live:
        row.prompt_id = next(iter(found.values()))[1].id
    session.add(row)
    await session.flush()
    only = len(variants) == 1
    session.add_all([ExperimentVariant(
        experiment_id=row.id, name=v.name.strip(), version_id=v.version_id, model_settings=v.model_settings or None,
        traffic_weight=v.traffic_weight, is_control=v.is_control or only, position=i)
        for i, v in enumerate(variants)])
    session.add_all([ExperimentEvaluator(experiment_id=row.id, evaluator_id=e.id, position=i)
                     for i, e in enumerate(evaluators)])
    await session.flush()
    await session.refresh(row)
    note.resource_id = row.id
    note.details.update({"variants": len(variants), "evaluators": names, "primaryScore": primary_score,
                         "datasetId": str(dataset.id) if dataset else None, "environment": environment})
    return row


# ------------------------------------------------------------------ startExperiment


async def _render_variant(settings: Settings, experiment: Experiment, variant: ExperimentVariant,
                          version: PromptVersion, prompt: Prompt, items: Sequence[DatasetItem],
                          errors: list[ServiceError]) -> tuple[list[dict], int]:
    """The variant's prompt rendered for every item (in the sandbox, in batches run side by side)."""
    content = content_of(version)
    started = time.monotonic()
    batches = [items[i:i + RENDER_BATCH] for i in range(0, len(items), RENDER_BATCH)]
    try:
        outcomes = await asyncio.gather(*(sandbox.render_many(settings, content, [it.variables for it in batch])
                                          for batch in batches))
    except sandbox.SandboxError as exc:
        errors.append(invalid(f"Variant {variant.name!r} (version {version.number} of {prompt.name!r}) could not be "
                              f"rendered for the dataset's items: {exc.message}.", ["input", "id"]))
        return [], 0
    elapsed_ms = (time.monotonic() - started) * 1000
    rendered: list[dict] = []
    for batch, results in zip(batches, outcomes, strict=True):
        for item, outcome in zip(batch, results, strict=True):
            where = f"dataset item {item.position}, variant {variant.name!r} (version {version.number} of " \
                    f"{prompt.name!r})"
            problems = [f'variable "{n}" is required but the item does not give it'
                        for n in outcome.missing_variables]
            problems += [m.rstrip(".") for m in outcome.errors]
            if problems:
                errors.extend(invalid(f"{where}: {p}.", ["input", "id"]) for p in problems)
                continue
            rendered.append(rendered_prompt(version, outcome))
    return rendered, max(0, int(elapsed_ms / max(1, len(items))))


async def _start_offline(tx: Tx, experiment: Experiment,
                         variants: list[tuple[ExperimentVariant, PromptVersion, Prompt]]) -> None:
    session, settings = tx.session, tx.settings
    field = ["input", "id"]
    if experiment.dataset_id is None:
        raise conflict("This experiment's dataset was deleted; create a new experiment.", field)
    items = list((await session.execute(
        select(DatasetItem).where(DatasetItem.dataset_id == experiment.dataset_id)
        .order_by(DatasetItem.position))).scalars())
    if not items:
        raise conflict("The dataset has no items yet; add some (addDatasetItems, or promptstudio dataset import) "
                       "and start again.", field)
    total = len(items) * len(variants) * experiment.repetitions
    if total > settings.experiment_max_runs:
        raise limit_exceeded(f"{len(variants)} variants x {len(items):,} items x {experiment.repetitions} repetitions "
                             f"is {total:,} runs; at most {settings.experiment_max_runs:,} are allowed "
                             "(PROMPTSTUDIO_EXPERIMENT_MAX_RUNS).", field)
    errors: list[ServiceError] = []
    planned: list[experiment_runs.PlannedVariant] = []
    for variant, version, prompt in variants:
        if prompt.status == PromptStatus.ARCHIVED.value:
            errors.append(conflict(f"Prompt {prompt.name!r} (variant {variant.name!r}) is archived, and archived "
                                   "prompts are not executed; restore it first.", field))
            continue
        try:
            merged = merge_model_settings(version, variant.model_settings, settings, field)
        except ServiceError as exc:
            errors.extend(invalid(f"variant {variant.name!r}: {e.message}", field) for e in exc.errors)
            continue
        rendered, render_ms = await _render_variant(settings, experiment, variant, version, prompt, items, errors)
        planned.append(experiment_runs.PlannedVariant(variant, version, prompt, merged, rendered, render_ms))
    if errors:
        shown = errors[:MAX_REPORTED]
        if len(errors) > MAX_REPORTED:
            shown.append(invalid(f"... and {len(errors) - MAX_REPORTED} more problems; nothing was queued.", field))
        raise many(shown)
    queued = await experiment_runs.queue_offline_runs(session, settings, tx.principal, experiment, planned, items)
    tx.note.details.update({"runs": queued, "items": len(items), "repetitions": experiment.repetitions,
                            "priority": settings.experiment_priority})


async def _lock_split(tx: Tx, experiment: Experiment) -> Prompt:
    """For a live A/B test's start or end: WRITE_PROMPTS too, and the prompt locked (deployment changes of it
    queue up behind)."""
    if experiment.prompt_id is None:
        raise conflict("This experiment's prompt was deleted.", ["input", "id"])
    await require(tx.session, tx.principal, experiment.project_id, Action.WRITE_PROMPTS, field=["input", "id"],
                  what="experiment", note=tx.note)
    return await deployments.lock_prompt(tx.session, experiment.prompt_id)


async def _start_live(tx: Tx, experiment: Experiment,
                      variants: list[tuple[ExperimentVariant, PromptVersion, Prompt]]) -> None:
    session, field = tx.session, ["input", "id"]
    prompt = await _lock_split(tx, experiment)
    environment = experiment.environment
    assert environment is not None
    if prompt.status == PromptStatus.ARCHIVED.value:
        raise conflict(f"Prompt {prompt.name!r} is archived, and archived prompts cannot be deployed; restore it "
                       "first.", field)
    project = await deployments.share_lock_project(session, await _project(session, experiment.project_id))
    if environment not in project.environments:
        raise conflict(f"The project no longer has the environment {environment!r}.", field)
    owner = await deployments.owning_experiment(session, prompt.id, environment)
    if owner is not None:
        raise conflict(f"Experiment {owner.name!r} already runs an A/B test on prompt {prompt.name!r} in "
                       f"{environment}; one experiment owns a traffic split at a time.", field)
    current = await deployments.active_deployments(session, prompt.id, environment)
    experiment.replaced_split = [{"versionId": str(v.id), "percentage": d.traffic_percentage} for d, v in current]
    await deployments.replace_split(session, tx.principal, tx.note, prompt, environment,
                                    [(version, v.traffic_weight) for v, version, _ in variants])
    tx.note.details.update({"split": [{"variant": v.name, "version": version.number, "percentage": v.traffic_weight}
                                      for v, version, _ in variants]})


async def _project(session: AsyncSession, project_id: uuid.UUID) -> Project:
    return (await session.execute(select(Project).where(Project.id == project_id))).scalar_one()


@service("experiment.start")
async def start_experiment(tx: Tx, *, experiment_id: uuid.UUID | None) -> Experiment:
    """DRAFT -> RUNNING: queue the runs (offline), or take over the traffic split (live)."""
    session = tx.session
    experiment = await _experiment_for(tx, experiment_id, lock=True)
    if experiment.status != ExperimentStatus.DRAFT.value:
        raise conflict(f"This experiment is {experiment.status}; only a DRAFT experiment can be started (create a new "
                       "one to run it again).", ["input", "id"])
    variants = await _variants(session, experiment.id)
    if not variants:
        raise conflict("This experiment has no variants left (their prompts were deleted).", ["input", "id"])
    experiment.status = ExperimentStatus.RUNNING.value
    experiment.started_at = await _now(session)
    if experiment.environment is None:
        await _start_offline(tx, experiment, variants)
    else:
        await _start_live(tx, experiment, variants)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:  # another experiment took the split meanwhile
        if "uq_experiments_running_split" in str(exc.orig):
            raise conflict("Another experiment started an A/B test on this traffic split meanwhile.",
                           ["input", "id"]) from None
        raise
    return experiment


# ------------------------------------------------------------------ ending


async def _end(tx: Tx, experiment_id: uuid.UUID | None, status: ExperimentStatus, *,
               promote_winner: bool = False) -> Experiment:
    session, field = tx.session, ["input", "id"]
    experiment = await _experiment_for(tx, experiment_id)
    live = experiment.environment is not None
    was = experiment.status
    if status == ExperimentStatus.COMPLETED and not live:
        raise conflict("An experiment on a dataset completes by itself when its runs are done; cancel it to stop it "
                       "early.", field)
    if was in (ExperimentStatus.COMPLETED.value, ExperimentStatus.CANCELLED.value, ExperimentStatus.ARCHIVED.value):
        raise conflict(f"This experiment has already ended ({was}).", field)
    if was == ExperimentStatus.DRAFT.value and status == ExperimentStatus.COMPLETED:
        raise conflict("This experiment has not started; cancel it, or start it first.", field)
    prompt = await _lock_split(tx, experiment) if live and was == ExperimentStatus.RUNNING.value else None
    reason = f'experiment "{experiment.name}" was {"cancelled" if status == ExperimentStatus.CANCELLED else "ended"}'
    done: dict[str, int] = {}
    if was == ExperimentStatus.RUNNING.value:
        done = await experiment_runs.cancel_runs(session, experiment, reason, cancel_executions=not live)
    experiment = await experiment_runs.recount(session, experiment.id)
    if experiment.status != was:
        raise conflict(f"This experiment became {experiment.status} meanwhile.", field)
    winner = None
    if prompt is not None:
        if promote_winner:
            winner = await _winner(tx, experiment)
            await deployments.replace_split(session, tx.principal, tx.note, prompt, experiment.environment or "",
                                            [(winner[1], 100)])
        else:
            await _restore_split(tx, experiment, prompt)
    elif promote_winner:
        raise conflict("Only a running A/B test on live traffic can promote its winner.", field)
    experiment.status = status.value
    experiment.ended_at = await _now(session)
    experiment.updated_at = experiment.ended_at
    await session.flush()
    await experiment_runs.publish_end(session, experiment)
    tx.note.details.update({"from": was, **done, "runs": experiment.runs_total})
    if winner is not None:
        tx.note.details["promoted"] = {"variant": winner[0].name, "versionId": str(winner[1].id)}
    return experiment


async def _winner(tx: Tx, experiment: Experiment) -> tuple[ExperimentVariant, PromptVersion]:
    data = (await experiment_stats(tx.session, [experiment], tx.settings.experiment_p_adjust))[experiment.id]
    if data.winner_id is None:
        raise conflict(f"No variant beats the control on {experiment.primary_score!r} with statistical significance "
                       "(adjusted p < 0.05), so there is no winner to promote; complete it without promoting to put "
                       "back the split it replaced, or let it run longer.", ["input", "promoteWinner"])
    variant, version, _ = next(t for t in await _variants(tx.session, experiment.id) if t[0].id == data.winner_id)
    return variant, version


async def _restore_split(tx: Tx, experiment: Experiment, prompt: Prompt) -> None:
    """Put back the split a live A/B test replaced ([] : nothing was deployed there; retire the test's)."""
    environment = experiment.environment or ""
    saved = experiment.replaced_split or []
    ids = [uuid.UUID(s["versionId"]) for s in saved]
    versions = {v.id: v for v in (await tx.session.execute(
        select(PromptVersion).where(PromptVersion.id.in_(ids)))).scalars()} if ids else {}
    wanted = [(versions[uuid.UUID(s["versionId"])], int(s["percentage"])) for s in saved
              if uuid.UUID(s["versionId"]) in versions]
    if wanted and sum(p for _, p in wanted) == 100:
        await deployments.replace_split(tx.session, tx.principal, tx.note, prompt, environment, wanted)
        return
    await deployments.replace_split(tx.session, tx.principal, tx.note, prompt, environment, [])
    tx.note.details["restored"] = "nothing (no split was deployed before the test)" if not saved else \
        "nothing (the versions of the split it replaced are gone)"


@service("experiment.cancel")
async def cancel_experiment(tx: Tx, *, experiment_id: uuid.UUID | None) -> Experiment:
    """CANCELLED: what is left of its runs stops; a live test's split goes back to the one it replaced."""
    return await _end(tx, experiment_id, ExperimentStatus.CANCELLED)


@service("experiment.complete")
async def complete_experiment(tx: Tx, *, experiment_id: uuid.UUID | None, promote_winner: bool = False) -> Experiment:
    """End a live A/B test COMPLETED: restore the split it replaced, or promote the winner (100 %)."""
    return await _end(tx, experiment_id, ExperimentStatus.COMPLETED, promote_winner=promote_winner)


# ------------------------------------------------------------------ scoreRun


@service("experiment.score_run")
async def score_run(tx: Tx, *, run_id: uuid.UUID | None, name: str, value: float,
                    explanation: str | None) -> ExperimentRun:
    """A person's score of a COMPLETED run (added, or replacing the same name's)."""
    session, note = tx.session, tx.note
    field = ["input", "runId"]
    note.about(ExperimentRun, run_id)
    run = (await session.execute(select(ExperimentRun).where(ExperimentRun.id == run_id)
                                 .with_for_update(key_share=True))).scalar_one_or_none() if run_id is not None else None
    experiment = await session.get(Experiment, run.experiment_id) if run is not None else None
    if run is None or experiment is None:
        raise not_found("No experiment run with this ID.", field)
    await require(session, tx.principal, experiment.project_id, Action.WRITE_EXPERIMENTS, field=field,
                  what="experiment run", note=note, conceal_unless=Action.READ_EXPERIMENTS)
    name = check_name(name, ["input", "name"], "score's name", limit=100)
    note.details = {"experimentId": str(experiment.id), "name": name, "value": value}
    errors: list[ServiceError] = []
    evaluators = set((await session.execute(
        select(Evaluator.name).join(ExperimentEvaluator, ExperimentEvaluator.evaluator_id == Evaluator.id)
        .where(ExperimentEvaluator.experiment_id == experiment.id))).scalars())
    if name in evaluators or name == experiment_runs.FEEDBACK_SCORE:
        errors.append(invalid(f"{name!r} is scored by {'an evaluator' if name in evaluators else 'feedback ratings'} "
                              "of this experiment; give a person's score another name.", ["input", "name"]))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        errors.append(invalid("value must be a finite number.", ["input", "value"]))
    text = explanation.strip() if isinstance(explanation, str) else None
    if text is not None and len(text) > MAX_EXPLANATION:
        errors.append(invalid(f"explanation is {len(text)} characters long; at most {MAX_EXPLANATION} are allowed.",
                              ["input", "explanation"]))
    if errors:
        raise many(errors)
    if run.status != ExecutionStatus.COMPLETED.value:
        raise conflict(f"This run is {run.status}; runs are scored by people once they have COMPLETED.", field)
    await experiment_runs.upsert_scores(session, run, [experiment_runs.NewScore(
        name, float(value), None, text or None, source=ScoreSource.HUMAN.value, scored_by_id=tx.principal.user_id)])
    return run


__all__ = ["VariantData", "cancel_experiment", "complete_experiment", "create_experiment", "score_run",
           "start_experiment"]
