"""Which exceptions mean "a dependency is down" rather than "a bug": those become 503 with
``Retry-After`` and a stable code, so clients and load balancers retry instead of
reporting a server error, and operators see which dependency it was.

The database is down when the driver cannot connect or its connection died (asyncpg's
connection-class errors, an administrator's termination, a dropped database, refused or
reset sockets, an unknown host, a pool that cannot hand out a connection) or SQLite's
file is locked past its timeout.
Redis is down on the client's connection and timeout errors, which redis-py raises once
its own short retry is used up (see ``server.app.redis_client``).
"""

from __future__ import annotations

import socket
import sqlite3

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.errors import (
    DatabaseUnavailableError,
    RedisUnavailableError,
    ServiceUnavailableError,
)

RETRY_AFTER_SECONDS = 5

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
_DRIVER_DOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.InvalidCatalogNameError,  # the database was dropped
    # asyncpg raises the socket's own error when it cannot connect (refused, unknown host);
    # files never raise these, so they cannot hide a full disk behind a 503. A reset or a
    # broken pipe is not listed: mid-query SQLAlchemy wraps it (connection_invalidated),
    # and raw it is the browser going away, which is no outage.
    ConnectionRefusedError,
    socket.gaierror,
    TimeoutError,
    sqlalchemy.exc.TimeoutError,  # the pool had no connection to give
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _database_down(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return True
    return isinstance(exc, _DRIVER_DOWN)


def unavailable(exc: BaseException) -> ServiceUnavailableError | None:
    """The 503 to answer for ``exc``, or None when it is not an outage."""
    chain = _chain(exc)
    if any(isinstance(e, _REDIS_DOWN) for e in chain):
        return RedisUnavailableError(RETRY_AFTER_SECONDS)
    if any(_database_down(e) for e in chain):
        return DatabaseUnavailableError(RETRY_AFTER_SECONDS)
    return None
