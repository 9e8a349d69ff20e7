"""The one way a change runs: a service function in one audited transaction.

Every service function that changes something has the same shape::

    @service("prompt.create")
    async def create_prompt(tx: Tx, *, project_id: uuid.UUID | None, ...) -> Prompt:
        ...

It gets a :class:`Tx` (the transaction's session, the acting principal, the settings and the
audit note) and keyword arguments; it checks permissions first (``app.services.access``), raises
:class:`~app.services.errors.ServiceError` for expected problems, and returns what it made.
Callers run it with :func:`perform` (the API's mutations do, through ``app.api.core.mutations``):

* the function runs inside ``BEGIN … COMMIT``; on success the SUCCESS audit event is written in
  that same transaction, so there is no change without its audit row and no audit row for a
  change that did not commit;
* on a ServiceError the transaction is rolled back (nothing is half-written) and a FAILURE (or
  DENIED, for FORBIDDEN) event is written in a transaction of its own; the error is re-raised;
* unexpected exceptions are audited as FAILURE too and re-raised (the API masks them);
* a change of what the hot path caches (``app.services.hot``) returns only once this process's caches
  have applied its notices (a marker NOTIFY after the triggers' ones, waited for after the commit);
* work that must wait for the commit (e.g. watching a worker react to it) is registered with
  :meth:`Tx.after_commit` and runs once the transaction has committed.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models.enums import AuditResult
from app.settings import Settings

from . import hot
from .audit import AuditNote, event, record_apart
from .errors import ServiceError
from .principal import Principal

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Tx:
    """What a service function works with."""

    session: AsyncSession
    principal: Principal
    settings: Settings
    note: AuditNote
    sessionmaker: async_sessionmaker[AsyncSession]
    _after: list[Callable[[Any], Awaitable[Any]]] = field(default_factory=list, repr=False)

    def after_commit(self, then: Callable[[Any], Awaitable[Any]]) -> None:
        """Run ``then(result)`` once the transaction has committed; its return value becomes the result."""
        self._after.append(then)


class Service(Generic[P, R]):
    """A service function with its audit action (see the module docstring)."""

    def __init__(self, fn: Callable[Concatenate[Tx, P], Awaitable[R]], action: str, anonymous: bool):
        self.fn = fn
        self.action = action
        #: Callable without signing in (sign-up, log-in); everything else needs a principal.
        self.anonymous = anonymous
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    async def __call__(self, tx: Tx, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.fn(tx, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<service {self.action} {self.fn.__module__}.{self.fn.__name__}>"


def service(action: str, *, anonymous: bool = False
            ) -> Callable[[Callable[Concatenate[Tx, P], Awaitable[R]]], Service[P, R]]:
    """Declare a service function and the audit action it is recorded as (``prompt.create``)."""

    def wrap(fn: Callable[Concatenate[Tx, P], Awaitable[R]]) -> Service[P, R]:
        return Service(fn, action, anonymous)

    return wrap


async def perform(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, settings: Settings,
                  fn: Service[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``fn`` in one audited transaction as ``principal`` (see the module docstring)."""
    note = AuditNote(action=fn.action)
    settle: hot.Settle | None = None
    try:
        async with sessionmaker() as session, session.begin():
            tx = Tx(session=session, principal=principal, settings=settings, note=note,
                    sessionmaker=sessionmaker)
            result: Any = await fn(tx, *args, **kwargs)
            session.add(event(principal, note, AuditResult.SUCCESS))
            settle = await hot.before_commit(session)
    except ServiceError as exc:
        outcome = AuditResult.DENIED if exc.code == "FORBIDDEN" else AuditResult.FAILURE
        await record_apart(sessionmaker, principal, note, outcome,
                           {"error": {"code": exc.code, "message": exc.message}})
        raise
    except Exception:
        if settle is not None:
            settle.discard()  # the commit failed
        await record_apart(sessionmaker, principal, note, AuditResult.FAILURE, {"error": {"code": "INTERNAL"}})
        raise
    if settle is not None:
        await settle.wait()  # this process's caches have dropped what the change made stale
    for then in tx._after:
        result = await then(result)
    return result
