"""Video rooms as the case procedure sees them: which case a room is for, whether it may
still be joined, and what its session does to the appointment and the case.

Rooms are named after what they belong to (``signaling.links``): ``case-<id>`` for a
case's own room (walk-ins, calls without a booking) and ``appt-<id>`` for a booked
appointment, whose case is the appointment's. Live video (``signaling.handlers``) and
evidence (``server.evidence.recording``) both resolve rooms here, so neither imports the
other.

The session moves the procedure (each move with its actor on the case timeline, inside
the caller's transaction):

* the applicant enters the waiting room of ``appt-N``: the appointment is ``checked_in``
  (so it is not marked no-show while they wait);
* staff admit the applicant: the appointment is ``in_session`` and the case
  ``inspecting`` (``in_session`` for a consultation);
* the room ends: the appointment is ``completed`` and a consultation ``closed``.

The first admission and the end also start and end the room's ``video_sessions`` row
(``server.supervision.sessions``), the view the supervisor's figures and live wall read.

A room stays shut once it has ended, across restarts: its ``live.ended`` event is the
record, and :func:`closed_reason` reads it together with the appointment's and the case's
state.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.principal import Principal
from server.booking.appointments import set_status
from server.booking.models import Appointment, Matter
from server.cases import procedure
from server.cases.models import Case, CaseEvent
from server.cases.timeline import append_event
from server.parsing import parse_id
from server.supervision.sessions import session_finished, session_started

log = logging.getLogger(__name__)

CLOSED_APPOINTMENT = frozenset({"cancelled", "completed", "no_show"})
"""Appointment states whose room may not be joined any more."""


def parse_room(room_id: str) -> tuple[str, int] | None:
    """``("case", 42)`` for ``case-42``, ``("appt", 7)`` for ``appt-7``; None otherwise."""
    kind, _, number = room_id.partition("-")
    row_id = parse_id(number)
    if kind in ("case", "appt") and row_id is not None:
        return kind, row_id
    return None


async def appointment_of_room(session: AsyncSession, room_id: str) -> Appointment | None:
    parsed = parse_room(room_id)
    if parsed is None or parsed[0] != "appt":
        return None
    return await session.get(Appointment, parsed[1])


async def case_of_room(session: AsyncSession, room_id: str) -> int | None:
    """The case whose timeline gets this room's events; None: the room is no case's."""
    parsed = parse_room(room_id)
    if parsed is None:
        return None
    kind, number = parsed
    case_id: int | None = number
    if kind == "appt":
        appt = await session.get(Appointment, number)
        case_id = appt.case_id if appt is not None else None
    if case_id is None or await session.get(Case, case_id) is None:
        return None
    return case_id


async def has_ended(session: AsyncSession, case_id: int, room_id: str) -> bool:
    """Whether the case timeline records that ``room_id`` ended (it stays shut)."""
    count = await session.scalar(
        select(func.count())
        .select_from(CaseEvent)
        .where(
            CaseEvent.case_id == case_id,
            CaseEvent.kind == "live.ended",
            CaseEvent.data["room"].as_string() == room_id,
        )
    )
    return bool(count)


async def closed_reason(session: AsyncSession, room_id: str) -> str | None:
    """Why ``room_id`` may not be joined (a sentence naming the state); None: it may.

    Checked against the database at every join, so a cancelled appointment or an ended
    room refuses its old links after a restart too. A room that belongs to no case (tests,
    a room name this module does not know) has nothing to check.
    """
    appt = await appointment_of_room(session, room_id)
    if appt is not None and appt.status in CLOSED_APPOINTMENT:
        return f"appointment {appt.id} is {appt.status}"
    case_id = await case_of_room(session, room_id)
    if case_id is None:
        if parse_room(room_id) is not None:
            return f"room {room_id} belongs to no case"
        return None
    case = await session.get(Case, case_id)
    assert case is not None
    if not procedure.is_open(case):
        return f"case {case.number} is {case.status}"
    if await has_ended(session, case_id, room_id):
        return f"room {room_id} has ended"
    return None


async def observed_notice(session: AsyncSession, room_id: str) -> bool:
    """Whether the applicant is told the session may be observed (the matter says so)."""
    case_id = await case_of_room(session, room_id)
    case = await session.get(Case, case_id) if case_id is not None else None
    if case is None or case.matter_id is None:
        return False
    matter = await session.get(Matter, case.matter_id)
    return bool(matter is not None and matter.observed_notice)


# -- the session moves the procedure ---------------------------------------------------


async def applicant_waiting(session: AsyncSession, room_id: str, actor: Principal | None) -> None:
    """The applicant entered the waiting room: their appointment is checked in."""
    appt = await appointment_of_room(session, room_id)
    if appt is not None and appt.status == "booked":
        await set_status(session, appt, "checked_in", actor)


async def applicant_admitted(session: AsyncSession, room_id: str, actor: Principal | None) -> None:
    """Staff admitted the applicant: the appointment is in session, the case inspecting."""
    appt = await appointment_of_room(session, room_id)
    if appt is not None and appt.status in ("booked", "checked_in"):
        await set_status(session, appt, "in_session", actor)
    case_id = await case_of_room(session, room_id)
    case = await session.get(Case, case_id, with_for_update=True) if case_id else None
    if case is not None:
        await session_started(session, room_id, case, appt)
    if case is not None and not await procedure.admitted(
        session, case, actor, consultation=case.kind == "consultation"
    ):
        log.info("case %s is %s; admission in %s moves nothing", case.number, case.status, room_id)


async def session_over(
    session: AsyncSession,
    room_id: str,
    actor: Principal | None,
    *,
    by: str,
    record: bool,
) -> None:
    """The room ended (``by`` an inspector's ``end``, or ``idle``: everyone left and the
    grace ran out): the appointment is completed and a consultation closed.

    ``record`` appends the ``live.ended`` event that keeps the room shut (an inspector's
    ``end`` has recorded it already).
    """
    case_id = await case_of_room(session, room_id)
    if case_id is None:
        return
    if record:
        await append_event(
            session, case_id, kind="live.ended", actor=actor, data={"room": room_id, "by": by}
        )
    await session_finished(session, room_id, by=by)
    appt = await appointment_of_room(session, room_id)
    if appt is not None and appt.status in ("checked_in", "in_session"):
        await set_status(session, appt, "completed", actor)
    case = await session.get(Case, case_id, with_for_update=True)
    if case is not None:
        await procedure.session_ended(session, case, actor)
