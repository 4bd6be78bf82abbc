"""The staff day view's data: a local day's appointments and the walk-in queue."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.booking import models as m


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    return start, datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)


async def day_appointments(
    session: AsyncSession, day: date, zone: ZoneInfo
) -> list[tuple[m.Appointment, m.Matter]]:
    start, end = day_bounds(day, zone)
    rows = await session.execute(
        select(m.Appointment, m.Matter)
        .join(m.Matter, m.Matter.id == m.Appointment.matter_id)
        .where(m.Appointment.starts_at >= start, m.Appointment.starts_at < end)
        .order_by(m.Appointment.starts_at, m.Appointment.id)
    )
    return [(a, b) for a, b in rows]


async def waiting_tickets(session: AsyncSession) -> list[tuple[m.QueueTicket, m.Matter]]:
    rows = await session.execute(
        select(m.QueueTicket, m.Matter)
        .join(m.Matter, m.Matter.id == m.QueueTicket.matter_id)
        .where(m.QueueTicket.status.in_(("waiting", "serving")))
        .order_by(m.QueueTicket.id)
    )
    return [(a, b) for a, b in rows]
