"""createDataset, addDatasetItems, createEvaluator, createExperiment, startExperiment, cancelExperiment,
completeExperiment, scoreRun."""
from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from app.db import models
from app.services import datasets, evaluators, experiments

from ..core.context import Info
from ..core.mutations import Payload, mutation, run
from ..core.relay import decode_id, input_id
from ..models.types import ModelSettingsInput
from .types import Dataset, DatasetItem, Evaluator, EvaluatorType, Experiment, ExperimentRun, ExperimentType


@strawberry.input
class CreateDatasetInput:
    project_id: strawberry.ID
    name: str
    description: str | None = None


@strawberry.type
class DatasetPayload(Payload):
    dataset: Dataset | None = None


@strawberry.input
class DatasetItemInput:
    variables: JSON
    expected_output: str | None = None
    metadata: JSON | None = None


@strawberry.input
class AddDatasetItemsInput:
    dataset_id: strawberry.ID
    items: list[DatasetItemInput]


@strawberry.type
class AddDatasetItemsPayload(Payload):
    items: list[DatasetItem] = strawberry.field(default_factory=list)


@strawberry.input
class CreateEvaluatorInput:
    project_id: strawberry.ID
    name: str
    type: EvaluatorType
    config: JSON
    description: str | None = None


@strawberry.type
class EvaluatorPayload(Payload):
    evaluator: Evaluator | None = None


@strawberry.input
class ExperimentVariantInput:
    name: str
    version_id: strawberry.ID
    model_settings: ModelSettingsInput | None = None
    traffic_weight: int | None = 50
    is_control: bool | None = False


@strawberry.input
class CreateExperimentInput:
    project_id: strawberry.ID
    name: str
    type: ExperimentType
    evaluator_ids: list[strawberry.ID]
    variants: list[ExperimentVariantInput]
    description: str | None = None
    dataset_id: strawberry.ID | None = None
    primary_score: str | None = None
    repetitions: int | None = 1
    metadata: JSON | None = None
    environment: str | None = strawberry.field(default=None, description=(
        "An A/B test on live traffic (no dataset): while it runs, the variants split this environment's traffic by "
        "their weights."))


@strawberry.type
class ExperimentPayload(Payload):
    experiment: Experiment | None = None


@strawberry.input
class ExperimentIdInput:
    id: strawberry.ID


@strawberry.input
class CompleteExperimentInput:
    id: strawberry.ID
    promote_winner: bool | None = strawberry.field(default=False, description=(
        "Deploy the winner's version at 100 % instead of restoring the split the test replaced (CONFLICT when "
        "there is no significant winner)."))


@strawberry.input
class ScoreRunInput:
    run_id: strawberry.ID
    name: str
    value: float
    explanation: str | None = None


@strawberry.type
class ExperimentRunPayload(Payload):
    run: ExperimentRun | None = None


@strawberry.type
class ExperimentMutation:
    @mutation("Create an empty dataset. Needs WRITE access to experiments (EDITOR, or an API key with "
              "EXPERIMENTS_WRITE).")
    async def create_dataset(self, info: Info, input: CreateDatasetInput) -> DatasetPayload:
        row = await run(info, datasets.create_dataset, project_id=decode_id(input.project_id, models.Project),
                        name=input.name, description=input.description)
        return DatasetPayload(dataset=Dataset.from_row(row))

    @mutation("Append items to a dataset, in order: up to 10,000 in one call, all checked first (nothing is added "
              "when one is wrong). Larger files: `promptstudio dataset import`.")
    async def add_dataset_items(self, info: Info, input: AddDatasetItemsInput) -> AddDatasetItemsPayload:
        items = [datasets.ItemData(variables=i.variables, expected_output=i.expected_output, metadata=i.metadata)
                 for i in input.items]
        rows = await run(info, datasets.add_dataset_items, dataset_id=decode_id(input.dataset_id, models.Dataset),
                         items=items)
        return AddDatasetItemsPayload(items=[DatasetItem.from_row(r) for r in rows])

    @mutation("Create an evaluator; its config is checked first (every problem reported at input.config...).")
    async def create_evaluator(self, info: Info, input: CreateEvaluatorInput) -> EvaluatorPayload:
        row = await run(info, evaluators.create_evaluator, project_id=decode_id(input.project_id, models.Project),
                        name=input.name, description=input.description, type=input.type.value, config=input.config)
        return EvaluatorPayload(evaluator=Evaluator.from_row(row))

    @mutation("Create a DRAFT experiment: variants are versions of the project's prompts (with optional "
              "model-settings overrides, weights, one control); on a dataset (datasetId) or as an A/B test on live "
              "traffic (environment).")
    async def create_experiment(self, info: Info, input: CreateExperimentInput) -> ExperimentPayload:
        variants = [experiments.VariantData(
            name=v.name, version_id=decode_id(v.version_id, models.PromptVersion),
            model_settings=v.model_settings.to_dict() if v.model_settings is not None else None,
            traffic_weight=50 if v.traffic_weight is None else v.traffic_weight, is_control=bool(v.is_control))
            for v in input.variants]
        row = await run(info, experiments.create_experiment, project_id=decode_id(input.project_id, models.Project),
                        name=input.name, description=input.description, type=input.type.value,
                        dataset_id=input_id(input.dataset_id, models.Dataset),
                        evaluator_ids=[decode_id(e, models.Evaluator) for e in input.evaluator_ids],
                        primary_score=input.primary_score, repetitions=input.repetitions, variants=variants,
                        metadata=input.metadata, environment=input.environment)
        return ExperimentPayload(experiment=Experiment.from_row(row))

    @mutation("Start a DRAFT experiment: on a dataset, every variant x item x repetition is queued as an execution "
              "(at PROMPTSTUDIO_EXPERIMENT_PRIORITY, LOW by default) and scored when it ends; a live A/B test takes "
              "over its environment's traffic split.")
    async def start_experiment(self, info: Info, input: ExperimentIdInput) -> ExperimentPayload:
        row = await run(info, experiments.start_experiment, experiment_id=decode_id(input.id, models.Experiment))
        return ExperimentPayload(experiment=Experiment.from_row(row))

    @mutation("Cancel a DRAFT or RUNNING experiment: pending runs are cancelled, running ones stopped; a live A/B "
              "test's split goes back to the one it replaced.")
    async def cancel_experiment(self, info: Info, input: ExperimentIdInput) -> ExperimentPayload:
        row = await run(info, experiments.cancel_experiment, experiment_id=decode_id(input.id, models.Experiment))
        return ExperimentPayload(experiment=Experiment.from_row(row))

    @mutation("End a running A/B test on live traffic (COMPLETED): the split it replaced comes back, or, with "
              "promoteWinner, its significant winner's version serves 100 %. Experiments on a dataset complete by "
              "themselves.")
    async def complete_experiment(self, info: Info, input: CompleteExperimentInput) -> ExperimentPayload:
        row = await run(info, experiments.complete_experiment, experiment_id=decode_id(input.id, models.Experiment),
                        promote_winner=bool(input.promote_winner))
        return ExperimentPayload(experiment=Experiment.from_row(row))

    @mutation("Add (or replace) a person's score of a COMPLETED run, under a name that is not one of the "
              "experiment's evaluators.")
    async def score_run(self, info: Info, input: ScoreRunInput) -> ExperimentRunPayload:
        row = await run(info, experiments.score_run, run_id=decode_id(input.run_id, models.ExperimentRun),
                        name=input.name, value=input.value, explanation=input.explanation)
        return ExperimentRunPayload(run=ExperimentRun.from_row(row))
