"""Choosing who serves an appointment: qualified, free at that time, least loaded that day.

This is a best-effort choice, not an invariant: two bookings racing for the same
minute may pick the same person, and a supervisor can reassign by hand. Capacity (the
thing that must never be wrong) is the seat count, enforced in :mod:`seats`.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import User
from server.booking import models as m


async def qualified_staff(session: AsyncSession, matter_id: int) -> list[int]:
    rows = await session.scalars(
        select(User.id)
        .join(m.StaffQualification, m.StaffQualification.user_id == User.id)
        .where(m.StaffQualification.matter_id == matter_id, User.active.is_(True))
        .order_by(User.id)
    )
    return list(rows)


async def is_qualified(session: AsyncSession, user_id: int, matter_id: int) -> bool:
    return user_id in await qualified_staff(session, matter_id)


async def assign_staff(
    session: AsyncSession,
    matter_id: int,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    *,
    exclude_appointment: int | None = None,
    prefer: int | None = None,
) -> int | None:
    """The least-loaded qualified staff member free over ``[start, end)``; None if nobody.

    ``prefer`` wins when qualified and free: a moved appointment keeps its officer, a
    re-inspection the inspector who found what was to be rectified.
    """
    staff = await qualified_staff(session, matter_id)
    if not staff:
        return None
    local_day = start.astimezone(zone).date()
    day_start = datetime.combine(local_day, time(), zone).astimezone(UTC)
    day_end = day_start + timedelta(days=1)
    live = and_(
        m.Appointment.staff_id.in_(staff),
        m.Appointment.status.in_(m.LIVE_STATUSES),
        m.Appointment.id != (exclude_appointment or 0),
    )
    busy = set(
        await session.scalars(
            select(m.Appointment.staff_id).where(
                live, m.Appointment.starts_at < end, m.Appointment.ends_at > start
            )
        )
    )
    load = dict(
        (
            await session.execute(
                select(m.Appointment.staff_id, func.count())
                .where(
                    live, m.Appointment.starts_at >= day_start, m.Appointment.starts_at < day_end
                )
                .group_by(m.Appointment.staff_id)
            )
        ).all()
    )
    free = [s for s in staff if s not in busy]
    if not free:
        return None
    if prefer in free:
        return prefer
    return min(free, key=lambda s: (load.get(s, 0), s))
