"""Booking, cancelling and rescheduling appointments (the domain; no HTTP here).

Every function runs inside the caller's transaction and raises a :mod:`errors` class on
a rule it breaks; the caller rolls back, so a refused booking changes nothing. Order in
:func:`book` matters: the cheap checks come first (a slot already full when read is refused
before any write), then :func:`seats.take`, and only the winners go on to create the
applicant account, the appointment and, last, the case (whose number locks a per-day
counter row until commit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Applicant
from server.accounts.principal import Principal
from server.booking import claims, errors, person_rules, seats
from server.booking import models as m
from server.booking.availability import (
    WindowSlot,
    load_calendar,
    rules_of,
    window_slots,
)
from server.booking.casework import CaseNumbers, applicant_account, open_case, record
from server.booking.leads import hand_over, lead_of
from server.booking.slots import bookable_window
from server.booking.staffing import candidates as free_staff
from server.booking.staffing import is_qualified, qualified_staff
from server.booking.validation import ApplicantInfo
from server.cases import access, procedure
from server.cases.models import Case

DEFAULT_REMINDERS = (timedelta(hours=24), timedelta(minutes=30))


@dataclass(frozen=True, slots=True)
class BookingRequest:
    matter_id: int
    start: datetime
    applicant: ApplicantInfo
    actor: Principal | None  # None: an anonymous manage link or the system
    site_address: str | None = None
    site_lat: float | None = None
    site_lon: float | None = None
    staff_id: int | None = None  # chosen by hand; else assigned automatically
    case_id: int | None = None
    """A follow-up (the re-inspection) of this existing case, instead of a new case."""
    lang: str = "zh_CN"
    """The applicant's language: every SMS about the appointment is in it."""


async def get_matter(session: AsyncSession, matter_id: int) -> m.Matter:
    matter = await session.get(m.Matter, matter_id)
    if matter is None or not matter.active:
        raise errors.MatterNotFound()
    return matter


def check_start(matter: m.Matter, start: datetime, zone: ZoneInfo, now: datetime) -> None:
    """Timing rules that need no database; raise :class:`errors.SlotRuleError`."""
    if start.tzinfo is None:
        raise errors.SlotRuleError(errors.START_NAIVE)
    if start < now:
        raise errors.SlotRuleError(errors.START_PAST)
    earliest, last_day = bookable_window(now, rules_of(matter), zone)
    if start < earliest:
        raise errors.SlotRuleError(errors.START_TOO_SOON)
    if start.astimezone(zone).date() > last_day:
        raise errors.SlotRuleError(errors.START_BEYOND_HORIZON)


async def _candidates(
    session: AsyncSession, matter: m.Matter, start: datetime, zone: ZoneInfo, now: datetime
) -> list[WindowSlot]:
    """Windows offering ``start`` with seats left as last read, emptiest first.

    A slot already full when read is refused here, before any lock or write: under a rush
    most attempts end at this point. The plans come from the process's cache
    (:mod:`plancache`), so this is one read of the start's seat rows.
    """
    candidates = await window_slots(
        session, matter, start.astimezone(zone).date(), zone, now, only=start
    )
    if not candidates:
        calendar = await load_calendar(session)
        if not calendar.knows(start.astimezone(zone).year):
            raise errors.SlotRuleError(errors.YEAR_NOT_LOADED)
        raise errors.SlotRuleError(errors.START_NOT_A_SLOT)
    free = sorted(
        (ws for ws in candidates if ws.seats_left > 0),
        key=lambda ws: (-ws.seats_left, ws.window_id),
    )
    if not free:
        raise errors.SlotFullError()
    return free


async def _take_seat(
    session: AsyncSession, matter: m.Matter, candidates: list[WindowSlot]
) -> tuple[int, int, datetime]:
    """Take a seat in the first candidate that still has one: (window, seat id, end)."""
    for ws in candidates:
        seat_id = ws.seat_id
        if seat_id is None:
            seat_id = await seats.ensure_row(
                session,
                window_id=ws.window_id,
                matter_id=matter.id,
                start=ws.slot.start,
                end=ws.slot.end,
                seats=ws.seats,
            )
        if await seats.take(session, seat_id):
            return ws.window_id, seat_id, ws.slot.end
    raise errors.SlotFullError()


async def _officers(
    session: AsyncSession,
    matter_id: int,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    explicit: int | None,
    *,
    prefer: int | None = None,
    person: str | None = None,
) -> list[int] | None:
    """Who may take the appointment, best first, as read before any write.

    ``None``: nobody is qualified for the matter yet, so it is booked unassigned (a
    supervisor assigns). An empty list never comes back: with officers but none free the
    slot is full (its seats come from the officers), and a named officer who is busy is
    :class:`errors.StaffBusyError`. The claim after the insert has the final word.
    ``person``: the applicant's claim resource, read in the same statement (a person
    already in an appointment then is :class:`errors.PersonBusyError`).
    """
    if explicit is not None:
        if not await is_qualified(session, explicit, matter_id):
            raise errors.SlotRuleError(errors.STAFF_NOT_QUALIFIED, field="staff_id")
        staff = [explicit]
    else:
        staff = await qualified_staff(session, matter_id)
    resources = {claims.staff_resource(s): s for s in staff}
    holding = await claims.holders(session, [*resources, *([person] if person else [])], start, end)
    if person is not None and person in holding:
        raise errors.PersonBusyError()
    busy = {resources[r] for r in holding if r in resources}
    if explicit is not None:
        if busy:
            raise errors.StaffBusyError(explicit)
        return [explicit]
    if not staff:
        return None
    free = await free_staff(
        session, matter_id, start, end, zone, prefer=prefer, staff=staff, busy=busy
    )
    if not free:
        raise errors.SlotFullError()
    return free


async def _claim_person(session: AsyncSession, appt: m.Appointment) -> None:
    """The applicant's own minutes: one person is never in two appointments at once."""
    resource = claims.person_resource(appt.identity_key)
    if not await claims.claim(session, resource, appt.id, appt.starts_at, appt.ends_at):
        raise errors.PersonBusyError()


async def _claim_officer(
    session: AsyncSession,
    appt: m.Appointment,
    officers: list[int] | None,
    zone: ZoneInfo,
    *,
    explicit: int | None,
) -> int | None:
    """Claim the first of ``officers`` whose minutes are still free; set ``appt.staff_id``.

    Losing every claim means a racing booking took the officer(s) since we read: the
    named officer's 409 ``staff_busy``, or the slot is full. Either way the caller's
    transaction rolls back, seat and all.
    """
    if officers is None:
        return None
    tried: set[int] = set()
    while officers:
        staff_id = officers[0]
        tried.add(staff_id)
        resource = claims.staff_resource(staff_id)
        if await claims.claim(session, resource, appt.id, appt.starts_at, appt.ends_at):
            appt.staff_id = staff_id
            await session.flush()
            return staff_id
        if explicit is not None:
            break
        # A racing booking took them since we read: the seat row lock we hold means the
        # bookings of this slot before us have committed, so one fresh read of who is
        # free replaces trying every stale candidate in turn (each a refused INSERT).
        fresh = await free_staff(session, appt.matter_id, appt.starts_at, appt.ends_at, zone)
        officers = [s for s in fresh if s not in tried]
    if explicit is not None:
        raise errors.StaffBusyError(explicit)
    raise errors.SlotFullError()


async def _check_not_booked(
    session: AsyncSession, matter_id: int, start: datetime, key: str
) -> None:
    existing = await session.scalar(
        select(func.count())
        .select_from(m.Appointment)
        .where(
            m.Appointment.matter_id == matter_id,
            m.Appointment.starts_at == start,
            m.Appointment.identity_key == key,
            m.Appointment.status != "cancelled",
        )
    )
    if existing:
        raise errors.AlreadyBookedError()


def _schedule_reminders(
    session: AsyncSession, appt: m.Appointment, now: datetime, offsets: tuple[timedelta, ...]
) -> None:
    for offset in offsets:
        due = appt.starts_at - offset
        if due > now:
            kind = f"{int(offset.total_seconds() // 60)}m"
            session.add(m.Reminder(appointment_id=appt.id, kind=kind, due_at=due))


async def book(
    session: AsyncSession,
    req: BookingRequest,
    *,
    zone: ZoneInfo,
    now: datetime | None = None,
    reminders: tuple[timedelta, ...] = DEFAULT_REMINDERS,
    case_numbers: CaseNumbers | None = None,
) -> m.Appointment:
    """Book ``req`` in the caller's transaction. ``case_numbers``: take the new case's
    number in a transaction of its own (PostgreSQL; see :class:`casework.CaseNumbers`)."""
    now = now or datetime.now(UTC)
    matter = await get_matter(session, req.matter_id)
    check_start(matter, req.start, zone, now)
    start = req.start.astimezone(UTC)
    if matter.kind != "consultation" and not req.site_address:
        raise errors.SlotRuleError(errors.SITE_REQUIRED, field="site_address")
    key = req.applicant.identity_key
    case = await _follow_up_case(session, req, matter) if req.case_id is not None else None
    await _check_not_booked(session, matter.id, start, key)  # the clearer answer goes first
    # A sold-out slot (most attempts in a rush) is answered from _candidates' lockless read
    # before the per-person counts are read.
    candidates = await _candidates(session, matter, start, zone, now)
    await person_rules.check(session, matter, key, now, zone)
    end = start + timedelta(minutes=matter.duration_min)
    lead = await lead_of(session, case.id) if case is not None else None
    officers = await _officers(
        session,
        matter.id,
        start,
        end,
        zone,
        req.staff_id,
        prefer=lead,
        person=claims.person_resource(key),
    )

    window_id, seat_id, end = await _take_seat(session, matter, candidates)
    on_behalf = req.actor is not None and req.actor.is_staff
    applicant_id = await applicant_account(session, req.applicant)
    appt = m.Appointment(
        matter_id=matter.id,
        window_id=window_id,
        slot_id=seat_id,
        starts_at=start,
        ends_at=end,
        staff_id=officers[0] if officers else None,  # _claim_officer has the final word
        booked_by_staff_id=req.actor.id if on_behalf and req.actor else None,
        applicant_id=applicant_id,
        applicant_kind=req.applicant.kind,
        applicant_name=req.applicant.name,
        mobile=req.applicant.mobile,
        id_number=req.applicant.id_number,
        credit_code=req.applicant.credit_code,
        contact_name=req.applicant.contact_name,
        identity_key=key,
        site_address=req.site_address,
        site_lat=req.site_lat,
        site_lon=req.site_lon,
        status="booked",
        case_id=None,
        lang=req.lang,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(appt)
    try:
        await session.flush()
    except IntegrityError as exc:  # the partial unique index lost a race for this applicant
        raise errors.AlreadyBookedError() from exc
    await _claim_person(session, appt)
    staff_id = await _claim_officer(session, appt, officers, zone, explicit=req.staff_id)
    _schedule_reminders(session, appt, now, reminders)
    data: dict[str, object] = {
        "appointment_id": appt.id,
        "start": start.isoformat(),
        "window_id": window_id,
        "staff_id": staff_id,
        "on_behalf": on_behalf,
    }
    if case is not None:
        appt.case_id = case.id
        await record(session, case, "appointment.booked", req.actor, {**data, "follow_up": True})
        # Rectifying → re_inspection; refused (and all of this rolled back) in a state
        # that cannot take a booking.
        await procedure.scheduled(session, case, req.actor, appt.id)
        if staff_id is not None and staff_id != lead:
            if lead is None:
                await hand_over(session, case.id, staff_id)
            elif not await _is_party(session, case.id, staff_id):
                await access.set_party(session, case.id, "staff", staff_id, "inspector")
        return appt
    # The case comes last: numbering in this transaction locks the day's counter row until
    # commit, so the case, its parties and both events follow in three INSERTs
    # (casework.open_case); with case_numbers the row is not held at all.
    number = await case_numbers.take() if case_numbers is not None else None
    case = await open_case(
        session,
        matter,
        req.applicant,
        applicant_id,
        zone,
        req.actor,
        {"on_behalf": on_behalf},
        parties=[("staff", staff_id, "lead")] if staff_id is not None else [],
        events=[("appointment.booked", req.actor, data)],
        number=number,
    )
    appt.case_id = case.id
    return appt


async def _follow_up_case(session: AsyncSession, req: BookingRequest, matter: m.Matter) -> Case:
    """The case a follow-up booking attaches to, checked before any seat is taken."""
    assert req.case_id is not None
    case = await access.authorize(session, req.actor, req.case_id, "book_follow_up", lock=True)
    if case.matter_id != matter.id:
        raise errors.SlotRuleError(errors.FOLLOW_UP_MATTER, field="matter_id")
    account = await session.scalar(
        select(Applicant.id).where(Applicant.mobile == req.applicant.mobile)
    )
    if account is None or account != case.applicant_id:
        raise errors.SlotRuleError(errors.FOLLOW_UP_APPLICANT, field="applicant.mobile")
    procedure.require_open(case)  # the final word is procedure.scheduled, after the insert
    return case


async def _is_party(session: AsyncSession, case_id: int, staff_id: int) -> bool:
    return any(p.principal_id == staff_id for p in await access.staff_parties(session, case_id))


async def get_appointment(session: AsyncSession, appointment_id: int) -> m.Appointment:
    appt = await session.get(m.Appointment, appointment_id)
    if appt is None:
        raise errors.AppointmentNotFound()
    return appt


async def _bump(session: AsyncSession, appt: m.Appointment, **values: object) -> None:
    """Change a live appointment only if nobody changed it since we read it."""
    result = await session.execute(
        update(m.Appointment)
        .where(
            m.Appointment.id == appt.id,
            m.Appointment.version == appt.version,
            m.Appointment.status.in_(m.LIVE_STATUSES if "status" not in values else ("booked",)),
        )
        .values(version=m.Appointment.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise errors.AppointmentStateError()
    await session.refresh(appt)


async def cancel(
    session: AsyncSession,
    appt: m.Appointment,
    actor: Principal | None,
    *,
    now: datetime | None = None,
) -> m.Appointment:
    now = now or datetime.now(UTC)
    if appt.status != "booked":
        raise errors.AppointmentStatusError(appt.id, appt.status)
    await _bump(session, appt, status="cancelled", updated_at=now)
    await seats.give_back(session, appt.slot_id)
    await claims.release(session, appt.id)
    await session.execute(
        update(m.Reminder)
        .where(m.Reminder.appointment_id == appt.id, m.Reminder.sent_at.is_(None))
        .values(skipped=True)
        .execution_options(synchronize_session=False)
    )
    if appt.case_id is not None:
        await record(
            session, appt.case_id, "appointment.cancelled", actor, {"appointment_id": appt.id}
        )
    return appt


async def reschedule(
    session: AsyncSession,
    appt: m.Appointment,
    new_start: datetime,
    actor: Principal | None,
    *,
    zone: ZoneInfo,
    now: datetime | None = None,
    reminders: tuple[timedelta, ...] = DEFAULT_REMINDERS,
) -> m.Appointment:
    now = now or datetime.now(UTC)
    if appt.status != "booked":
        raise errors.AppointmentStatusError(appt.id, appt.status)
    matter = await get_matter(session, appt.matter_id)
    check_start(matter, new_start, zone, now)
    start = new_start.astimezone(UTC)
    if start == appt.starts_at:
        return appt
    candidates = await _candidates(session, matter, start, zone, now)
    await _check_not_booked(session, matter.id, start, appt.identity_key)
    old_seat, old_start, old_staff = appt.slot_id, appt.starts_at, appt.staff_id
    end = start + timedelta(minutes=matter.duration_min)
    await claims.release(session, appt.id)  # the old time is given back with the move
    officers = await _officers(session, matter.id, start, end, zone, None, prefer=old_staff)
    window_id, seat_id, end = await _take_seat(session, matter, candidates)
    try:
        await _bump(
            session,
            appt,
            slot_id=seat_id,
            window_id=window_id,
            starts_at=start,
            ends_at=end,
            staff_id=None,
            updated_at=now,
        )
    except IntegrityError as exc:
        raise errors.AlreadyBookedError() from exc
    await _claim_person(session, appt)
    staff_id = await _claim_officer(session, appt, officers, zone, explicit=None)
    await seats.give_back(session, old_seat)
    await session.execute(
        update(m.Reminder)
        .where(m.Reminder.appointment_id == appt.id, m.Reminder.sent_at.is_(None))
        .values(skipped=True)
        .execution_options(synchronize_session=False)
    )
    for offset in reminders:
        due = start - offset
        kind = f"{int(offset.total_seconds() // 60)}m"
        existing = await session.scalar(
            select(m.Reminder).where(m.Reminder.appointment_id == appt.id, m.Reminder.kind == kind)
        )
        if due <= now:
            continue
        if existing is None:
            session.add(m.Reminder(appointment_id=appt.id, kind=kind, due_at=due))
        elif existing.sent_at is None:
            existing.due_at, existing.skipped = due, False
        else:  # already reminded for the old time: remind again for the new one
            existing.due_at, existing.sent_at, existing.sent_by, existing.skipped = (
                due,
                None,
                None,
                False,
            )
    if appt.case_id is not None:
        if staff_id is not None and staff_id != old_staff:
            await hand_over(session, appt.case_id, staff_id)
        await record(
            session,
            appt.case_id,
            "appointment.rescheduled",
            actor,
            {
                "appointment_id": appt.id,
                "from": old_start.isoformat(),
                "to": start.isoformat(),
                "staff_id": staff_id,
            },
        )
    return appt


FLOW = ("booked", "checked_in", "in_session", "completed")
"""The way an appointment goes when it happens; the live side moves it along."""
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "checked_in": ("booked",),
    "in_session": ("booked", "checked_in"),  # staff may start before the applicant waits
    "completed": ("checked_in", "in_session"),
    "no_show": ("booked",),  # only an applicant who never joined
}


def _reached(current: str, target: str) -> bool:
    return current in FLOW and target in FLOW and FLOW.index(current) >= FLOW.index(target)


async def set_status(
    session: AsyncSession,
    appt: m.Appointment,
    status: str,
    actor: Principal | None,
    *,
    now: datetime | None = None,
    zone: ZoneInfo | None = None,
) -> m.Appointment:
    """Move along :data:`FLOW` (or to ``no_show``); the WHERE on the old status makes racing
    moves safe.

    The live side calls this as the applicant enters the waiting room (``checked_in``),
    is admitted (``in_session``) and as the room ends (``completed``). A move to where
    the appointment already is or has gone past is no change and no error — a rejoin
    after a dropped connection, a second admission, two nodes ending the room — so the
    live side may call it every time. ``no_show`` only from ``booked`` and only after
    the start.

    These moves do not bump ``version``: the manage and join links stay valid through
    check-in, and only cancel/reschedule retire a manage link.
    """
    now = now or datetime.now(UTC)
    allowed = TRANSITIONS.get(status)
    if allowed is None:
        raise errors.AppointmentStatusError(appt.id, appt.status)
    if _reached(appt.status, status):
        return appt
    if status == "no_show":
        if appt.status in ("checked_in", "in_session", "completed"):
            raise errors.AppointmentStatusError(
                appt.id, appt.status, message=errors.JOINED_NOT_NO_SHOW
            )
        if now < appt.starts_at:
            start = appt.starts_at.astimezone(zone) if zone else appt.starts_at
            raise errors.NoShowTooEarly(appt.id, start.strftime("%Y-%m-%d %H:%M"))
    condition: ColumnElement[bool] = m.Appointment.status.in_(allowed)
    if status == "no_show":
        condition = condition & (m.Appointment.starts_at <= now)
    result = await session.execute(
        update(m.Appointment)
        .where(m.Appointment.id == appt.id, condition)
        .values(status=status, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.refresh(appt)
        if _reached(appt.status, status):
            return appt  # a racing caller made the same move first
        raise errors.AppointmentStatusError(appt.id, appt.status)
    await session.refresh(appt)
    if appt.case_id is not None:
        await record(
            session, appt.case_id, f"appointment.{status}", actor, {"appointment_id": appt.id}
        )
    return appt
