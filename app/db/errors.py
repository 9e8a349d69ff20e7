"""Which exceptions mean "the database cannot be reached right now", as opposed to a fault of ours.

Two kinds, told apart because only the first is worth an immediate retry:

* **connection lost** — a pooled connection died under a statement (the server restarted, an
  administrator terminated the backend, the network dropped). SQLAlchemy raises a ``DBAPIError``
  with ``connection_invalidated`` set and replaces the pool's connections, so the same work tried
  again gets new ones (and works, if the server is back).
* **unreachable** — no connection can be made (refused, timed out, name not resolved, the server is
  starting or shutting down, or has no connection slot left), or every pooled connection is in use
  past the pool's timeout. Trying again at once would fail the same way: the client should come
  back later (HTTP 503 with Retry-After).
"""
from __future__ import annotations

import socket

import asyncpg
from sqlalchemy import exc as sa_exc

#: Seconds a client is asked to wait (HTTP Retry-After) when the database cannot be reached.
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_MESSAGE = "The database is unavailable at the moment; try again in a few seconds."

#: asyncpg's errors for a server that is going away, not there yet, or out of connection slots.
_SERVER_GONE = (
    asyncpg.PostgresConnectionError,  # connection does not exist / failure
    asyncpg.exceptions.OperatorInterventionError,  # admin/crash shutdown, cannot connect now
    asyncpg.exceptions.TooManyConnectionsError,
)


def _chain(exc: BaseException | None):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_connection_lost(exc: BaseException | None) -> bool:
    """A statement failed because its connection died (see the module docstring)."""
    return any(isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated for e in _chain(exc))


def is_database_unavailable(exc: BaseException | None) -> bool:
    """The database cannot be used right now: its connection was lost, or none can be made."""
    for e in _chain(exc):
        if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        if isinstance(e, sa_exc.TimeoutError):  # the pool: no connection free within pool_timeout
            return True
        if isinstance(e, _SERVER_GONE):
            return True
        if isinstance(e, asyncpg.InterfaceError) and "connection is closed" in str(e):
            return True
        # Connecting: refused, reset, timed out, host unknown (asyncpg raises these unwrapped).
        if isinstance(e, (ConnectionError, TimeoutError, socket.gaierror)):
            return True
    return False
