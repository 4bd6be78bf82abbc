"""Who a closure affects, and telling them.

Closing a day (or part of it) after people booked it must not leave them to find a
locked door: the bookings that overlap the closure are listed beside it on the admin
page, and each applicant gets an SMS with the manage link to pick another time, written
to the outbox in the closing transaction (key per appointment and version, so a second
closure over the same booking tells nobody twice). The bookings stay ``booked`` — the
applicant, or the admin, moves or cancels them — because cancelling on the citizen's
behalf would lose the booking of someone who cannot move it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.booking import models as m
from server.booking import outbox, texts

KIND = "booking.closure"


def _span(exc: m.PlanException, zone: ZoneInfo) -> tuple[datetime, datetime]:
    midnight = datetime.combine(exc.day, time(), zone)
    if exc.start_min is None or exc.end_min is None:
        return midnight.astimezone(UTC), (midnight + timedelta(days=1)).astimezone(UTC)
    return (
        (midnight + timedelta(minutes=exc.start_min)).astimezone(UTC),
        (midnight + timedelta(minutes=exc.end_min)).astimezone(UTC),
    )


async def affected(
    session: AsyncSession, exc: m.PlanException, zone: ZoneInfo
) -> list[m.Appointment]:
    """Live (booked or checked-in) appointments inside a closure, earliest first."""
    if not exc.closed:
        return []
    first, last = _span(exc, zone)
    query = select(m.Appointment).where(
        m.Appointment.status.in_(("booked", "checked_in")),
        m.Appointment.starts_at < last,
        m.Appointment.ends_at > first,
    )
    if exc.window_id is not None:
        query = query.where(m.Appointment.window_id == exc.window_id)
    return list(await session.scalars(query.order_by(m.Appointment.starts_at)))


async def tell_affected(
    session: AsyncSession,
    exc: m.PlanException,
    zone: ZoneInfo,
    manage_url: Callable[[m.Appointment], str],
    now: datetime,
) -> list[m.Appointment]:
    """Queue one SMS per affected applicant; the appointments told."""
    told = await affected(session, exc, zone)
    for appt in told:
        matter = await session.get(m.Matter, appt.matter_id)
        assert matter is not None
        await outbox.enqueue(
            session,
            key=f"closure:{appt.id}:{appt.version}",
            kind=KIND,
            mobile=appt.mobile,
            body=texts.closure(appt, matter, zone, manage_url(appt)),
            now=now,
            appointment_id=appt.id,
        )
    return told
