"""The staff day view's data: a local day's appointments and the walk-in queue.

A member of staff sees only the rows :mod:`guard` lets them read, each with its case
(number, procedure state) and the actions they may take on it, so the page shows only
buttons that will work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.booking import guard
from server.booking import models as m
from server.booking.staffing import qualified_staff
from server.cases.models import Case


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    return start, datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)


async def day_appointments(
    session: AsyncSession, day: date, zone: ZoneInfo, principal: Principal | None = None
) -> list[tuple[m.Appointment, m.Matter]]:
    """The day's appointments; only those ``principal`` may see when given."""
    start, end = day_bounds(day, zone)
    query = (
        select(m.Appointment, m.Matter)
        .join(m.Matter, m.Matter.id == m.Appointment.matter_id)
        .where(m.Appointment.starts_at >= start, m.Appointment.starts_at < end)
        .order_by(m.Appointment.starts_at, m.Appointment.id)
    )
    if principal is not None:
        query = query.where(guard.visible(principal))
    rows = await session.execute(query)
    return [(a, b) for a, b in rows]


@dataclass(frozen=True, slots=True)
class DayRow:
    appt: m.Appointment
    matter: m.Matter
    permit: guard.Permit
    case: Case | None
    actions: frozenset[str]
    """The buttons of the row: check_in, start, no_show, reassign."""
    staff_choices: tuple[int, ...]
    """Who the row may be reassigned to (qualified for the matter)."""


async def day_rows(
    session: AsyncSession, principal: Principal, day: date, zone: ZoneInfo, now: datetime
) -> list[DayRow]:
    rows = await day_appointments(session, day, zone, principal)
    permits = await guard.permits(session, principal, [a for a, _ in rows])
    case_ids = {a.case_id for a, _ in rows if a.case_id is not None}
    cases = {c.id: c for c in await session.scalars(select(Case).where(Case.id.in_(case_ids)))}
    qualified: dict[int, tuple[int, ...]] = {}
    out = []
    for appt, matter in rows:
        permit = permits.get(appt.id)
        if permit is None:
            continue
        buttons = row_actions(permit, now)
        choices: tuple[int, ...] = ()
        if "reassign" in buttons:
            if matter.id not in qualified:
                qualified[matter.id] = tuple(await qualified_staff(session, matter.id))
            choices = qualified[matter.id]
        case = cases.get(appt.case_id) if appt.case_id is not None else None
        out.append(DayRow(appt, matter, permit, case, buttons, choices))
    return out


def row_actions(permit: guard.Permit, now: datetime) -> frozenset[str]:
    """What the day view offers on one appointment (each also checked when posted)."""
    appt = permit.appt
    live = appt.status in m.LIVE_STATUSES
    working = permit.may("appointment_status")
    out = set()
    if appt.status == "booked" and permit.may("check_in"):
        out.add("check_in")
    if live and (working or permit.may(guard.TAKE)):
        out.add("start")
    if appt.status == "booked" and working and now >= appt.starts_at:
        out.add("no_show")
    if live and permit.may("assign"):
        out.add("reassign")
    elif live and permit.may(guard.TAKE):
        out.add("take")
    return frozenset(out)


async def waiting_tickets(session: AsyncSession) -> list[tuple[m.QueueTicket, m.Matter]]:
    rows = await session.execute(
        select(m.QueueTicket, m.Matter)
        .join(m.Matter, m.Matter.id == m.QueueTicket.matter_id)
        .where(m.QueueTicket.status.in_(("waiting", "serving")))
        .order_by(m.QueueTicket.id)
    )
    return [(a, b) for a, b in rows]
