"""The process's case-number pool for bookings (see :class:`casework.CaseNumbers`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.ext.asyncio import create_async_engine

from server.appkeys import SETTINGS
from server.booking.casework import CaseNumbers

CASE_NUMBERS: web.AppKey[CaseNumbers | None] = web.AppKey("booking_case_numbers")
POOL_SIZE = 2


async def case_numbers_ctx(app: web.Application) -> AsyncIterator[None]:
    """On PostgreSQL a small engine of its own; on SQLite (writers are serialised by
    ``BEGIN IMMEDIATE`` anyway) ``None``: the number is taken in the booking's
    transaction, gapless."""
    settings = app[SETTINGS]
    if settings.is_sqlite:
        app[CASE_NUMBERS] = None
        yield
        return
    engine = create_async_engine(
        settings.effective_database_url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
        isolation_level="AUTOCOMMIT",
        # No ping per checkout (a round trip per number); a connection PostgreSQL closed
        # is recycled after 30 minutes, or fails the one booking that drew it.
        pool_recycle=1800,
    )
    app[CASE_NUMBERS] = CaseNumbers(engine, settings.zone)
    try:
        yield
    finally:
        await engine.dispose()
