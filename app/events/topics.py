"""Topic names: what a notice concerns and a subscription listens to. A new kind of live feed is a
new topic here (and a ``publish`` where its data changes); the bus needs no change."""
from __future__ import annotations

import uuid


def execution(execution_id: uuid.UUID) -> str:
    """Every event of one execution (executionUpdated)."""
    return f"execution:{execution_id}"


def project_executions(project_id: uuid.UUID) -> str:
    """Every event of a project's executions (projectExecutions filters the status changes)."""
    return f"project:{project_id}:executions"


def project_traces(project_id: uuid.UUID) -> str:
    """Changes of a project's traces (projectTraces): data ``{"traces": [trace row ids]}``."""
    return f"project:{project_id}:traces"


def experiment(experiment_id: uuid.UUID) -> str:
    """An experiment's progress (experimentProgress): data ``{"r": run id, "st": its status}`` when a run
    finishes, with ``"x": status`` when the experiment itself ends."""
    return f"experiment:{experiment_id}"


#: Changes that invalidate the hot path's caches (app.services.hot); published by database triggers
#: (migration 0013). Data: {"r": project id or "*"} (resolvePrompt answers), {"m": [user, project]}
#: (a role), {"u": user}, {"s": session}, {"a": API key} (tokens).
CACHES = "caches"
