"""Per-request loaders of the experiments domain (one statement per relation and request shape)."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select

from app.db import models
from app.services.experiment_stats import ExperimentStatsData, experiment_stats

from ..core.child_pages import ChildPageLoader
from ..core.loaders import BaseLoader, ByKeyLoader, ManyByKeyLoader


class DatasetsPage(ChildPageLoader):
    """Project.datasets, newest first."""

    model = models.Dataset
    parent_col = models.Dataset.project_id
    sort_col = models.Dataset.created_at
    id_col = models.Dataset.id
    descending = True


class EvaluatorsPage(ChildPageLoader):
    """Project.evaluators, newest first."""

    model = models.Evaluator
    parent_col = models.Evaluator.project_id
    sort_col = models.Evaluator.created_at
    id_col = models.Evaluator.id
    descending = True


class ExperimentsPage(ChildPageLoader):
    """Project.experiments, newest first. args = (status or None,)."""

    model = models.Experiment
    parent_col = models.Experiment.project_id
    sort_col = models.Experiment.created_at
    id_col = models.Experiment.id
    descending = True

    def base(self) -> Select[Any]:
        (status,) = self.args
        stmt = select(models.Experiment)
        if status is not None:
            stmt = stmt.where(models.Experiment.status == status)
        return stmt


class ItemsPage(ChildPageLoader):
    """Dataset.items, in the order they were added (keyset on the position)."""

    model = models.DatasetItem
    parent_col = models.DatasetItem.dataset_id
    sort_col = models.DatasetItem.position
    id_col = models.DatasetItem.id


class RunsPage(ChildPageLoader):
    """Experiment.runs, in the order they were made. args = (variant id or None,)."""

    model = models.ExperimentRun
    parent_col = models.ExperimentRun.experiment_id
    sort_col = models.ExperimentRun.ordinal
    id_col = models.ExperimentRun.id

    def base(self) -> Select[Any]:
        (variant_id,) = self.args
        stmt = select(models.ExperimentRun)
        if variant_id is not None:
            stmt = stmt.where(models.ExperimentRun.variant_id == variant_id)
        return stmt


class VariantsByExperiment(ManyByKeyLoader):
    model = models.ExperimentVariant
    key_column = "experiment_id"
    order_by = (models.ExperimentVariant.position,)


class ScoresByRun(ManyByKeyLoader):
    model = models.ExperimentScore
    key_column = "run_id"
    order_by = (models.ExperimentScore.created_at, models.ExperimentScore.name)


class ExecutionByRun(ByKeyLoader):
    """The execution of an experiment run (key: (run id,))."""

    model = models.Execution
    columns = ("experiment_run_id",)


class EvaluatorsByExperiment(BaseLoader):
    """The evaluators of each experiment, in the order they were given."""

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[list[models.Evaluator]]:
        ee, ev = models.ExperimentEvaluator, models.Evaluator
        async with self.ctx.db() as session:
            rows = (await session.execute(
                select(ee.experiment_id, ev).join(ev, ev.id == ee.evaluator_id)
                .where(ee.experiment_id.in_(list(set(keys)))).order_by(ee.experiment_id, ee.position))).all()
        grouped: dict[uuid.UUID, list[models.Evaluator]] = {}
        for experiment_id, evaluator in rows:
            grouped.setdefault(experiment_id, []).append(evaluator)
        return [grouped.get(k, []) for k in keys]


class StatsLoader(BaseLoader):
    """The statistics of each experiment (``app.services.experiment_stats``): a few statements for all the
    experiments of a request. Key: the experiment's id."""

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[ExperimentStatsData | None]:
        async with self.ctx.db() as session, self.ctx.db() as other:
            rows = list((await session.execute(
                select(models.Experiment).where(models.Experiment.id.in_(list(set(keys)))))).scalars())
            # the runs' figures and the scores are read side by side, on two connections
            data = await experiment_stats(session, rows, self.ctx.settings.experiment_p_adjust, other=other)
        return [data.get(k) for k in keys]
