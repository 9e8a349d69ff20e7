"""Fields experiments supply to other domains' types: Project.datasets, Project.evaluators, Project.experiments."""
from __future__ import annotations

import uuid

from app.services.access import Action

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.pagination import Connection
from .loaders import DatasetsPage, EvaluatorsPage, ExperimentsPage
from .types import Dataset, Evaluator, Experiment, ExperimentStatus


async def project_datasets(info: Info, project_id: uuid.UUID, first: int | None,
                           after: str | None) -> Connection[Dataset]:
    if not await info.context.can(project_id, Action.READ_EXPERIMENTS):
        return Connection.empty()
    return await child_connection(info, DatasetsPage, project_id, first=first, after=after, wrap=Dataset.from_row)


async def project_evaluators(info: Info, project_id: uuid.UUID, first: int | None,
                             after: str | None) -> Connection[Evaluator]:
    if not await info.context.can(project_id, Action.READ_EXPERIMENTS):
        return Connection.empty()
    return await child_connection(info, EvaluatorsPage, project_id, first=first, after=after,
                                  wrap=Evaluator.from_row)


async def project_experiments(info: Info, project_id: uuid.UUID, first: int | None, after: str | None,
                              status: ExperimentStatus | None) -> Connection[Experiment]:
    if not await info.context.can(project_id, Action.READ_EXPERIMENTS):
        return Connection.empty()
    return await child_connection(info, ExperimentsPage, project_id, first=first, after=after,
                                  wrap=Experiment.from_row, args=(status.value if status is not None else None,))
