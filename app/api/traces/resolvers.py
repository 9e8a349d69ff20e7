"""Fields traces supply to other domains' types: Project.traces, Project.trace and Execution.trace."""
from __future__ import annotations

import re
import uuid
from datetime import datetime

from app.db import models
from app.services.access import Action

from ..core.child_pages import child_connection
from ..core.context import Info
from ..core.errors import BadRequest
from ..core.pagination import Connection, check_cursor_types
from .loaders import TraceByExecution, TraceByTraceId, TracesPage
from .types import Trace, TraceFilter, filter_spec

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")


async def project_traces(info: Info, project: models.Project, first: int | None, after: str | None,
                         filter: TraceFilter | None) -> Connection[Trace]:
    spec = filter_spec(filter)
    check_cursor_types(after, datetime, uuid.UUID)
    if not await info.context.can(project.id, Action.READ_TRACES):
        return Connection.empty()
    return await child_connection(info, TracesPage, project.id, first=first, after=after, wrap=Trace.from_row,
                                  args=(spec,))


async def project_trace(info: Info, project: models.Project, trace_id: str) -> Trace | None:
    if not _TRACE_ID.match(trace_id):
        raise BadRequest("traceId must be 32 hexadecimal characters (an OpenTelemetry trace id)")
    if not await info.context.can(project.id, Action.READ_TRACES):
        return None
    row = await info.context.loader(TraceByTraceId).load((project.id, trace_id.lower()))
    return Trace.from_row(row) if row is not None else None


async def execution_trace(info: Info, execution: models.Execution) -> Trace | None:
    # governed by the rule of what it returns: a key that may read executions but not traces gets null
    if not await info.context.can(execution.project_id, Action.READ_TRACES):
        return None
    row = await info.context.loader(TraceByExecution).load(execution.id)
    return Trace.from_row(row) if row is not None else None
