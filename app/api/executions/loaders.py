"""Per-request loaders of the executions domain (one statement per relation and request shape)."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select

from app.db import models
from app.db.models.enums import LOG_LEVEL_RANK, LogLevel
from app.services.stats import VersionStatsData, version_stats

from ..core.child_pages import ChildPageLoader
from ..core.context import Context
from ..core.loaders import BaseLoader, ManyByKeyLoader


class FeedbackByExecution(ManyByKeyLoader):
    model = models.Feedback
    key_column = "execution_id"
    order_by = (models.Feedback.created_at, models.Feedback.id)


def levels_from(min_level: str | None) -> tuple[str, ...] | None:
    """The levels at or above ``min_level`` (None: all)."""
    if min_level is None:
        return None
    floor = LOG_LEVEL_RANK[LogLevel(min_level)]
    return tuple(level.value for level, rank in LOG_LEVEL_RANK.items() if rank >= floor)


class LogsPage(ChildPageLoader):
    """Oldest first. args = (levels or None,)."""

    model = models.ExecutionLog
    parent_col = models.ExecutionLog.execution_id
    sort_col = models.ExecutionLog.timestamp
    id_col = models.ExecutionLog.id

    def base(self) -> Select[Any]:
        (levels,) = self.args
        stmt = select(models.ExecutionLog)
        if levels is not None:
            stmt = stmt.where(models.ExecutionLog.level.in_(levels))
        return stmt


def filter_conditions(args: tuple[Any, ...]) -> list[ColumnElement[bool]]:
    """args = (statuses or None, prompt id, version id, environment, created after, created before)."""
    statuses, prompt_id, version_id, environment, after, before = args
    e = models.Execution
    out: list[ColumnElement[bool]] = []
    if statuses is not None:
        out.append(e.status.in_(statuses))
    if prompt_id is not None:
        out.append(e.prompt_id == prompt_id)
    if version_id is not None:
        out.append(e.version_id == version_id)
    if environment is not None:
        out.append(e.environment == environment)
    if after is not None:
        out.append(e.created_at >= after)
    if before is not None:
        out.append(e.created_at < before)
    return out


def filter_matches(args: tuple[Any, ...]) -> Callable[[models.Execution], bool]:
    """``filter_conditions`` evaluated in Python on a row already read (a live feed's subscribers each
    filter the rows the feed read once)."""
    statuses, prompt_id, version_id, environment, after, before = args
    after, before = _aware(after), _aware(before)

    def matches(row: models.Execution) -> bool:
        return ((statuses is None or row.status in statuses)
                and (prompt_id is None or row.prompt_id == prompt_id)
                and (version_id is None or row.version_id == version_id)
                and (environment is None or row.environment == environment)
                and (after is None or row.created_at >= after)
                and (before is None or row.created_at < before))

    return matches


def _aware(at: datetime | None) -> datetime | None:
    """A time without a zone means UTC (as the database reads it: its sessions run in UTC)."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


class ProjectExecutionsPage(ChildPageLoader):
    """Newest first."""

    model = models.Execution
    parent_col = models.Execution.project_id
    sort_col = models.Execution.created_at
    id_col = models.Execution.id
    descending = True

    def base(self) -> Select[Any]:
        return select(models.Execution).where(*filter_conditions(self.args))


class PromptExecutionsPage(ProjectExecutionsPage):
    parent_col = models.Execution.prompt_id


class StatsLoader(BaseLoader):
    """Key version id -> VersionStatsData for one window (and environment): args = (from, to, environment)."""

    def __init__(self, ctx: Context, start: datetime | None, end: datetime | None, environment: str | None):
        super().__init__(ctx)
        self.start, self.end, self.environment = start, end, environment

    async def batch_load_fn(self, keys: Sequence[uuid.UUID]) -> list[VersionStatsData]:
        async with self.ctx.db() as session:
            found = await version_stats(session, keys, start=self.start, end=self.end, environment=self.environment)
        return [found[k] for k in keys]
