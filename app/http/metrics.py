"""/metrics: the server's state in the Prometheus text format, read at scrape time.

Gauges only (no request counters kept in memory): executions queued and running and the job
queue by kind (whole database, from small partial indexes), this process's live subscribers, its
worker tasks, and its database pool.
"""
from __future__ import annotations

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from app import sandbox

_EXECUTIONS = text("SELECT status, count(*) FROM executions WHERE status IN ('PENDING', 'RUNNING') GROUP BY status")
_JOBS = text("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status ORDER BY kind, status")


async def metrics(request: Request) -> PlainTextResponse:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return PlainTextResponse("# starting\n", status_code=503)
    lines: list[str] = []

    def gauge(name: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{labels} {value}" for labels, value in samples)

    async with runtime.engine.connect() as conn:
        counts = dict((await conn.execute(_EXECUTIONS)).all())
        jobs = (await conn.execute(_JOBS)).all()
    gauge("promptstudio_executions", "Executions queued or running (whole database).",
          [(f'{{status="{s}"}}', counts.get(s, 0)) for s in ("PENDING", "RUNNING")])
    gauge("promptstudio_jobs", "Jobs waiting (PENDING) or held by a worker (RUNNING), by kind (whole database).",
          [(f'{{kind="{kind}",status="{status}"}}', n) for kind, status, n in jobs])
    untrusted = sandbox.pool()
    gauge("promptstudio_sandbox_workers", "Sandbox worker processes of this process (untrusted work), by state.",
          [('{state="busy"}', untrusted.busy), ('{state="idle"}', untrusted.workers - untrusted.busy)])
    gauge("promptstudio_sandbox_replaced", "Sandbox workers replaced so far (killed when late, out of memory, died).",
          [("", untrusted.replaced)])
    bus = runtime.bus
    gauge("promptstudio_subscribers", "Live subscriptions served by this process.",
          [("", bus.subscriber_count if bus is not None else 0)])
    gauge("promptstudio_worker_tasks", "Worker tasks in this process (they run jobs of every kind).",
          [("", runtime.settings.workers)])
    pool = runtime.engine.pool
    gauge("promptstudio_db_pool_connections", "Database connections of this process's pool.",
          [('{state="checked_out"}', pool.checkedout()), ('{state="idle"}', pool.checkedin())])
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
