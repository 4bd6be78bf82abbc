"""An officer's time, claimed minute by minute so the database refuses overlaps.

Seats are counted per slot (:mod:`seats`), but the thing a service centre actually runs
out of is people: one officer cannot hold two video appointments at once, whatever the
matters or the nodes. Each appointment with an officer writes one ``time_claims`` row
per minute it covers, keyed ``(resource, minute)``; a second appointment of the same
officer over any of those minutes cannot insert its row. That works the same on SQLite
(writers are serialised) and PostgreSQL (``INSERT … ON CONFLICT DO NOTHING`` waits for
the transaction that holds a conflicting row, then skips it if that one committed), and
no lock lives in a process.

A claim that loses any minute deletes the minutes it did insert (they are its own,
uncommitted rows), so the caller may try another officer in the same transaction.
Claims go when the appointment is cancelled, moved or handed to another officer; a
completed or missed appointment keeps its claim (the time was spent, or is past).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.booking import seats
from server.booking.models import TimeClaim


def staff_resource(staff_id: int) -> str:
    return f"staff:{staff_id}"


def person_resource(identity_key: str) -> str:
    """An applicant (resident ID or credit code): one person, one appointment at a time."""
    return f"person:{identity_key}"


def minutes(start: datetime, end: datetime) -> range:
    """Epoch minutes of ``[start, end)``; a partial minute at either end counts whole."""
    first = int(start.timestamp()) // 60
    last = -(-int(end.timestamp()) // 60)
    return range(first, last)


_CLAIM = text(
    "WITH RECURSIVE span(minute) AS ("
    " SELECT CAST(:first AS INTEGER)"
    " UNION ALL SELECT minute + 1 FROM span WHERE minute + 1 < :stop)"
    " INSERT INTO time_claims (resource, minute, appointment_id)"
    " SELECT CAST(:resource AS VARCHAR), minute, CAST(:appointment_id AS INTEGER)"
    " FROM span WHERE true"
    " ON CONFLICT DO NOTHING RETURNING minute"
)
"""One statement, the same text whatever the length: the minutes are generated in the
database (``WHERE true`` resolves SQLite's ``SELECT … ON CONFLICT`` ambiguity), so the
statement is compiled once per process, not once per claim with a row of parameters per
minute (that compilation was the costliest Python of a booking)."""


async def claim(
    session: AsyncSession, resource: str, appointment_id: int, start: datetime, end: datetime
) -> bool:
    """Claim every minute of ``[start, end)`` for ``appointment_id``; False (and nothing
    claimed) when any minute is already somebody's."""
    wanted = minutes(start, end)
    if not wanted:
        return True
    result = await session.execute(
        _CLAIM,
        {
            "first": wanted.start,
            "stop": wanted.stop,
            "resource": resource,
            "appointment_id": appointment_id,
        },
    )
    got = len(result.all())
    if got == len(wanted):
        return True
    if got:
        await session.execute(
            delete(TimeClaim)
            .where(TimeClaim.resource == resource, TimeClaim.appointment_id == appointment_id)
            .execution_options(synchronize_session=False)
        )
    return False


async def release(session: AsyncSession, appointment_id: int, resource: str | None = None) -> None:
    """Give back the minutes ``appointment_id`` holds: all of them (cancel, move), or only
    ``resource``'s (a hand-over releases the old officer, not the applicant)."""
    seats.freed(session)
    condition = TimeClaim.appointment_id == appointment_id
    if resource is not None:
        condition = condition & (TimeClaim.resource == resource)
    await session.execute(
        delete(TimeClaim).where(condition).execution_options(synchronize_session=False)
    )


async def busy_staff(
    session: AsyncSession, staff_ids: Iterable[int], start: datetime, end: datetime
) -> set[int]:
    """Which of ``staff_ids`` hold any minute of ``[start, end)`` (as committed or ours)."""
    resources = {staff_resource(s): s for s in staff_ids}
    return {resources[r] for r in await holders(session, resources, start, end)}


async def holders(
    session: AsyncSession, resources: Iterable[str], start: datetime, end: datetime
) -> set[str]:
    """Which of ``resources`` hold any minute of ``[start, end)``: one read for the
    applicant and every candidate officer of a booking."""
    wanted = list(resources)
    if not wanted:
        return set()
    span = minutes(start, end)
    rows = await session.scalars(
        select(TimeClaim.resource)
        .where(
            TimeClaim.resource.in_(wanted),
            TimeClaim.minute >= span.start,
            TimeClaim.minute < span.stop,
        )
        .distinct()
    )
    return set(rows)
