"""The steps of a case that people take on its page or through the API.

Each function runs in the caller's transaction: it checks the rules that need the
database (who may review, which staff may join the case), records what the step produces
(the decision row, a party) and makes the move in :mod:`server.cases.procedure`. Whether
the caller may ask at all was decided by :mod:`server.cases.access` before.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.evidence import record_decision
from recordings.integrity import checked_decision
from recordings.models import ChecklistResult, Decision
from server.accounts.models import User
from server.accounts.principal import Principal
from server.booking.availability import load_calendar
from server.booking.models import Matter, StaffQualification
from server.cases import procedure
from server.cases.access import STAFF_PARTIES, WORKING, set_party, staff_parties
from server.cases.models import Case
from server.cases.timeline import append_event
from server.errors import PermissionDeniedError, ValidationError


@dataclass(frozen=True, slots=True)
class StaffChoice:
    id: int
    name: str
    role: str


async def matter_of(session: AsyncSession, case: Case) -> Matter | None:
    return await session.get(Matter, case.matter_id) if case.matter_id else None


async def department_staff(session: AsyncSession, case: Case) -> list[StaffChoice]:
    """Active staff of the case's department: qualified for one of its matters, and every
    supervisor (who oversees all departments)."""
    matter = await matter_of(session, case)
    qualified: set[int] = set()
    if matter is not None:
        rows = await session.scalars(
            select(StaffQualification.user_id)
            .join(Matter, Matter.id == StaffQualification.matter_id)
            .where(Matter.department_id == matter.department_id)
        )
        qualified = set(rows)
    users = await session.scalars(
        select(User).where(User.active.is_(True)).order_by(User.role, User.display_name)
    )
    return [
        StaffChoice(u.id, u.display_name, u.role)
        for u in users
        if u.role == "supervisor" or (u.role == "inspector" and u.id in qualified)
    ]


async def reviewers_for(session: AsyncSession, case: Case) -> list[StaffChoice]:
    """Who may be the second official: department staff who did not inspect the case."""
    inspecting = {
        p.principal_id for p in await staff_parties(session, case.id) if p.role in WORKING
    }
    return [c for c in await department_staff(session, case) if c.id not in inspecting]


def checklist_items(matter: Matter | None) -> list[str]:
    """The matter's checklist, in the order the inspector walks it (item texts)."""
    if matter is None:
        return []
    return [
        str(i.get("text", "")).strip() for i in matter.checklist if str(i.get("text", "")).strip()
    ]


async def checklist_missing(session: AsyncSession, case: Case, matter: Matter | None) -> list[str]:
    """The matter's checklist items that have no result on the case yet."""
    done = set(
        await session.scalars(
            select(ChecklistResult.item).where(ChecklistResult.case_id == case.id)
        )
    )
    return [item for item in checklist_items(matter) if item not in done]


async def current_decision(session: AsyncSession, case_id: int) -> Decision | None:
    """The newest decision, checked against the chain (an edited row is refused, 409)."""
    return await checked_decision(session, case_id)


async def draft_decision(
    session: AsyncSession,
    case: Case,
    actor: Principal,
    *,
    outcome: str,
    reason: str,
    requirements: str,
    rectify_days: int | None,
    reviewer_id: int | None,
    today: dt.date,
    deadline: dt.date | None = None,
) -> Decision:
    """The inspector's decision; with internal review it waits for the second official.

    A rectification's deadline is counted in working days (statutory holidays, 调休 and
    the agency's own overrides) from ``today``: the decision's ``rectify_days`` or the
    matter's default.
    """
    procedure.require(case, procedure.INSPECTING)
    matter = await matter_of(session, case)
    fields = procedure.outcome_problems(
        outcome, reason, rectification_allowed=matter is None or matter.rectification_allowed
    )
    if outcome == "rectify" and not requirements.strip():
        fields["requirements"] = "Rectification needs written requirements"
    missing = await checklist_missing(session, case, matter)
    if missing:
        raise ValidationError(
            "Record a result for every checklist item first",
            fields={"checklist": "Record a result for every checklist item first"},
            details={"missing": missing},
        )
    if outcome == "rectify" and deadline is None:
        days = rectify_days or (matter.rectify_days if matter else 10)
        if not 1 <= days <= 365:
            fields["rectify_days"] = "Enter 1 to 365 working days"
        else:
            calendar = await load_calendar(session)
            deadline = procedure.add_working_days(today, days, calendar.is_working_day)
    if fields:
        raise ValidationError(fields=fields)
    review = matter is not None and matter.internal_review
    reviewer: Principal | None = None
    if review:
        reviewer = await _reviewer(session, case, actor, reviewer_id)
    row = await record_decision(
        session,
        case,
        by=actor,
        outcome=outcome,
        requirements=requirements if outcome == "rectify" else "",
        deadline=deadline,
        today=today,
        reason=reason.strip(),
    )
    if reviewer is not None:
        await set_party(session, case.id, "staff", reviewer.id, "reviewer")
    await procedure.draft_decision(
        session,
        case,
        actor,
        decision_id=row.id,
        outcome=outcome,
        reason=reason.strip(),
        review=review,
        reviewer=reviewer,
        deadline=deadline,
    )
    return row


async def _reviewer(
    session: AsyncSession, case: Case, actor: Principal, reviewer_id: int | None
) -> Principal:
    if reviewer_id is None:
        raise ValidationError(
            fields={"reviewer_id": "Choose the official who reviews the decision"}
        )
    if reviewer_id == actor.id:
        raise ValidationError(fields={"reviewer_id": "The reviewer must be another official"})
    choice = next((c for c in await reviewers_for(session, case) if c.id == reviewer_id), None)
    if choice is None:
        raise ValidationError(
            fields={
                "reviewer_id": "The reviewer must be a supervisor or an inspector of the "
                "department who did not inspect this case"
            }
        )
    return Principal("staff", choice.id, choice.role, choice.name)


async def review_decision(
    session: AsyncSession, case: Case, actor: Principal, *, approve: bool, note: str
) -> None:
    """The second official approves the draft (it takes effect) or returns it."""
    procedure.require(case, procedure.UNDER_REVIEW)
    draft = await current_decision(session, case.id)
    if draft is not None and draft.decided_by_id == actor.id:
        raise PermissionDeniedError("The official who drafted a decision cannot review it")
    if approve:
        await procedure.approve(session, case, actor, note.strip())
    else:
        await procedure.return_draft(session, case, actor, note)


async def close_case(
    session: AsyncSession, case: Case, actor: Principal, licence_number: str | None
) -> None:
    matter = await matter_of(session, case)
    if (
        matter is not None
        and matter.issues_licence
        and case.outcome == "pass"
        and not (licence_number or "").strip()
    ):
        raise ValidationError(
            fields={"licence_number": "This matter issues a licence: enter its number"}
        )
    await procedure.close(session, case, actor, licence_number=licence_number)


ADDABLE_ROLES = ("lead", "inspector", "expert", "reviewer", "observer", "supervisor")


async def add_staff_party(
    session: AsyncSession, case: Case, actor: Principal, user_id: int, role: str
) -> StaffChoice:
    """Add a member of staff to the case (co-inspector, expert, observer …)."""
    procedure.require_open(case)
    if role not in ADDABLE_ROLES or role not in STAFF_PARTIES:
        raise ValidationError(fields={"role": "This value is not one of the allowed choices"})
    user = await session.get(User, user_id)
    if user is None or not user.active:
        raise ValidationError(fields={"user_id": "No such member of staff"})
    if role == "supervisor" and user.role not in ("supervisor", "admin"):
        raise ValidationError(fields={"role": "Only supervisors can be supervising parties"})
    if role == "lead":
        for party in await staff_parties(session, case.id):
            if party.role == "lead" and party.principal_id != user.id:
                party.role = "inspector"
    previous = await set_party(session, case.id, "staff", user.id, role)
    await append_event(
        session,
        case,
        kind="case.party_added",
        actor=actor,
        data={"user_id": user.id, "name": user.display_name, "role": role, "previous": previous},
    )
    return StaffChoice(user.id, user.display_name, role)
