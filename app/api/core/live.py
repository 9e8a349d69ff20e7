"""Plumbing shared by the live subscriptions (executions, traces): the stream handed to Strawberry, the
periodic re-check of the caller's rights, the event bus of the process, and their errors.

How a live feed works (docs/architecture.md, "Events and subscriptions"): a subscription registers with
the process's event bus for a topic *before* it reads anything, then reads what is new from the tables
whenever notices arrive; notices are hints, never the data.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from starlette.websockets import WebSocket, WebSocketState
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.services import access, auth
from app.services.access import Action
from app.services.errors import ServiceError
from app.services.principal import Principal

from .context import Context, Info
from .errors import ClientError, Unauthenticated

#: The caller's right to read the project is checked again before delivering, at most this often.
ACCESS_RECHECK_SECONDS = 5.0


def not_found(what: str) -> ClientError:
    return ClientError(f"No {what} with this ID.", "NOT_FOUND")


def fell_behind(sub: Any) -> ClientError:
    return ClientError(
        f"This subscriber fell more than {sub.maxsize} events behind and was closed; subscribe again to resume "
        "from a fresh snapshot.", "FELL_BEHIND")


def client_alive(info: Info) -> Callable[[], bool] | None:
    """For the bus's sweeps: whether the subscriber's WebSocket is still open."""
    ws = info.context.request
    if not isinstance(ws, WebSocket):
        return None
    return lambda: (ws.client_state != WebSocketState.DISCONNECTED
                    and ws.application_state != WebSocketState.DISCONNECTED)


def event_bus(info: Info) -> Any:
    bus = getattr(info.context.services, "bus", None)
    if bus is None:
        raise ClientError("Live updates are not available: this server process runs no event bus.", "UNAVAILABLE")
    return bus


class EventStream:
    """The async iterator handed to Strawberry: it always lets go of its bus subscription.

    It wraps the event generator and unsubscribes when the generator ends, fails or is closed —
    and also when it is closed (or dropped) before it was ever iterated, which a bare async
    generator's ``finally`` would not cover.
    """

    def __init__(self, bus: Any, sub: Any, events: AsyncGenerator[Any, None]):
        self._bus, self._sub, self._events = bus, sub, events

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._events.__anext__()
        except BaseException:
            self.release()
            raise

    async def aclose(self) -> None:
        try:
            await self._events.aclose()
        finally:
            self.release()

    def release(self) -> None:
        sub = getattr(self, "_sub", None)
        if sub is not None:
            self._sub = None
            self._bus.unsubscribe(sub)

    def __del__(self) -> None:
        self.release()


class AccessCheck:
    """Re-checks, at most every ACCESS_RECHECK_SECONDS (after refresh_loaders), that the credential
    still holds (not logged out, revoked or expired) and ``action`` on the project."""

    def __init__(self, ctx: Context, project_id: uuid.UUID, what: str, action: Action):
        self.ctx, self.project_id, self.what, self.action = ctx, project_id, what, action
        self.checked = time.monotonic()

    async def __call__(self) -> None:
        if time.monotonic() - self.checked < ACCESS_RECHECK_SECONDS:
            return
        if not await auth.still_valid(self.ctx.sessionmaker, self.ctx.principal):
            raise Unauthenticated("The session or API key of this connection has ended (logged out, revoked or "
                                  "expired); connect again with a valid token.")
        if not await self.ctx.can(self.project_id, self.action):
            raise not_found(self.what)
        self.checked = time.monotonic()


class FeedAccessCheck:
    """A shared feed's re-check of all its subscribers at once, at most every ACCESS_RECHECK_SECONDS (before
    a delivery): the credentials that still hold (one query for sessions, one for API keys) and the
    users' roles in the project (one query), on the feed's pool — instead of two queries per subscriber.
    A subscriber that lost ``action`` in the project (or whose credential ended) is failed: its stream
    ends with NOT_FOUND (UNAUTHENTICATED) before anything more reaches it."""

    def __init__(self, sessionmaker: Any, project_id: uuid.UUID, what: str, action: Action):
        self.sessionmaker, self.project_id, self.what, self.action = sessionmaker, project_id, what, action
        self.checked = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.checked >= ACCESS_RECHECK_SECONDS

    async def __call__(self, subscribers: list[Any]) -> None:
        principals = [s.owner for s in subscribers if isinstance(s.owner, Principal)]
        if not principals:
            return
        started = time.monotonic()
        async with self.sessionmaker() as session:
            valid = await auth.still_valid_many(session, principals)
            roles = await access.roles_of_users(session, self.project_id,
                                                {p.user_id for p in principals if access.has_roles(p) and p.user_id})
        for sub in subscribers:
            p = sub.owner
            if not isinstance(p, Principal):
                continue
            credential = auth.credential_of(p)
            if credential is not None and credential not in valid:
                sub.fail(Unauthenticated("The session or API key of this connection has ended (logged out, revoked "
                                         "or expired); connect again with a valid token."))
            elif not access.permits(p, roles.get(p.user_id) if access.has_roles(p) and p.user_id else None,
                                    self.project_id, self.action):
                sub.fail(not_found(self.what))
        self.checked = started


async def subscribe_checked(info: Info, principal: Principal, topic: str, project_id: uuid.UUID, action: Action, *,
                            accept: Callable[[Mapping[str, Any]], bool] | None = None,
                            feed: Any = None) -> tuple[Any, Any, datetime]:
    """Register with the process's bus for ``topic`` first, then check that ``principal`` may do ``action``
    in the project (so whatever commits after the check is notified); returns the bus, the subscriber
    and the database's time of the check (read what is newer than it). Refused: ClientError, and the
    subscriber is gone."""
    ctx = info.context
    bus = event_bus(info)
    sub = bus.subscribe(topic, accept=accept, alive=client_alive(info), owner=principal, feed=feed)
    try:
        async with ctx.db() as session:
            try:
                await access.require(session, principal, project_id, action)
            except ServiceError as exc:
                error = exc.errors[0]
                raise ClientError(error.message, error.code) from None
            started = (await session.execute(select(func.now()))).scalar_one()
    except BaseException:
        bus.unsubscribe(sub)
        raise
    return bus, sub, started


# ---------------------------------------------------------------------------- one execution per event and selection


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """Executes a subscription event once per distinct (operation text, variables, principal) and shares the result.

    A shared feed hands the *same* event object to all its subscribers; when that object carries a
    ``shared_results`` dict, the first subscriber to execute the operation on it stores the (in-flight)
    result there, and every other subscriber with the same operation text, variables and principal takes
    it instead of running the whole selection again — a thousand identical monitors cost one execution
    per event, not a thousand. The principal is part of the key, so what one caller may see never
    reaches another; a result with errors is never shared (each subscriber then runs its own).
    Events without ``shared_results`` (and queries and mutations) are executed as usual.
    """

    _share_key: Any = None

    def build_per_event_executor(self, payload: Any) -> Any:
        if self._share_key is None and getattr(payload, "shared_results", None) is not None:
            self._share_key = share_key(self)
        return super().build_per_event_executor(payload)

    def execute_operation(self, serially: bool | None = None) -> Any:
        results = getattr(self.root_value, "shared_results", None)
        key = self._share_key
        if results is None or not key:
            return super().execute_operation(serially)
        shared = results.get(key)
        if shared is None:
            result = super().execute_operation(serially)
            if not self.is_awaitable(result):
                if not getattr(result, "errors", None):
                    results[key] = result
                return result
            task = asyncio.ensure_future(result)
            results[key] = task
            return self._take(task, serially, own=True)
        if isinstance(shared, asyncio.Future):
            return self._take(shared, serially, own=False)
        return shared

    async def _take(self, task: asyncio.Future, serially: bool | None, *, own: bool) -> Any:
        result = await asyncio.shield(task)  # a subscriber that goes away does not cancel the others' result
        if getattr(result, "errors", None) and not own:
            again = super().execute_operation(serially)  # not shared: run this subscriber's own
            return await again if self.is_awaitable(again) else again
        return result


def share_key(executor: Any) -> tuple[Any, ...] | None:
    """What makes two subscribers' results of one event the same: operation text, variables, principal."""
    operation = executor.operation
    if operation.loc is None:
        return None
    principal = getattr(executor.context_value, "principal", None)
    if not isinstance(principal, Principal):
        return None
    variables = getattr(executor.variable_values, "coerced", executor.variable_values)
    try:
        encoded = json.dumps(variables, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return None
    who = (principal.kind, principal.user_id, principal.api_key_id, principal.is_superuser,
           tuple(sorted(principal.scopes)))
    return (operation.loc.source.body, operation.name.value if operation.name else None, encoded, who)
