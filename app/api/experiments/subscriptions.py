"""``experimentProgress``: an experiment's progress as its runs finish, then the end.

The transaction that finishes a run (or ends the experiment) publishes a notice on the experiment's
topic (``app.events.topics.experiment``: ``{"r": run, "st": status}``, with ``"x"`` when the experiment
ended). The subscription registers with the bus *before* it reads the experiment, so nothing that
commits after that read is missed, and sends:

1. at once, the progress as it is (``run`` null);
2. an event per finished run — throttled: when runs finish faster than one per
   ``PROMPTSTUDIO_EXPERIMENT_PROGRESS_INTERVAL_SECONDS`` (0.25 s by default), the runs that finished
   meanwhile are reported together (``finishedRuns``, the change of the row's counters since the last
   event; ``run`` is the last of them); progress is always read from the experiment's row, so it is
   exact whatever was coalesced, and the finishedRuns of a stream add up to the runs that finished;
3. when the experiment has ended (COMPLETED or CANCELLED), a last event, and the stream completes.

Notices are only hints: a subscriber whose inbox overflows, a RESYNC after the bus reconnected, or an
idle ``CATCH_UP_SECONDS`` re-reads the row. Anonymous callers get UNAUTHENTICATED; an experiment that does
not exist or that the caller may not read (EXPERIMENTS_READ) is NOT_FOUND.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import strawberry
from sqlalchemy import select
from starlette.websockets import WebSocket, WebSocketState

from app.db import models
from app.db.models.enums import ExperimentStatus
from app.events import topics
from app.services import auth
from app.services.access import Action

from ..core.context import Info
from ..core.errors import ClientError, Unauthenticated
from ..core.relay import decode_id
from .types import Experiment, ExperimentProgress, ExperimentProgressEvent, ExperimentRun

#: An idle subscriber re-reads the experiment this often anyway (a safety net for lost notices).
CATCH_UP_SECONDS = 5.0
#: The caller's right to read the experiment is checked again at most this often.
ACCESS_RECHECK_SECONDS = 5.0
ENDED = frozenset({ExperimentStatus.COMPLETED.value, ExperimentStatus.CANCELLED.value,
                   ExperimentStatus.ARCHIVED.value})


def _not_found() -> ClientError:
    return ClientError("No experiment with this ID.", "NOT_FOUND")


class _Stream:
    """The iterator handed to Strawberry: it always lets go of its bus subscription (which it may replace
    after an overflow)."""

    def __init__(self, bus: Any, sub: Any):
        self.bus, self.sub = bus, sub
        self.events: AsyncGenerator[ExperimentProgressEvent, None] | None = None

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> ExperimentProgressEvent:
        assert self.events is not None
        try:
            return await self.events.__anext__()
        except BaseException:
            self.release()
            raise

    async def aclose(self) -> None:
        try:
            if self.events is not None:
                await self.events.aclose()
        finally:
            self.release()

    def resubscribe(self, topic: str, alive: Any) -> None:
        self.release()
        self.sub = self.bus.subscribe(topic, alive=alive)

    def release(self) -> None:
        sub, self.sub = self.sub, None
        if sub is not None:
            self.bus.unsubscribe(sub)

    def __del__(self) -> None:
        self.release()


async def _read(ctx: Any, experiment_id: uuid.UUID) -> models.Experiment | None:
    async with ctx.db() as session:
        return (await session.execute(select(models.Experiment).where(models.Experiment.id == experiment_id))
                ).scalar_one_or_none()


async def _read_run(ctx: Any, run_id: uuid.UUID | None) -> models.ExperimentRun | None:
    if run_id is None:
        return None
    async with ctx.db() as session:
        return await session.get(models.ExperimentRun, run_id)


async def _last_finished_run(ctx: Any, experiment_id: uuid.UUID) -> models.ExperimentRun | None:
    r = models.ExperimentRun
    async with ctx.db() as session:
        return (await session.execute(select(r).where(r.experiment_id == experiment_id, r.ended_at.is_not(None))
                                      .order_by(r.ended_at.desc(), r.id.desc()).limit(1))).scalar_one_or_none()


def _finished(e: models.Experiment) -> int:
    return e.runs_completed + e.runs_failed + e.runs_cancelled


def _counts(e: models.Experiment) -> tuple[int, ...]:
    return e.runs_total, e.runs_running, e.runs_completed, e.runs_failed, e.runs_cancelled


def _event(row: models.Experiment, run: models.ExperimentRun | None, finished: int) -> ExperimentProgressEvent:
    return ExperimentProgressEvent(experiment=Experiment.from_row(row), progress=ExperimentProgress.of(row),
                                   run=ExperimentRun.from_row(run) if run is not None else None,
                                   finished_runs=finished)


async def open_progress_stream(info: Info, gid: strawberry.ID) -> _Stream:
    ctx = info.context
    ctx.require_auth()
    experiment_id = decode_id(gid, models.Experiment)
    if experiment_id is None:
        raise _not_found()
    bus = getattr(ctx.services, "bus", None)
    if bus is None:
        raise ClientError("Live updates are not available: this server process runs no event bus.", "UNAVAILABLE")
    ws = ctx.request
    alive = None
    if isinstance(ws, WebSocket):
        def alive() -> bool:
            return (ws.client_state != WebSocketState.DISCONNECTED
                    and ws.application_state != WebSocketState.DISCONNECTED)
    topic = topics.experiment(experiment_id)
    stream = _Stream(bus, bus.subscribe(topic, alive=alive))
    try:
        ctx.refresh_loaders()
        row = await _read(ctx, experiment_id)
        if row is None or not await ctx.can(row.project_id, Action.READ_EXPERIMENTS):
            raise _not_found()
    except BaseException:
        stream.release()
        raise
    stream.events = _progress(ctx, stream, topic, alive, row)
    return stream


async def _progress(ctx: Any, stream: _Stream, topic: str, alive: Any,
                    row: models.Experiment) -> AsyncGenerator[ExperimentProgressEvent, None]:
    interval = ctx.settings.experiment_progress_interval_seconds
    yield _event(row, None, 0)
    if row.status in ENDED:
        return
    experiment_id, project_id = row.id, row.project_id
    checked = time.monotonic()
    last_sent = time.monotonic()
    while True:
        sub = stream.sub
        batch = await sub.next_batch(CATCH_UP_SECONDS)
        if sub.closed:
            return  # its client is gone
        if sub.overflowed:  # fell behind: start afresh, and read the row (progress is exact whatever was missed)
            stream.resubscribe(topic, alive)
            batch = []
        wait = interval - (time.monotonic() - last_sent)
        ended = any("x" in n.data for n in batch if not n.resync)
        if wait > 0 and batch and not ended:
            await asyncio.sleep(wait)  # throttle: what finishes meanwhile is reported together
            more = stream.sub.drain() if stream.sub is not None else []
            batch += more
        runs = [n.data["r"] for n in batch if not n.resync and "r" in n.data]
        ctx.refresh_loaders()  # the WebSocket context lives as long as the connection
        if time.monotonic() - checked >= ACCESS_RECHECK_SECONDS:
            if not await auth.still_valid(ctx.sessionmaker, ctx.principal):
                raise Unauthenticated("The session or API key of this connection has ended (logged out, revoked or "
                                      "expired); connect again with a valid token.")
            if not await ctx.can(project_id, Action.READ_EXPERIMENTS):
                raise _not_found()
            checked = time.monotonic()
        now = await _read(ctx, experiment_id)
        if now is None:
            raise ClientError("This experiment was deleted.", "NOT_FOUND")
        if now.status == row.status and _counts(now) == _counts(row):
            continue  # nothing new: an idle wake-up, or notices of runs an earlier event counted already
        # Counted from the row, not from the notices: a notice may arrive after the row that counts its run
        # was read (NOTIFY is delivered a little after COMMIT), and the stream may end before it arrives.
        done = _finished(now) - _finished(row)
        run = await _read_run(ctx, uuid.UUID(runs[-1])) if runs else None
        if run is None and done:
            run = await _last_finished_run(ctx, experiment_id)
        yield _event(now, run, done)
        row, last_sent = now, time.monotonic()
        if now.status in ENDED:
            return


@strawberry.type
class ExperimentSubscription:
    @strawberry.subscription(description=(
        "An experiment's progress: the progress now, then an event per finished run (throttled: runs that finish "
        "within PROMPTSTUDIO_EXPERIMENT_PROGRESS_INTERVAL_SECONDS of each other come together, finishedRuns says "
        "how many), and a last event when the experiment ends; then the stream completes. Needs EXPERIMENTS_READ."))
    async def experiment_progress(self, info: Info, id: strawberry.ID) -> AsyncIterator[ExperimentProgressEvent]:
        return await open_progress_stream(info, id)
