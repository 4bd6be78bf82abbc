""" "Video now" (即时视频): a walk-in queue per matter, served after due appointments.

Fairness rule: a booked applicant who has checked in (is waiting in the video room) and
whose slot starts within ``EARLY`` or has started is served before any walk-in, because
they planned their day around that time; walk-ins are served first come, first served.
A booked applicant who has not joined does not hold up walk-ins. Taking a ticket is a
conditional UPDATE (``waiting → serving``), so two staff members pressing "next" at once
get two different applicants, whichever process they are connected to.

Positions are not stored: a ticket's position is the number of waiting tickets ahead of
it plus the due appointments, and the estimate divides that by the staff who can serve.

Once served, the ticket leads into the live room of the case it opened: the ticket
holder's view carries a join link (applicant role, bound to the walk-in's account, valid
for ``WALK_IN_JOIN_TTL`` after the call), and the staff member gets the console link.
Both are minted with the live package's own signer, so there is one token scheme.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import User
from server.accounts.principal import Principal
from server.booking import claims, errors
from server.booking import models as m
from server.booking.appointments import get_matter
from server.booking.availability import load_calendar
from server.booking.casework import applicant_account, open_case, record
from server.booking.leads import hand_over
from server.booking.service_hours import next_opening
from server.booking.staffing import qualified_staff
from server.booking.validation import ApplicantInfo
from server.cases import access
from server.settings import Settings
from signaling.links import appointment_room, case_room, join_url, participant_id, signer_for
from signaling.tokens import JoinGrant

WALK_IN_JOIN_TTL = timedelta(hours=2)
"""How long after the call a served walk-in may still (re)enter the room from the ticket."""
CONSOLE_TTL = timedelta(hours=4)
EARLY = timedelta(minutes=5)
"""A checked-in appointment this close to its start is due: the clerk may begin early."""
LATE = timedelta(minutes=15)
"""…and stays due until this long after its slot ended (the clerk was busy, they waited)."""


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        m.Appointment.status == "checked_in",
        m.Appointment.starts_at <= now + EARLY,
        m.Appointment.ends_at > now - LATE,
    )


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
    zone: ZoneInfo | None = None,
) -> m.QueueTicket:
    """A ticket, if the matter serves walk-ins now and the person holds none of it yet.

    The partial unique index on live tickets per (matter, mobile) has the last word, so
    two taps on two nodes still give one ticket.
    """
    now = now or datetime.now(UTC)
    matter = await get_matter(session, matter_id)
    if not matter.allows_video_now:
        raise errors.SlotRuleError(errors.VIDEO_NOW_OFF, field="matter_id")
    if zone is not None and matter.video_now_hours:
        opens = next_opening(matter.video_now_hours, await load_calendar(session), now, zone)
        if opens is not None:
            raise errors.VideoNowClosedError(opens.strftime("%Y-%m-%d %H:%M"))
    live = await session.scalar(
        select(m.QueueTicket.id).where(
            m.QueueTicket.matter_id == matter.id,
            m.QueueTicket.mobile == applicant.mobile,
            m.QueueTicket.status.in_(("waiting", "serving")),
        )
    )
    if live is not None:
        raise errors.AlreadyQueuedError()
    ticket = m.QueueTicket(
        token=secrets.token_urlsafe(18),
        matter_id=matter.id,
        applicant_id=applicant_account_id,
        name=applicant.display_name,
        mobile=applicant.mobile,
        status="waiting",
        created_at=now,
    )
    session.add(ticket)
    try:
        await session.flush()
    except IntegrityError as exc:  # a racing twin of this person's ticket won
        raise errors.AlreadyQueuedError() from exc
    return ticket


async def serving_officers(session: AsyncSession, matter_id: int) -> int:
    """Officers who actually serve the queue: qualified inspectors, not the admins and
    supervisors who are qualified only to oversee or stand in."""
    qualified = await qualified_staff(session, matter_id)
    if not qualified:
        return 0
    return int(
        await session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.id.in_(qualified), User.role == "inspector")
        )
        or 0
    )


async def _due_appointments(session: AsyncSession, matter_id: int, now: datetime) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(m.Appointment)
            .where(m.Appointment.matter_id == matter_id, _due(now))
        )
        or 0
    )


async def positions(
    session: AsyncSession, matter_id: int, now: datetime | None = None
) -> list[Position]:
    """Every waiting ticket of a matter with its position and estimate (for the bus)."""
    now = now or datetime.now(UTC)
    matter = await get_matter(session, matter_id)
    servers = max(await serving_officers(session, matter_id), 1)
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
) -> Served | None:
    """Give ``staff`` the next applicant among the matters they are qualified for.

    A due appointment moves to ``in_session`` as it is taken — the conditional UPDATE is
    what gives two clerks pressing "next" two different applicants; the live side's own
    ``in_session`` at admission is then no change. Whoever takes it leads its case.
    """
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
    due = await session.execute(
        select(
            m.Appointment.id, m.Appointment.staff_id, m.Appointment.starts_at, m.Appointment.ends_at
        )
        .where(
            m.Appointment.matter_id.in_(matters),
            _due(now),
            (m.Appointment.staff_id == staff_id) | (m.Appointment.staff_id.is_(None)),
        )
        .order_by(m.Appointment.starts_at, m.Appointment.id)
    )
    resource = claims.staff_resource(staff_id)
    for appt_id, assigned, starts, ends in list(due):
        # Taking an unassigned appointment claims the clerk's minutes like a booking; a
        # clerk who has another appointment then is not given this one.
        if assigned is None and not await claims.claim(session, resource, appt_id, starts, ends):
            continue
        result = await session.execute(
            update(m.Appointment)
            .where(
                m.Appointment.id == appt_id,
                m.Appointment.status == "checked_in",
                m.Appointment.staff_id.is_(None)
                if assigned is None
                else (m.Appointment.staff_id == staff_id),
            )
            .values(status="in_session", staff_id=staff_id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            if assigned is None:
                await claims.release(session, appt_id, resource)
            continue
        appt = await session.get(m.Appointment, appt_id)
        assert appt is not None
        await session.refresh(appt)
        if appt.case_id is not None:
            if assigned is None:
                await hand_over(session, appt.case_id, staff_id)
            await record(
                session,
                appt.case_id,
                "appointment.in_session",
                staff,
                {"appointment_id": appt_id, "by": "queue", "taken": assigned is None},
            )
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
        await access.set_party(session, case.id, "staff", staff_id, "lead")
        ticket.case_id = case.id
        ticket.applicant_id = applicant_id  # the join link is bound to this account
        await record(session, case, "queue.served", staff, {"ticket_id": ticket.id})
        return Served("ticket", ticket_id, case.id, ticket.matter_id)
    return None


def applicant_join_url(
    settings: Settings, ticket: m.QueueTicket, now: datetime | None = None
) -> str | None:
    """The ticket holder's link into the case room, while the ticket is being served.

    Whoever holds the (unguessable) ticket token sees this; the link expires
    ``WALK_IN_JOIN_TTL`` after the call however often the ticket is reloaded.
    """
    if ticket.status != "serving" or ticket.case_id is None or ticket.taken_at is None:
        return None
    left = ticket.taken_at + WALK_IN_JOIN_TTL - (now or datetime.now(UTC))
    if left.total_seconds() < 60:
        return None
    who = (
        f"applicant-{ticket.applicant_id}"
        if ticket.applicant_id is not None
        else f"ticket-{ticket.id}-applicant"
    )
    grant = JoinGrant(
        room=case_room(ticket.case_id), participant=who, role="applicant", name=ticket.name
    )
    return join_url(settings, signer_for(settings), grant, int(left.total_seconds()))


def console_url(settings: Settings, served: Served, staff: Principal) -> str | None:
    """The staff member's inspector console for what "next" gave them.

    A walk-in meets in its case's room; a booked appointment in its appointment's room,
    where its applicant's confirmation link leads.
    """
    if served.kind == "appointment":
        return appointment_console_url(settings, served.id, staff)
    if served.case_id is not None:
        return _console(settings, case_room(served.case_id), staff)
    return None


def appointment_console_url(settings: Settings, appointment_id: int, staff: Principal) -> str:
    """The inspector console of an appointment's room (the day view's "start video").

    The same grant ``POST /api/v1/appointments/{id}/join`` gives an inspector; the live
    page checks that the logged-in staff member is the one it names.
    """
    return _console(settings, appointment_room(appointment_id), staff)


def _console(settings: Settings, room: str, staff: Principal) -> str:
    grant = JoinGrant(
        room=room, participant=participant_id(staff), role="inspector", name=staff.name
    )
    return join_url(settings, signer_for(settings), grant, int(CONSOLE_TTL.total_seconds()))
