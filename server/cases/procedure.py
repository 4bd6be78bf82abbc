"""The procedure of a case (办件流程): its states, the moves between them and their guards.

Modelled on the remote-inspection practice (DB4403/T 451-2024; 申请 → 受理 → 预约 → 视频核查
→ 反馈/整改 → 发证)::

    submitted ─accept─▶ accepted ─book─▶ scheduled ─admit─▶ inspecting ◀─return─┐
        └─reject─▶ rejected                                  │ draft decision  │
                                                             ▼                 │
                              (no internal review) ◀── under_review ───────────┘
                                     │                       │ approve (second official)
                                     └───────────────────▶ decided ─close─▶ closed
                                                             │ outcome rectify
                                                         rectifying
                                                             │ follow-up booking, or document review
                                                       re_inspection ─admit─▶ inspecting …

    consultations:  scheduled ─admit─▶ in_session ─session ends─▶ closed
    any open state ─withdraw (applicant)─▶ withdrawn;  ─cancel (agency)─▶ cancelled

A booking made online is the application together with its appointment, so such a case
opens ``scheduled``; a case opened by staff for an application without a booking starts
``submitted``. A matter says which steps apply (``internal_review``,
``rectification_allowed``) and, for deadline supervision, the promised working days.

Every move is one function here; each checks the state (its error names it: "case YK-…
is closed"), changes the case row and appends one ``case.<state>`` event with its actor
and reason to the hash-chained timeline, inside the caller's transaction. Who may make a
move is decided by :mod:`server.cases.access`, never here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from recordings import checkpoints
from server.accounts.principal import Principal
from server.cases.models import Case
from server.cases.timeline import append_event
from server.db.types import utcnow
from server.errors import ConflictError, ValidationError
from server.supervision import invites

SUBMITTED = "submitted"
ACCEPTED = "accepted"
REJECTED = "rejected"
SCHEDULED = "scheduled"
INSPECTING = "inspecting"
IN_SESSION = "in_session"
UNDER_REVIEW = "under_review"
DECIDED = "decided"
RECTIFYING = "rectifying"
RE_INSPECTION = "re_inspection"
CLOSED = "closed"
WITHDRAWN = "withdrawn"
CANCELLED = "cancelled"

STATES = (
    SUBMITTED,
    ACCEPTED,
    REJECTED,
    SCHEDULED,
    INSPECTING,
    IN_SESSION,
    UNDER_REVIEW,
    DECIDED,
    RECTIFYING,
    RE_INSPECTION,
    CLOSED,
    WITHDRAWN,
    CANCELLED,
)
FINAL = frozenset({REJECTED, CLOSED, WITHDRAWN, CANCELLED})
OPEN = frozenset(STATES) - FINAL
OUTCOMES = ("pass", "rectify", "fail")

LABELS = {
    SUBMITTED: "Submitted",
    ACCEPTED: "Accepted",
    REJECTED: "Not accepted",
    SCHEDULED: "Scheduled",
    INSPECTING: "Video inspection",
    IN_SESSION: "Consultation in session",
    UNDER_REVIEW: "Internal review",
    DECIDED: "Decided",
    RECTIFYING: "Rectifying",
    RE_INSPECTION: "Re-inspection",
    CLOSED: "Closed (concluded)",
    WITHDRAWN: "Withdrawn",
    CANCELLED: "Cancelled by the agency",
}
"""English msgids of the states; pages translate them."""


class CaseStateError(ConflictError):
    """A move the case's state does not allow; the message names the state."""

    code = "case_state"
    message = "Case %(number)s is %(state)s"


def is_open(case: Case) -> bool:
    return case.status in OPEN


def require(case: Case, *states: str) -> None:
    """Raise :class:`CaseStateError` unless the case is in one of ``states``."""
    if case.status not in states:
        raise CaseStateError(
            params={"number": case.number, "state": case.status},
            details={"case": case.number, "state": case.status, "expected": list(states)},
        )


def require_open(case: Case) -> None:
    require(case, *sorted(OPEN))


async def _move(
    session: AsyncSession,
    case: Case,
    to: str,
    actor: Principal | None,
    data: Mapping[str, Any] | None = None,
) -> None:
    previous = case.status
    case.status = to
    case.state_changed_at = utcnow()
    if to in FINAL:
        case.closed_at = case.state_changed_at
    await session.flush()
    await append_event(
        session, case, kind=f"case.{to}", actor=actor, data={"from": previous, **(data or {})}
    )
    # The agency key signs the head this move appended (issue 13, anchoring).
    await checkpoints.on_state_change(session, case, f"case.{to}")
    # A closed case asks its applicant for the 一事一评 rating (issue 17), by SMS.
    await invites.on_state_change(session, case, to)


def _reason(reason: str | None, field: str = "reason") -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationError(fields={field: "A reason is required"})
    return text[:1000]


# -- application -----------------------------------------------------------------------


async def accept(session: AsyncSession, case: Case, actor: Principal) -> None:
    require(case, SUBMITTED)
    await _move(session, case, ACCEPTED, actor)


async def reject(session: AsyncSession, case: Case, actor: Principal, reason: str) -> None:
    require(case, SUBMITTED)
    await _move(session, case, REJECTED, actor, {"reason": _reason(reason)})


async def scheduled(
    session: AsyncSession, case: Case, actor: Principal | None, appointment_id: int
) -> None:
    """An appointment was booked for the case: the first one schedules it, one booked
    while rectifying is the re-inspection (same case, linked by the appointment)."""
    if case.status == RECTIFYING:
        await _move(
            session, case, RE_INSPECTION, actor, {"appointment_id": appointment_id, "by": "video"}
        )
        return
    if case.status in (SCHEDULED, RE_INSPECTION):
        return  # a reschedule or a second slot of the same step
    require(case, SUBMITTED, ACCEPTED)
    await _move(session, case, SCHEDULED, actor, {"appointment_id": appointment_id})


async def document_review(session: AsyncSession, case: Case, actor: Principal, note: str) -> None:
    """Re-inspection by the documents the applicant sent (no second call)."""
    require(case, RECTIFYING)
    await _move(session, case, RE_INSPECTION, actor, {"by": "documents", "note": note[:1000]})


# -- the session -----------------------------------------------------------------------


ADMITS_FROM = frozenset({SUBMITTED, ACCEPTED, SCHEDULED, RE_INSPECTION})
"""States whose case starts its inspection (or consultation) when the applicant is admitted."""


async def admitted(
    session: AsyncSession, case: Case, actor: Principal | None, *, consultation: bool
) -> bool:
    """The first admission of the applicant starts the inspection (or consultation).

    Only from :data:`ADMITS_FROM`: a rejoin, a second room of the same step, or a call
    while the draft is under review or the applicant is rectifying is on the timeline as
    a live event but moves nothing. Returns whether the state moved.
    """
    if case.status not in ADMITS_FROM:
        return False
    await _move(session, case, IN_SESSION if consultation else INSPECTING, actor)
    return True


async def session_ended(session: AsyncSession, case: Case, actor: Principal | None) -> bool:
    """A consultation ends with its session; an inspection goes on to the decision."""
    if case.status != IN_SESSION:
        return False
    await _move(session, case, CLOSED, actor, {"by": "session_end"})
    return True


# -- decision and review ---------------------------------------------------------------


def outcome_problems(
    outcome: str, reason: str | None, *, rectification_allowed: bool
) -> dict[str, str]:
    """Field errors of a decision's outcome and reason (none: it may be drafted)."""
    if outcome not in OUTCOMES:
        return {"outcome": "Choose pass, rectify or fail"}
    if outcome == "rectify" and not rectification_allowed:
        return {"outcome": "This matter does not allow rectification"}
    if outcome in ("rectify", "fail") and not (reason or "").strip():
        return {"reason": "A reason is required"}
    return {}


async def draft_decision(
    session: AsyncSession,
    case: Case,
    actor: Principal,
    *,
    decision_id: int,
    outcome: str,
    reason: str,
    review: bool,
    reviewer: Principal | None,
    deadline: dt.date | None,
) -> None:
    """The inspector's decision: to internal review, or in force at once without one."""
    require(case, INSPECTING)
    case.outcome = outcome
    case.deadline = deadline if outcome == "rectify" else None
    data: dict[str, Any] = {"decision_id": decision_id, "outcome": outcome, "reason": reason}
    if deadline is not None and outcome == "rectify":
        data["deadline"] = deadline.isoformat()
    if review:
        if reviewer is not None:
            data["reviewer"] = {"id": reviewer.id, "name": reviewer.name}
        await _move(session, case, UNDER_REVIEW, actor, data)
        return
    await _decided(session, case, actor, data)


async def _decided(
    session: AsyncSession, case: Case, actor: Principal, data: Mapping[str, Any]
) -> None:
    await _move(session, case, DECIDED, actor, data)
    if case.outcome == "rectify":
        await _move(
            session,
            case,
            RECTIFYING,
            actor,
            {"deadline": case.deadline.isoformat() if case.deadline else None},
        )


async def approve(session: AsyncSession, case: Case, actor: Principal, note: str = "") -> None:
    require(case, UNDER_REVIEW)
    await _decided(
        session, case, actor, {"outcome": case.outcome, "review": "approved", "note": note}
    )


async def return_draft(session: AsyncSession, case: Case, actor: Principal, reason: str) -> None:
    require(case, UNDER_REVIEW)
    case.outcome = None
    case.deadline = None
    await _move(session, case, INSPECTING, actor, {"review": "returned", "reason": _reason(reason)})


async def close(
    session: AsyncSession, case: Case, actor: Principal, *, licence_number: str | None
) -> None:
    """办结: a decided pass or fail case; the licence or result number where one is issued."""
    require(case, DECIDED)
    number = (licence_number or "").strip()[:64] or None
    case.licence_number = number
    await _move(session, case, CLOSED, actor, {"outcome": case.outcome, "licence_number": number})


# -- ending early ----------------------------------------------------------------------


async def withdraw(session: AsyncSession, case: Case, actor: Principal, reason: str) -> None:
    require(case, SUBMITTED, ACCEPTED, SCHEDULED, RECTIFYING, RE_INSPECTION)
    await _move(session, case, WITHDRAWN, actor, {"reason": (reason or "").strip()[:1000]})


async def cancel(session: AsyncSession, case: Case, actor: Principal, reason: str) -> None:
    require_open(case)
    await _move(session, case, CANCELLED, actor, {"reason": _reason(reason)})


# -- working-day deadlines -------------------------------------------------------------


def add_working_days(start: dt.date, days: int, is_working: Callable[[dt.date], bool]) -> dt.date:
    """The day ``days`` working days after ``start`` (holidays and 调休 by ``is_working``)."""
    day, left = start, days
    while left > 0:
        day += dt.timedelta(days=1)
        if is_working(day):
            left -= 1
    return day
