"""When an officer can no longer serve: hand their bookings on, or tell the applicants.

An officer who is deactivated, or who loses the qualification for a matter, may still
hold future bookings. In the transaction that makes the change, each of those bookings is
handed to another officer who is qualified and free at that time, the least loaded that
day first (:func:`server.booking.staffing.candidates`); the minutes are claimed like a
booking's (:mod:`claims`), so a racing booking can never give the new officer two
appointments at once, and the case's lead moves with it (:func:`leads.hand_over`). The
applicant is not bothered: the time and the link stay the same.

A booking that nobody can take stays ``booked`` without an officer: it is listed for the
admin (the staff section of ``/admin/matters``, where a supervisor may still assign one by
hand), and its applicant gets one SMS in their language with the manage link to pick
another time, written to the outbox in the same transaction (key per appointment and
version, so a second change tells nobody twice). Cancelling on the applicant's behalf
would lose the booking of someone who cannot move it, as with a closure.

Only bookings still ``booked`` and not yet begun are touched: an appointment checked in or
in a call belongs to the people in it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import User
from server.accounts.principal import Principal
from server.booking import claims, leads, outbox, texts
from server.booking import models as m
from server.booking.staffing import candidates
from server.cases import access

KIND = "booking.staff_change"


@dataclass
class Outcome:
    """What a staff change did to the officer's bookings."""

    handed: list[tuple[m.Appointment, int]] = field(default_factory=list)
    unserved: list[m.Appointment] = field(default_factory=list)


async def affected(session: AsyncSession, user_id: int, now: datetime) -> list[m.Appointment]:
    """The officer's future ``booked`` appointments they may no longer serve."""
    user = await session.get(User, user_id)
    appts = list(
        await session.scalars(
            select(m.Appointment)
            .where(
                m.Appointment.staff_id == user_id,
                m.Appointment.status == "booked",
                m.Appointment.starts_at >= now,
            )
            .order_by(m.Appointment.starts_at)
        )
    )
    if user is None or not user.active:
        return appts
    qualified = set(
        await session.scalars(
            select(m.StaffQualification.matter_id).where(m.StaffQualification.user_id == user_id)
        )
    )
    return [a for a in appts if a.matter_id not in qualified]


async def unassigned(session: AsyncSession, now: datetime) -> list[m.Appointment]:
    """Future bookings without an officer, earliest first: the admin's to-do list."""
    return list(
        await session.scalars(
            select(m.Appointment)
            .where(
                m.Appointment.staff_id.is_(None),
                m.Appointment.status == "booked",
                m.Appointment.starts_at >= now,
            )
            .order_by(m.Appointment.starts_at)
        )
    )


async def _reviewers(session: AsyncSession, case_id: int | None) -> set[int]:
    if case_id is None:
        return set()
    return {
        p.principal_id for p in await access.staff_parties(session, case_id) if p.role == "reviewer"
    }


async def _hand_on(
    session: AsyncSession, appt: m.Appointment, leaving: int, zone: ZoneInfo
) -> int | None:
    """Release ``leaving``'s minutes and claim a free colleague's; who got it, if anyone."""
    await claims.release(session, appt.id, claims.staff_resource(leaving))
    # The second official of a case's review must not become its lead.
    barred = {leaving} | await _reviewers(session, appt.case_id)
    for staff_id in await candidates(session, appt.matter_id, appt.starts_at, appt.ends_at, zone):
        if staff_id in barred:
            continue
        resource = claims.staff_resource(staff_id)
        if await claims.claim(session, resource, appt.id, appt.starts_at, appt.ends_at):
            return staff_id
    return None


async def apply(
    session: AsyncSession,
    user_id: int,
    actor: Principal | None,
    *,
    zone: ZoneInfo,
    manage_url: Callable[[m.Appointment], str],
    now: datetime,
) -> Outcome:
    """After ``user_id`` was deactivated or lost qualifications (flushed in ``session``):
    hand each affected booking on, or queue its applicant's SMS. In the caller's
    transaction."""
    await session.flush()
    outcome = Outcome()
    for appt in await affected(session, user_id, now):
        chosen = await _hand_on(session, appt, user_id, zone)
        appt.staff_id = chosen
        appt.updated_at = now
        await leads.lead_follows(session, appt, user_id, actor, reason="staff_change")
        if chosen is not None:
            outcome.handed.append((appt, chosen))
            continue
        matter = await session.get(m.Matter, appt.matter_id)
        assert matter is not None
        await outbox.enqueue(
            session,
            key=f"staff_change:{appt.id}:{appt.version}",
            kind=KIND,
            mobile=appt.mobile,
            body=texts.staff_change(appt, matter, zone, manage_url(appt)),
            now=now,
            appointment_id=appt.id,
        )
        outcome.unserved.append(appt)
    await session.flush()
    return outcome
