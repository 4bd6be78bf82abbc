"""Choosing who serves an appointment: qualified, free at that time, least loaded that day.

The order is a preference, not the invariant: two bookings racing for the same minute
may both pick the same person, and then the database lets only one of them claim that
person's minutes (:mod:`claims`); the loser tries the next candidate. "Free" is read
from the claimed minutes, which every process sees the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import User
from server.booking import claims, plancache
from server.booking import models as m


async def qualified_staff(session: AsyncSession, matter_id: int) -> list[int]:
    """Active officers qualified for the matter, kept per process (plancache)."""

    async def load() -> tuple[int, ...]:
        rows = await session.scalars(
            select(User.id)
            .join(m.StaffQualification, m.StaffQualification.user_id == User.id)
            .where(m.StaffQualification.matter_id == matter_id, User.active.is_(True))
            .order_by(User.id)
        )
        return tuple(rows)

    return list(await plancache.cached(session, ("staff", matter_id), load))


async def is_qualified(session: AsyncSession, user_id: int, matter_id: int) -> bool:
    return user_id in await qualified_staff(session, matter_id)


async def candidates(
    session: AsyncSession,
    matter_id: int,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    *,
    prefer: int | None = None,
    staff: list[int] | None = None,
    busy: set[int] | None = None,
) -> list[int]:
    """Qualified staff free over ``[start, end)``, best first: ``prefer`` (when free),
    then the least loaded that local day (ties: lowest id).

    ``prefer`` wins when qualified and free: a moved appointment keeps its officer, a
    re-inspection the inspector who found what was to be rectified. ``staff`` and
    ``busy``: who is qualified and who is busy then, when the caller has just read them.
    """
    staff = await qualified_staff(session, matter_id) if staff is None else staff
    if not staff:
        return []
    if busy is None:
        busy = await claims.busy_staff(session, staff, start, end)
    free = [s for s in staff if s not in busy]
    if len(free) <= 1:
        return free
    local_day = start.astimezone(zone).date()
    day_start = datetime.combine(local_day, time(), zone).astimezone(UTC)
    day_end = day_start + timedelta(days=1)
    load = dict(
        (
            await session.execute(
                select(m.Appointment.staff_id, func.count())
                .where(
                    and_(
                        m.Appointment.staff_id.in_(free),
                        m.Appointment.status.in_(m.LIVE_STATUSES),
                        m.Appointment.starts_at >= day_start,
                        m.Appointment.starts_at < day_end,
                    )
                )
                .group_by(m.Appointment.staff_id)
            )
        ).all()
    )
    free.sort(key=lambda s: (s != prefer, load.get(s, 0), s))
    return free


async def assign_staff(
    session: AsyncSession,
    matter_id: int,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    *,
    prefer: int | None = None,
) -> int | None:
    """The best free candidate as read now (see :func:`candidates`); None if nobody."""
    free = await candidates(session, matter_id, start, end, zone, prefer=prefer)
    return free[0] if free else None
