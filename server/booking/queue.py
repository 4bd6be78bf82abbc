""" "Video now" (即时视频): a walk-in queue per matter, served after due appointments.

Fairness rule: a booked applicant who has checked in and whose slot has started is
served before any walk-in, because they planned their day around that time; walk-ins
are served first come, first served. Taking a ticket is a conditional UPDATE
(``waiting → serving``), so two staff members pressing "next" at once get two different
applicants, whichever process they are connected to.

Positions are not stored: a ticket's position is the number of waiting tickets ahead of
it plus the due appointments, and the estimate divides that by the staff who can serve.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.booking import errors
from server.booking import models as m
from server.booking.appointments import get_matter
from server.booking.casework import applicant_account, open_case, record
from server.booking.staffing import qualified_staff
from server.booking.validation import ApplicantInfo
from server.cases.models import CaseParty


@dataclass(frozen=True, slots=True)
class Position:
    ticket_id: int
    status: str
    position: int  # 1 = next; 0 once served or gone
    eta_minutes: int


@dataclass(frozen=True, slots=True)
class Served:
    """What "next" gave a staff member: an appointment or a walk-in ticket."""

    kind: str  # "appointment" or "ticket"
    id: int
    case_id: int | None
    matter_id: int


async def join(
    session: AsyncSession,
    matter_id: int,
    applicant: ApplicantInfo,
    *,
    applicant_account_id: int | None,
    now: datetime | None = None,
) -> m.QueueTicket:
    matter = await get_matter(session, matter_id)
    if not matter.allows_video_now:
        raise errors.SlotRuleError(errors.VIDEO_NOW_OFF, field="matter_id")
    ticket = m.QueueTicket(
        token=secrets.token_urlsafe(18),
        matter_id=matter.id,
        applicant_id=applicant_account_id,
        name=applicant.display_name,
        mobile=applicant.mobile,
        status="waiting",
        created_at=now or datetime.now(UTC),
    )
    session.add(ticket)
    await session.flush()
    return ticket


async def _due_appointments(session: AsyncSession, matter_id: int, now: datetime) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(m.Appointment)
            .where(
                m.Appointment.matter_id == matter_id,
                m.Appointment.status.in_(("booked", "checked_in")),
                m.Appointment.starts_at <= now,
                m.Appointment.ends_at > now,
            )
        )
        or 0
    )


async def positions(
    session: AsyncSession, matter_id: int, now: datetime | None = None
) -> list[Position]:
    """Every waiting ticket of a matter with its position and estimate (for the bus)."""
    now = now or datetime.now(UTC)
    matter = await get_matter(session, matter_id)
    servers = max(len(await qualified_staff(session, matter_id)), 1)
    ahead = await _due_appointments(session, matter_id, now)
    waiting = await session.scalars(
        select(m.QueueTicket.id)
        .where(m.QueueTicket.matter_id == matter_id, m.QueueTicket.status == "waiting")
        .order_by(m.QueueTicket.id)
    )
    out = []
    for i, ticket_id in enumerate(waiting):
        before = ahead + i
        eta = math.ceil(before / servers) * matter.duration_min if before else 0
        out.append(Position(ticket_id, "waiting", i + 1, eta))
    return out


async def position_of(session: AsyncSession, ticket: m.QueueTicket) -> Position:
    if ticket.status != "waiting":
        return Position(ticket.id, ticket.status, 0, 0)
    for p in await positions(session, ticket.matter_id):
        if p.ticket_id == ticket.id:
            return p
    return Position(ticket.id, ticket.status, 0, 0)


async def get_ticket(session: AsyncSession, token: str) -> m.QueueTicket:
    ticket = await session.scalar(select(m.QueueTicket).where(m.QueueTicket.token == token))
    if ticket is None:
        raise errors.TicketNotFound()
    return ticket


async def leave(session: AsyncSession, ticket: m.QueueTicket) -> None:
    await session.execute(
        update(m.QueueTicket)
        .where(m.QueueTicket.id == ticket.id, m.QueueTicket.status == "waiting")
        .values(status="left")
        .execution_options(synchronize_session=False)
    )


async def take_next(
    session: AsyncSession,
    staff: Principal,
    *,
    zone: ZoneInfo,
    now: datetime | None = None,
    grace: timedelta = timedelta(minutes=15),
) -> Served | None:
    """Give ``staff`` the next applicant among the matters they are qualified for."""
    now = now or datetime.now(UTC)
    staff_id = staff.id
    matters = list(
        await session.scalars(
            select(m.StaffQualification.matter_id).where(m.StaffQualification.user_id == staff_id)
        )
    )
    if not matters:
        return None
    # 1. Checked-in appointments whose time has come (theirs or unassigned), earliest first.
    due = await session.scalars(
        select(m.Appointment.id)
        .where(
            m.Appointment.matter_id.in_(matters),
            m.Appointment.status == "checked_in",
            m.Appointment.starts_at <= now,
            m.Appointment.starts_at > now - grace,
            (m.Appointment.staff_id == staff_id) | (m.Appointment.staff_id.is_(None)),
        )
        .order_by(m.Appointment.starts_at, m.Appointment.id)
    )
    for appt_id in list(due):
        result = await session.execute(
            update(m.Appointment)
            .where(m.Appointment.id == appt_id, m.Appointment.status == "checked_in")
            .values(status="in_session", staff_id=staff_id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            appt = await session.get(m.Appointment, appt_id)
            assert appt is not None
            await session.refresh(appt)
            if appt.case_id is not None:
                await record(session, appt.case_id, "appointment.started", staff, {})
            return Served("appointment", appt_id, appt.case_id, appt.matter_id)
    # 2. Walk-ins, first come first served.
    waiting = await session.scalars(
        select(m.QueueTicket.id)
        .where(m.QueueTicket.matter_id.in_(matters), m.QueueTicket.status == "waiting")
        .order_by(m.QueueTicket.id)
        .limit(20)
    )
    for ticket_id in list(waiting):
        result = await session.execute(
            update(m.QueueTicket)
            .where(m.QueueTicket.id == ticket_id, m.QueueTicket.status == "waiting")
            .values(status="serving", staff_id=staff_id, taken_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue
        ticket = await session.get(m.QueueTicket, ticket_id)
        assert ticket is not None
        await session.refresh(ticket)
        matter = await get_matter(session, ticket.matter_id)
        walk_in = ApplicantInfo(kind="person", name=ticket.name, mobile=ticket.mobile)
        applicant_id = ticket.applicant_id or await applicant_account(session, walk_in)
        case = await open_case(
            session, matter, walk_in, applicant_id, zone, staff, {"ticket_id": ticket.id}
        )
        session.add(
            CaseParty(
                case_id=case.id, principal_kind="staff", principal_id=staff_id, role="inspector"
            )
        )
        ticket.case_id = case.id
        await record(session, case, "queue.served", staff, {"ticket_id": ticket.id})
        return Served("ticket", ticket_id, case.id, ticket.matter_id)
    return None
